/*
 * The JSON helpers of include/vespid.h: read top-level fields of the parameters, build a result
 * object. Input is whatever the caller sent, so the reader never reads past the terminating NUL
 * and gives up (returns "absent") on anything malformed or nested deeper than MAX_DEPTH.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/vespid.h"

#define MAX_DEPTH 512

int vsp_json_unescape(const char *p, char *out, size_t cap);

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Past the end of the string starting at the opening quote p, or NULL if unterminated. */
static const char *skip_string(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '"')
			return p + 1;
		if (*p == '\\' && !*++p)
			return NULL;
	}
	return NULL;
}

/* Past the end of the value starting at p, or NULL if malformed. */
static const char *skip_value(const char *p)
{
	int depth = 0;
	p = skip_ws(p);
	do {
		switch (*p) {
		case '"':
			if (!(p = skip_string(p)))
				return NULL;
			break;
		case '{': case '[':
			if (++depth > MAX_DEPTH)
				return NULL;
			p++;
			break;
		case '}': case ']':
			if (--depth < 0)
				return NULL;
			p++;
			break;
		case ',': case ':':
			if (depth == 0)
				return NULL;
			p++;
			break;
		case '\0':
			return NULL;
		default:
			if (strchr(" \t\r\n", *p)) {
				p++;
				break;
			}
			if (!strchr("-+.0123456789eEtruefalsn", *p))
				return NULL;
			while (*p && strchr("-+.0123456789eEtruefalsn", *p))
				p++;
		}
	} while (depth > 0);
	return p;
}

/* Whether the JSON string at p (opening quote) equals key, escapes decoded. */
static int key_equals(const char *p, const char *key, size_t klen)
{
	char buf[256];
	if (klen >= sizeof(buf))
		return 0;
	int n = vsp_json_unescape(p, buf, sizeof(buf));
	return n >= 0 && (size_t)n == klen && memcmp(buf, key, klen) == 0;
}

const char *vespid_get_raw(const char *json, const char *key, size_t *len)
{
	if (!json || !key)
		return NULL;
	size_t klen = strlen(key);
	const char *p = skip_ws(json);
	if (*p++ != '{')
		return NULL;
	p = skip_ws(p);
	if (*p == '}')
		return NULL;
	for (;;) {
		if (*p != '"')
			return NULL;
		const char *k = p;
		if (!(p = skip_string(p)))
			return NULL;
		p = skip_ws(p);
		if (*p++ != ':')
			return NULL;
		const char *v = skip_ws(p);
		const char *end = skip_value(v);
		if (!end)
			return NULL;
		if (key_equals(k, key, klen)) {
			*len = (size_t)(end - v);
			return v;
		}
		p = skip_ws(end);
		if (*p == '}')
			return NULL;
		if (*p++ != ',')
			return NULL;
		p = skip_ws(p);
	}
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
		else return -1;
	}
	*out = v;
	return 0;
}

/*
 * Decodes the JSON string at p (opening quote) into out[cap] with a NUL. Returns its length, -1 if
 * malformed, -2 if it does not fit (out then holds a NUL-terminated prefix).
 */
int vsp_json_unescape(const char *p, char *out, size_t cap)
{
	size_t n = 0;
	int overflow = 0;
	if (*p++ != '"' || cap == 0)
		return -1;
	for (;;) {
		unsigned c = (unsigned char)*p++;
		char enc[4];
		size_t elen = 1;
		if (c == '"')
			break;
		if (c == 0 || c < 0x20)
			return -1;
		if (c == '\\') {
			char e = *p++;
			switch (e) {
			case '"': case '\\': case '/': enc[0] = e; break;
			case 'b': enc[0] = '\b'; break;
			case 'f': enc[0] = '\f'; break;
			case 'n': enc[0] = '\n'; break;
			case 'r': enc[0] = '\r'; break;
			case 't': enc[0] = '\t'; break;
			case 'u': {
				unsigned cp, lo;
				if (hex4(p, &cp) < 0)
					return -1;
				p += 4;
				if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo) == 0 &&
				    lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				} else if (cp >= 0xd800 && cp < 0xe000) {
					cp = 0xfffd; /* a lone surrogate */
				}
				if (cp < 0x80) enc[0] = (char)cp;
				else if (cp < 0x800) { enc[0] = (char)(0xc0 | cp >> 6); enc[1] = (char)(0x80 | (cp & 0x3f)); elen = 2; }
				else if (cp < 0x10000) { enc[0] = (char)(0xe0 | cp >> 12); enc[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); enc[2] = (char)(0x80 | (cp & 0x3f)); elen = 3; }
				else { enc[0] = (char)(0xf0 | cp >> 18); enc[1] = (char)(0x80 | ((cp >> 12) & 0x3f)); enc[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); enc[3] = (char)(0x80 | (cp & 0x3f)); elen = 4; }
				break;
			}
			default:
				return -1;
			}
		} else {
			enc[0] = (char)c;
		}
		if (n + elen < cap) {
			memcpy(out + n, enc, elen);
			n += elen;
		} else {
			overflow = 1;
		}
	}
	out[n] = 0;
	return overflow ? -2 : (int)n;
}

int vespid_get_string(const char *json, const char *key, char *out, size_t cap)
{
	size_t len;
	const char *v = vespid_get_raw(json, key, &len);
	if (!v || *v != '"' || !out || cap == 0)
		return -1;
	return vsp_json_unescape(v, out, cap);
}

int vespid_get_number(const char *json, const char *key, double *out)
{
	size_t len;
	const char *v = vespid_get_raw(json, key, &len);
	if (!v || !(*v == '-' || (*v >= '0' && *v <= '9')))
		return -1;
	char *end;
	double d = strtod(v, &end);
	if (end != v + len)
		return -1;
	*out = d;
	return 0;
}

int vespid_get_bool(const char *json, const char *key, int *out)
{
	size_t len;
	const char *v = vespid_get_raw(json, key, &len);
	if (v && len == 4 && memcmp(v, "true", 4) == 0)
		*out = 1;
	else if (v && len == 5 && memcmp(v, "false", 5) == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

struct vespid_json {
	char *buf;
	size_t len, cap;
	int fields;
};

static void put(struct vespid_json *j, const char *s, size_t n)
{
	if (j->len + n + 2 > j->cap) {
		size_t cap = j->cap ? j->cap : 256;
		while (j->len + n + 2 > cap)
			cap *= 2;
		char *buf = realloc(j->buf, cap);
		if (!buf)
			vespid_fail("out of memory building the result");
		j->buf = buf;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = 0;
}

static void put_escaped(struct vespid_json *j, const char *s)
{
	put(j, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(j, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			put(j, esc, 6);
		} else {
			put(j, (const char *)&c, 1);
		}
	}
	put(j, "\"", 1);
}

static void field(struct vespid_json *j, const char *key)
{
	put(j, j->fields++ ? "," : "{", 1);
	put_escaped(j, key ? key : "");
	put(j, ":", 1);
}

struct vespid_json *vespid_json_new(void)
{
	struct vespid_json *j = calloc(1, sizeof(*j));
	if (!j)
		vespid_fail("out of memory building the result");
	return j;
}

void vespid_json_string(struct vespid_json *j, const char *key, const char *value)
{
	field(j, key);
	if (value)
		put_escaped(j, value);
	else
		put(j, "null", 4);
}

void vespid_json_number(struct vespid_json *j, const char *key, double value)
{
	char num[32];
	field(j, key);
	if (value != value || value - value != 0) /* NaN or infinite: JSON has no such number */
		put(j, "null", 4);
	else
		put(j, num, (size_t)snprintf(num, sizeof num, "%.17g", value));
}

void vespid_json_int(struct vespid_json *j, const char *key, long long value)
{
	char num[24];
	field(j, key);
	put(j, num, (size_t)snprintf(num, sizeof num, "%lld", value));
}

void vespid_json_bool(struct vespid_json *j, const char *key, int value)
{
	field(j, key);
	put(j, value ? "true" : "false", value ? 4 : 5);
}

void vespid_json_null(struct vespid_json *j, const char *key)
{
	field(j, key);
	put(j, "null", 4);
}

void vespid_json_raw(struct vespid_json *j, const char *key, const char *json)
{
	field(j, key);
	if (json)
		put(j, json, strlen(json));
	else
		put(j, "null", 4);
}

const char *vespid_json_finish(struct vespid_json *j)
{
	put(j, j->fields ? "}" : "{}", j->fields ? 1 : 2);
	return j->buf;
}

void vespid_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}
