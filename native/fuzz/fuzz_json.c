/*
 * libFuzzer target: the JSON helpers C actions use (guest/json.c), compiled for the host. Input:
 * a key (up to the first NUL) then a JSON text. Checks: no memory error reading any input, and
 * whatever the builder writes, the reader reads back the same string.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/vespid.h"

void vespid_fail(const char *message)
{
	fprintf(stderr, "vespid_fail: %s\n", message);
	abort();
}

void vespid_return(const char *json, size_t len)
{
	(void)json, (void)len;
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = 0;
	const char *key = buf;
	const char *json = buf + strlen(buf) + (strlen(buf) < size ? 1 : 0);

	char out[64];
	double d;
	int b;
	size_t len;
	vespid_get_string(json, key, out, sizeof out);
	vespid_get_number(json, key, &d);
	vespid_get_bool(json, key, &b);
	const char *raw = vespid_get_raw(json, key, &len);
	if (raw && (raw < json || raw + len > json + strlen(json)))
		abort();

	/* Round trip: a string written by the builder reads back unchanged. */
	struct vespid_json *j = vespid_json_new();
	vespid_json_string(j, key, json);
	vespid_json_number(j, "n", (double)size / 3);
	const char *text = vespid_json_finish(j);
	size_t cap = strlen(json) + 1;
	char *back = malloc(cap);
	if (strlen(key) < 255) {
		int n = vespid_get_string(text, key, back, cap);
		if (n != (int)strlen(json) || strcmp(back, json) != 0)
			abort();
	}
	free(back);
	free((void *)text);
	free(j);
	free(buf);
	return 0;
}
