/*
 * vsp_run(): one invocation in its own virtine, from the action's snapshot when the request names one
 * (a fresh boot otherwise), bounded by a deadline.
 * The deadline is a per-thread POSIX timer whose signal sets kvm_run.immediate_exit, so KVM_RUN
 * returns at once wherever the guest is, even in a tight loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "sandbox.h"
#include "vm.h"

#define MIN_MEMORY_MB 16
#define MAX_MEMORY_MB 512
#define MAX_TIMEOUT_MS (300u * 1000u)
#define MIN_RESULT_CAP 256

/* A real-time signal nobody else in a Node process uses. */
#define DEADLINE_SIGNAL (SIGRTMAX - 3)

static __thread struct kvm_run *volatile deadline_run;
static __thread volatile int deadline_expired;

static void on_deadline(int sig)
{
	(void)sig;
	deadline_expired = 1;
	if (deadline_run)
		deadline_run->immediate_exit = 1;
}

static pthread_once_t signal_once = PTHREAD_ONCE_INIT;
static void install_handler(void)
{
	struct sigaction sa = { .sa_handler = on_deadline };
	sigemptyset(&sa.sa_mask);
	sigaction(DEADLINE_SIGNAL, &sa, NULL);
}

static int arm_deadline(timer_t *timer, uint32_t ms)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, DEADLINE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = DEADLINE_SIGNAL };
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &sev, timer) < 0)
		return -errno;
	struct itimerspec its = { .it_value = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 } };
	if (timer_settime(*timer, 0, &its, NULL) < 0) {
		int err = -errno;
		timer_delete(*timer);
		return err;
	}
	return 0;
}

/* CPU time of `clock` in ns, 0 when it cannot be read (a sandbox that is gone). */
static uint64_t cpu_ns(clockid_t clock)
{
	struct timespec ts;
	if (clock_gettime(clock, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The CPU clock of a whole process is what glibc's clock_getcpuclockid computes, without its check. */
uint64_t vsp_process_cpu_ns(pid_t pid)
{
	return pid > 0 ? cpu_ns((clockid_t)((~(unsigned)pid << 3) | 2u)) : 0; /* CPUCLOCK_SCHED of the process */
}

static __thread uint64_t thread_cpu_mark;
static __thread bool have_thread_cpu_mark;

void vsp_cpu_mark(void)
{
	thread_cpu_mark = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
	have_thread_cpu_mark = true;
}

uint64_t vsp_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Builds the virtine or sandbox: memory, image, stack, then a virtine's system area and CPU state,
 * or a sandbox's process. A sandbox's failure to start is explained in `why`.
 */
static int prepare(struct vsp_vm *vm, const struct vsp_request *req, char *why, size_t why_cap)
{
	struct vsp_image *img;
	uint64_t rsp;
	bool sandbox = req->tier == VSP_TIER_PROCESS;
	uint64_t mem_size = (uint64_t)req->memory_mb << 20;
	int r = sandbox ? vsp_sandbox_create(vm, mem_size) : vsp_vm_create(vm, mem_size);
	if (r < 0)
		return r;
	if ((r = vsp_image_get(req->image_path, &img)) < 0)
		return r;
	r = vsp_elf_load(vm, img);
	vsp_image_put(img); /* the VM holds its own reference now */
	if (r < 0 || (r = vsp_mm_init(vm, vm->image->end)) < 0 ||
	    (r = vsp_stack_init(vm, vm->image->entry, vm->image->phdr, vm->image->phnum, &rsp)) < 0)
		return r;
	if (sandbox)
		return vsp_sandbox_boot(vm, vm->image->entry, rsp, why, why_cap);
	return vsp_layout_init(vm, vm->image->entry, rsp);
}

int vsp_request_check(const struct vsp_request *req)
{
	if (!req || !req->image_path || !req->result || req->result_cap < MIN_RESULT_CAP ||
	    (!req->params && req->params_len) || (!req->init && req->init_len) ||
	    req->memory_mb < MIN_MEMORY_MB || req->memory_mb > MAX_MEMORY_MB ||
	    req->timeout_ms == 0 || req->timeout_ms > MAX_TIMEOUT_MS || (req->flags & ~VSP_FLAG_INIT_ONLY) ||
	    (req->tier != VSP_TIER_KVM && req->tier != VSP_TIER_PROCESS))
		return -EINVAL;
	return 0;
}

/* Runs the vCPU until the call ends or reaches its ready point, under the armed deadline. */
static void run_guarded(struct vsp_vm *vm, struct vsp_call *call)
{
	if (vm->tier == VSP_TIER_PROCESS) {
		vsp_sandbox_run_loop(vm, call, &deadline_expired);
		return;
	}
	deadline_run = vm->run;
	vsp_run_loop(vm, call, &deadline_expired);
	deadline_run = NULL;
}

/* What a call runs in, for messages. */
static const char *guest_kind(const struct vsp_request *req)
{
	return req->tier == VSP_TIER_PROCESS ? "sandbox" : "virtine";
}

static int start_failed(struct vsp_call *call, int r, const char *why)
{
	const char *what = guest_kind(call->req);
	if (why && *why)
		vsp_call_end(call, VSP_INTERNAL, "could not start the %s: %s", what, why);
	else if (call->req->tier == VSP_TIER_KVM && vsp_kvm_fd() < 0)
		vsp_call_end(call, VSP_INTERNAL, "could not start the virtine: /dev/kvm: %s", strerror(-vsp_kvm_fd()));
	else
		vsp_call_end(call, VSP_INTERNAL, "could not start the %s: %s", what,
			     r == -ENOEXEC ? "the image is not a valid guest image" : strerror(-r));
	return r;
}

/*
 * Boots a VM for the call into lease->vm, up to the ready point when `to_ready`. Returns < 0 (the
 * call ended as internal error) when no VM could be built.
 */
static int boot(struct vsp_lease *lease, struct vsp_call *call, bool to_ready)
{
	char why[256] = "";
	int r = prepare(&lease->vm, call->req, why, sizeof(why));
	if (r < 0) {
		vsp_vm_destroy(&lease->vm);
		return start_failed(call, r, why);
	}
	lease->have_vm = true;
	call->stop_at_params = to_ready;
	run_guarded(&lease->vm, call);
	return 0;
}

/*
 * Puts the call's VM at the ready point with its parameters served, from the pool when the request
 * names a snapshot. A cold start boots, snapshots the ready VM for later calls and goes on in it.
 * When the call ends on the way (a crash in init, the deadline), call->done says so.
 */
static void ready_vm(struct vsp_lease *lease, struct vsp_call *call)
{
	const struct vsp_request *req = call->req;
	if (!req->snapshot_key || !*req->snapshot_key) {
		boot(lease, call, false);
		return;
	}
	bool cold;
	int r = vsp_pool_acquire(req->snapshot_key, (uint64_t)req->memory_mb << 20, req->tier, lease, &cold);
	if (r < 0) {
		start_failed(call, r, NULL);
		return;
	}
	if (cold) {
		struct vsp_snapshot *snap = NULL;
		if (boot(lease, call, true) < 0 || !call->ready) {
			vsp_pool_publish(lease, NULL);
			return;
		}
		r = vsp_snapshot_capture(&lease->vm, &snap);
		vsp_pool_publish(lease, r < 0 ? NULL : snap);
		if (r < 0) {
			call->done = false;
			vsp_call_end(call, VSP_INTERNAL, "could not snapshot the %s: %s", guest_kind(req), strerror(-r));
			return;
		}
		call->done = false;
		call->out->cold_start = 1;
	} else {
		/* A VM of the snapshot: what it allocated and spent before this call is not this call's. */
		call->out->warm = 1;
		vsp_mm_reset_peak(&lease->vm.mm);
		if (lease->vm.tier == VSP_TIER_PROCESS)
			call->guest_cpu0 = lease->vm.sb.parked_cpu_ns;
	}
	vsp_serve_params(&lease->vm, call);
}

int vsp_run_leased(const struct vsp_request *req, struct vsp_outcome *out, struct vsp_lease *lease)
{
	memset(lease, 0, sizeof(*lease));
	if (!out || vsp_request_check(req) < 0)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	pthread_once(&signal_once, install_handler);

	uint64_t t0 = vsp_now_us();
	uint64_t cpu0 = have_thread_cpu_mark ? thread_cpu_mark : cpu_ns(CLOCK_THREAD_CPUTIME_ID);
	have_thread_cpu_mark = false;
	struct vsp_call call = { .req = req, .out = out, .deadline_us = t0 + (uint64_t)req->timeout_ms * 1000 };
	timer_t timer;
	deadline_expired = 0;
	int r = arm_deadline(&timer, req->timeout_ms);
	if (r < 0) {
		vsp_call_end(&call, VSP_INTERNAL, "could not arm the deadline: %s", strerror(-r));
	} else {
		if (req->flags & VSP_FLAG_INIT_ONLY) {
			if (boot(lease, &call, true) == 0 && call.ready)
				vsp_call_end_ok(&call, "{}");
		} else {
			ready_vm(lease, &call);
			if (!call.done)
				run_guarded(&lease->vm, &call);
		}
		timer_delete(timer);
	}
	uint64_t cpu = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	if (lease->have_vm) {
		/* A sandbox spends its own CPU too (a cold one from 0: it was started by this call). */
		if (lease->vm.tier == VSP_TIER_PROCESS && lease->vm.sb.pid > 0) {
			uint64_t guest = vsp_process_cpu_ns(lease->vm.sb.pid);
			if (guest > call.guest_cpu0)
				cpu += guest - call.guest_cpu0;
		}
		out->memory_peak = vsp_mm_peak_bytes(&lease->vm);
		out->exits = lease->vm.exits;
		lease->vm.exits = 0; /* a pooled VM counts afresh for its next call */
		if (lease->vm.mm.oom && call.status != VSP_OK && call.status != VSP_TIMEOUT) {
			char why[256];
			snprintf(why, sizeof(why), "%.*s", (int)out->result_len, (const char *)req->result);
			call.done = false;
			vsp_call_end(&call, VSP_OOM, "out of memory: the function needed more than its %u MiB (%s)",
				     req->memory_mb, why);
		}
	}
	/* Only a guest that ended through the RESULT doorbell is in a state worth restoring. */
	lease->reusable = call.status == VSP_OK || call.status == VSP_ERROR;
	out->status = (int32_t)call.status;
	out->micros = vsp_now_us() - t0;
	out->cpu_micros = cpu / 1000;
	return 0;
}

int vsp_run(const struct vsp_request *req, struct vsp_outcome *out)
{
	struct vsp_lease lease;
	int r = vsp_run_leased(req, out, &lease);
	vsp_pool_release(&lease);
	return r;
}

int vsp_available(char *why, uint64_t why_cap)
{
	int fd = vsp_kvm_fd();
	if (fd >= 0)
		return 1;
	if (why && why_cap)
		snprintf(why, why_cap, "/dev/kvm: %s", strerror(-fd));
	return 0;
}

int vsp_tier_available(uint32_t tier, char *why, uint64_t why_cap)
{
	if (tier == VSP_TIER_KVM)
		return vsp_available(why, why_cap);
	if (tier == VSP_TIER_PROCESS)
		return vsp_sandbox_available(why, why_cap);
	if (why && why_cap)
		snprintf(why, why_cap, "unknown isolation tier %u", tier);
	return 0;
}
