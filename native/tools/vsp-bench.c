/*
 * vsp-bench: the engine's figures, each next to a baseline measured in the same run.
 *   vsp-bench JS_IMAGE C_ECHO_IMAGE [SECONDS_PER_THROUGHPUT_RUN]
 * 1. warm call from a snapshot (C echo, JS echo) vs a fresh boot per call;
 * 2. CPU-bound JS (fib(25), base64 of 4 KiB) in a virtine vs the same QuickJS in this process;
 * 3. throughput of JS echo on 1 and 2 threads;
 * 4. cold start of a new JS action (boot, init, snapshot, first call);
 * 5. memory per JS snapshot and per idle VM;
 * 6. how far past its deadline a spinning guest is stopped.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/vespid_engine.h"
#include "quickjs.h"

static const char JS_ECHO[] = "function main(p) { return p; }";
static const char JS_FIB[] = "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }\n"
			     "function main(p) { return { r: fib(p.n) }; }";
static const char JS_B64[] =
	"const T = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';\n"
	"function b64(b) { let s = ''; for (let i = 0; i < b.length; i += 3) {\n"
	"  const n = (b[i] << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);\n"
	"  s += T[n >> 18 & 63] + T[n >> 12 & 63] + (i + 1 < b.length ? T[n >> 6 & 63] : '=') + (i + 2 < b.length ? T[n & 63] : '=');\n"
	"} return s; }\n"
	"function main(p) { const b = new Uint8Array(p.size); for (let i = 0; i < b.length; i++) b[i] = (i * 31 + 7) & 255;\n"
	"  return { len: b64(b).length }; }";

static const char *js_image, *c_image;
static uint8_t result[1 << 20], logs[1 << 16];

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct stats { double median, p99; };
static struct stats summarise(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return (struct stats){ v[n / 2], v[(int)(n * 0.99) < n ? (int)(n * 0.99) : n - 1] };
}

struct call { const char *image, *code, *params, *key; uint8_t *res, *logbuf; };

/* One call; returns the engine's time for it (out.micros) and sets *wall to the time with restore. */
static double one(const struct call *c, double *wall, int *cold)
{
	struct vsp_request req = {
		.image_path = c->image, .init = (const uint8_t *)c->code, .init_len = c->code ? strlen(c->code) : 0,
		.params = (const uint8_t *)c->params, .params_len = strlen(c->params),
		.memory_mb = 256, .timeout_ms = 60000, .snapshot_key = c->key,
		.result = c->res ? c->res : result, .result_cap = sizeof(result),
		.logs = c->logbuf ? c->logbuf : logs, .logs_cap = sizeof(logs),
	};
	struct vsp_outcome out;
	double t0 = now_us();
	if (vsp_run(&req, &out) < 0 || out.status != 0) {
		fprintf(stderr, "vsp-bench: call failed (status %d): %.*s\n", out.status, (int)out.result_len, req.result);
		exit(1);
	}
	if (wall)
		*wall = now_us() - t0;
	if (cold)
		*cold = (int)out.cold_start;
	return (double)out.micros;
}

static void warm(const char *name, const struct call *c, int n)
{
	double *call = malloc(n * sizeof(double)), *wall = malloc(n * sizeof(double)), fresh[200];
	for (int i = 0; i < 20; i++)
		one(c, NULL, NULL);
	for (int i = 0; i < n; i++)
		call[i] = one(c, &wall[i], NULL);
	struct call f = *c;
	f.key = NULL;
	for (int i = 0; i < 200; i++)
		fresh[i] = one(&f, NULL, NULL);
	struct stats s = summarise(call, n), w = summarise(wall, n), b = summarise(fresh, 200);
	printf("%-10s warm call   median %7.1f µs  p99 %7.1f µs | with restore median %7.1f µs  p99 %7.1f µs | "
	       "baseline fresh boot median %8.1f µs (%.0f× slower)\n",
	       name, s.median, s.p99, w.median, w.p99, b.median, b.median / s.median);
	free(call);
	free(wall);
}

/* The same function in QuickJS in this process: eval once, then main(JSON.parse(params)) → JSON. */
static double native_call(JSContext *ctx, JSValue main_fn, const char *params)
{
	double t0 = now_us();
	JSValue arg = JS_ParseJSON(ctx, params, strlen(params), "<params>");
	JSValue r = JS_Call(ctx, main_fn, JS_UNDEFINED, 1, &arg);
	JSValue text = JS_JSONStringify(ctx, r, JS_UNDEFINED, JS_UNDEFINED);
	const char *s = JS_ToCString(ctx, text);
	double t = now_us() - t0;
	if (!s) {
		fprintf(stderr, "vsp-bench: native call failed\n");
		exit(1);
	}
	JS_FreeCString(ctx, s);
	JS_FreeValue(ctx, text);
	JS_FreeValue(ctx, r);
	JS_FreeValue(ctx, arg);
	return t;
}

static void cpu_bound(const char *name, const char *code, const char *params, int n)
{
	JSRuntime *rt = JS_NewRuntime();
	JSContext *ctx = JS_NewContext(rt);
	JSValue v = JS_Eval(ctx, code, strlen(code), "action.js", JS_EVAL_TYPE_GLOBAL);
	JS_FreeValue(ctx, v);
	JSValue global = JS_GetGlobalObject(ctx);
	JSValue main_fn = JS_GetPropertyStr(ctx, global, "main");
	double *nat = malloc(n * sizeof(double)), *vir = malloc(n * sizeof(double));
	struct call c = { js_image, code, params, name, NULL, NULL };
	for (int i = 0; i < 3; i++) {
		native_call(ctx, main_fn, params);
		one(&c, NULL, NULL);
	}
	for (int i = 0; i < n; i++) {
		nat[i] = native_call(ctx, main_fn, params);
		vir[i] = one(&c, NULL, NULL);
	}
	struct stats a = summarise(vir, n), b = summarise(nat, n);
	printf("%-10s in virtine median %8.1f µs  p99 %8.1f µs | baseline QuickJS in-process median %8.1f µs | %.2f×\n",
	       name, a.median, a.p99, b.median, a.median / b.median);
	JS_FreeValue(ctx, main_fn);
	JS_FreeValue(ctx, global);
	JS_FreeContext(ctx);
	JS_FreeRuntime(rt);
	free(nat);
	free(vir);
}

struct worker { double seconds; long calls; };
static void *throughput_worker(void *arg)
{
	struct worker *w = arg;
	static __thread uint8_t res[1 << 20], lg[1 << 16];
	struct call c = { js_image, JS_ECHO, "{\"hello\":\"world\"}", "tput", res, lg };
	double end = now_us() + w->seconds * 1e6;
	while (now_us() < end) {
		one(&c, NULL, NULL);
		w->calls++;
	}
	return NULL;
}

static double throughput(int threads, double seconds)
{
	pthread_t t[8];
	struct worker w[8] = { 0 };
	for (int i = 0; i < threads; i++) {
		w[i].seconds = seconds;
		pthread_create(&t[i], NULL, throughput_worker, &w[i]);
	}
	long total = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += w[i].calls;
	}
	return total / seconds;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s JS_IMAGE C_ECHO_IMAGE [SECONDS]\n", argv[0]);
		return 2;
	}
	js_image = argv[1];
	c_image = argv[2];
	double seconds = argc > 3 ? atof(argv[3]) : 3;

	printf("== warm calls from a snapshot (2000 each), against a fresh boot per call\n");
	warm("C echo", &(struct call){ c_image, NULL, "{\"hello\":\"world\"}", "c-echo", NULL, NULL }, 2000);
	warm("JS echo", &(struct call){ js_image, JS_ECHO, "{\"hello\":\"world\"}", "js-echo", NULL, NULL }, 2000);

	printf("== CPU-bound JavaScript (50 calls each)\n");
	cpu_bound("fib(25)", JS_FIB, "{\"n\":25}", 50);
	cpu_bound("base64 4K", JS_B64, "{\"size\":4096}", 50);

	printf("== throughput, JS echo, %.0f s per run\n", seconds);
	one(&(struct call){ js_image, JS_ECHO, "{}", "tput", NULL, NULL }, NULL, NULL);
	double one_thread = throughput(1, seconds), two = throughput(2, seconds);
	printf("1 thread  %8.0f calls/s\n2 threads %8.0f calls/s (%.2f× one thread)\n", one_thread, two, two / one_thread);

	printf("== cold start of a new JS action (boot + init + snapshot + first call), 20 actions\n");
	double cold[20];
	int64_t before[8], after[8];
	vsp_pool_counters(before);
	for (int i = 0; i < 20; i++) {
		char key[32];
		int was_cold;
		snprintf(key, sizeof key, "cold-%d", i);
		cold[i] = one(&(struct call){ js_image, JS_ECHO, "{}", key, NULL, NULL }, NULL, &was_cold);
		if (!was_cold) {
			fprintf(stderr, "vsp-bench: expected a cold start\n");
			return 1;
		}
	}
	vsp_pool_counters(after);
	struct stats cs = summarise(cold, 20);
	printf("JS cold start median %.2f ms  p99 %.2f ms\n", cs.median / 1000, cs.p99 / 1000);

	double snap = (double)(after[7] - before[7]) / 20, shell = (double)((after[5] - after[7]) - (before[5] - before[7])) /
								     (double)(after[6] - before[6]);
	printf("== deadline: a spinning JS guest with a 100 ms timeout, 10 calls\n");
	double over[10];
	for (int i = 0; i < 10; i++) {
		static const char spin[] = "function main() { for (;;) {} }";
		struct vsp_request req = {
			.image_path = js_image, .init = (const uint8_t *)spin, .init_len = sizeof(spin) - 1,
			.params = (const uint8_t *)"{}", .params_len = 2, .memory_mb = 64, .timeout_ms = 100,
			.snapshot_key = "spin", .result = result, .result_cap = sizeof(result), .logs = logs,
			.logs_cap = sizeof(logs),
		};
		struct vsp_outcome out;
		if (vsp_run(&req, &out) < 0 || out.status != VSP_TIMEOUT) {
			fprintf(stderr, "vsp-bench: expected a timeout\n");
			return 1;
		}
		over[i] = (double)out.micros - 100000;
	}
	struct stats os = summarise(over, 10);
	printf("stopped after the deadline by median %.0f µs, at most %.0f µs\n", os.median, over[9]);

	printf("== memory\nJS snapshot %.0f KiB per action (pages that differ from zero and the shared image)\n"
	       "idle VM    %.0f KiB each (image + snapshot copy + pages it dirtied)\n", snap / 1024, shell / 1024);
	return 0;
}
