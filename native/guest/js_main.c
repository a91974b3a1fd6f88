/*
 * main() of the JavaScript guest image: QuickJS with a console and OpenWhisk's action shapes
 * (`function main(params)`, `async function main`, `exports.main = …`, `module.exports = …`, a
 * zip's CommonJS or ES modules). The action's source (or a zip's module map) arrives as the INIT
 * input and is loaded, its modules run, before the PARAMS input is asked for, so a snapshot taken
 * there holds a ready-to-call function.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "quickjs.h"
#include "runtime.h"

/*
 * The JavaScript half of the guest, embedded at build time and NUL-terminated for JS_Eval:
 * guest/prelude.js (console, CommonJS for plain code, finding and calling main) and
 * guest/modules.js (the module loader of zip actions, evaluated only for them). The paths are
 * relative to native/, where the Makefile runs the compiler.
 */
#define EMBED(sym, file)                    \
	__asm__(".section .rodata\n"        \
		".global " #sym "\n" #sym ":\n" \
		".incbin \"" file "\"\n"        \
		".global " #sym "_end\n" #sym "_end:\n" \
		".byte 0\n"                     \
		".previous\n");                 \
	extern const char sym[], sym##_end[]
EMBED(vsp_prelude_js, "guest/prelude.js");
EMBED(vsp_modules_js, "guest/modules.js");

/*
 * An INIT input that starts with this is a JSON envelope rather than plain source:
 * {"main": "fn", "source": "..."} (plain code with another main) or {"main": "fn", "files":
 * {"/path": "source", ...}} (a zip action's module map), made by runner/js-init.ts. A NUL cannot
 * start valid JavaScript, so no plain source is mistaken for one.
 */
static const char envelope_mark[] = "\0vespid:init\n";
#define ENVELOPE_MARK_LEN (sizeof(envelope_mark) - 1)

/* The prelude's API object: plain, loadModules, run, and from modules.js resolveImport, moduleFor, cjsExports. */
static JSValue api;

static struct {
	int done;
	int status;
	char *text;
	size_t len;
} outcome;

static JSValue js_write(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
	(void)this_val;
	int fd;
	size_t len;
	if (argc < 2 || JS_ToInt32(ctx, &fd, argv[0]))
		return JS_EXCEPTION;
	const char *s = JS_ToCStringLen(ctx, &len, argv[1]);
	if (!s)
		return JS_EXCEPTION;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd == 2 ? 2 : 1, s + off, len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	JS_FreeCString(ctx, s);
	return JS_UNDEFINED;
}

static JSValue js_settle(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
	(void)this_val;
	int status;
	size_t len;
	if (outcome.done)
		return JS_UNDEFINED;
	if (argc < 2 || JS_ToInt32(ctx, &status, argv[0]))
		return JS_EXCEPTION;
	const char *s = JS_ToCStringLen(ctx, &len, argv[1]);
	if (!s)
		return JS_EXCEPTION;
	outcome.text = malloc(len + 1);
	if (!outcome.text) {
		JS_FreeCString(ctx, s);
		return JS_ThrowOutOfMemory(ctx);
	}
	memcpy(outcome.text, s, len + 1);
	outcome.len = len;
	outcome.status = status ? VSP_OUT_ERROR : VSP_OUT_OK;
	outcome.done = 1;
	JS_FreeCString(ctx, s);
	return JS_UNDEFINED;
}

/* compile(source, filename): runs source as a global script and returns its completion value. */
static JSValue js_compile(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
	(void)this_val;
	size_t len;
	if (argc < 2)
		return JS_ThrowTypeError(ctx, "compile(source, filename)");
	const char *src = JS_ToCStringLen(ctx, &len, argv[0]);
	const char *name = src ? JS_ToCString(ctx, argv[1]) : NULL;
	JSValue v = name ? JS_Eval(ctx, src, len, name, JS_EVAL_TYPE_GLOBAL) : JS_EXCEPTION;
	JS_FreeCString(ctx, src);
	JS_FreeCString(ctx, name);
	return v;
}

/* evalModule(source, name): compiles, links (through the loader below) and runs an ES module. */
static JSValue js_eval_module(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
	(void)this_val;
	size_t len;
	if (argc < 2)
		return JS_ThrowTypeError(ctx, "evalModule(source, name)");
	const char *src = JS_ToCStringLen(ctx, &len, argv[0]);
	const char *name = src ? JS_ToCString(ctx, argv[1]) : NULL;
	JSValue v = name ? JS_Eval(ctx, src, len, name, JS_EVAL_TYPE_MODULE) : JS_EXCEPTION;
	JS_FreeCString(ctx, src);
	JS_FreeCString(ctx, name);
	return v;
}

/* api[method](args...), the result owned by the caller. */
static JSValue call_api(JSContext *ctx, const char *method, int argc, JSValueConst *argv)
{
	JSValue fn = JS_GetPropertyStr(ctx, api, method);
	JSValue r = JS_Call(ctx, fn, api, argc, argv);
	JS_FreeValue(ctx, fn);
	return r;
}

/* ES-module names are paths in the module map; the prelude resolves them as Node would. */
static char *module_normalize(JSContext *ctx, const char *base, const char *name, void *opaque)
{
	(void)opaque;
	JSValue args[2] = { JS_NewString(ctx, base), JS_NewString(ctx, name) };
	JSValue r = call_api(ctx, "resolveImport", 2, args);
	JS_FreeValue(ctx, args[0]);
	JS_FreeValue(ctx, args[1]);
	if (JS_IsException(r))
		return NULL; /* the pending exception is the import's error */
	const char *s = JS_ToCString(ctx, r);
	JS_FreeValue(ctx, r);
	if (!s)
		return NULL;
	char *out = js_strdup(ctx, s);
	JS_FreeCString(ctx, s);
	return out;
}

/* A CommonJS (or JSON) module seen from an ES module: `default` is its exports, plus each key. */
static int cjs_module_init(JSContext *ctx, JSModuleDef *m)
{
	JSAtom atom = JS_GetModuleName(ctx, m);
	JSValue name = JS_AtomToString(ctx, atom);
	JS_FreeAtom(ctx, atom);
	JSValue got = call_api(ctx, "cjsExports", 1, &name);
	JS_FreeValue(ctx, name);
	if (JS_IsException(got))
		return -1;
	JSValue value = JS_GetPropertyStr(ctx, got, "value");
	JSValue keys = JS_GetPropertyStr(ctx, got, "keys");
	JS_FreeValue(ctx, got);
	int rc = JS_SetModuleExport(ctx, m, "default", JS_DupValue(ctx, value));
	uint32_t n = 0;
	JSValue length = JS_GetPropertyStr(ctx, keys, "length");
	JS_ToUint32(ctx, &n, length);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		JSValue key = JS_GetPropertyUint32(ctx, keys, i);
		const char *k = JS_ToCString(ctx, key);
		JS_FreeValue(ctx, key);
		if (!k) {
			rc = -1;
			break;
		}
		rc = JS_SetModuleExport(ctx, m, k, JS_GetPropertyStr(ctx, value, k));
		JS_FreeCString(ctx, k);
	}
	JS_FreeValue(ctx, value);
	JS_FreeValue(ctx, keys);
	return rc;
}

static JSModuleDef *module_loader(JSContext *ctx, const char *name, void *opaque)
{
	(void)opaque;
	JSValue arg = JS_NewString(ctx, name);
	JSValue r = call_api(ctx, "moduleFor", 1, &arg);
	JS_FreeValue(ctx, arg);
	if (JS_IsException(r))
		return NULL;
	if (JS_IsString(r)) { /* an ES module's source */
		size_t len;
		const char *src = JS_ToCStringLen(ctx, &len, r);
		JS_FreeValue(ctx, r);
		if (!src)
			return NULL;
		JSValue fn = JS_Eval(ctx, src, len, name, JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
		JS_FreeCString(ctx, src);
		if (JS_IsException(fn))
			return NULL;
		JSModuleDef *m = JS_VALUE_GET_PTR(fn);
		JS_FreeValue(ctx, fn);
		return m;
	}
	/* CommonJS or JSON, already run by the prelude: r lists its named exports. */
	JSModuleDef *m = JS_NewCModule(ctx, name, cjs_module_init);
	uint32_t n = 0;
	JSValue length = JS_GetPropertyStr(ctx, r, "length");
	JS_ToUint32(ctx, &n, length);
	if (!m || JS_AddModuleExport(ctx, m, "default") < 0)
		goto fail;
	for (uint32_t i = 0; i < n; i++) {
		JSValue key = JS_GetPropertyUint32(ctx, r, i);
		const char *k = JS_ToCString(ctx, key);
		JS_FreeValue(ctx, key);
		if (!k)
			goto fail;
		int rc = JS_AddModuleExport(ctx, m, k);
		JS_FreeCString(ctx, k);
		if (rc < 0)
			goto fail;
	}
	JS_FreeValue(ctx, r);
	return m;
fail:
	JS_FreeValue(ctx, r);
	return NULL;
}

/* The pending exception as text: "Name: message" and the stack, for the activation's result. */
static void finish_with_exception(JSContext *ctx, const char *what)
{
	JSValue e = JS_GetException(ctx);
	JSValue stack = JS_IsError(ctx, e) ? JS_GetPropertyStr(ctx, e, "stack") : JS_UNDEFINED;
	const char *msg = JS_ToCString(ctx, e);
	const char *st = JS_IsUndefined(stack) ? NULL : JS_ToCString(ctx, stack);
	size_t cap = strlen(what) + (msg ? strlen(msg) : 0) + (st ? strlen(st) : 0) + 8;
	char *text = malloc(cap);
	if (!text)
		vsp_finish(VSP_OUT_ERROR, "out of memory", 13);
	size_t n = (size_t)snprintf(text, cap, "%s%s%s%s", what, msg ? msg : "exception", st ? "\n" : "", st ? st : "");
	while (n > 0 && text[n - 1] == '\n')
		text[--n] = 0;
	vsp_finish(VSP_OUT_ERROR, text, n);
}

/*
 * Math.random from a xorshift128+ seeded with getrandom() after the parameters arrive, so each
 * invocation draws fresh numbers (QuickJS seeds from the clock, which two virtines can share).
 */
static uint64_t random_state[2];

static JSValue js_random(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
	(void)this_val, (void)argc, (void)argv;
	uint64_t s1 = random_state[0], s0 = random_state[1];
	random_state[0] = s0;
	s1 ^= s1 << 23;
	random_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return JS_NewFloat64(ctx, (double)((random_state[1] + s0) >> 11) * 0x1.0p-53);
}

/*
 * RDRAND runs at CPL 3 without leaving the virtine, where getrandom() costs an exit (~20 µs on
 * kvm_pvm, a third of a warm call). Math.random needs no more than that; without RDRAND, or if
 * it keeps failing, getrandom() it is.
 */
static int have_rdrand; /* asked once at init (CPUID is an exit too), kept in the snapshot */

static void probe_rdrand(void)
{
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	have_rdrand = (c >> 30) & 1;
}

static int rdrand_seed(void)
{
	if (!have_rdrand)
		return -1;
	for (int i = 0; i < 2; i++) {
		unsigned char ok = 0;
		for (int tries = 0; tries < 10 && !ok; tries++)
			__asm__ volatile("rdrand %0; setc %1" : "=r"(random_state[i]), "=qm"(ok));
		if (!ok)
			return -1;
	}
	return 0;
}

static void seed_random(JSContext *ctx)
{
	if (rdrand_seed() < 0 || (random_state[0] | random_state[1]) == 0)
		while (getrandom(random_state, sizeof(random_state), 0) != sizeof(random_state) ||
		       (random_state[0] | random_state[1]) == 0)
			;
	JSValue global = JS_GetGlobalObject(ctx);
	JSValue math = JS_GetPropertyStr(ctx, global, "Math");
	JS_SetPropertyStr(ctx, math, "random", JS_NewCFunction(ctx, js_random, "random", 0));
	JS_FreeValue(ctx, math);
	JS_FreeValue(ctx, global);
}

/* Runs the promise jobs there are; there are no timers or I/O to wait for. */
static int run_jobs(JSRuntime *rt, int (*until)(void))
{
	JSContext *job_ctx;
	while (!until()) {
		int j = JS_ExecutePendingJob(rt, &job_ctx);
		if (j < 0)
			finish_with_exception(job_ctx, "");
		if (j == 0)
			return 0;
	}
	return 1;
}
static int never(void) { return 0; }
static int settled(void) { return outcome.done; }

/* A string property of an object as a new JS value, or undefined. */
static JSValue string_prop(JSContext *ctx, JSValueConst obj, const char *name)
{
	JSValue v = JS_GetPropertyStr(ctx, obj, name);
	if (JS_IsString(v))
		return v;
	JS_FreeValue(ctx, v);
	return JS_UNDEFINED;
}

/*
 * Loads the action from the INIT input: plain source (main is `main`), or an envelope naming
 * another main and carrying the source or a zip's module map. Whatever fails here fails the
 * load, which the runner's check at PUT reports as the code's error.
 */
static void load_action(JSContext *ctx)
{
	size_t code_len;
	char *code = vsp_input(VSP_INPUT_INIT, &code_len);
	JSValue r;
	if (code_len >= ENVELOPE_MARK_LEN && memcmp(code, envelope_mark, ENVELOPE_MARK_LEN) == 0) {
		JSValue env = JS_ParseJSON(ctx, code + ENVELOPE_MARK_LEN, code_len - ENVELOPE_MARK_LEN, "<init>");
		if (JS_IsException(env))
			finish_with_exception(ctx, "invalid init input: ");
		/* Zeroed pages are left out of the snapshot; the map lives on as JS strings. */
		memset(code, 0, code_len);
		free(code);
		JSValue main_name = string_prop(ctx, env, "main");
		JSValue source = string_prop(ctx, env, "source");
		if (JS_IsUndefined(main_name))
			main_name = JS_NewString(ctx, "main");
		if (JS_IsString(source)) {
			size_t len;
			const char *src = JS_ToCStringLen(ctx, &len, source);
			JSValue loaded = src ? JS_Eval(ctx, src, len, "action.js", JS_EVAL_TYPE_GLOBAL) : JS_EXCEPTION;
			JS_FreeCString(ctx, src);
			if (JS_IsException(loaded))
				finish_with_exception(ctx, "");
			JS_FreeValue(ctx, loaded);
			JSValue args[2] = { main_name, JS_NewBool(ctx, len == 0) };
			r = call_api(ctx, "plain", 2, args);
		} else {
			JSValue factory = JS_Eval(ctx, vsp_modules_js, (size_t)(vsp_modules_js_end - vsp_modules_js), "<vespid modules>", JS_EVAL_TYPE_GLOBAL);
			if (JS_IsException(factory))
				finish_with_exception(ctx, "module loader: ");
			JSValue args[2] = { factory, env };
			r = call_api(ctx, "loadModules", 2, args);
			JS_FreeValue(ctx, factory);
		}
		JS_FreeValue(ctx, source);
		JS_FreeValue(ctx, main_name);
		JS_FreeValue(ctx, env);
	} else {
		JSValue loaded = JS_Eval(ctx, code, code_len, "action.js", JS_EVAL_TYPE_GLOBAL);
		if (JS_IsException(loaded))
			finish_with_exception(ctx, ""); /* before PARAMS: an action that cannot load never gets ready */
		JS_FreeValue(ctx, loaded);
		memset(code, 0, code_len);
		free(code);
		JSValue args[2] = { JS_NewString(ctx, "main"), JS_NewBool(ctx, code_len == 0) };
		r = call_api(ctx, "plain", 2, args);
		JS_FreeValue(ctx, args[0]);
	}
	if (JS_IsException(r))
		finish_with_exception(ctx, "");
	JS_FreeValue(ctx, r);
}

int main(void)
{
	JSRuntime *rt = JS_NewRuntime();
	JSContext *ctx = rt ? JS_NewContext(rt) : NULL;
	if (!ctx)
		vsp_finish(VSP_OUT_ERROR, "could not create the JavaScript runtime", 39);
	JS_SetModuleLoaderFunc(rt, module_normalize, module_loader, NULL);

	JSValue setup = JS_Eval(ctx, vsp_prelude_js, (size_t)(vsp_prelude_js_end - vsp_prelude_js), "<vespid>", JS_EVAL_TYPE_GLOBAL);
	if (JS_IsException(setup))
		finish_with_exception(ctx, "prelude: ");
	JSValue natives[4] = {
		JS_NewCFunction(ctx, js_write, "write", 2), JS_NewCFunction(ctx, js_settle, "settle", 2),
		JS_NewCFunction(ctx, js_compile, "compile", 2), JS_NewCFunction(ctx, js_eval_module, "evalModule", 2),
	};
	api = JS_Call(ctx, setup, JS_UNDEFINED, 4, natives);
	if (JS_IsException(api))
		finish_with_exception(ctx, "prelude: ");

	load_action(ctx);
	/* Promise jobs the code's top level started run now, so the snapshot holds their outcome. */
	run_jobs(rt, never);

	probe_rdrand();
	size_t params_len;
	char *params = vsp_input(VSP_INPUT_PARAMS, &params_len);
	seed_random(ctx);

	JSValue args = JS_ParseJSON(ctx, params, params_len, "<params>");
	if (JS_IsException(args))
		finish_with_exception(ctx, "invalid parameters: ");
	JSValue r = call_api(ctx, "run", 1, &args);
	if (JS_IsException(r))
		finish_with_exception(ctx, "");

	/* Run the promise jobs main started until it settles. */
	if (!run_jobs(rt, settled)) {
		static const char msg[] = "main returned a Promise that never settled";
		vsp_finish(VSP_OUT_ERROR, msg, sizeof(msg) - 1);
	}
	vsp_finish(outcome.status, outcome.text, outcome.len);
}
