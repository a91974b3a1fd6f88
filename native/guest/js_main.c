/*
 * main() of the JavaScript guest image: QuickJS with a console and OpenWhisk's action shapes
 * (`function main(params)`, `async function main`, `exports.main = …`, `module.exports = …`).
 * The action's source arrives as the INIT input and is compiled before the PARAMS input is asked
 * for, so a snapshot taken there holds a ready-to-call function.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "quickjs.h"
#include "runtime.h"

/* Defines console, module and exports; returns the function that calls main. */
static const char prelude[] =
	"(function (write, settle) {\n"
	"  const fmt = (v) => {\n"
	"    if (typeof v === 'string') return v;\n"
	"    if (v instanceof Error) return describe(v);\n"
	"    try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; }\n"
	"    catch (e) { return String(v); }\n"
	"  };\n"
	"  const describe = (e) => e instanceof Error\n"
	"    ? `${e.name}: ${e.message}` + (e.stack ? `\\n${e.stack.replace(/\\n$/, '')}` : '')\n"
	"    : `uncaught ${fmt(e)}`;\n"
	"  const line = (fd) => (...args) => write(fd, args.map(fmt).join(' ') + '\\n');\n"
	"  globalThis.console = { log: line(1), info: line(1), debug: line(1), warn: line(2), error: line(2) };\n"
	"  globalThis.module = { exports: {} };\n"
	"  globalThis.exports = globalThis.module.exports;\n"
	"  const fail = (e) => settle(1, describe(e));\n"
	"  return (params) => {\n"
	"    const m = globalThis.module.exports;\n"
	"    const main = typeof m === 'function' ? m\n"
	"      : m && typeof m.main === 'function' ? m.main\n"
	"      : globalThis.exports && typeof globalThis.exports.main === 'function' ? globalThis.exports.main\n"
	"      : typeof globalThis.main === 'function' ? globalThis.main : null;\n"
	"    if (!main) return settle(1, 'the action defines no main function: declare function main(params) or set exports.main');\n"
	"    try {\n"
	"      Promise.resolve(main(params)).then((r) => {\n"
	"        let text;\n"
	"        try { text = JSON.stringify(r === undefined ? {} : r); } catch (e) { return fail(e); }\n"
	"        if (text === undefined) return settle(1, 'The action did not return a dictionary.');\n"
	"        settle(0, text);\n"
	"      }, fail);\n"
	"    } catch (e) { fail(e); }\n"
	"  };\n"
	"})";

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

int main(void)
{
	JSRuntime *rt = JS_NewRuntime();
	JSContext *ctx = rt ? JS_NewContext(rt) : NULL;
	if (!ctx)
		vsp_finish(VSP_OUT_ERROR, "could not create the JavaScript runtime", 39);

	JSValue setup = JS_Eval(ctx, prelude, sizeof(prelude) - 1, "<vespid>", JS_EVAL_TYPE_GLOBAL);
	if (JS_IsException(setup))
		finish_with_exception(ctx, "prelude: ");
	JSValue natives[2] = { JS_NewCFunction(ctx, js_write, "write", 2), JS_NewCFunction(ctx, js_settle, "settle", 2) };
	JSValue invoke = JS_Call(ctx, setup, JS_UNDEFINED, 2, natives);
	if (JS_IsException(invoke))
		finish_with_exception(ctx, "prelude: ");

	size_t code_len, params_len;
	char *code = vsp_input(VSP_INPUT_INIT, &code_len);
	JSValue loaded = JS_Eval(ctx, code, code_len, "action.js", JS_EVAL_TYPE_GLOBAL);
	if (JS_IsException(loaded))
		finish_with_exception(ctx, ""); /* before PARAMS: an action that cannot load never gets ready */

	probe_rdrand();
	char *params = vsp_input(VSP_INPUT_PARAMS, &params_len);
	seed_random(ctx);

	JSValue args = JS_ParseJSON(ctx, params, params_len, "<params>");
	if (JS_IsException(args))
		finish_with_exception(ctx, "invalid parameters: ");
	JSValue r = JS_Call(ctx, invoke, JS_UNDEFINED, 1, &args);
	if (JS_IsException(r))
		finish_with_exception(ctx, "");

	/* Run the promise jobs main started until it settles; there are no timers or I/O to wait for. */
	JSContext *job_ctx;
	while (!outcome.done) {
		int j = JS_ExecutePendingJob(rt, &job_ctx);
		if (j < 0)
			finish_with_exception(job_ctx, "");
		if (j == 0)
			break;
	}
	if (!outcome.done) {
		static const char msg[] = "main returned a Promise that never settled";
		vsp_finish(VSP_OUT_ERROR, msg, sizeof(msg) - 1);
	}
	vsp_finish(outcome.status, outcome.text, outcome.len);
}
