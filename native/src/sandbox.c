/*
 * The process tier's host side: a guest image run as a sandboxed process (native/sandbox/) instead
 * of in a KVM virtine, with the same guest memory layout, doorbells, syscall emulation and
 * snapshot semantics, so everything above (engine.c, pool.c, snapshot.c) treats both alike.
 *
 * Guest memory is a memfd mapped here and, at the guest's own addresses, in the sandbox. The guest
 * reaches the host only through hypercalls: a syscall the sandbox's seccomp filter turns into a
 * user notification, which this side receives, serves with run.c and answers. While the
 * notification is unanswered the guest waits in the kernel: that is where a finished call sits
 * while its memory is restored, and where an idle sandbox waits for its next call.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dlfcn.h>
#include <elf.h>
#include <libgen.h>
#include <linux/limits.h>

#include "../sandbox/protocol.h"
#include "sandbox.h"
#include "vm.h"

#define PAGE VSP_PAGE_SIZE
#define UNPRIVILEGED_UID 65534       /* nobody: what a sandbox is on the host */
#define START_TIMEOUT_MS 10000
#define PARK_TIMEOUT_MS 5000
#define AS_SLACK (16ull << 20)       /* helper code, signal stack: on top of the guest's memory */

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif

/* ---- the helper binary and the seccomp filter, found and built once per process ---------- */

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static char helper_path[PATH_MAX];
static uint64_t filter[VSP_SANDBOX_MAX_FILTER];
static uint32_t filter_len;
static char setup_error[PATH_MAX + 128];

/* build/vsp-sandbox, beside this library (build/libvespid.so) or this program (build/vsp-run). */
static void find_helper(void)
{
	Dl_info info;
	char self[PATH_MAX];
	if (dladdr((void *)find_helper, &info) && info.dli_fname && strchr(info.dli_fname, '/'))
		snprintf(self, sizeof(self), "%s", info.dli_fname);
	else if (readlink("/proc/self/exe", self, sizeof(self) - 1) < 0)
		self[0] = 0;
	char *dir = dirname(self);
	snprintf(helper_path, sizeof(helper_path), "%s/vsp-sandbox", dir);
	if (strstr(dir, "/asan") && access(helper_path, X_OK) < 0)
		snprintf(helper_path, sizeof(helper_path), "%s/../vsp-sandbox", dir);
}

/*
 * Everything the guest asks of the kernel goes to the host for emulation (trap to SIGSYS, whose
 * handler makes a hypercall); the hypercall itself becomes a user notification; the helper may
 * set FS/GS base (the other filter pins both to the helper's own code) and close its socket, which
 * tells the host it is sealed (any other fd stays as it is: an open or closed fd would be state
 * that outlives a call). Other
 * architectures' syscall entries (int 0x80, x32) kill the sandbox.
 */
static int build_filter(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return -ENOMEM;
	int r;
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, VSP_SANDBOX_HYPERCALL, 0)) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(close), 1, SCMP_A0(SCMP_CMP_EQ, VSP_SANDBOX_FD_SOCK))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(arch_prctl), 1, SCMP_A0(SCMP_CMP_EQ, 0x1001))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(arch_prctl), 1, SCMP_A0(SCMP_CMP_EQ, 0x1002))) < 0)
		goto out;
	int fd = memfd_create("vespid-filter", MFD_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if ((r = seccomp_export_bpf(ctx, fd)) == 0) {
		off_t len = lseek(fd, 0, SEEK_END);
		if (len <= 0 || len % 8 || len / 8 > VSP_SANDBOX_MAX_FILTER || pread(fd, filter, len, 0) != len)
			r = -E2BIG;
		else
			filter_len = (uint32_t)(len / 8);
	}
	close(fd);
out:
	seccomp_release(ctx);
	return r;
}

static void setup(void)
{
	find_helper();
	if (access(helper_path, X_OK) < 0) {
		snprintf(setup_error, sizeof(setup_error), "%s: %s", helper_path, strerror(errno));
		return;
	}
	int r = build_filter();
	if (r < 0)
		snprintf(setup_error, sizeof(setup_error), "seccomp filter: %s", strerror(-r));
}

/* ---- starting a sandbox --------------------------------------------------------------------- */

/*
 * Root in the initial user namespace: the helper can drop to an unprivileged uid itself. Root of
 * a container's user namespace (rootless podman, `unshare -r`) cannot map that uid, so it starts
 * sandboxes the unprivileged way, as any other user.
 */
static bool privileged(void)
{
	if (geteuid() != 0)
		return false;
	char map[128] = "";
	FILE *f = fopen("/proc/self/uid_map", "re");
	if (!f)
		return true;
	size_t n = fread(map, 1, sizeof(map) - 1, f);
	fclose(f);
	map[n] = 0;
	unsigned inside = 1, outside = 1, count = 0;
	return sscanf(map, "%u %u %u", &inside, &outside, &count) == 3 && inside == 0 && outside == 0 &&
	       count == 4294967295u;
}

struct spawn_args {
	int sock, memfd;
	const char *path;
};

/* Runs in the child between clone and exec, sharing the caller's memory: raw syscalls only. */
static int spawn_child(void *p)
{
	const struct spawn_args *a = p;
	int sock = (int)syscall(SYS_fcntl, a->sock, F_DUPFD, 100);
	int mem = a->memfd >= 0 ? (int)syscall(SYS_fcntl, a->memfd, F_DUPFD, 100) : -1;
	if (sock < 0 || syscall(SYS_dup2, sock, VSP_SANDBOX_FD_SOCK) < 0 ||
	    (mem >= 0 && syscall(SYS_dup2, mem, VSP_SANDBOX_FD_MEM) < 0))
		syscall(SYS_exit, 126);
	char *const argv[] = { (char *)"vsp-sandbox", NULL };
	char *const envp[] = { NULL };
	syscall(SYS_execve, a->path, argv, envp);
	syscall(SYS_exit, 127);
	return 0;
}

/* Guest pages as the sandbox maps them: the image by its segments' rights, never W and X at once. */
static int plan_ranges(const struct vsp_vm *vm, struct vsp_sandbox_config *c)
{
	struct vsp_sandbox_range *r = c->ranges;
	unsigned n = 0;
#define ADD(s, e, p) do { if (n == VSP_SANDBOX_MAX_RANGES) return -E2BIG; \
	r[n++] = (struct vsp_sandbox_range){ .start = (s), .end = (e), .prot = (p) }; } while (0)
	ADD(VSP_GPA_FRAME, VSP_GPA_FRAME + PAGE, PROT_READ | PROT_WRITE);
	ADD(VSP_GPA_PROC_SAVE, VSP_GPA_PROC_END, PROT_READ | PROT_WRITE);
	const struct vsp_image *img = vm->image;
	for (uint64_t a = VSP_IMAGE_BASE; a < img->end;) {
		uint32_t flags = vsp_image_page_flags(img, a);
		uint32_t prot = PROT_READ | ((flags & PF_X) ? PROT_EXEC : 0) | ((flags & PF_W) ? PROT_WRITE : 0);
		if ((prot & PROT_EXEC) && (prot & PROT_WRITE))
			return -ENOEXEC; /* a page both writable and executable */
		if (n > 2 && r[n - 1].end == a && r[n - 1].prot == prot)
			r[n - 1].end = a + PAGE;
		else
			ADD(a, a + PAGE, prot);
		a += PAGE;
	}
	uint64_t guard = vm->mem_size - VSP_STACK_SIZE - VSP_GUARD_SIZE;
	ADD(img->end, guard, PROT_READ | PROT_WRITE);
	ADD(guard + VSP_GUARD_SIZE, vm->mem_size, PROT_READ | PROT_WRITE);
#undef ADD
	c->nranges = n;
	return 0;
}

static int write_proc(pid_t pid, const char *file, const char *text)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int err = errno;
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -(n < 0 ? err : EIO);
}

/* "1000 <uid> 1" for a child's new user namespace. */
static int map_child(pid_t pid, uint32_t uid)
{
	char map[48];
	snprintf(map, sizeof(map), "1000 %u 1", uid);
	int r = write_proc(pid, "setgroups", "deny");
	if (r == 0)
		r = write_proc(pid, "uid_map", map);
	if (r == 0) {
		snprintf(map, sizeof(map), "1000 %u 1", (unsigned)getegid());
		r = write_proc(pid, "gid_map", map);
	}
	return r;
}

static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static void reap(pid_t pid, int pidfd)
{
	if (pidfd >= 0) {
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		close(pidfd);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
			;
}

/*
 * Starts the helper for `vm` (or, with vm NULL, a probe that sets up the walls and exits) and
 * waits until it has sealed itself. Errors name the step that failed into `why`.
 */
static int start(struct vsp_vm *vm, uint32_t mode, uint64_t entry, uint64_t rsp, char *why, size_t why_cap)
{
	pthread_once(&setup_once, setup);
	if (setup_error[0]) {
		snprintf(why, why_cap, "%s", setup_error);
		return -ENOEXEC;
	}
	struct vsp_sandbox_config *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	bool root = privileged();
	c->mode = mode;
	c->host_uid = root ? UNPRIVILEGED_UID : geteuid();
	c->in_userns = !root;
	c->filter_len = filter_len;
	memcpy(c->filter, filter, sizeof(filter));
	int r = 0;
	if (vm) {
		c->mem_size = vm->mem_size;
		c->entry = entry;
		c->rsp = rsp;
		c->as_limit = vm->mem_size + AS_SLACK;
		if ((r = plan_ranges(vm, c)) < 0) {
			snprintf(why, why_cap, "the image has a page both writable and executable");
			free(c);
			return r;
		}
	}

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		free(c);
		snprintf(why, why_cap, "socketpair: %s", strerror(-r));
		return r;
	}
	/*
	 * vfork-style (shared memory, this thread waits until the exec): a fork of the runner's large
	 * process would copy its page tables. Signals stay blocked across it, so no handler of this
	 * process can run on the child's stack; the helper unblocks what it needs.
	 */
	struct spawn_args args = { .sock = sv[1], .memfd = vm ? vm->sb.memfd : -1, .path = helper_path };
	static const size_t STACK = 64 * 1024;
	char *stack = malloc(STACK);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int pidfd = -1;
	int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_NEWPID | (root ? 0 : CLONE_NEWUSER);
	pid_t pid = stack ? clone(spawn_child, stack + STACK, flags, &args, &pidfd) : -1;
	int clone_err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	free(stack);
	close(sv[1]);
	if (pid < 0) {
		r = stack ? -clone_err : -ENOMEM;
		snprintf(why, why_cap, "%s: %s", root ? "PID namespace" : "user and PID namespaces", strerror(-r));
		close(sv[0]);
		free(c);
		return r;
	}

	/*
	 * Unprivileged: clone made the user namespace, whose map only this side can write. Then the
	 * configuration; the helper closes its end once sealed, and before that may report a failed
	 * step. (MSG_NOSIGNAL: a helper that died must not SIGPIPE this process.)
	 */
	if (!root && (r = map_child(pid, c->host_uid)) < 0) {
		snprintf(why, why_cap, "user namespace map: %s", strerror(-r));
	} else if (send(sv[0], c, sizeof(*c), MSG_NOSIGNAL) != (ssize_t)sizeof(*c)) {
		r = -EPIPE;
		snprintf(why, why_cap, "the sandbox helper did not start (%s)", helper_path);
	} else if ((r = wait_readable(sv[0], START_TIMEOUT_MS)) < 0) {
		snprintf(why, why_cap, "the sandbox helper did not answer: %s", strerror(-r));
	} else {
		struct vsp_sandbox_error e;
		ssize_t n = read(sv[0], &e, sizeof(e));
		if (n == (ssize_t)sizeof(e)) {
			e.step[sizeof(e.step) - 1] = 0;
			r = e.err > 0 ? -e.err : -EIO;
			snprintf(why, why_cap, "%s: %s", e.step, strerror(e.err));
		} else if (n != 0) {
			r = -EIO;
			snprintf(why, why_cap, "the sandbox helper failed to start");
		}
	}
	close(sv[0]);
	free(c);
	if (r == 0 && !vm) {
		int status = 0;
		while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
			;
		close(pidfd);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			snprintf(why, why_cap, "the sandbox helper ended with status 0x%x", status);
			return -EIO;
		}
		return 0;
	}
	if (r == 0) {
		/* The seccomp listener is the helper's fd 0: take a copy of it. */
		int listener = (int)syscall(SYS_pidfd_getfd, pidfd, 0, 0);
		if (listener < 0) {
			r = -errno;
			snprintf(why, why_cap, "pidfd_getfd: %s", strerror(-r));
		} else {
			fcntl(listener, F_SETFD, FD_CLOEXEC);
			uint64_t sync = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP; /* 6.6+: lower latency, optional */
			ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, &sync);
			vm->sb.listener = listener;
			vm->sb.pid = pid;
			vm->sb.pidfd = pidfd;
			return 0;
		}
	}
	reap(pid, pidfd);
	return r;
}

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static char probe_reason[256];
static int probe_ok;

static void probe(void)
{
	probe_ok = start(NULL, VSP_SANDBOX_PROBE, 0, 0, probe_reason, sizeof(probe_reason)) == 0;
}

/* Starts one sandbox that sets up its walls and exits: whatever stops that is the reason. */
int vsp_sandbox_available(char *why, uint64_t why_cap)
{
	pthread_once(&probe_once, probe);
	int ok = probe_ok;
	const char *reason = probe_reason;
	if (!ok && why && why_cap)
		snprintf(why, why_cap, "%s", reason);
	return ok;
}

/* ---- sandbox lifetime ----------------------------------------------------------------------- */

int vsp_sandbox_create(struct vsp_vm *vm, uint64_t mem_size)
{
	memset(vm, 0, sizeof(*vm));
	vm->tier = VSP_TIER_PROCESS;
	vm->vm_fd = vm->vcpu_fd = -1;
	vm->sb.listener = vm->sb.pidfd = -1;
	vm->sb.memfd = memfd_create("vespid-guest", MFD_CLOEXEC);
	if (vm->sb.memfd < 0)
		return -errno;
	int r;
	if (ftruncate(vm->sb.memfd, (off_t)mem_size) < 0) {
		r = -errno;
		goto fail;
	}
	vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, vm->sb.memfd, 0);
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		r = -errno;
		goto fail;
	}
	vm->mem_size = mem_size;
	size_t bitmap = (vsp_pages(vm) + 63) / 64 * sizeof(uint64_t);
	vm->host_dirty = calloc(1, bitmap);
	vm->ever_dirty = calloc(1, bitmap);
	if (!vm->host_dirty || !vm->ever_dirty) {
		r = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	vsp_sandbox_destroy(vm);
	return r;
}

void vsp_sandbox_destroy(struct vsp_vm *vm)
{
	reap(vm->sb.pid, vm->sb.pidfd);
	if (vm->sb.listener >= 0)
		close(vm->sb.listener);
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	if (vm->sb.memfd > 0)
		close(vm->sb.memfd);
	free(vm->host_dirty);
	free(vm->ever_dirty);
	vsp_mm_free(vm);
	vsp_image_put(vm->image);
	memset(vm, 0, sizeof(*vm));
	vm->vm_fd = vm->vcpu_fd = -1;
	vm->sb.memfd = vm->sb.listener = vm->sb.pidfd = -1;
}

int vsp_sandbox_boot(struct vsp_vm *vm, uint64_t entry, uint64_t rsp, char *why, size_t why_cap)
{
	return start(vm, VSP_SANDBOX_BOOT, entry, rsp, why, why_cap);
}

/* ---- hypercalls ------------------------------------------------------------------------------- */

static int answer(struct vsp_vm *vm, uint64_t value)
{
	struct seccomp_notif_resp resp = { .id = vm->sb.id, .val = (int64_t)value };
	vm->sb.pending = false;
	if (ioctl(vm->sb.listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0)
		return -errno;
	return 0;
}

/*
 * Waits for the guest's next hypercall, until `deadline_us` (0: PARK_TIMEOUT_MS from now).
 * Returns 0 with vm->sb.{id,bell} set, -ETIMEDOUT, -EINTR when `expired` was set, or -EPIPE
 * when the sandbox is gone.
 */
static int next_hypercall(struct vsp_vm *vm, uint64_t deadline_us, volatile int *expired)
{
	if (!deadline_us)
		deadline_us = vsp_now_us() + PARK_TIMEOUT_MS * 1000ull;
	struct pollfd p = { .fd = vm->sb.listener, .events = POLLIN };
	for (;;) {
		if (expired && *expired)
			return -EINTR;
		uint64_t now = vsp_now_us();
		if (now >= deadline_us)
			return -ETIMEDOUT;
		int r = poll(&p, 1, (int)((deadline_us - now + 999) / 1000));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			continue;
		if (p.revents & (POLLHUP | POLLERR))
			return -EPIPE;
		struct seccomp_notif n;
		memset(&n, 0, sizeof(n));
		if (ioctl(vm->sb.listener, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0) {
			if (errno == EINTR || errno == ENOENT)
				continue; /* interrupted, or the notification went away */
			return -errno;
		}
		vm->sb.id = n.id;
		vm->sb.tid = (pid_t)n.pid;
		vm->sb.bell = n.data.args[0];
		vm->sb.pending = true;
		vm->exits++;
		return 0;
	}
}

/* How the sandbox ended, for a call it left without a result. */
static void ended(struct vsp_vm *vm, struct vsp_call *call)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)vm->sb.pidfd, &si, WEXITED | __WALL) == 0 && si.si_pid) {
		vm->sb.pid = 0; /* reaped */
		if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) {
			vsp_call_end(call, VSP_CRASH, "the function crashed: the sandbox was killed by signal %d%s",
				     si.si_status, si.si_status == SIGSYS ? " (a forbidden system call)" : "");
			return;
		}
	}
	vsp_call_end(call, VSP_CRASH, "the function crashed: the sandbox ended unexpectedly");
}

/*
 * Whether the FAULT hypercall just made comes from a fault signal the kernel delivered: 1 if so,
 * 0 if the guest rang it itself, -errno if the thread's state could not be read. The helper's
 * fault handlers run with every fault signal blocked and never return (shim.c), and the guest
 * cannot unblock one (rt_sigprocmask and rt_sigreturn trap and are emulated), so such a signal is
 * blocked only after the kernel delivered it; from then on only the handler runs until it rings
 * FAULT with what the kernel wrote in the signal frame. What the guest writes to the frame's fault
 * fields, or a call of the hypercall stub, cannot block a signal.
 */
static int fault_delivered(struct vsp_vm *vm)
{
	char path[64], text[4096];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)vm->sb.pid, (int)vm->sb.tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, text + len, sizeof(text) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		len += (size_t)n;
		if (n == 0 || len == sizeof(text) - 1)
			break;
	}
	close(fd);
	text[len] = 0;
	const char *line = strstr(text, "\nSigBlk:");
	unsigned long long blocked;
	if (!line || sscanf(line, "\nSigBlk: %llx", &blocked) != 1)
		return -EPROTO;
	/* The thread still waits in this hypercall: the mask read is the one it rang FAULT with. */
	if (ioctl(vm->sb.listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &vm->sb.id) < 0)
		return -errno;
	return (blocked & VSP_SANDBOX_FAULT_SIGNALS) != 0;
}

static void serve(struct vsp_vm *vm, struct vsp_call *call)
{
	if (vm->sb.bell == VSP_BELL_FAULT) {
		int r = fault_delivered(vm);
		if (r == 0) {
			vsp_fault_forged(call);
			return;
		}
		if (r < 0) {
			vsp_call_end(call, VSP_CRASH, "the function crashed (its fault report could not be checked: %s)",
				     strerror(-r));
			return;
		}
	}
	vsp_doorbell(vm, call, vm->sb.bell);
}

void vsp_sandbox_run_loop(struct vsp_vm *vm, struct vsp_call *call, volatile int *expired)
{
	while (!call->done) {
		if (vm->sb.pending && answer(vm, 0) < 0) {
			ended(vm, call);
			break;
		}
		int r = next_hypercall(vm, call->deadline_us, expired);
		if (r == -ETIMEDOUT || r == -EINTR) {
			vsp_call_end(call, VSP_TIMEOUT, "The action exceeded its time limit of %u milliseconds.",
				     call->req->timeout_ms);
			break;
		}
		if (r < 0) {
			ended(vm, call);
			break;
		}
		serve(vm, call);
	}
}

/* ---- snapshots -------------------------------------------------------------------------------- */

/*
 * Adds to ever_dirty every page that exists in guest memory: anything the guest or the host ever
 * touched (a restore rewrites them all, and they stay allocated, so later calls fault on none),
 * but for the image's pages the guest cannot write (mapped without PROT_WRITE), which never change.
 * The memfd's block count tells whether anything new appeared since the last look.
 */
static bool read_only_image_page(const struct vsp_image *img, uint64_t addr)
{
	return addr >= VSP_IMAGE_BASE && addr < img->end && !(vsp_image_page_flags(img, addr) & PF_W);
}

int vsp_sandbox_collect_pages(struct vsp_vm *vm)
{
	struct stat st;
	if (fstat(vm->sb.memfd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_blocks == vm->sb.blocks)
		return 0;
	vm->sb.blocks = (uint64_t)st.st_blocks;
	off_t end = (off_t)vm->mem_size;
	for (off_t at = 0; at < end;) {
		off_t data = lseek(vm->sb.memfd, at, SEEK_DATA);
		if (data < 0)
			break; /* ENXIO: nothing after `at` */
		off_t hole = lseek(vm->sb.memfd, data, SEEK_HOLE);
		if (hole < 0)
			hole = end;
		for (uint64_t p = (uint64_t)data / PAGE; p < ((uint64_t)hole + PAGE - 1) / PAGE; p++)
			if (!read_only_image_page(vm->image, p * PAGE))
				vm->ever_dirty[p / 64] |= 1ull << (p % 64);
		at = hole;
	}
	return 0;
}

/* The guest waits in a hypercall; it must be its snapshot point, the first PARAMS request. */
static int check_parked(struct vsp_vm *vm)
{
	if (vm->sb.bell != VSP_BELL_INPUT || vsp_frame(vm, false)->in_kind != VSP_INPUT_PARAMS)
		return -EPROTO;
	return 0;
}

/* A sandbox for a snapshot's memory (already in vm->mem): resumes the guest at its ready point. */
int vsp_sandbox_resume(struct vsp_vm *vm)
{
	char why[256];
	int r = start(vm, VSP_SANDBOX_RESUME, 0, 0, why, sizeof(why));
	if (r < 0)
		return r;
	if ((r = next_hypercall(vm, 0, NULL)) < 0)
		return r;
	vm->sb.parked_cpu_ns = vsp_process_cpu_ns(vm->sb.pid);
	return check_parked(vm);
}

/*
 * After the host has put guest memory back: the call's last hypercall is answered with RESTORE,
 * the helper reloads the snapshot's registers from that memory and rings the snapshot's doorbell
 * again, where the sandbox waits for its next call.
 */
int vsp_sandbox_rewind(struct vsp_vm *vm)
{
	if (!vm->sb.pending)
		return -EPROTO;
	int r = answer(vm, VSP_SANDBOX_RESTORE);
	if (r < 0 || (r = next_hypercall(vm, 0, NULL)) < 0)
		return r;
	/* Off the next call's path: the sandbox now waits without spending CPU until that call. */
	vm->sb.parked_cpu_ns = vsp_process_cpu_ns(vm->sb.pid);
	return check_parked(vm);
}
