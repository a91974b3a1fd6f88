/*
 * Linux syscall emulation for the guest, deny by default: what a function needs (memory, time,
 * randomness, writing logs, exiting) is served; files, sockets, processes and anything unknown get
 * an error code and nothing else. Arguments are untrusted: pointers go through vsp_guest_ptr().
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <time.h>

#include "vm.h"

enum {
	SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_close = 3, SYS_stat = 4, SYS_fstat = 5,
	SYS_lstat = 6, SYS_lseek = 8, SYS_mmap = 9, SYS_mprotect = 10, SYS_munmap = 11, SYS_brk = 12,
	SYS_rt_sigaction = 13, SYS_rt_sigprocmask = 14, SYS_ioctl = 16, SYS_readv = 19, SYS_writev = 20,
	SYS_access = 21, SYS_sched_yield = 24, SYS_mremap = 25, SYS_msync = 26, SYS_madvise = 28,
	SYS_nanosleep = 35, SYS_getpid = 39, SYS_exit = 60, SYS_uname = 63, SYS_gettimeofday = 96,
	SYS_getuid = 102, SYS_getgid = 104, SYS_geteuid = 107, SYS_getegid = 108, SYS_getppid = 110,
	SYS_sigaltstack = 131, SYS_arch_prctl = 158, SYS_gettid = 186, SYS_time = 201, SYS_futex = 202,
	SYS_set_tid_address = 218, SYS_clock_gettime = 228, SYS_clock_getres = 229,
	SYS_clock_nanosleep = 230, SYS_exit_group = 231, SYS_openat = 257, SYS_newfstatat = 262,
	SYS_faccessat = 269, SYS_getrandom = 318, SYS_membarrier = 324, SYS_statx = 332,
};

#define ARCH_SET_FS 0x1002
#define FUTEX_WAKE 1
#define MAX_IOV 1024
#define GUEST_UID 1000

/*
 * Guest memory holds whatever alignment the guest chose: words cross it with memcpy, never through
 * a typed pointer (an unaligned one is undefined behaviour in C, caught by the fuzzer's UBSan).
 */
static int64_t put_words(struct vsp_vm *vm, uint64_t addr, const int64_t *words, size_t n)
{
	void *p = vsp_guest_wptr(vm, addr, n * 8);
	if (!p)
		return -EFAULT;
	memcpy(p, words, n * 8);
	return 0;
}

static int64_t get_words(struct vsp_vm *vm, uint64_t addr, int64_t *words, size_t n)
{
	const void *p = vsp_guest_ptr(vm, addr, n * 8);
	if (!p)
		return -EFAULT;
	memcpy(words, p, n * 8);
	return 0;
}

static int64_t sys_write_log(struct vsp_vm *vm, struct vsp_call *call, uint64_t fd, uint64_t buf, uint64_t len)
{
	if (fd != 1 && fd != 2)
		return -EBADF;
	const uint8_t *p = vsp_guest_ptr(vm, buf, len);
	if (!p)
		return -EFAULT;
	vsp_log_append(call, (int)fd, p, len);
	return (int64_t)len;
}

static int64_t sys_writev(struct vsp_vm *vm, struct vsp_call *call, uint64_t fd, uint64_t iov, uint64_t cnt)
{
	if (cnt > MAX_IOV)
		return -EINVAL;
	int64_t total = 0;
	for (uint64_t i = 0; i < cnt; i++) {
		int64_t v[2];
		if (get_words(vm, iov + 16 * i, v, 2) < 0)
			return -EFAULT;
		int64_t r = sys_write_log(vm, call, fd, (uint64_t)v[0], (uint64_t)v[1]);
		if (r < 0)
			return r;
		total += r;
	}
	return total;
}

static int64_t put_timespec(struct vsp_vm *vm, uint64_t addr, const struct timespec *ts)
{
	const int64_t words[2] = { ts->tv_sec, ts->tv_nsec };
	return put_words(vm, addr, words, 2);
}

static int64_t sys_clock_gettime(struct vsp_vm *vm, uint64_t clk, uint64_t addr)
{
	struct timespec ts;
	/* CPU-time clocks read as monotonic: the guest has no other process to tell apart. */
	clockid_t id = clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE ? CLOCK_REALTIME : CLOCK_MONOTONIC;
	if (clk > CLOCK_BOOTTIME)
		return -EINVAL;
	clock_gettime(id, &ts);
	return put_timespec(vm, addr, &ts);
}

static int64_t sys_gettimeofday(struct vsp_vm *vm, uint64_t addr)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (!addr)
		return 0;
	const int64_t words[2] = { ts.tv_sec, ts.tv_nsec / 1000 };
	return put_words(vm, addr, words, 2);
}

static int64_t sys_getrandom(struct vsp_vm *vm, uint64_t buf, uint64_t len)
{
	if (len > (1u << 20))
		len = 1u << 20; /* short reads are allowed by getrandom's contract */
	uint8_t *p = vsp_guest_wptr(vm, buf, len);
	if (!p)
		return -EFAULT;
	for (uint64_t done = 0; done < len;) {
		ssize_t r = getrandom(p + done, len - done, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -EIO;
		}
		done += (uint64_t)r;
	}
	return (int64_t)len;
}

/* Sleeps on the host; the invocation's timer interrupts it at the deadline. */
static int64_t sys_nanosleep(struct vsp_vm *vm, uint64_t req)
{
	int64_t p[2];
	if (get_words(vm, req, p, 2) < 0)
		return -EFAULT;
	if (p[0] < 0 || p[1] < 0 || p[1] >= 1000000000)
		return -EINVAL;
	struct timespec ts = { .tv_sec = p[0], .tv_nsec = p[1] };
	return nanosleep(&ts, NULL) == 0 ? 0 : -EINTR;
}

static int64_t sys_uname(struct vsp_vm *vm, uint64_t addr)
{
	struct utsname *u = vsp_guest_wptr(vm, addr, sizeof(struct utsname));
	if (!u)
		return -EFAULT;
	memset(u, 0, sizeof(*u));
	strcpy(u->sysname, "Linux");
	strcpy(u->nodename, "vespid");
	strcpy(u->release, "6.1.0-vespid");
	strcpy(u->version, "#1");
	strcpy(u->machine, "x86_64");
	return 0;
}

static int64_t sys_arch_prctl(struct vsp_vm *vm, uint64_t code, uint64_t addr)
{
	if (code != ARCH_SET_FS)
		return -EINVAL;
	if (addr >= vm->mem_size)
		return -EPERM; /* a TLS base outside guest memory can only fault later */
	if (vm->tier == VSP_TIER_PROCESS)
		return 0; /* the sandbox's helper sets it once the host has said yes */
	struct kvm_sregs sregs;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -EIO;
	sregs.fs.base = addr;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -EIO;
	vm->sregs_changed = true;
	return 0;
}

static int64_t dispatch(struct vsp_vm *vm, struct vsp_call *call, uint64_t nr, const uint64_t *a)
{
	switch (nr) {
	case SYS_write: return sys_write_log(vm, call, a[0], a[1], a[2]);
	case SYS_writev: return sys_writev(vm, call, a[0], a[1], a[2]);
	case SYS_read: case SYS_readv: return a[0] == 0 ? 0 : -EBADF; /* stdin is empty */
	case SYS_close: return a[0] <= 2 ? 0 : -EBADF;
	case SYS_brk: return (int64_t)vsp_mm_brk(vm, a[0]);
	case SYS_mmap: return vsp_mm_mmap(vm, a[0], a[1], a[2], a[3], (int64_t)a[4]);
	case SYS_munmap: return vsp_mm_munmap(vm, a[0], a[1]);
	case SYS_mremap: return -ENOMEM; /* callers fall back to allocate, copy, free */
	/* W^X: only the image's text is executable, and nothing can be made so (as under SELinux's execmem denial). */
	case SYS_mprotect: return (a[2] & 4 /* PROT_EXEC */) ? -EACCES : 0;
	case SYS_madvise: case SYS_msync: case SYS_membarrier: return 0;
	case SYS_clock_gettime: return sys_clock_gettime(vm, a[0], a[1]);
	case SYS_clock_getres: {
		struct timespec ts = { 0, 1 };
		return a[1] ? put_timespec(vm, a[1], &ts) : 0;
	}
	case SYS_gettimeofday: return sys_gettimeofday(vm, a[0]);
	case SYS_time: {
		int64_t now = time(NULL);
		if (a[0] && put_words(vm, a[0], &now, 1) < 0)
			return -EFAULT;
		return now;
	}
	case SYS_nanosleep: return sys_nanosleep(vm, a[0]);
	case SYS_clock_nanosleep: return a[1] == 0 ? sys_nanosleep(vm, a[2]) : -EINVAL; /* relative only */
	case SYS_getrandom: return sys_getrandom(vm, a[0], a[1]);
	case SYS_arch_prctl: return sys_arch_prctl(vm, a[0], a[1]);
	case SYS_uname: return sys_uname(vm, a[0]);
	case SYS_set_tid_address: case SYS_gettid: case SYS_getpid: return 1;
	case SYS_getppid: return 0;
	case SYS_getuid: case SYS_geteuid: case SYS_getgid: case SYS_getegid: return GUEST_UID;
	case SYS_rt_sigaction: case SYS_rt_sigprocmask: case SYS_sigaltstack: case SYS_sched_yield: return 0;
	case SYS_futex: return (a[1] & 0x7f) == FUTEX_WAKE ? 0 : -ENOSYS; /* one thread: nobody to wait for */
	case SYS_ioctl: return -ENOTTY;
	case SYS_lseek: return -ESPIPE;
	case SYS_open: case SYS_openat: case SYS_stat: case SYS_lstat: case SYS_newfstatat:
	case SYS_access: case SYS_faccessat: case SYS_statx:
		return -ENOENT; /* there is no file system */
	case SYS_fstat: return -EBADF;
	case SYS_exit: case SYS_exit_group:
		vsp_call_end(call, VSP_CRASH, "the function exited with status %d before returning a result",
			     (int)(int32_t)a[0]);
		return 0;
	default:
		return -ENOSYS; /* sockets, processes, signals to others, everything else */
	}
}

void vsp_syscall(struct vsp_vm *vm, struct vsp_call *call)
{
	volatile struct vsp_frame *f = vsp_frame(vm, true);
	uint64_t nr = f->nr_ret, a[6];
	for (int i = 0; i < 6; i++)
		a[i] = f->args[i];
	f->nr_ret = (uint64_t)dispatch(vm, call, nr, a);
}
