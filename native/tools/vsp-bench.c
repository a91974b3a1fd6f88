/*
 * vsp-bench: the engine's figures for each isolation tier, each next to its target and to a
 * baseline or floor measured in the same run.
 *   vsp-bench JS_IMAGE C_ECHO_IMAGE [SECONDS_PER_THROUGHPUT_RUN] [TIERS, e.g. kvm,process]
 * Floors, measured first while this process is still small and single-threaded:
 *   - a pipe round trip between two processes (the least any out-of-process call can cost);
 *   - a fork of a process holding an initialised QuickJS runtime, whose child runs the echo
 *     action once and exits (fork→result→reap: what a fork per call would cost at best).
 * Then, per tier (each in a child process of its own, so that one tier's pools, threads or failure
 * cannot colour the other's figures):
 *   1. warm call from a snapshot (C echo, JS echo), against a fresh boot per call: "in the engine"
 *      is the outcome's micros (acquire, run, result: what the runner waits for), "+ restore" the
 *      whole vsp_run, which then restores the shell for the next call (the runner's workers do that
 *      after answering, so it costs throughput, not latency);
 *   2. CPU-bound JS (fib(25), base64 of 4 KiB) in the engine vs the same QuickJS in this process;
 *   3. throughput of JS echo on 1 and 2 threads;
 *   4. cold start of a new JS action (boot, init, snapshot, first call);
 *   5. how far past its deadline a spinning guest is stopped;
 *   6. memory per JS snapshot and per idle shell.
 * A tier this host cannot run is reported as skipped with vsp_tier_available()'s reason.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
static const char ECHO_PARAMS[] = "{\"hello\":\"world\"}";

static const char *js_image, *c_image;
static uint32_t tier;
static uint8_t result[1 << 20], logs[1 << 16];

/* Targets per tier: issue 3 for kvm, issue 7 for process. A negative value: no target. */
struct targets {
	double c_echo_us, js_echo_us, cpu_ratio, b64_ratio, calls_per_s, cold_ms, overshoot_ms, snapshot_kib;
};
static const struct targets TARGETS[] = {
	[VSP_TIER_KVM] = { 80, 100, 1.3, 1.3, 20000, 15, 10, 2048 },
	[VSP_TIER_PROCESS] = { 120, 150, 1.1, -1, 5000, 20, 10, -1 },
};
static const char *const TIER_NAME[] = { [VSP_TIER_KVM] = "kvm", [VSP_TIER_PROCESS] = "process" };

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

struct stats { double median, p99, max; };
static struct stats summarise(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return (struct stats){ v[n / 2], v[(int)(n * 0.99) < n ? (int)(n * 0.99) : n - 1], v[n - 1] };
}

/* ---- the table ---- */

/* verdict: 0 none (no target), 1 PASS, -1 MISS */
struct row { char figure[48], value[32], target[24], ratio[64]; int verdict; };
static struct row rows[40];
static int nrows;
static char table_title[96];
static void print_table(const char *title);

/* Ends the run (or the tier's child), first showing the figures measured so far. */
static void die(const char *fmt, ...)
{
	va_list ap;
	if (nrows) {
		char title[128];
		snprintf(title, sizeof title, "%s (incomplete)", table_title);
		print_table(title);
	}
	va_start(ap, fmt);
	fprintf(stderr, "vsp-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void row(const char *figure, int verdict, const char *target, const char *ratio, const char *value_fmt, ...)
{
	if (nrows == (int)(sizeof(rows) / sizeof(rows[0])))
		die("too many rows");
	struct row *r = &rows[nrows++];
	va_list ap;
	va_start(ap, value_fmt);
	vsnprintf(r->value, sizeof r->value, value_fmt, ap);
	va_end(ap);
	snprintf(r->figure, sizeof r->figure, "%s", figure);
	snprintf(r->target, sizeof r->target, "%s", target ? target : "");
	snprintf(r->ratio, sizeof r->ratio, "%s", ratio ? ratio : "");
	r->verdict = verdict;
}

/* Pads by characters shown, not bytes, so that "µs" lines up. */
static void cell(const char *s, int width, int right)
{
	int shown = 0;
	for (const char *p = s; *p; p++)
		shown += ((unsigned char)*p & 0xc0) != 0x80;
	if (right)
		printf("%*s%s", width > shown ? width - shown : 0, "", s);
	else
		printf("%s%*s", s, width > shown ? width - shown : 0, "");
}

static void print_table(const char *title)
{
	int pass = 0, miss = 0;
	printf("\n%s\n", title);
	cell("figure", 36, 0), cell("value", 14, 1), printf("   "), cell("target", 12, 0), cell("ratio to baseline / floor", 38, 0),
		printf("result\n");
	for (int i = 0; i < 36 + 14 + 3 + 12 + 38 + 6; i++)
		printf("-");
	printf("\n");
	for (int i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		cell(r->figure, 36, 0), cell(r->value, 14, 1), printf("   "), cell(r->target, 12, 0), cell(r->ratio, 38, 0);
		printf("%s\n", r->verdict > 0 ? "PASS" : r->verdict < 0 ? "MISS" : "");
		pass += r->verdict > 0, miss += r->verdict < 0;
	}
	if (pass + miss)
		printf("%d of %d targets met\n", pass, pass + miss);
	nrows = 0;
	fflush(stdout);
}

static const char *fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, cap, f, ap);
	va_end(ap);
	return buf;
}

static int at_most(double value, double target) { return target < 0 ? 0 : value <= target ? 1 : -1; }
static int at_least(double value, double target) { return target < 0 ? 0 : value >= target ? 1 : -1; }

/* ---- floors ---- */

static struct stats floor_pipe, floor_fork;

/* A child echoes one byte back per round; each round is timed from write to read. */
static struct stats measure_pipe(int n)
{
	int up[2], down[2];
	if (pipe(up) < 0 || pipe(down) < 0)
		die("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char b;
		close(up[1]), close(down[0]);
		while (read(up[0], &b, 1) == 1 && write(down[1], &b, 1) == 1)
			;
		_exit(0);
	}
	close(up[0]), close(down[1]);
	double *t = malloc(n * sizeof(double));
	for (int i = -500; i < n; i++) {
		char b = (char)i;
		double t0 = now_us();
		if (write(up[1], &b, 1) != 1 || read(down[0], &b, 1) != 1 || b != (char)i)
			die("pipe round trip failed");
		if (i >= 0)
			t[i] = now_us() - t0;
	}
	close(up[1]);
	waitpid(pid, NULL, 0);
	close(down[0]);
	struct stats s = summarise(t, n);
	free(t);
	return s;
}

/* The echo action run the way the JS guest runs it: parse the parameters, call main, stringify. */
static char *native_echo(JSContext *ctx, JSValue main_fn, const char *params)
{
	JSValue arg = JS_ParseJSON(ctx, params, strlen(params), "<params>");
	JSValue r = JS_Call(ctx, main_fn, JS_UNDEFINED, 1, &arg);
	JSValue text = JS_JSONStringify(ctx, r, JS_UNDEFINED, JS_UNDEFINED);
	const char *s = JS_ToCString(ctx, text);
	char *copy = s ? strdup(s) : NULL;
	JS_FreeCString(ctx, s);
	JS_FreeValue(ctx, text);
	JS_FreeValue(ctx, r);
	JS_FreeValue(ctx, arg);
	return copy;
}

/*
 * The parent holds a QuickJS runtime in the state a snapshot is taken in (the action's code
 * evaluated, no call made yet). Each round forks; the child runs one echo, writes its result to a
 * pipe and exits; the round ends when the parent has the result and has reaped the child.
 */
static struct stats measure_fork(int n)
{
	JSRuntime *rt = JS_NewRuntime();
	JSContext *ctx = JS_NewContext(rt);
	JS_FreeValue(ctx, JS_Eval(ctx, JS_ECHO, strlen(JS_ECHO), "action.js", JS_EVAL_TYPE_GLOBAL));
	JSValue global = JS_GetGlobalObject(ctx);
	JSValue main_fn = JS_GetPropertyStr(ctx, global, "main");
	double *t = malloc(n * sizeof(double));
	fflush(stdout), fflush(stderr);
	for (int i = -20; i < n; i++) {
		int fd[2];
		char buf[256];
		size_t got = 0;
		if (pipe(fd) < 0)
			die("pipe: %s", strerror(errno));
		double t0 = now_us();
		pid_t pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			close(fd[0]);
			char *s = native_echo(ctx, main_fn, ECHO_PARAMS);
			_exit(s && write(fd[1], s, strlen(s)) == (ssize_t)strlen(s) ? 0 : 1);
		}
		close(fd[1]);
		for (ssize_t r; (r = read(fd[0], buf + got, sizeof(buf) - 1 - got)) > 0;)
			got += (size_t)r;
		int status;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			die("forked JS guest failed");
		if (i >= 0)
			t[i] = now_us() - t0;
		close(fd[0]);
		buf[got] = 0;
		if (strcmp(buf, ECHO_PARAMS) != 0)
			die("forked JS guest answered %s", buf);
	}
	JS_FreeValue(ctx, main_fn);
	JS_FreeValue(ctx, global);
	JS_FreeContext(ctx);
	JS_FreeRuntime(rt);
	struct stats s = summarise(t, n);
	free(t);
	return s;
}

/* ---- the engine ---- */

struct call { const char *image, *code, *params, *key; uint8_t *res, *logbuf; };

/* One call; returns the engine's time for it (out.micros) and sets *wall to the time with restore. */
static double one(const struct call *c, double *wall, int *cold)
{
	struct vsp_request req = {
		.image_path = c->image, .init = (const uint8_t *)c->code, .init_len = c->code ? strlen(c->code) : 0,
		.params = (const uint8_t *)c->params, .params_len = strlen(c->params),
		.memory_mb = 256, .timeout_ms = 60000, .snapshot_key = c->key,
		.result = c->res ? c->res : result, .result_cap = sizeof(result),
		.logs = c->logbuf ? c->logbuf : logs, .logs_cap = sizeof(logs), .tier = tier,
	};
	struct vsp_outcome out;
	double t0 = now_us();
	int rc = vsp_run(&req, &out);
	if (rc < 0)
		die("%s call refused: %s", TIER_NAME[tier], strerror(-rc));
	if (out.status != VSP_OK)
		die("%s call failed (status %d): %.*s", TIER_NAME[tier], out.status, (int)out.result_len, req.result);
	if (wall)
		*wall = now_us() - t0;
	if (cold)
		*cold = (int)out.cold_start;
	return (double)out.micros;
}

/* Warm calls from a snapshot against a fresh boot per call; returns the warm median. */
static double warm(const char *name, const struct call *c, int n, int n_fresh, double target)
{
	double *call = malloc(n * sizeof(double)), *wall = malloc(n * sizeof(double));
	double *fresh = malloc(n_fresh * sizeof(double));
	char fig[48], tg[24], ra[64];
	for (int i = 0; i < 20; i++)
		one(c, NULL, NULL);
	for (int i = 0; i < n; i++)
		call[i] = one(c, &wall[i], NULL);
	struct call f = *c;
	f.key = NULL;
	for (int i = 0; i < n_fresh; i++)
		fresh[i] = one(&f, NULL, NULL);
	/* vsp_run restores the shell after the call; the engine's workers answer before that. */
	double *restore = malloc(n * sizeof(double));
	for (int i = 0; i < n; i++)
		restore[i] = wall[i] - call[i];
	struct stats r = summarise(restore, n);
	struct stats s = summarise(call, n), w = summarise(wall, n), b = summarise(fresh, n_fresh);
	if (c->code)
		fmt(ra, sizeof ra, "%.1f× pipe RTT, %.2f× fork of JS", s.median / floor_pipe.median,
		    s.median / floor_fork.median);
	else
		fmt(ra, sizeof ra, "%.1f× pipe RTT", s.median / floor_pipe.median);
	row(fmt(fig, sizeof fig, "%s warm, in the engine p50", name), at_most(s.median, target),
	    fmt(tg, sizeof tg, "≤ %.0f µs", target), ra, "%.1f µs", s.median);
	row(fmt(fig, sizeof fig, "%s warm, in the engine p99", name), 0, NULL,
	    fmt(ra, sizeof ra, "%.1f× pipe RTT p99", s.p99 / floor_pipe.p99), "%.1f µs", s.p99);
	row(fmt(fig, sizeof fig, "%s warm, + restore p50/p99", name), 0, NULL,
	    fmt(ra, sizeof ra, "restore after the answer p50 %.0f µs", r.median), "%.0f / %.0f µs", w.median, w.p99);
	row(fmt(fig, sizeof fig, "%s fresh boot per call p50", name), 0, "(baseline)",
	    fmt(ra, sizeof ra, "warm call is %.0f× faster", b.median / s.median), "%.0f µs", b.median);
	free(call);
	free(wall);
	free(fresh);
	free(restore);
	return s.median;
}

/* The same function in QuickJS in this process: eval once, then main(JSON.parse(params)) → JSON. */
static double native_call(JSContext *ctx, JSValue main_fn, const char *params)
{
	double t0 = now_us();
	char *s = native_echo(ctx, main_fn, params);
	double t = now_us() - t0;
	if (!s)
		die("native call failed");
	free(s);
	return t;
}

/* Interleaved with the engine's calls so that both see the same load. */
static void cpu_bound(const char *name, const char *code, const char *params, int n, double target)
{
	JSRuntime *rt = JS_NewRuntime();
	JSContext *ctx = JS_NewContext(rt);
	JS_FreeValue(ctx, JS_Eval(ctx, code, strlen(code), "action.js", JS_EVAL_TYPE_GLOBAL));
	JSValue global = JS_GetGlobalObject(ctx);
	JSValue main_fn = JS_GetPropertyStr(ctx, global, "main");
	double *nat = malloc(n * sizeof(double)), *eng = malloc(n * sizeof(double));
	struct call c = { js_image, code, params, name, NULL, NULL };
	char fig[48], tg[24], ra[64];
	for (int i = 0; i < 3; i++) {
		native_call(ctx, main_fn, params);
		one(&c, NULL, NULL);
	}
	for (int i = 0; i < n; i++) {
		nat[i] = native_call(ctx, main_fn, params);
		eng[i] = one(&c, NULL, NULL);
	}
	struct stats a = summarise(eng, n), b = summarise(nat, n);
	double ratio = a.median / b.median;
	row(fmt(fig, sizeof fig, "%s p50 (p99 %.0f µs)", name, a.p99), at_most(ratio, target),
	    target < 0 ? NULL : fmt(tg, sizeof tg, "≤ %.1f×", target),
	    fmt(ra, sizeof ra, "%.2f× QuickJS native (%.0f µs)", ratio, b.median), "%.0f µs", a.median);
	JS_FreeValue(ctx, main_fn);
	JS_FreeValue(ctx, global);
	JS_FreeContext(ctx);
	JS_FreeRuntime(rt);
	free(nat);
	free(eng);
}

struct worker { double seconds; long calls; };
static void *throughput_worker(void *arg)
{
	struct worker *w = arg;
	static __thread uint8_t res[1 << 20], lg[1 << 16];
	struct call c = { js_image, JS_ECHO, ECHO_PARAMS, "tput", res, lg };
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

static void measure_tier(double seconds)
{
	const struct targets *tg = &TARGETS[tier];
	char t[24], ra[64];

	warm("C echo", &(struct call){ c_image, NULL, ECHO_PARAMS, "c-echo", NULL, NULL }, 2000, 100, tg->c_echo_us);
	warm("JS echo", &(struct call){ js_image, JS_ECHO, ECHO_PARAMS, "js-echo", NULL, NULL }, 2000, 100, tg->js_echo_us);

	cpu_bound("fib(25)", JS_FIB, "{\"n\":25}", 40, tg->cpu_ratio);
	cpu_bound("base64 4K", JS_B64, "{\"size\":4096}", 40, tg->b64_ratio);

	one(&(struct call){ js_image, JS_ECHO, "{}", "tput", NULL, NULL }, NULL, NULL);
	double one_thread = throughput(1, seconds), two = throughput(2, seconds);
	row("JS echo calls/s, 1 thread", 0, NULL, fmt(ra, sizeof ra, "%.1f µs a call, %.1f× pipe RTT", 1e6 / one_thread, 1e6 / one_thread / floor_pipe.median),
	    "%.0f /s", one_thread);
	row("JS echo calls/s, 2 threads", at_least(two, tg->calls_per_s), fmt(t, sizeof t, "≥ %.0f /s", tg->calls_per_s),
	    fmt(ra, sizeof ra, "%.2f× one thread", two / one_thread), "%.0f /s", two);

	double cold[20];
	int64_t before[8], after[8];
	vsp_pool_counters(before);
	for (int i = 0; i < 20; i++) {
		char key[32];
		int was_cold;
		snprintf(key, sizeof key, "cold-%d", i);
		cold[i] = one(&(struct call){ js_image, JS_ECHO, "{}", key, NULL, NULL }, NULL, &was_cold);
		if (!was_cold)
			die("%s: expected a cold start", TIER_NAME[tier]);
	}
	vsp_pool_counters(after);
	struct stats cs = summarise(cold, 20);
	row("JS cold start p50 (new action)", at_most(cs.median / 1000, tg->cold_ms), fmt(t, sizeof t, "≤ %.0f ms", tg->cold_ms),
	    fmt(ra, sizeof ra, "%.1f× fork of JS", cs.median / floor_fork.median), "%.2f ms", cs.median / 1000);
	row("JS cold start p99", 0, NULL, NULL, "%.2f ms", cs.p99 / 1000);

	double over[10];
	for (int i = 0; i < 10; i++) {
		static const char spin[] = "function main() { for (;;) {} }";
		struct vsp_request req = {
			.image_path = js_image, .init = (const uint8_t *)spin, .init_len = sizeof(spin) - 1,
			.params = (const uint8_t *)"{}", .params_len = 2, .memory_mb = 64, .timeout_ms = 100,
			.snapshot_key = "spin", .result = result, .result_cap = sizeof(result), .logs = logs,
			.logs_cap = sizeof(logs), .tier = tier,
		};
		struct vsp_outcome out = { .status = -1 };
		if (vsp_run(&req, &out) < 0 || out.status != VSP_TIMEOUT)
			die("%s: expected a timeout, got status %d: %.*s", TIER_NAME[tier], out.status,
			    (int)out.result_len, result);
		over[i] = (double)out.micros - 100000;
	}
	struct stats os = summarise(over, 10);
	row("deadline overshoot p50 / max", at_most(os.max / 1000, tg->overshoot_ms), fmt(t, sizeof t, "≤ %.0f ms", tg->overshoot_ms),
	    "spinning guest, 100 ms timeout", "%.0f / %.0f µs", os.median, os.max);

	/* Counters: [5] bytes of snapshots and idle shells, [6] idle shells, [7] bytes of snapshots. */
	double snap = (double)(after[7] - before[7]) / 20 / 1024;
	int64_t shells = after[6] - before[6];
	row("JS snapshot per action", at_most(snap, tg->snapshot_kib),
	    tg->snapshot_kib < 0 ? NULL : fmt(t, sizeof t, "≤ %.0f MiB", tg->snapshot_kib / 1024), "beside the shared image",
	    "%.0f KiB", snap);
	if (shells > 0)
		row("idle shell", 0, NULL, "image + snapshot + dirtied pages", "%.0f KiB",
		    (double)((after[5] - after[7]) - (before[5] - before[7])) / (double)shells / 1024);
	else
		row("idle shell", 0, NULL, "no idle shell counted by the pool", "n/a");
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s JS_IMAGE C_ECHO_IMAGE [SECONDS] [TIERS]\n", argv[0]);
		return 2;
	}
	js_image = argv[1];
	c_image = argv[2];
	double seconds = argc > 3 ? atof(argv[3]) : 3;
	const char *tiers = argc > 4 ? argv[4] : "kvm,process";
	if (!(seconds > 0 && seconds <= 60)) {
		fprintf(stderr, "vsp-bench: SECONDS must be in (0, 60], got %s\n", argv[3]);
		return 2;
	}
	for (const char *p = tiers; *p;) {
		size_t len = strcspn(p, ",");
		if (!((len == 3 && !strncmp(p, "kvm", 3)) || (len == 7 && !strncmp(p, "process", 7)))) {
			fprintf(stderr, "vsp-bench: TIERS is a comma-separated list of kvm and process, got %s\n", tiers);
			return 2;
		}
		p += len + (p[len] == ',');
	}

	/* Other work on the host moves every figure: say how busy it was. */
	char load[64] = "?";
	FILE *lf = fopen("/proc/loadavg", "r");
	if (lf) {
		if (fgets(load, sizeof load, lf))
			load[strcspn(load, " ")] = 0;
		fclose(lf);
	}
	printf("vsp-bench: %ld CPUs online, load average %s at start\n", sysconf(_SC_NPROCESSORS_ONLN), load);
	snprintf(table_title, sizeof table_title, "== floors (this host, measured first in this run)");
	floor_pipe = measure_pipe(10000);
	floor_fork = measure_fork(1000);
	char ra[64];
	row("pipe round trip p50", 0, NULL, "child echoes 1 byte, 10000 rounds", "%.1f µs", floor_pipe.median);
	row("pipe round trip p99", 0, NULL, NULL, "%.1f µs", floor_pipe.p99);
	row("fork of an initialised JS guest p50", 0, NULL,
	    fmt(ra, sizeof ra, "fork→echo→reap, 1000 rounds; %.0f× pipe", floor_fork.median / floor_pipe.median),
	    "%.0f µs", floor_fork.median);
	row("fork of an initialised JS guest p99", 0, NULL, NULL, "%.0f µs", floor_fork.p99);
	print_table(table_title);

	int failed = 0;
	for (uint32_t t = VSP_TIER_KVM; t <= VSP_TIER_PROCESS; t++) {
		const char *name = TIER_NAME[t], *p = strstr(tiers, name);
		if (!p || (p > tiers && p[-1] != ',') || (p[strlen(name)] && p[strlen(name)] != ','))
			continue;
		char why[512] = "";
		if (!vsp_tier_available(t, why, sizeof why)) {
			printf("\n== tier %s: skipped (%s)\n", name, why[0] ? why : "unavailable");
			continue;
		}
		printf("\n== tier %s: measuring (warm calls, CPU-bound JS, %.0f s throughput runs, cold starts, deadline)…\n",
		       name, seconds);
		fflush(stdout), fflush(stderr);
		pid_t pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			tier = t;
			snprintf(table_title, sizeof table_title, "== tier %s", name);
			measure_tier(seconds);
			print_table(table_title);
			_exit(0);
		}
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			printf("== tier %s: FAILED (%s %d)\n", name,
			       WIFSIGNALED(status) ? "signal" : "exit status",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			failed = 1;
		}
	}
	return failed;
}
