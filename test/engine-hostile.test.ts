// Hostile guests, in C and JavaScript, on every isolation tier (see engine-tiers.ts). Each test
// makes one call that tries something a function must not do or that breaks its own state, checks
// how that call ended (status and message), then makes an ordinary call on the same snapshot and
// checks that it ran normally: same statics, heap, TLS, flags, FPU state and code as the baseline
// taken by the tier's first ordinary call. Where a tier could have let something out of the
// sandbox, the host checks for it too: a process to signal, servers to connect to, files to create.
// Serial: the ordinary call after a hostile one then gets the VM or sandbox that call left behind.
import test, { type ExecutionContext } from "ava";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import type { EngineOutcome } from "../runner/engine.ts";
import { engineTiers, json, type Limits, type Run, type Tier } from "./engine-tiers.ts";

const tiers = engineTiers("vespid-hostile-");

// ---- what the host watches ----------------------------------------------------------------------

/** A process of the host's that guests try to signal and trace; it must survive untraced. */
let witness: ChildProcess | undefined;
/** Servers on the host's loopback and abstract socket namespace; guests try to connect to them. */
const servers: Server[] = [];
let connections = 0;
let tcpPort = 0;
const unixName = `vespid-hostile-${process.pid}-${randomBytes(4).toString("hex")}`;
/** Host paths a guest tries to create, directly or through a shell. */
const escape = `/tmp/vespid-escape-${process.pid}-${randomBytes(4).toString("hex")}`;

test.before(async () => {
  witness = spawn("sleep", ["3600"], { stdio: "ignore" });
  const listen = (server: Server, ...args: unknown[]) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      (server.listen as (...a: unknown[]) => void)(...args, () => resolve());
    });
  const counting = () => createServer((socket) => {
    connections++;
    socket.destroy();
  });
  const tcp = counting();
  await listen(tcp, 0, "127.0.0.1");
  tcpPort = (tcp.address() as { port: number }).port;
  const unix = counting();
  await listen(unix, `\0${unixName}`);
  servers.push(tcp, unix);
});
test.after.always(async () => {
  witness?.kill("SIGKILL");
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  for (const p of [escape, `${escape}-dir`, `${escape}-exec`]) rmSync(p, { recursive: true, force: true });
});

function witnessState(): { alive: boolean; tracer: string } {
  const pid = witness?.pid;
  if (!pid || witness?.exitCode !== null || witness?.signalCode !== null) return { alive: false, tracer: "" };
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return { alive: !/^State:\s+Z/m.test(status), tracer: /^TracerPid:\s+(\d+)/m.exec(status)?.[1] ?? "?" };
  } catch {
    return { alive: false, tracer: "" };
  }
}

// ---- the guests -----------------------------------------------------------------------------------

// One C action with a case per hostile behaviour (params.case), so that a single image and snapshot
// serve them all. "ok" is the ordinary call: a fingerprint of the state every call must start from.
// Syscalls go through `sc` (the bare instruction, as hostile code would issue them), never libc.
const HOSTILE_C = String.raw`#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>
#include <vespid.h>
#include <vespid_abi.h>

extern const char __executable_start[], etext[];
static struct vespid_json *out;
#define R(key, v) vespid_json_int(out, key, (long long)(v))

static long sc(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
    return r;
}
#define S0(n) sc(n, 0, 0, 0, 0, 0, 0)
#define S1(n, a) sc(n, (long)(a), 0, 0, 0, 0, 0)
#define S2(n, a, b) sc(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define S3(n, a, b, c) sc(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define S4(n, a, b, c, d) sc(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define S5(n, a, b, c, d, e) sc(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)
#define S6(n, a, b, c, d, e, f) sc(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* A fork-like syscall: a child, if one were ever made, exits at once without touching memory. */
static long forky(long n, long a, long b, long c, long d, long e)
{
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e;
    long r;
    __asm__ volatile("syscall\n\ttest %%rax, %%rax\n\tjnz 1f\n\tmov $60, %%eax\n\txor %%edi, %%edi\n\tsyscall\n\tud2\n1:"
                     : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
    return r;
}

/* The doorbell, rung as the guest runtime does (a store in a virtine, the helper's call in a sandbox). */
#define FRAME ((volatile struct vsp_frame *)(uintptr_t)VSP_GPA_FRAME)
static void ring(unsigned offset)
{
    __asm__ volatile("" ::: "memory");
    if (FRAME->bell_fn) ((void (*)(uint64_t))(uintptr_t)FRAME->bell_fn)(offset);
    else *(volatile uint8_t *)(uintptr_t)(VSP_GPA_DOORBELL + offset) = 0;
    __asm__ volatile("" ::: "memory");
}

static int counter;
static char zeros[8192];
__attribute__((noinline)) int probe_target(int x) { return x * 6; }

static unsigned long long tcb(void) { unsigned long long v; __asm__ volatile("mov %%fs:0, %0" : "=r"(v)); return v; }
static unsigned long rflags(void) { unsigned long f; __asm__ volatile("pushfq; popq %0" : "=r"(f)); return f; }
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) { __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub)); }
static int has_avx(void)
{
    unsigned r[4]; cpuid(1, 0, r);
    if (!((r[2] >> 27) & 1) || !((r[2] >> 28) & 1)) return 0; /* OSXSAVE, AVX */
    unsigned lo, hi; __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6;
}
static int has_pku(void) { unsigned r[4]; cpuid(7, 0, r); return (r[2] >> 4) & 1; /* OSPKE */ }
static unsigned rdpkru(void) { unsigned v, d; __asm__ volatile("rdpkru" : "=a"(v), "=d"(d) : "c"(0)); return v; }
static unsigned long long ymm7_high(void) { unsigned long long v; __asm__ volatile("vextractf128 $1, %%ymm7, %%xmm0; vmovq %%xmm0, %0" : "=r"(v) :: "xmm0"); return v; }

/* What every call must start with: as in the snapshot, whatever the previous call did. */
static void fingerprint(void)
{
    unsigned mxcsr; unsigned short fpu_cw, fpu_sw;
    __asm__ volatile("stmxcsr %0; fnstcw %1; fnstsw %2" : "=m"(mxcsr), "=m"(fpu_cw), "=m"(fpu_sw));
    R("flags", rflags() & 0x40700); /* TF, DF, AC (and IF, which user code cannot change) */
    R("counter", ++counter);
    R("tcb", tcb());
    errno = 7; /* through the thread pointer: faults if %fs is wrong */
    R("errno", errno);
    R("mxcsr", mxcsr);
    R("fpu_cw", fpu_cw);
    R("fpu_top", (fpu_sw >> 11) & 7);
    int dirty = 0;
    for (size_t i = 0; i < sizeof zeros; i++) dirty += zeros[i] != 0;
    R("zeros_dirty", dirty);
    unsigned long long sum = 0;
    for (const unsigned char *p = (const unsigned char *)__executable_start; p < (const unsigned char *)etext; p++) sum = sum * 31 + *p;
    R("text", (long long)(sum >> 1));
    R("probe", probe_target(7));
    void *h = malloc(100);
    R("heap", (uintptr_t)h);
    free(h);
    R("pkru", has_pku() ? (long long)rdpkru() : -1);
    R("ymm7_high", has_avx() ? (long long)(ymm7_high() >> 1) : -1);
}

/* A copy of the TCB that points at itself: a thread pointer that works, but not the snapshot's. */
static unsigned long long fake_tcb[512] __attribute__((aligned(64)));
static void *fake_thread_pointer(void)
{
    memcpy(fake_tcb, (void *)(uintptr_t)tcb(), sizeof fake_tcb);
    fake_tcb[0] = (unsigned long long)(uintptr_t)fake_tcb;
    return fake_tcb;
}

static long syscall_by_name(const char *name)
{
    static unsigned char attr[256], buf[256];
    memset(attr, 0, sizeof attr);
    if (!strcmp(name, "ptrace")) return S4(SYS_ptrace, 0 /* TRACEME */, 0, 0, 0);
    if (!strcmp(name, "mount")) return S5(SYS_mount, "none", "/tmp", "tmpfs", 0, 0);
    if (!strcmp(name, "umount2")) return S2(SYS_umount2, "/", 2 /* MNT_DETACH */);
    if (!strcmp(name, "unshare")) return S1(SYS_unshare, 0x10000000 | 0x00020000 /* CLONE_NEWUSER | CLONE_NEWNS */);
    if (!strcmp(name, "setns")) return S2(SYS_setns, 0, 0);
    if (!strcmp(name, "chroot")) return S1(SYS_chroot, "/");
    if (!strcmp(name, "pivot_root")) return S2(SYS_pivot_root, ".", ".");
    if (!strcmp(name, "bpf")) { /* BPF_MAP_CREATE of a one-entry array */
        unsigned v[4] = { 2, 4, 4, 1 }; memcpy(attr, v, sizeof v);
        return S3(SYS_bpf, 0, attr, 128);
    }
    if (!strcmp(name, "io_uring_setup")) return S2(425, 8, attr);
    if (!strcmp(name, "seccomp")) return S3(SYS_seccomp, 0 /* SECCOMP_SET_MODE_STRICT */, 0, 0);
    if (!strcmp(name, "prctl")) return S2(SYS_prctl, 22 /* PR_SET_SECCOMP */, 1 /* strict */);
    if (!strcmp(name, "personality")) return S1(SYS_personality, 0x0400000 /* READ_IMPLIES_EXEC */);
    if (!strcmp(name, "userfaultfd")) return S1(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (!strcmp(name, "perf_event_open")) { /* software CPU clock of this process */
        unsigned v[2] = { 1, 128 }; memcpy(attr, v, sizeof v);
        return S5(SYS_perf_event_open, attr, 0, -1, -1, 0);
    }
    if (!strcmp(name, "keyctl")) return S3(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 1);
    if (!strcmp(name, "add_key")) return S5(SYS_add_key, "user", "vespid", "x", 1, -2 /* process keyring */);
    if (!strcmp(name, "open_by_handle_at")) return S3(SYS_open_by_handle_at, AT_FDCWD, buf, O_RDONLY);
    if (!strcmp(name, "memfd_create")) return S2(SYS_memfd_create, "x", 0);
    if (!strcmp(name, "rt_sigreturn")) return S0(SYS_rt_sigreturn);
    if (!strcmp(name, "hypercall")) return S1(236, VSP_BELL_RESULT); /* the process tier's hypercall number */
    if (!strcmp(name, "x32_mount")) return S5(0x40000000 | SYS_mount, "none", "/tmp", "tmpfs", 0, 0);
    if (!strcmp(name, "x32_getcwd")) return S2(0x40000000 | SYS_getcwd, buf, sizeof buf);
    if (!strcmp(name, "int80_ptrace")) { /* i386 ptrace(PTRACE_TRACEME) */
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(26), "b"(0), "c"(0), "d"(0) : "memory");
        return r;
    }
    return -1000;
}

/* Every "syscall; ret" in the code this process can reach: its image and any helper mapped with it. */
__asm__(".text\n.globl hostile_gadget\nhostile_gadget: syscall\nret\n"); /* at least one, whatever libc has */
static long via(uintptr_t gadget, long nr, long a, long b)
{
    long r;
    __asm__ volatile("sub $128, %%rsp\n\tcall *%[g]\n\tadd $128, %%rsp"
                     : "=a"(r) : [g] "r"(gadget), "a"(nr), "D"(a), "S"(b) : "rcx", "rdx", "r8", "r9", "r10", "r11", "memory");
    return r;
}
static void scan_gadgets(const unsigned char *from, const unsigned char *to, int *found, int *escaped, char *where, size_t cap)
{
    char cwd[128];
    for (const unsigned char *p = from; p + 3 <= to && *found < 64; p++) {
        if (p[0] != 0x0f || p[1] != 0x05 || p[2] != 0xc3) continue;
        ++*found;
        long r1 = via((uintptr_t)p, SYS_getcwd, (long)cwd, sizeof cwd);
        long r2 = via((uintptr_t)p, 236, VSP_BELL_SYSCALL, 0);
        if (r1 >= 0 || r2 >= 0) {
            ++*escaped;
            size_t n = strlen(where);
            snprintf(where + n, cap - n, "%p getcwd=%ld hypercall=%ld; ", (void *)p, r1, r2);
        }
    }
}
#define HELPER_BASE 0x100000000000ull /* native/sandbox/protocol.h */
static void gadgets(void)
{
    int found = 0, escaped = 0, helper = 0;
    static char where[2048];
    where[0] = 0;
    scan_gadgets((const unsigned char *)__executable_start, (const unsigned char *)etext, &found, &escaped, where, sizeof where);
    uint64_t bell = FRAME->bell_fn;
    const unsigned char *h = (const unsigned char *)(uintptr_t)HELPER_BASE;
    if (bell >= HELPER_BASE && bell < HELPER_BASE + (1ull << 30) && !memcmp(h, "\177ELF", 4)) {
        /* The helper's executable segments, from its program headers. */
        uint64_t phoff; uint16_t phentsize, phnum;
        memcpy(&phoff, h + 32, 8); memcpy(&phentsize, h + 54, 2); memcpy(&phnum, h + 56, 2);
        for (unsigned i = 0; i < phnum && i < 16; i++) {
            const unsigned char *ph = h + phoff + i * phentsize;
            uint32_t type, pflags; uint64_t vaddr, memsz;
            memcpy(&type, ph, 4); memcpy(&pflags, ph + 4, 4); memcpy(&vaddr, ph + 16, 8); memcpy(&memsz, ph + 40, 8);
            if (type != 1 || !(pflags & 1)) continue;
            int before = found;
            scan_gadgets((const unsigned char *)(uintptr_t)vaddr, (const unsigned char *)(uintptr_t)(vaddr + memsz), &found, &escaped, where, sizeof where);
            helper += found - before;
        }
    }
    R("found", found);
    R("helper", helper);
    R("escaped", escaped);
    vespid_json_string(out, "where", where);
}

static void listdir(const char *dir, char *names, size_t cap)
{
    static unsigned char buf[4096];
    long fd = S3(SYS_open, dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) { R(dir, fd); return; }
    int n = 0;
    for (;;) {
        long got = S3(SYS_getdents64, fd, buf, sizeof buf);
        if (got <= 0) break;
        for (long off = 0; off < got;) {
            unsigned short reclen; memcpy(&reclen, buf + off + 16, 2);
            const char *name = (const char *)buf + off + 19;
            if (strcmp(name, ".") && strcmp(name, "..")) {
                n++;
                size_t len = strlen(names);
                snprintf(names + len, cap - len, "%s/%s ", dir, name);
            }
            off += reclen;
        }
    }
    R(dir, n);
}

static void bad_pointers(void)
{
    static char valid[64];
    struct timespec ts;
    const long huge = 1L << 40;
    const uintptr_t wild[] = { 0, 1, 0x1000, 0x9000, VSP_GPA_FRAME, VSP_GPA_PROC_SAVE, VSP_GPA_PROC_XSAVE, VSP_GPA_PROC_ALT,
                               VSP_GPA_DOORBELL, 0x7fffffffe000ull, 0xffff800000000000ull, (uintptr_t)-4096 };
    char key[64];
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        snprintf(key, sizeof key, "write %#lx", (unsigned long)wild[i]); R(key, S3(SYS_write, 1, wild[i], 16));
        snprintf(key, sizeof key, "getrandom %#lx", (unsigned long)wild[i]); R(key, S3(SYS_getrandom, wild[i], 16, 0));
        snprintf(key, sizeof key, "clock_gettime %#lx", (unsigned long)wild[i]); R(key, S2(SYS_clock_gettime, CLOCK_REALTIME, wild[i]));
        snprintf(key, sizeof key, "uname %#lx", (unsigned long)wild[i]); R(key, S1(SYS_uname, wild[i]));
        snprintf(key, sizeof key, "nanosleep %#lx", (unsigned long)wild[i]); R(key, S2(SYS_nanosleep, wild[i], 0));
    }
    R("write wrapping", S3(SYS_write, 1, (uintptr_t)-4096, 8192));
    R("write huge length", S3(SYS_write, 1, valid, huge));
    R("write negative length", S3(SYS_write, 1, valid, -1));
    R("getrandom wrapping", S3(SYS_getrandom, (uintptr_t)-4096, 8192, 0));
    R("getrandom past the end", S3(SYS_getrandom, 0x7fffffffe000ull, 1 << 20, 0));
    R("clock_gettime bad clock", S2(SYS_clock_gettime, 9999, &ts));
    struct { uintptr_t base; long len; } iov[2] = { { 0, 10 }, { (uintptr_t)valid, -1 } };
    R("writev NULL iov", S3(SYS_writev, 1, 0, 1));
    R("writev NULL base", S3(SYS_writev, 1, &iov[0], 1));
    R("writev negative length", S3(SYS_writev, 1, &iov[1], 1));
    R("writev count", S3(SYS_writev, 1, iov, 1 << 30));
}

static void exec_data(int on_stack)
{
    static const unsigned char code[] = { 0xb8, 0x2a, 0, 0, 0, 0xc3 }; /* mov $42, %eax; ret */
    unsigned char stack_copy[16];
    unsigned char *p = stack_copy;
    if (!on_stack) {
        p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        R("mprotect", S3(SYS_mprotect, p, 4096, PROT_READ | PROT_WRITE | PROT_EXEC));
    }
    memcpy(p, code, sizeof code);
    R("ran", ((int (*)(void))(uintptr_t)p)());
}

const char *vespid_main(const char *params)
{
    char what[64] = "", path[256] = "";
    double arg = 0;
    vespid_get_string(params, "case", what, sizeof what);
    vespid_get_string(params, "path", path, sizeof path);
    vespid_get_number(params, "arg", &arg);
    out = vespid_json_new();

    if (!strcmp(what, "ok")) fingerprint();
    /* files */
    else if (!strcmp(what, "open")) {
        long fd = S3(SYS_open, path, O_RDONLY, 0), at = S4(SYS_openat, AT_FDCWD, path, O_RDONLY, 0);
        R("open", fd); R("openat", at);
        static char data[256];
        long n = fd >= 0 || at >= 0 ? S3(SYS_read, fd >= 0 ? fd : at, data, sizeof data - 1) : -1;
        if (n > 0) data[n] = 0;
        vespid_json_string(out, "data", n > 0 ? data : "");
    } else if (!strcmp(what, "create")) {
        char dir[300];
        snprintf(dir, sizeof dir, "%s-dir", path);
        long fd = S3(SYS_open, path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        R("open", fd);
        if (fd >= 0) S3(SYS_write, fd, "escaped\n", 8);
        R("creat", S2(SYS_creat, path, 0644));
        R("mkdir", S2(SYS_mkdir, dir, 0755));
    } else if (!strcmp(what, "listdir")) {
        static char names[4096];
        names[0] = 0;
        const char *dirs[] = { "/", "/proc", "/dev", "/tmp", "/etc", "." };
        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) listdir(dirs[i], names, sizeof names);
        R("getdents fd 0", S3(SYS_getdents64, 0, names + 2048, 1024));
        vespid_json_string(out, "names", names);
    }
    /* processes */
    else if (!strcmp(what, "fork")) {
        static char stack[4096] __attribute__((aligned(16)));
        static uint64_t clone3_args[11];
        clone3_args[4] = SIGCHLD; /* exit_signal */
        R("fork", forky(SYS_fork, 0, 0, 0, 0, 0));
        R("vfork", forky(SYS_vfork, 0, 0, 0, 0, 0));
        R("clone", forky(SYS_clone, SIGCHLD, 0, 0, 0, 0));
        R("clone thread", forky(SYS_clone, 0x00010f00 /* VM|FS|FILES|SIGHAND|THREAD */, (long)(stack + sizeof stack), 0, 0, 0));
        R("clone3", forky(435, (long)clone3_args, sizeof clone3_args, 0, 0, 0));
    } else if (!strcmp(what, "execve")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "touch %s", path);
        const char *argv[] = { "/bin/sh", "-c", cmd, 0 }, *envp[] = { 0 };
        R("execve", S3(SYS_execve, "/bin/sh", argv, envp));
        R("execveat", S5(SYS_execveat, AT_FDCWD, "/bin/sh", argv, envp, 0));
    } else if (!strcmp(what, "kill")) {
        long pid = (long)arg, ppid = S0(SYS_getppid);
        static char remote[64];
        struct { void *base; size_t len; } local = { remote, sizeof remote }, far = { (void *)0x400000, sizeof remote };
        R("kill", S2(SYS_kill, pid, SIGKILL));
        R("kill probe", S2(SYS_kill, pid, 0));
        R("kill every process", S2(SYS_kill, -1, 0));
        R("tgkill", S3(SYS_tgkill, pid, pid, SIGKILL));
        R("ptrace attach", S4(SYS_ptrace, 16 /* PTRACE_ATTACH */, pid, 0, 0));
        R("ptrace seize", S4(SYS_ptrace, 0x4206 /* PTRACE_SEIZE */, pid, 0, 0));
        R("pidfd_open", S2(SYS_pidfd_open, pid, 0));
        R("process_vm_readv", S6(SYS_process_vm_readv, pid, &local, 1, &far, 1, 0));
        R("process_vm_writev", S6(SYS_process_vm_writev, pid, &local, 1, &far, 1, 0));
        R("kill parent", ppid > 0 ? S2(SYS_kill, ppid, SIGKILL) : -ESRCH);
    }
    /* sockets */
    else if (!strcmp(what, "socket")) {
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((unsigned short)arg), .sin_addr.s_addr = htonl(0x7f000001) };
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        memcpy(un.sun_path + 1, path, strlen(path)); /* abstract: a NUL, then the name */
        long s = S3(SYS_socket, AF_INET, SOCK_STREAM, 0), u = S3(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
        int fds[2];
        R("socket inet", s);
        R("connect inet", S3(SYS_connect, s >= 0 ? s : 3, &in, sizeof in));
        R("socket unix", u);
        R("connect unix", S3(SYS_connect, u >= 0 ? u : 3, &un, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path)));
        R("sendto", S6(SYS_sendto, 1, "x", 1, 0, &in, sizeof in));
        R("socket udp", S3(SYS_socket, AF_INET, SOCK_DGRAM, 0));
        R("socket netlink", S3(SYS_socket, AF_NETLINK, SOCK_RAW, 0));
        R("socket packet", S3(SYS_socket, AF_PACKET, SOCK_RAW, htons(3)));
        R("socketpair", S4(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, fds));
    }
    /* privileged instructions: each must end the call */
    else if (!strcmp(what, "hlt")) __asm__ volatile("hlt");
    else if (!strcmp(what, "cli")) __asm__ volatile("cli");
    else if (!strcmp(what, "out")) __asm__ volatile("outb %%al, $0x80" :: "a"(0));
    else if (!strcmp(what, "in")) { unsigned char v; __asm__ volatile("inb $0x60, %0" : "=a"(v)); R("in", v); }
    else if (!strcmp(what, "rdmsr")) { unsigned lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0xc0000080)); R("efer", lo); }
    else if (!strcmp(what, "wrmsr")) __asm__ volatile("wrmsr" :: "c"(0xc0000082), "a"(0), "d"(0)); /* LSTAR */
    else if (!strcmp(what, "cr3")) { unsigned long v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); R("cr3", v); }
    else if (!strcmp(what, "lgdt")) { static unsigned char gdtr[10]; __asm__ volatile("lgdt %0" :: "m"(gdtr)); }
    else if (!strcmp(what, "lidt")) { static unsigned char idtr[10]; __asm__ volatile("lidt %0" :: "m"(idtr)); }
    else if (!strcmp(what, "lldt")) __asm__ volatile("lldt %w0" :: "r"(0));
    else if (!strcmp(what, "ltr")) __asm__ volatile("ltr %w0" :: "r"(0x30));
    else if (!strcmp(what, "swapgs")) __asm__ volatile("swapgs");
    else if (!strcmp(what, "dr0")) __asm__ volatile("mov %0, %%dr0" :: "r"(0x5ec7e7ul));
    else if (!strcmp(what, "cr4")) __asm__ volatile("mov %0, %%cr4" :: "r"(0ul));
    else if (!strcmp(what, "invlpg")) __asm__ volatile("invlpg (%0)" :: "r"(0x1000ul) : "memory");
    else if (!strcmp(what, "wbinvd")) __asm__ volatile("wbinvd");
    else if (!strcmp(what, "compat_syscall")) {
        /* issue 8: iretq to selector 0x1b (a 32-bit user code segment in a virtine's GDT) put the
         * guest in compatibility mode, where syscall enters CPL 0 at CSTAR (0). Now there is no
         * 32-bit code segment to return to: the iretq itself is a #GP. */
        unsigned long ss;
        __asm__ volatile("mov %%ss, %0" : "=r"(ss));
        __asm__ volatile("lea 1f(%%rip), %%rax\n"
                         "  push %0\n  push %%rsp\n  addq $8, (%%rsp)\n  pushfq\n  push $0x1b\n  push %%rax\n  iretq\n"
                         "1: .byte 0x0f, 0x05\n  ud2" :: "r"(ss) : "rax", "rcx", "r11", "memory");
        R("returned", 1);
    }
    else if (!strcmp(what, "ldt_gate")) {
        /* issue 8: LDTR was left present with base 0 and limit 0xffff, which covers the frame page a
         * guest may write. A 64-bit call gate there (selector 0xa807: LDT entry 0x1500, at 0xa800)
         * to the kernel code segment led to CPL 0. Now it must be a #GP, whatever the tier. */
        extern void vsp_finish(int, const char *, size_t) __attribute__((noreturn));
        extern void ldt_gate_target(void);
        __asm__ volatile(".pushsection .text.ldt_gate, \"ax\"\nldt_gate_target:\n"
                         "  mov %%cs, %%eax\n  test $3, %%eax\n  jnz 1f\n"
                         "  xor %%edi, %%edi\n  lea ldt_gate_escaped(%%rip), %%rsi\n  mov $10, %%edx\n"
                         "  call vsp_finish\n1: ud2\n"
                         "ldt_gate_escaped: .ascii \"{\\\"cpl\\\": 0}\"\n.popsection" ::: "memory");
        unsigned long long target = (unsigned long long)(uintptr_t)ldt_gate_target;
        volatile unsigned long long *gate = (volatile unsigned long long *)(uintptr_t)0xa800;
        gate[0] = (target & 0xffff) | (0x08ull << 16) | (0xecull << 40) | (((target >> 16) & 0xffff) << 48);
        gate[1] = target >> 32;
        struct { unsigned offset; unsigned short sel; } __attribute__((packed)) far = { 0, 0xa807 }; /* m16:32 */
        __asm__ volatile("lcall *%0" :: "m"(far) : "memory");
        R("returned", 1);
    }
    else if (!strcmp(what, "int3")) __asm__ volatile("int3");
    else if (!strcmp(what, "ud2")) __asm__ volatile("ud2");
    /* system calls a function has no business making */
    else if (!strcmp(what, "syscall")) R("r", syscall_by_name(path));
    else if (!strcmp(what, "exec_heap")) exec_data(0);
    else if (!strcmp(what, "exec_stack")) exec_data(1);
    else if (!strcmp(what, "mmap_files")) {
        int mapped = 0;
        for (int fd = 0; fd < 64; fd++) {
            for (int shared = 0; shared < 2; shared++) {
                long p = S6(SYS_mmap, 0, 1 << 20, PROT_READ | PROT_WRITE, shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
                if (p < 0 && p > -4096) continue;
                mapped++;
                memset((void *)p, 0xcc, 4096); /* int3 over whatever it was */
            }
        }
        R("mapped", mapped);
    } else if (!strcmp(what, "fds")) {
        int writable = 0;
        for (int fd = 0; fd < 1024; fd++) writable += S3(SYS_write, fd, "{\"forged\": 1}", 13) == 13;
        for (int fd = 0; fd < 1024; fd++) S1(SYS_close, fd);
        R("writable", writable);
    } else if (!strcmp(what, "gadgets")) gadgets();
    else if (!strcmp(what, "bad_pointers")) bad_pointers();
    /* the way out: results and doorbells */
    else if (!strcmp(what, "result_huge")) {
        size_t n = 2 << 20;
        char *s = malloc(n + 16);
        memset(s, 'x', n + 16);
        memcpy(s, "{\"s\": \"", 7);
        memcpy(s + n - 2, "\"}", 2);
        vespid_return(s, n);
    } else if (!strcmp(what, "result_huge_length")) vespid_return("{}", 1ull << 62);
    else if (!strcmp(what, "result_null")) vespid_return((const char *)8, 16);
    else if (!strcmp(what, "result_system_area")) vespid_return((const char *)(uintptr_t)VSP_GPA_FRAME, 64);
    else if (!strcmp(what, "result_helper_area")) vespid_return((const char *)(uintptr_t)VSP_GPA_PROC_SAVE, 64);
    else if (!strcmp(what, "result_wrapping")) vespid_return((const char *)(uintptr_t)0x300000, (size_t)-0x200000);
    else if (!strcmp(what, "bell_unknown")) ring(0x20);
    else if (!strcmp(what, "bell_input_kind")) { FRAME->in_kind = 7; FRAME->in_ptr = 0x300000; FRAME->in_cap = 16; ring(VSP_BELL_INPUT); }
    else if (!strcmp(what, "bell_input_ptr")) { FRAME->in_kind = VSP_INPUT_PARAMS; FRAME->in_ptr = VSP_GPA_PROC_SAVE; FRAME->in_cap = 4096; ring(VSP_BELL_INPUT); }
    else if (!strcmp(what, "bell_result_status")) { FRAME->out_status = 9; FRAME->out_ptr = 0x300000; FRAME->out_len = 2; ring(VSP_BELL_RESULT); }
    else if (!strcmp(what, "bell_fault") || !strcmp(what, "bell_fault_masked")) {
        /* A made-up fault report (vector arg; path "guard": an address in the stack guard), rung
         * as the helper's signal handler rings it; "masked" first tries to block every signal, as
         * the kernel does for a delivered one. No fact in it may reach the error message. */
        volatile char here = 0;
        uint64_t addr = !strcmp(path, "guard") ? (((uintptr_t)&here & ~0x1fffffull) - 0x100000) : 0x5ec7e7d000ull;
        if (!strcmp(what, "bell_fault_masked")) { uint64_t all = ~0ull; R("mask", S4(SYS_rt_sigprocmask, SIG_BLOCK, &all, 0, 8)); }
        FRAME->fault[0] = (uint64_t)arg; FRAME->fault[1] = 6; FRAME->fault[2] = 0x5ec7e71234ull; FRAME->fault[3] = addr + here;
        ring(VSP_BELL_FAULT);
    }
    /* limits */
    else if (!strcmp(what, "loop")) for (;;) __asm__ volatile("");
    else if (!strcmp(what, "loop_syscalls")) for (;;) S0(SYS_getpid);
    else if (!strcmp(what, "sleep")) { struct timespec ts = { 3600, 0 }; S2(SYS_nanosleep, &ts, 0); R("woke", 1); }
    else if (!strcmp(what, "loop_signals_blocked")) { uint64_t all = ~0ull; S4(SYS_rt_sigprocmask, SIG_BLOCK, &all, 0, 8); for (;;) __asm__ volatile(""); }
    else if (!strcmp(what, "oom_heap")) for (;;) { char *m = malloc(1 << 20); if (!m) abort(); memset(m, 1, 1 << 20); }
    else if (!strcmp(what, "oom_mmap")) for (;;) { char *m = mmap(0, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); if (m == MAP_FAILED) abort(); memset(m, 1, 8 << 20); }
    else if (!strcmp(what, "log_flood")) { static char line[65536]; memset(line, 'y', sizeof line); line[sizeof line - 1] = '\n'; for (int i = 0; i < 400; i++) S3(SYS_write, 1, line, sizeof line); R("wrote", 400); }
    else if (!strcmp(what, "log_forever")) { static char line[65536]; memset(line, 'z', sizeof line); for (;;) S3(SYS_write, 2, line, sizeof line); }
    /* faults */
    else if (!strcmp(what, "null_write")) *(volatile int *)0 = 1;
    else if (!strcmp(what, "null_read")) R("v", *(volatile int *)16);
    else if (!strcmp(what, "null_call")) R("v", ((int (*)(void))0)());
    else if (!strcmp(what, "stack_overflow")) { volatile char big[4096]; big[0] = 1; R("v", big[0] + strlen(vespid_main(params))); }
    else if (!strcmp(what, "div0")) { unsigned q; __asm__ volatile("xor %%edx, %%edx; div %1" : "=a"(q) : "r"(0u), "a"(1u) : "rdx"); R("v", q); }
    else if (!strcmp(what, "abort")) abort();
    else if (!strcmp(what, "exit")) exit((int)arg);
    else if (!strcmp(what, "text_write")) { S3(SYS_mprotect, (uintptr_t)probe_target & ~4095ul, 4096, PROT_READ | PROT_WRITE | PROT_EXEC); *(volatile unsigned short *)(uintptr_t)probe_target = 0x0b0f; /* ud2 */ }
    else if (!strcmp(what, "rsp_null_syscall")) {
        long r;
        __asm__ volatile("mov %%rsp, %%r12\n\txor %%esp, %%esp\n\tmov $39, %%eax\n\tsyscall\n\tmov %%r12, %%rsp" : "=a"(r) :: "rcx", "r11", "r12", "memory");
        R("r", r);
    } else if (!strcmp(what, "rsp_altstack_syscall")) {
        long r;
        __asm__ volatile("mov %%rsp, %%r12\n\tmov %1, %%rsp\n\tmov $39, %%eax\n\tsyscall\n\tmov %%r12, %%rsp" : "=a"(r) : "r"((uintptr_t)VSP_GPA_PROC_ALT + 512) : "rcx", "r11", "r12", "memory");
        R("r", r);
    } else if (!strcmp(what, "vsyscall")) { long r = ((long (*)(void *, void *))0xffffffffff600000ull)(0, 0); R("r", r); }
    /* state a call leaves behind, ending normally: the next call must not see it */
    else if (!strcmp(what, "fs_arch_prctl")) { R("r", S2(SYS_arch_prctl, 0x1002, fake_thread_pointer())); R("tcb", tcb()); }
    else if (!strcmp(what, "fs_wrfsbase")) { void *p = fake_thread_pointer(); __asm__ volatile("wrfsbase %0" :: "r"(p)); R("tcb", tcb()); }
    else if (!strcmp(what, "gs_wrgsbase")) __asm__ volatile("wrgsbase %0" :: "r"(0x5ec7e7ull));
    else if (!strcmp(what, "fs_selector")) { unsigned short zero = 0; errno = 7; __asm__ volatile("mov %0, %%fs" :: "r"(zero)); vespid_return("{\"clobbered\": 1}", 16); }
    else if (!strcmp(what, "gs_selector")) { unsigned short zero = 0; __asm__ volatile("mov %0, %%gs" :: "r"(zero)); }
    else if (!strcmp(what, "df")) { __asm__ volatile("std"); vespid_return("{\"df\": 1}", 9); }
    else if (!strcmp(what, "ac")) __asm__ volatile("pushfq; orq $0x40000, (%%rsp); popfq" ::: "memory", "cc");
    else if (!strcmp(what, "tf")) __asm__ volatile("pushfq; orq $0x100, (%%rsp); popfq; nop" ::: "memory", "cc");
    else if (!strcmp(what, "fpu")) {
        unsigned mxcsr = 0x7f80 | 0x6000; unsigned short cw = 0x0c7f; /* SSE: round toward zero, flush; x87: truncate */
        __asm__ volatile("ldmxcsr %0; fldcw %1; fld1; fld1; fld1; fld1; fld1" :: "m"(mxcsr), "m"(cw));
        vespid_return("{\"fpu\": 1}", 10);
    } else if (!strcmp(what, "ymm")) {
        if (has_avx()) { static unsigned long long v[4] __attribute__((aligned(32))) = { 1, 2, 0x5ec7e7, 0x5ec7e7 }; __asm__ volatile("vmovdqa %0, %%ymm7" :: "m"(v)); }
        R("avx", has_avx());
    } else if (!strcmp(what, "pkru")) {
        if (has_pku()) __asm__ volatile("wrpkru" :: "a"(rdpkru() ^ 0xcu), "c"(0), "d"(0)); /* key 1 only: unused */
        R("pku", has_pku());
    } else if (!strcmp(what, "statics")) { memset(zeros, 0x5e, sizeof zeros); counter = 1000; }
    else if (!strcmp(what, "helper_area")) { memset((void *)(uintptr_t)VSP_GPA_PROC_SAVE, 0x41, 4096); memset((void *)(uintptr_t)VSP_GPA_PROC_ALT, 0x41, VSP_PROC_ALT_SIZE); }
    else vespid_fail("unknown case");
    return vespid_json_finish(out);
}`;

// The same idea in JavaScript: what QuickJS lets a function reach, and what it can break.
const HOSTILE_JS = String.raw`let counter = 0;
const saved = { stringify: JSON.stringify, push: Array.prototype.push, random: Math.random };
async function main(p) {
  switch (p.case) {
    case "ok": return {
      counter: ++counter, globals: Object.getOwnPropertyNames(globalThis).sort().join(),
      proto: Object.getOwnPropertyNames(Object.prototype).sort().join(), evil: ({}).evil === undefined,
      intact: JSON.stringify === saved.stringify && Array.prototype.push === saved.push && Math.random === saved.random,
      random: Math.random() < 1, console: typeof console.log,
    };
    case "globals": return Object.fromEntries(["require", "process", "std", "os", "fetch", "XMLHttpRequest", "WebSocket",
      "Deno", "Bun", "scriptArgs", "print", "load", "Worker", "setTimeout", "importScripts"].map((n) => [n, typeof globalThis[n]]));
    case "import": {
      const r = {};
      for (const m of ["fs", "std", "os", "child_process", "net", "/etc/passwd", "./action.js"]) {
        try { const mod = await import(m); r[m] = "loaded: " + Object.keys(mod).join(); } catch (e) { r[m] = "refused: " + e; }
      }
      return r;
    }
    case "loop": for (;;) {}
    case "microtasks": { const spin = () => { Promise.resolve().then(spin); }; spin(); return new Promise(() => {}); }
    case "never": return new Promise(() => {});
    case "regex": return { m: /^(a+)+$/.test("a".repeat(40) + "b") };
    case "bomb": { const a = []; for (;;) a.push(new Array(1e5).fill(1)); }
    case "string_bomb": { let s = "x"; for (;;) s += s; }
    case "stack": { const f = (n) => f(n + 1) + 1; return f(0); }
    case "json_deep": return JSON.parse("[".repeat(1e6));
    case "big_result": return { s: "x".repeat(2e6) };
    case "big_error": throw new Error("e".repeat(2e6));
    case "log_forever": for (;;) console.log("y".repeat(1000));
    case "pollute":
      Object.prototype.evil = 1; Array.prototype.push = null; Math.random = () => 4;
      JSON.stringify = () => '{"forged": true}'; globalThis.leak = 1; delete globalThis.console;
      return {};
    case "atomics_wait": return { r: Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0) };
    default: throw new Error("unknown case " + p.case);
  }
}`;

// ---- how a call may end --------------------------------------------------------------------------

type Check = (t: ExecutionContext, o: EngineOutcome, tier: Tier) => void;

const crashed = (re: RegExp): Check => (t, o) => {
  t.is(o.status, "crash", `${o.status}: ${o.error ?? o.result}`);
  t.regex(o.error ?? "", re);
};
const ended = (status: EngineOutcome["status"], re: RegExp): Check => (t, o) => {
  t.is(o.status, status, `${o.status}: ${o.error ?? o.result}`);
  t.regex(o.error ?? "", re);
};
/** Every probe the guest reports failed (a negative errno); or the sandbox ended the call for it. */
const refused: Check = (t, o) => {
  if (o.status !== "ok") {
    t.is(o.status, "crash", o.error);
    t.regex(o.error ?? "", /forbidden system call/);
    return;
  }
  const r = json(o) as Record<string, unknown>;
  const numbers = Object.entries(r).filter(([, v]) => typeof v === "number");
  t.true(numbers.length > 0, o.result);
  for (const [k, v] of numbers) t.true((v as number) < 0 && (v as number) > -4096, `${k} = ${v}: it must fail with an errno`);
};
const okWith = (expect: (t: ExecutionContext, r: any, tier: Tier) => void): Check => (t, o, tier) => {
  t.is(o.status, "ok", o.error);
  if (o.status === "ok") expect(t, JSON.parse(o.result!), tier);
};
/** Ok, or a crash: the guest broke itself, and either is its own business. */
const okOrCrash = (re: RegExp): Check => (t, o) => {
  t.true(o.status === "ok" || o.status === "crash", `${o.status}: ${o.error}`);
  if (o.status === "crash") t.regex(o.error ?? "", re);
};
const GP = /^the function crashed: general protection fault \(privileged or malformed instruction\)/;

// ---- the runs -----------------------------------------------------------------------------------

const LIMITS: Limits = { memoryMb: 64, timeoutMs: 5000 };
const runners = new Map<string, Promise<{ run: Run; baseline: unknown }>>();
/** The action on `tier` with `limits`, and what its ordinary call answers there. */
function hostile(tier: Tier, kind: "c" | "nodejs", limits: Limits) {
  const key = `${tier.isolation} ${kind} ${JSON.stringify(limits)}`;
  let r = runners.get(key);
  if (!r) {
    r = (async () => {
      const run = await tier.action(kind, kind === "c" ? HOSTILE_C : HOSTILE_JS, limits);
      // The first call boots and runs on from the snapshot point; every later one starts there.
      return { run, baseline: json(await run({ case: "ok" })) };
    })();
    runners.set(key, r);
  }
  return r;
}

interface Case {
  title: string;
  kind?: "c" | "nodejs";
  params: Record<string, unknown> | (() => Record<string, unknown>);
  limits?: Limits;
  check: Check;
  /** Checks on the host after the call. */
  after?: (t: ExecutionContext) => void;
}

function register(tier: Tier, c: Case) {
  const kind = c.kind ?? "c";
  tier.serial(`${kind === "c" ? "C" : "JS"}: ${c.title}`, async (t) => {
    const limits = { ...LIMITS, ...c.limits };
    const { run, baseline } = await hostile(tier, kind, limits);
    const params = typeof c.params === "function" ? c.params() : c.params;
    const o = await run(params);
    t.log(`${o.status}: ${(o.error ?? o.result ?? "").slice(0, 400)}`);
    c.check(t, o, tier);
    if (o.status !== "ok") t.true((o.error ?? "").length > 0, "a failed call says why");
    c.after?.(t);
    const next = await run({ case: "ok" });
    t.is(next.status, "ok", `the next call: ${next.error}`);
    if (next.status === "ok") t.deepEqual(JSON.parse(next.result!), baseline, "the next call starts from the snapshot");
  });
}

const nothingCreated = (t: ExecutionContext) => {
  for (const p of [escape, `${escape}-dir`, `${escape}-exec`]) t.false(existsSync(p), `${p} exists on the host`);
};

const CASES: Case[] = [
  // files
  { title: "open /etc/passwd", params: { case: "open", path: "/etc/passwd" }, check: refused },
  { title: "open /proc/self/maps", params: { case: "open", path: "/proc/self/maps" }, check: refused },
  { title: "open /proc/self/mem", params: { case: "open", path: "/proc/self/mem" }, check: refused },
  { title: "open /dev/kvm", params: { case: "open", path: "/dev/kvm" }, check: refused },
  { title: "create files and directories", params: { case: "create", path: escape }, check: refused, after: nothingCreated },
  {
    title: "list directories", params: { case: "listdir" },
    check: (t, o, tier) => {
      if (o.status !== "ok") return refused(t, o, tier);
      const r = json(o);
      t.is(r.names, "", "no host file is visible");
      for (const [k, v] of Object.entries(r)) if (typeof v === "number") t.true(v <= 0, `${k}: ${v}`);
    },
  },
  // processes
  { title: "fork, vfork, clone (process and thread), clone3", params: { case: "fork" }, check: refused },
  { title: "execve a shell", params: { case: "execve", path: `${escape}-exec` }, check: refused, after: nothingCreated },
  {
    title: "kill, ptrace, pidfd and process_vm_* against a host process",
    params: () => ({ case: "kill", arg: witness!.pid }),
    check: refused,
    after: (t) => t.deepEqual(witnessState(), { alive: true, tracer: "0" }, "the host's process is alive and untraced"),
  },
  // sockets
  {
    title: "socket and connect to the host's loopback and abstract sockets",
    params: () => ({ case: "socket", arg: tcpPort, path: unixName }),
    check: refused,
    after: (t) => t.is(connections, 0, "no connection reached the host"),
  },
  // privileged instructions
  ...["hlt", "cli", "out", "in", "rdmsr", "wrmsr", "cr3", "lgdt", "lidt", "lldt", "ltr", "swapgs", "dr0", "cr4", "invlpg", "wbinvd"].map((insn): Case => ({ title: `privileged instruction: ${insn}`, params: { case: insn }, check: crashed(GP) })),
  { title: "a call gate in the LDT (issue 8's CPL 0 escape)", params: { case: "ldt_gate" }, check: crashed(GP) },
  { title: "iretq to a 32-bit code segment, then syscall (issue 8: CSTAR at CPL 0)", params: { case: "compat_syscall" },
    // the null descriptor is a #GP; kvm_pvm's emulation checks presence first and says #NP
    check: crashed(/^the function crashed: (general protection fault \(privileged or malformed instruction\)|segment not present) \(vector 1[13]\)/) },
  // The IDT's gates are DPL 0, so on VMX/SVM int3 from CPL 3 is a #GP (seen under emulated SVM,
  // npm run test:kvm-emulated); kvm_pvm and a sandbox report the breakpoint itself
  { title: "int3", params: { case: "int3" }, check: crashed(/^the function crashed: (breakpoint|general protection fault)/) },
  { title: "ud2", params: { case: "ud2" }, check: crashed(/^the function crashed: invalid instruction/) },
  // dangerous system calls, made with the bare instruction
  ...["ptrace", "mount", "umount2", "unshare", "setns", "chroot", "pivot_root", "bpf", "io_uring_setup", "seccomp", "prctl",
    "personality", "userfaultfd", "perf_event_open", "keyctl", "add_key", "open_by_handle_at", "memfd_create", "hypercall"].map((name): Case => ({ title: `syscall ${name}`, params: { case: "syscall", path: name }, check: refused })),
  { title: "syscall rt_sigreturn without a frame", params: { case: "syscall", path: "rt_sigreturn" }, check: (t, o, tier) => (o.status === "ok" ? refused(t, o, tier) : crashed(/the function crashed/)(t, o, tier)) },
  ...["x32_mount", "x32_getcwd"].map((name): Case => ({ title: `x32 syscall ${name.slice(4)}`, params: { case: "syscall", path: name }, check: refused })),
  // int 0x80 is the i386 entry: #GP in a virtine (no such gate), killed in a sandbox (foreign arch)
  { title: "int 0x80 (i386 ptrace)", params: { case: "syscall", path: "int80_ptrace" }, check: crashed(/^the function crashed/) },
  { title: "every `syscall; ret` in reach, the sandbox helper's included, is filtered too", params: { case: "gadgets" },
    check: okWith((t, r, tier) => {
      t.is(r.escaped, 0, r.where);
      t.true(r.found >= 1, "at least the guest's own gadget");
      if (tier.isolation === "process") t.true(r.helper >= 1, "the helper's arch_prctl site");
    }) },
  // W^X (issue 8), both tiers: only the image's text is executable, and it is not writable;
  // mprotect cannot make anything executable
  { title: "mprotect to W+X, then run code written to the heap", params: { case: "exec_heap" }, check: crashed(/segmentation fault executing address/) },
  { title: "run code written to the stack", params: { case: "exec_stack" }, check: crashed(/segmentation fault executing address/) },
  { title: "overwrite its own code", params: { case: "text_write" }, check: crashed(/segmentation fault writing address/) },
  { title: "mmap every file descriptor, shared and private, and scribble on it", params: { case: "mmap_files" }, check: okWith((t, r) => t.is(r.mapped, 0)) },
  { title: "write to and close every file descriptor", params: { case: "fds" }, check: okWith((t, r) => t.is(r.writable, 2, "stdout and stderr only")) },
  // bad pointers and lengths
  { title: "bad pointers and lengths to write, writev, getrandom, clock_gettime, uname, nanosleep", params: { case: "bad_pointers" }, check: refused },
  { title: "a syscall with the stack pointer at 0", params: { case: "rsp_null_syscall" }, check: okOrCrash(/^the function crashed/) },
  { title: "a syscall with the stack pointer in the sandbox helper's signal stack", params: { case: "rsp_altstack_syscall" }, check: okOrCrash(/^the function crashed/) },
  { title: "a call into the vsyscall page", params: { case: "vsyscall" }, check: okOrCrash(/^the function crashed/) },
  { title: "scribble over the sandbox helper's save area and signal stack", params: { case: "helper_area" }, check: okOrCrash(/^the function crashed/) },
  // the way out: results and doorbells
  { title: "a result over the limit", params: { case: "result_huge" }, check: ended("dev_error", /exceeded the allowed length: 2097152 > 1048576 bytes/) },
  { title: "a result of length 2^62", params: { case: "result_huge_length" }, check: ended("dev_error", /exceeded the allowed length/) },
  { title: "a result at address 8", params: { case: "result_null" }, check: crashed(/result outside guest memory/) },
  { title: "a result in the system area", params: { case: "result_system_area" }, check: crashed(/result outside guest memory/) },
  { title: "a result in the sandbox helper's area", params: { case: "result_helper_area" }, check: crashed(/result outside guest memory/) },
  { title: "a result whose end wraps around", params: { case: "result_wrapping" }, check: ended("dev_error", /exceeded the allowed length/) },
  { title: "an unknown doorbell", params: { case: "bell_unknown" }, check: crashed(/bad hypercall at doorbell offset 0x20/) },
  { title: "an unknown input kind", params: { case: "bell_input_kind" }, check: crashed(/bad hypercall: unknown input kind 7/) },
  { title: "an input buffer in the sandbox helper's area", params: { case: "bell_input_ptr" }, check: crashed(/bad hypercall: input buffer outside guest memory/) },
  { title: "an unknown result status", params: { case: "bell_result_status" }, check: crashed(/bad hypercall: unknown result status 9/) },
  // issue 8: a made-up fault report is refused, and nothing it says is quoted. A virtine believes
  // only reports rung from its CPL 0 exception stubs; a sandbox only those its helper rings once
  // the kernel has delivered a fault signal (blocked in the sandbox's mask, docs/security.md)
  ...([
    ["a segmentation fault", { case: "bell_fault", arg: 14 }],
    ["a stack overflow", { case: "bell_fault", arg: 14, path: "guard" }],
    ["a division by zero", { case: "bell_fault", arg: 0 }],
    ["a general protection fault, with every signal blocked first", { case: "bell_fault_masked", arg: 13 }],
  ] as const).map(([what, params]): Case => ({
    title: `a forged fault report: ${what}`, params,
    check: (t, o, tier) => {
      crashed(/^bad hypercall: the fault doorbell rung by the function itself$/)(t, o, tier);
      t.notRegex(o.error ?? "", /5ec7e7|crashed|overflow|division/i, "no forged fact is quoted");
    },
  })),
  // limits
  { title: "an infinite loop", params: { case: "loop" }, limits: { timeoutMs: 300 }, check: ended("timeout", /exceeded its time limit of 300 milliseconds/) },
  { title: "an infinite loop of syscalls", params: { case: "loop_syscalls" }, limits: { timeoutMs: 300 }, check: ended("timeout", /exceeded its time limit/) },
  { title: "a sleep of an hour", params: { case: "sleep" }, limits: { timeoutMs: 300 }, check: ended("timeout", /exceeded its time limit/) },
  { title: "an infinite loop with every signal blocked", params: { case: "loop_signals_blocked" }, limits: { timeoutMs: 300 }, check: ended("timeout", /exceeded its time limit/) },
  { title: "a heap memory bomb", params: { case: "oom_heap" }, limits: { memoryMb: 32 }, check: ended("oom", /out of memory/) },
  { title: "an mmap memory bomb", params: { case: "oom_mmap" }, limits: { memoryMb: 32 }, check: ended("oom", /out of memory/) },
  { title: "a log flood (25 MB)", params: { case: "log_flood" }, limits: { timeoutMs: 20_000, logLimit: 1 << 20 },
    check: (t, o, tier) => {
      okWith((t, r) => t.is(r.wrote, 400))(t, o, tier);
      t.true(o.logsTruncated);
      t.true(o.logs.reduce((n, l) => n + l.text.length, 0) <= 1 << 20);
    } },
  { title: "a log flood that never ends", params: { case: "log_forever" }, limits: { timeoutMs: 500, logLimit: 1 << 20 },
    check: (t, o, tier) => {
      ended("timeout", /exceeded its time limit/)(t, o, tier);
      t.true(o.logsTruncated);
    } },
  // faults
  { title: "a stack overflow", params: { case: "stack_overflow" }, check: crashed(/^the function crashed: stack overflow/) },
  { title: "a NULL write", params: { case: "null_write" }, check: crashed(/^the function crashed: segmentation fault writing address 0x0 /) },
  { title: "a NULL read", params: { case: "null_read" }, check: crashed(/^the function crashed: segmentation fault reading address 0x10 /) },
  { title: "a call through NULL", params: { case: "null_call" }, check: crashed(/^the function crashed: segmentation fault (reading|executing) address 0x0 /) },
  { title: "a division by zero", params: { case: "div0" }, check: crashed(/^the function crashed: division by zero/) },
  { title: "abort()", params: { case: "abort" }, check: crashed(/^the function (crashed|exited)/) },
  { title: "exit(3) before returning", params: { case: "exit", arg: 3 }, check: crashed(/exited with status 3 before returning a result/) },
  // state one call leaves for the next: registers, flags, FPU, memory
  { title: "FS base moved with arch_prctl", params: { case: "fs_arch_prctl" }, check: okWith((t, r) => t.is(r.r, 0)) },
  { title: "FS base moved with wrfsbase", params: { case: "fs_wrfsbase" }, check: okOrCrash(/invalid instruction/) },
  { title: "GS base moved with wrgsbase", params: { case: "gs_wrgsbase" }, check: okOrCrash(/invalid instruction/) },
  { title: "FS reloaded with a null selector", params: { case: "fs_selector" }, check: okWith((t, r) => t.is(r.clobbered, 1)) },
  { title: "GS reloaded with a null selector", params: { case: "gs_selector" }, check: okWith(() => {}) },
  { title: "the direction flag left set", params: { case: "df" }, check: okWith((t, r) => t.is(r.df, 1)) },
  { title: "the alignment-check flag left set", params: { case: "ac" }, check: okOrCrash(/alignment check/) },
  { title: "the trap flag set", params: { case: "tf" }, check: crashed(/^the function crashed: debug trap/) },
  { title: "MXCSR, x87 control word and stack left changed", params: { case: "fpu" }, check: okWith((t, r) => t.is(r.fpu, 1)) },
  { title: "AVX upper halves left set", params: { case: "ymm" }, check: okWith(() => {}) },
  { title: "protection keys (PKRU) left set", params: { case: "pkru" }, check: okWith(() => {}) },
  { title: "statics overwritten", params: { case: "statics" }, check: okWith(() => {}) },
  // JavaScript
  { kind: "nodejs", title: "no require, process, std, os, fetch or timers", params: { case: "globals" },
    check: okWith((t, r) => t.deepEqual(Object.entries(r).filter(([, v]) => v !== "undefined"), [])) },
  { kind: "nodejs", title: "import() of fs, std, os, net, a host file or the action itself is refused", params: { case: "import" },
    check: okWith((t, r) => {
      t.is(Object.keys(r).length, 7);
      for (const [m, v] of Object.entries(r)) t.regex(v as string, /^refused: /, m);
    }) },
  { kind: "nodejs", title: "an infinite loop", params: { case: "loop" }, limits: { timeoutMs: 300 }, check: ended("timeout", /exceeded its time limit of 300 milliseconds/) },
  { kind: "nodejs", title: "an endless chain of promise jobs", params: { case: "microtasks" }, limits: { timeoutMs: 300 }, check: ended("timeout", /exceeded its time limit/) },
  { kind: "nodejs", title: "a promise that never settles", params: { case: "never" }, check: ended("dev_error", /never settled/) },
  { kind: "nodejs", title: "a catastrophic regular expression", params: { case: "regex" }, limits: { timeoutMs: 300 }, check: ended("timeout", /exceeded its time limit/) },
  { kind: "nodejs", title: "a memory bomb", params: { case: "bomb" }, limits: { memoryMb: 32 }, check: ended("oom", /out of memory/) },
  { kind: "nodejs", title: "a string bomb", params: { case: "string_bomb" }, limits: { memoryMb: 32 },
    check: (t, o) => t.true((o.status === "oom" && /out of memory/.test(o.error!)) || (o.status === "dev_error" && /string|length|memory/i.test(o.error!)), `${o.status}: ${o.error}`) },
  { kind: "nodejs", title: "unbounded recursion", params: { case: "stack" }, check: ended("dev_error", /stack overflow/i) },
  { kind: "nodejs", title: "JSON nested a million deep", params: { case: "json_deep" }, check: ended("dev_error", /stack overflow|SyntaxError/i) },
  { kind: "nodejs", title: "a result over the limit", params: { case: "big_result" }, check: ended("dev_error", /exceeded the allowed length/) },
  { kind: "nodejs", title: "an error message over the limit", params: { case: "big_error" },
    check: (t, o) => {
      t.is(o.status, "dev_error");
      t.true((o.error ?? "").length <= 1 << 20, `${o.error?.length} bytes`);
    } },
  { kind: "nodejs", title: "a log flood that never ends", params: { case: "log_forever" }, limits: { timeoutMs: 500, logLimit: 1 << 20 },
    check: (t, o, tier) => {
      ended("timeout", /exceeded its time limit/)(t, o, tier);
      t.true(o.logsTruncated);
    } },
  { kind: "nodejs", title: "prototypes, JSON, Math.random and console replaced", params: { case: "pollute" }, check: okWith((t, r) => t.deepEqual(r, { forged: true })) },
  { kind: "nodejs", title: "Atomics.wait forever", params: { case: "atomics_wait" }, limits: { timeoutMs: 300 },
    check: (t, o) => t.true(o.status === "timeout" || o.status === "dev_error", `${o.status}: ${o.error}`) },
];

for (const tier of tiers) for (const c of CASES) register(tier, c);
