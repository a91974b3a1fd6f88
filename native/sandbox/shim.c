/*
 * vsp-sandbox: the process tier's helper. The host (native/src/sandbox.c) starts one per sandbox
 * in a new PID namespace; it walls itself in (user, mount, network, IPC, UTS and cgroup
 * namespaces, an empty read-only root, no_new_privs, rlimits), maps guest memory at the addresses
 * a virtine uses, drops every other writable mapping it has, installs its seccomp filters and hands
 * control to the guest image. From then on it is only a signal handler and the stubs in stub.S:
 * each guest syscall (trapped by seccomp) and each fault becomes a hypercall the host serves.
 *
 * Freestanding: no libc, no writable data of its own (the build checks), raw syscalls only.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <asm/signal.h>
#include <asm/sigcontext.h>
#include <asm/ucontext.h>
#include <asm/siginfo.h>
#include <asm/unistd.h>
#include <linux/mman.h>
#include <linux/mount.h>
#include <linux/prctl.h>
#include <linux/resource.h>
#include <linux/fcntl.h>

#include "../include/vespid_abi.h"
#include "protocol.h"

#define PAGE VSP_PAGE_SIZE
#define USER_TOP 0x7ffffffff000ull
#define GUEST_UID 1000
#define MNT_DETACH 2

/* stub.S */
void vsp_hc_call(uint64_t bell);
long vsp_set_base(int code, uint64_t base);
void vsp_sigreturn(struct ucontext *uc) __attribute__((noreturn));
void vsp_no_restorer(void);
void vsp_enter(uint64_t entry, uint64_t rsp) __attribute__((noreturn));
void vsp_on_stack(uint64_t top, void (*fn)(void)) __attribute__((noreturn));
void vsp_restore(void) __attribute__((noreturn));
extern const char vsp_hc_site[], vsp_prctl_site[];
extern const char __ehdr_start[], _end[];

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#define sys(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* GCC may emit calls to these for struct copies and zeroing. */
void *memset(void *d, int c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((volatile char *)d)[i] = (char)c;
	return d;
}
void *memcpy(void *d, const void *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((volatile char *)d)[i] = ((const char *)s)[i];
	return d;
}

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* Tells the host which setup step failed and why, then ends. */
__attribute__((noreturn)) static void fail(const char *step, long err)
{
	struct vsp_sandbox_error e;
	memset(&e, 0, sizeof(e));
	for (size_t i = 0; step[i] && i < sizeof(e.step) - 1; i++)
		e.step[i] = step[i];
	e.err = (int32_t)-err;
	sys(__NR_write, VSP_SANDBOX_FD_SOCK, &e, sizeof(e));
	for (;;)
		sys(__NR_exit_group, 1, 0, 0);
}

static void check(const char *step, long r)
{
	if (r < 0)
		fail(step, r);
}

static void write_file(const char *path, const char *text)
{
	long fd = sys(__NR_open, path, O_WRONLY | O_CLOEXEC, 0);
	check(path, fd);
	long r = sys(__NR_write, fd, text, slen(text));
	check(path, r);
	sys(__NR_close, fd, 0, 0);
}

/* "1000 <uid> 1" */
static void id_map(char *buf, uint32_t host)
{
	char digits[12];
	int n = 0;
	do {
		digits[n++] = (char)('0' + host % 10);
		host /= 10;
	} while (host);
	const char *head = "1000 ";
	size_t i = 0;
	for (; head[i]; i++)
		buf[i] = head[i];
	while (n)
		buf[i++] = digits[--n];
	buf[i++] = ' ';
	buf[i++] = '1';
	buf[i] = 0;
}

/* The config outlives the kernel's stack, which is unmapped: it is copied here, in guest memory. */
#define CONFIG ((struct vsp_sandbox_config *)(uintptr_t)(VSP_GPA_PROC_STACK - 0x8000 - sizeof(struct vsp_sandbox_config)))
#define FRAME ((volatile struct vsp_frame *)(uintptr_t)VSP_GPA_FRAME)
#define SAVE ((volatile struct vsp_proc_save *)(uintptr_t)VSP_GPA_PROC_SAVE)

static void read_config(struct vsp_sandbox_config *c)
{
	size_t got = 0;
	while (got < sizeof(*c)) {
		long r = sys(__NR_read, VSP_SANDBOX_FD_SOCK, (char *)c + got, sizeof(*c) - got);
		if (r <= 0)
			fail("reading the configuration", r < 0 ? r : -5 /* EIO */);
		got += (size_t)r;
	}
	if (c->nranges > VSP_SANDBOX_MAX_RANGES || c->filter_len > VSP_SANDBOX_MAX_FILTER)
		fail("reading the configuration", -22);
}

/*
 * New namespaces (the PID one came with clone), uid 1000 inside. As root, the helper first drops
 * to an unprivileged host uid and maps 1000 to it. Started by an unprivileged host, clone made a
 * user namespace whose map (1000 → that user) the host wrote; exec left the helper without
 * capabilities there, so it nests a second one, mapping 1000 to 1000, to get them back.
 */
static void enter_namespaces(const struct vsp_sandbox_config *c)
{
	uint32_t outer = GUEST_UID;
	if (!c->in_userns) {
		uint32_t none[1];
		check("setgroups", sys(__NR_setgroups, 0, none, 0));
		check("setresgid", sys(__NR_setresgid, c->host_uid, c->host_uid, c->host_uid));
		check("setresuid", sys(__NR_setresuid, c->host_uid, c->host_uid, c->host_uid));
		/* setresuid made the process undumpable, which hides its /proc files from itself */
		check("dumpable", sys(__NR_prctl, PR_SET_DUMPABLE, 1, 0));
		outer = c->host_uid;
	}
	check("user namespace", sys(__NR_unshare, CLONE_NEWUSER, 0, 0));
	char map[32];
	id_map(map, outer);
	write_file("/proc/self/setgroups", "deny");
	write_file("/proc/self/uid_map", map);
	write_file("/proc/self/gid_map", map);
	check("namespaces", sys(__NR_unshare, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP, 0, 0));
	check("hostname", sys(__NR_sethostname, "vespid", 6, 0));
}

/* An empty, read-only tmpfs becomes the root; the host's file system is gone from view. */
static void empty_root(void)
{
	check("private mounts", sys6(__NR_mount, 0, (long)"/", 0, MS_REC | MS_PRIVATE, 0, 0));
	check("tmpfs root", sys6(__NR_mount, (long)"vespid", (long)"/tmp", (long)"tmpfs",
				 MS_NOSUID | MS_NODEV | MS_NOEXEC, (long)"size=4k,nr_inodes=2,mode=0555", 0));
	check("chdir", sys(__NR_chdir, "/tmp", 0, 0));
	check("pivot_root", sys(__NR_pivot_root, ".", ".", 0));
	check("detach old root", sys(__NR_umount2, ".", MNT_DETACH, 0));
	check("chdir", sys(__NR_chdir, "/", 0, 0));
	check("read-only root", sys6(__NR_mount, 0, (long)"/", 0,
				     MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0, 0));
}

/*
 * Maps in, now, every guest page that already exists (the image, a snapshot's pages): one madvise
 * per run of pages instead of a page fault each (~15 µs apiece on a virtualised kernel) during
 * the first calls. Pages that do not exist stay unallocated.
 */
static void populate(const struct vsp_sandbox_config *c)
{
	for (uint32_t i = 0; i < c->nranges; i++) {
		const struct vsp_sandbox_range *r = &c->ranges[i];
		for (uint64_t at = r->start; at < r->end;) {
			long data = sys(__NR_lseek, VSP_SANDBOX_FD_MEM, at, 3 /* SEEK_DATA */);
			if (data < 0 || (uint64_t)data >= r->end)
				break;
			long hole = sys(__NR_lseek, VSP_SANDBOX_FD_MEM, data, 4 /* SEEK_HOLE */);
			uint64_t end = hole < 0 || (uint64_t)hole > r->end ? r->end : (uint64_t)hole;
			/* best effort: a failure only means faults later */
			sys(__NR_madvise, data, end - (uint64_t)data,
			    (r->prot & PROT_WRITE) ? 23 /* MADV_POPULATE_WRITE */ : 22 /* MADV_POPULATE_READ */);
			at = end;
		}
	}
}

static void map_guest(const struct vsp_sandbox_config *c)
{
	for (uint32_t i = 0; i < c->nranges; i++) {
		const struct vsp_sandbox_range *r = &c->ranges[i];
		long a = sys6(__NR_mmap, (long)r->start, (long)(r->end - r->start), r->prot, MAP_SHARED | MAP_FIXED,
			      VSP_SANDBOX_FD_MEM, (long)r->start);
		if (a != (long)r->start)
			fail("mapping guest memory", a < 0 ? a : -14);
	}
	populate(c);
	check("close guest memory", sys(__NR_close, VSP_SANDBOX_FD_MEM, 0, 0));
}

static void set_limit(const char *what, int resource, uint64_t value)
{
	struct rlimit lim = { value, value };
	check(what, sys6(__NR_prlimit64, 0, resource, (long)&lim, 0, 0, 0));
}

/* Every guest syscall and fault lands here, on the signal stack in guest memory. */
static void on_signal(int sig, struct siginfo *info, struct ucontext *uc)
{
	struct sigcontext *m = &uc->uc_mcontext;
	volatile struct vsp_frame *f = FRAME;
	if (sig == SIGSYS) {
		uint64_t nr = m->rax, a0 = m->rdi, a1 = m->rsi;
		f->nr_ret = nr;
		f->args[0] = m->rdi;
		f->args[1] = m->rsi;
		f->args[2] = m->rdx;
		f->args[3] = m->r10;
		f->args[4] = m->r8;
		f->args[5] = m->r9;
		vsp_hc_call(VSP_BELL_SYSCALL);
		uint64_t ret = f->nr_ret;
		/* The host checked the address; the base itself can only be set from in here. */
		if (nr == __NR_arch_prctl && ret == 0 && a0 == 0x1002 /* ARCH_SET_FS */) {
			SAVE->fs_base = a1;
			vsp_set_base(0x1002, a1);
		}
		m->rax = ret;
		vsp_sigreturn(uc);
	}
	f->fault[0] = m->trapno;
	f->fault[1] = m->err;
	f->fault[2] = m->rip;
	f->fault[3] = (uint64_t)(uintptr_t)info->si_addr;
	for (;;)
		vsp_hc_call(VSP_BELL_FAULT); /* the host ends the call and never resumes this */
}

struct kernel_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static void install_handlers(void)
{
	stack_t ss = { .ss_sp = (void *)(uintptr_t)VSP_GPA_PROC_ALT, .ss_size = VSP_PROC_ALT_SIZE, .ss_flags = 0 };
	check("signal stack", sys(__NR_sigaltstack, &ss, 0, 0));
	/*
	 * SIGSYS leaves the mask as it is (SA_NODEFER, and its handler returns without rt_sigreturn).
	 * A fault signal blocks every fault signal while its handler runs, and that handler never
	 * returns: a fault signal is blocked only once the kernel has delivered one, which is how the
	 * host tells a real FAULT hypercall from one the guest rings itself (sandbox.c).
	 */
	static const int sigs[] = { SIGSYS, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP };
	const uint64_t faults = VSP_SANDBOX_FAULT_SIGNALS;
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct kernel_sigaction sa = {
			.handler = (void *)on_signal,
			.flags = SA_SIGINFO | SA_ONSTACK | 0x04000000 /* SA_RESTORER */ | (sigs[i] == SIGSYS ? SA_NODEFER : 0),
			.restorer = (void *)vsp_no_restorer,
			.mask = sigs[i] == SIGSYS ? 0 : faults,
		};
		check("signal handler", sys6(__NR_rt_sigaction, sigs[i], (long)&sa, 0, 8, 0, 0));
	}
	uint64_t none = 0;
	check("signal mask", sys6(__NR_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8, 0, 0));
}

/*
 * The hypercall and arch_prctl are let through only from their sites in stub.S, whose code
 * reloads every register it relies on from guest memory. libseccomp (the host's filter, which
 * sorts out everything else) cannot test the instruction pointer, so this part is written here.
 */
static void pin_sites(void)
{
	uint64_t hc = (uint64_t)(uintptr_t)vsp_hc_site + 2, pr = (uint64_t)(uintptr_t)vsp_prctl_site + 2;
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, VSP_SANDBOX_HYPERCALL, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_arch_prctl, 6, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		/* hypercall: 7 */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)hc, 0, 8),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer) + 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(hc >> 32), 5, 6),
		/* arch_prctl: 11 (unused slot keeps the offsets simple) */
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)pr, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer) + 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(pr >> 32), 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
	};
	struct sock_fprog fprog = { .len = sizeof(prog) / sizeof(prog[0]), .filter = prog };
	check("seccomp (sites)", sys(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog));
}

/* Runs on a stack in guest memory: the kernel's stack and everything else not guest memory goes. */
static void seal_and_go(void)
{
	const struct vsp_sandbox_config *c = CONFIG;
	/* Nothing writable may outlive a call outside guest memory, which the host restores. */
	uint64_t own_end = ((uint64_t)(uintptr_t)_end + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	uint64_t own_start = (uint64_t)(uintptr_t)__ehdr_start;
	check("unmapping", sys(__NR_munmap, PAGE, VSP_GPA_FRAME - PAGE, 0));
	check("unmapping", sys(__NR_munmap, VSP_GPA_FRAME + PAGE, VSP_GPA_PROC_SAVE - VSP_GPA_FRAME - PAGE, 0));
	check("unmapping", sys(__NR_munmap, c->mem_size, own_start - c->mem_size, 0));
	check("unmapping", sys(__NR_munmap, own_end, USER_TOP - own_end, 0));

	set_limit("RLIMIT_CORE", RLIMIT_CORE, 0);
	set_limit("RLIMIT_FSIZE", RLIMIT_FSIZE, 0);
	set_limit("RLIMIT_NPROC", RLIMIT_NPROC, 0);
	set_limit("RLIMIT_MEMLOCK", RLIMIT_MEMLOCK, 0);
	set_limit("RLIMIT_AS", RLIMIT_AS, c->as_limit);
	/* Room for the seccomp listener (fd 0, the lowest free) and nothing after it. */
	set_limit("RLIMIT_NOFILE", RLIMIT_NOFILE, 1);
	install_handlers();
	FRAME->bell_fn = (uint64_t)(uintptr_t)vsp_hc_call;

	/* Capabilities in its own user namespace are worth nothing once seccomp is in; drop them anyway. */
	struct { uint32_t version; int pid; } cap_head = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
	struct { uint32_t effective, permitted, inheritable; } cap_none[2];
	memset(cap_none, 0, sizeof(cap_none));
	check("capabilities", sys(__NR_capset, &cap_head, cap_none, 0));
	check("no_new_privs", sys6(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0));
	pin_sites();
	struct sock_fprog main_filter = { .len = (unsigned short)c->filter_len, .filter = (struct sock_filter *)c->filter };
	long listener = sys(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &main_filter);
	check("seccomp", listener);
	if (listener != 0)
		fail("seccomp listener fd", -9);
	/* Closing the socket (close is allowed) tells the host to take the listener (pidfd_getfd). */
	sys(__NR_close, VSP_SANDBOX_FD_SOCK, 0, 0);
	if (c->mode == VSP_SANDBOX_RESUME)
		vsp_restore();
	vsp_enter(c->entry, c->rsp);
}

void vsp_shim_main(uint64_t *sp)
{
	(void)sp;
	/* Only the socket and guest memory: stdio and anything the host leaked are closed. */
	for (int fd = 0; fd < 3; fd++)
		sys(__NR_close, fd, 0, 0);
	sys(__NR_close_range, VSP_SANDBOX_FD_MEM + 1, ~0u, 0);
	struct vsp_sandbox_config c;
	read_config(&c);
	enter_namespaces(&c);
	/* After the uid change, which clears it: the sandbox dies with the thread that started it. */
	check("parent death signal", sys(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL, 0));
	empty_root();
	if (c.mode == VSP_SANDBOX_PROBE)
		for (sys(__NR_close, VSP_SANDBOX_FD_MEM, 0, 0);;)
			sys(__NR_exit_group, 0, 0, 0);
	map_guest(&c);
	memcpy(CONFIG, &c, sizeof(c));
	vsp_on_stack(VSP_GPA_PROC_STACK, seal_and_go);
}
