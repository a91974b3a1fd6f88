// Fuzzing the CPU state a guest can reach across restores (issue 8), on every isolation tier (see
// engine-tiers.ts). One C action, warm throughout: "attack" calls run a random, seeded sequence of
// hostile operations on segment selectors and bases, far calls and jumps (LDT selectors and the
// 32-bit code segment included), iretq frames, sysenter and odd syscalls, MSRs, debug and control
// registers, descriptor table registers, swapgs, FS/GS bases, PKRU, MXCSR, the x87 control word and
// stack, XMM/YMM registers, XSAVE images and EFLAGS. Most sequences fault, which ends the call and
// throws its VM or sandbox away (the next call is a pool miss); the rest end normally with whatever
// they changed still in place (the next call is a warm restore). Between attacks, "observe" calls
// report everything a CPL 3 guest can read about its CPU: the registers and the whole XSAVE image
// at entry, selectors, FS/GS bases, descriptors (lar/lsl), sgdt/sidt/sldt/str/smsw, TSC_AUX
// (rdpid/rdtscp) and PKRU. Every observation must equal the first, at CPL 3.
import type { ExecutionContext } from "ava";
import { existsSync } from "node:fs";
import type { EngineOutcome } from "../runner/engine.ts";
import { engineTiers, json, someTierRuns, type Tier } from "./engine-tiers.ts";

const tiers = engineTiers("vespid-state-fuzz-");
someTierRuns(tiers);

/** Attack calls per tier, each followed by an observation (npm run test:kvm-emulated runs fewer). */
const SEEDS = Number(process.env.VESPID_STATE_FUZZ_SEEDS || 1000);

const STATE_FUZZ_C = String.raw`#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <vespid.h>
#include <vespid_abi.h>

#define FRAME ((volatile struct vsp_frame *)(uintptr_t)VSP_GPA_FRAME)

/* ---- the state at entry, saved before any C code runs (vespid_main is this stub) ---- */
uint64_t entry_regs[17]; /* rax rbx rcx rdx rsi rdi rbp rsp r8..r15 rflags */
unsigned char entry_xsave[16384] __attribute__((aligned(64)));
uint64_t entry_xsave_used;
const char *state_main(const char *params);
__asm__(".text\n.globl vespid_main\n.type vespid_main, @function\nvespid_main:\n"
        "  mov %rax, entry_regs+0(%rip)\n  mov %rbx, entry_regs+8(%rip)\n  mov %rcx, entry_regs+16(%rip)\n"
        "  mov %rdx, entry_regs+24(%rip)\n  mov %rsi, entry_regs+32(%rip)\n  mov %rdi, entry_regs+40(%rip)\n"
        "  mov %rbp, entry_regs+48(%rip)\n  mov %rsp, entry_regs+56(%rip)\n  mov %r8, entry_regs+64(%rip)\n"
        "  mov %r9, entry_regs+72(%rip)\n  mov %r10, entry_regs+80(%rip)\n  mov %r11, entry_regs+88(%rip)\n"
        "  mov %r12, entry_regs+96(%rip)\n  mov %r13, entry_regs+104(%rip)\n  mov %r14, entry_regs+112(%rip)\n"
        "  mov %r15, entry_regs+120(%rip)\n  pushfq\n  popq entry_regs+128(%rip)\n"
        "  cld\n  lea entry_xsave(%rip), %rdi\n  mov $2048, %ecx\n  xor %eax, %eax\n  rep stosq\n"
        "  mov $1, %eax\n  cpuid\n  bt $27, %ecx\n  jnc 1f\n" /* OSXSAVE */
        "  xor %ecx, %ecx\n  xgetbv\n  xsave64 entry_xsave(%rip)\n  movq $1, entry_xsave_used(%rip)\n  jmp 2f\n"
        "1: fxsave64 entry_xsave(%rip)\n"
        "2: mov entry_regs+40(%rip), %rdi\n  mov entry_regs+8(%rip), %rbx\n  jmp state_main\n");

/* ---- small tools ---- */
static struct vespid_json *out;
static char caps[512];
static int cap(const char *name)
{
    char key[32];
    snprintf(key, sizeof key, ",%s,", name);
    return strstr(caps, key) != 0;
}
static void hex(const char *key, uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%#llx", (unsigned long long)v);
    vespid_json_string(out, key, b);
}
static uint64_t fnv(const void *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ull;
    return h;
}
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static int osxsave(void) { unsigned r[4]; cpuid(1, 0, r); return (r[2] >> 27) & 1; }
static uint64_t xcr0(void) { unsigned lo, hi; __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0)); return ((uint64_t)hi << 32) | lo; }
static int has_avx(void) { unsigned r[4]; cpuid(1, 0, r); return osxsave() && ((r[2] >> 28) & 1) && (xcr0() & 6) == 6; }
static int has_avx512(void) { unsigned r[4]; cpuid(7, 0, r); return has_avx() && ((r[1] >> 16) & 1) && (xcr0() & 0xe0) == 0xe0; }
static int has_pku(void) { unsigned r[4]; cpuid(7, 0, r); return (r[2] >> 4) & 1; /* OSPKE */ }
static unsigned short sel_of(int which)
{
    unsigned short s = 0;
    switch (which) {
    case 0: __asm__ volatile("mov %%cs, %0" : "=r"(s)); break;
    case 1: __asm__ volatile("mov %%ds, %0" : "=r"(s)); break;
    case 2: __asm__ volatile("mov %%es, %0" : "=r"(s)); break;
    case 3: __asm__ volatile("mov %%fs, %0" : "=r"(s)); break;
    case 4: __asm__ volatile("mov %%gs, %0" : "=r"(s)); break;
    default: __asm__ volatile("mov %%ss, %0" : "=r"(s)); break;
    }
    return s;
}
/* lar: access rights of a descriptor CPL 3 may look at, or -1. */
static long lar(unsigned sel)
{
    unsigned long ar = 0; unsigned char ok;
    __asm__ volatile("lar %2, %0\n\tsetz %1" : "=r"(ar), "=q"(ok) : "r"((unsigned long)sel) : "cc");
    return ok ? (long)(ar & 0xffff00) : -1;
}
static long lsl(unsigned sel)
{
    unsigned long lim = 0; unsigned char ok;
    __asm__ volatile("lsl %2, %0\n\tsetz %1" : "=r"(lim), "=q"(ok) : "r"((unsigned long)sel) : "cc");
    return ok ? (long)lim : -1;
}

/* ---- observe: everything CPL 3 can read about its CPU ---- */
static void observe(void)
{
    static const char *const regs[17] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
                                          "r11", "r12", "r13", "r14", "r15", "rflags" };
    char key[48];
    for (int i = 0; i < 17; i++) { snprintf(key, sizeof key, "entry_%s", regs[i]); hex(key, entry_regs[i]); }
    const unsigned char *x = entry_xsave;
    uint16_t w; uint32_t d; uint64_t q;
    memcpy(&w, x + 0, 2); hex("fcw", w);
    memcpy(&w, x + 2, 2); hex("fsw", w);
    hex("ftw", x[4]);
    memcpy(&w, x + 6, 2); hex("fop", w);
    memcpy(&q, x + 8, 8); hex("fip", q);
    memcpy(&q, x + 16, 8); hex("fdp", q);
    memcpy(&d, x + 24, 4); hex("mxcsr", d);
    memcpy(&d, x + 28, 4); hex("mxcsr_mask", d);
    hex("x87_registers", fnv(x + 32, 128));
    hex("xmm_registers", fnv(x + 160, 256));
    hex("legacy_rest", fnv(x + 416, 96));
    vespid_json_int(out, "xsave", (long long)entry_xsave_used);
    if (entry_xsave_used) {
        memcpy(&q, x + 512, 8); hex("xstate_bv", q);
        memcpy(&q, x + 520, 8); hex("xcomp_bv", q);
        hex("xsave_header_rest", fnv(x + 528, 48));
        uint64_t mask = xcr0();
        for (unsigned i = 2; i < 63; i++) {
            if (!((mask >> i) & 1)) continue;
            unsigned r[4]; cpuid(0xd, i, r);
            if (!r[0] || r[1] + r[0] > sizeof entry_xsave) continue;
            snprintf(key, sizeof key, "xsave_component_%u", i);
            hex(key, fnv(x + r[1], r[0]));
        }
    }
    unsigned short cs = sel_of(0);
    vespid_json_int(out, "cpl", cs & 3);
    static const char *const segs[6] = { "cs", "ds", "es", "fs", "gs", "ss" };
    for (int i = 0; i < 6; i++) hex(segs[i], sel_of(i));
    uint64_t tcb; __asm__ volatile("mov %%fs:0, %0" : "=r"(tcb)); hex("fs_0", tcb);
    if (cap("rdfsbase")) { __asm__ volatile("rdfsbase %0" : "=r"(q)); hex("fs_base", q); }
    if (cap("rdgsbase")) { __asm__ volatile("rdgsbase %0" : "=r"(q)); hex("gs_base", q); }
    /* every descriptor of the GDT (and LDT) CPL 3 may look at */
    for (unsigned sel = 3; sel < 0x200; sel += 4) {
        long ar = lar(sel), lim = lsl(sel);
        if (ar < 0 && lim < 0) continue;
        snprintf(key, sizeof key, "desc_%#x", sel);
        char v[48]; snprintf(v, sizeof v, "ar=%#lx limit=%#lx", ar, lim);
        vespid_json_string(out, key, v);
    }
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) dt;
    if (cap("sgdt")) { memset(&dt, 0, sizeof dt); __asm__ volatile("sgdt %0" : "=m"(dt)); hex("gdtr_base", dt.base); hex("gdtr_limit", dt.limit); }
    if (cap("sidt")) { memset(&dt, 0, sizeof dt); __asm__ volatile("sidt %0" : "=m"(dt)); hex("idtr_base", dt.base); hex("idtr_limit", dt.limit); }
    if (cap("sldt")) { unsigned long v = 0; __asm__ volatile("sldt %0" : "=r"(v)); hex("ldtr", v); }
    if (cap("str")) { unsigned long v = 0; __asm__ volatile("str %0" : "=r"(v)); hex("tr", v); }
    if (cap("smsw")) { unsigned long v = 0; __asm__ volatile("smsw %0" : "=r"(v)); hex("msw", v); }
    if (cap("rdpid")) { __asm__ volatile("rdpid %0" : "=r"(q)); hex("tsc_aux_rdpid", q); }
    if (cap("rdtscp")) { unsigned a, dd, c; __asm__ volatile("rdtscp" : "=a"(a), "=d"(dd), "=c"(c)); hex("tsc_aux_rdtscp", c); }
    if (has_pku()) { unsigned v, dd; __asm__ volatile("rdpkru" : "=a"(v), "=d"(dd) : "c"(0)); hex("pkru", v); }
}

/* ---- probe: does this instruction run here (a crash says no) ---- */
static int probe(const char *insn)
{
    uint64_t q; unsigned long v;
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) dt;
    if (!strcmp(insn, "rdfsbase")) __asm__ volatile("rdfsbase %0" : "=r"(q));
    else if (!strcmp(insn, "rdgsbase")) __asm__ volatile("rdgsbase %0" : "=r"(q));
    else if (!strcmp(insn, "wrgsbase")) { __asm__ volatile("rdgsbase %0" : "=r"(q)); __asm__ volatile("wrgsbase %0" :: "r"(q)); }
    else if (!strcmp(insn, "sgdt")) __asm__ volatile("sgdt %0" : "=m"(dt));
    else if (!strcmp(insn, "sidt")) __asm__ volatile("sidt %0" : "=m"(dt));
    else if (!strcmp(insn, "sldt")) __asm__ volatile("sldt %0" : "=r"(v));
    else if (!strcmp(insn, "str")) __asm__ volatile("str %0" : "=r"(v));
    else if (!strcmp(insn, "smsw")) __asm__ volatile("smsw %0" : "=r"(v));
    else if (!strcmp(insn, "rdpid")) { unsigned r[4]; cpuid(7, 0, r); if (!((r[2] >> 22) & 1)) return 0; __asm__ volatile("rdpid %0" : "=r"(q)); }
    else if (!strcmp(insn, "rdtscp")) { unsigned r[4], a, d, c; cpuid(0x80000001, 0, r); if (!((r[3] >> 27) & 1)) return 0; __asm__ volatile("rdtscp" : "=a"(a), "=d"(d), "=c"(c)); }
    else if (!strcmp(insn, "avx")) return has_avx();
    else if (!strcmp(insn, "avx512")) return has_avx512();
    else if (!strcmp(insn, "pku")) return has_pku();
    else return -1;
    return 1;
}

/* ---- attack: a random sequence of hostile operations on CPU state ---- */
static uint64_t rng;
static uint64_t rnd(void) { rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27; return rng * 0x2545f4914f6cdd1dull; }
static unsigned below(unsigned n) { return (unsigned)(rnd() % n); }

static long sc(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "r8", "r9", "r10", "memory");
    return r;
}
static void ring(unsigned offset)
{
    __asm__ volatile("" ::: "memory");
    if (FRAME->bell_fn) ((void (*)(uint64_t))(uintptr_t)FRAME->bell_fn)(offset);
    else *(volatile uint8_t *)(uintptr_t)(VSP_GPA_DOORBELL + offset) = 0;
    __asm__ volatile("" ::: "memory");
}
/* The end of an attack that did not fault: straight to the RESULT doorbell, touching neither the
 * thread pointer nor libc, whatever the sequence left in the registers. */
static const char attacked[] = "{\"attacked\": true}";
__attribute__((noreturn)) static void finish(void)
{
    for (;;) {
        FRAME->out_status = VSP_OUT_OK;
        FRAME->out_ptr = (uint64_t)(uintptr_t)attacked;
        FRAME->out_len = sizeof attacked - 1;
        ring(VSP_BELL_RESULT);
    }
}

/* Far transfers: m16:32 pointers (what both vendors read), a 64-bit landing and a 32-bit one. */
struct far { uint32_t off; uint16_t sel; } __attribute__((packed));
struct far far_to, far_back;
extern const char compat_jmp_back[], compat_ret[];
__asm__(".text\n.code32\n"
        "compat_jmp_back: ljmp *%cs:far_back\n"
        "compat_ret: lretl\n"
        ".code64\n"
        "far_ret64: lretl\n");
extern const char far_ret64[];
static unsigned short user_cs, compat_cs;

static unsigned pick_selector(void)
{
    static const unsigned usual[] = { 0, 1, 2, 3, 0x08, 0x10, 0x13, 0x18, 0x1b, 0x20, 0x23, 0x28, 0x2b, 0x30, 0x33, 0x38, 0x3b,
                                      0x40, 0x43, 0x48, 0x4b, 0x50, 0x53, 0x7b, 0x80, 0x83, 0x04, 0x07, 0x0f, 0x17, 0xa807, 0xfffb };
    switch (below(4)) {
    case 0: return (unsigned)(rnd() & 0xffff);
    case 1: return (below(32) << 3) | 4 | below(4); /* LDT */
    default: return usual[below(sizeof usual / sizeof usual[0])];
    }
}
static int is_compat_code(unsigned sel)
{
    long ar = lar(sel);
    return ar >= 0 && (ar & 0x800) && !(ar & 0x200000) && (ar & 0x400000); /* code, L=0, D=1 */
}

static void load_segment(void)
{
    unsigned short sel = (unsigned short)pick_selector();
    switch (below(5)) {
    case 0: __asm__ volatile("mov %0, %%ds" :: "r"(sel)); break;
    case 1: __asm__ volatile("mov %0, %%es" :: "r"(sel)); break;
    case 2: __asm__ volatile("mov %0, %%fs" :: "r"(sel)); break;
    case 3: __asm__ volatile("mov %0, %%gs" :: "r"(sel)); break;
    default: __asm__ volatile("mov %0, %%ss" :: "r"(sel)); break;
    }
}
static void far_transfer(int call)
{
    unsigned sel = below(3) ? pick_selector() : (below(2) ? user_cs : compat_cs);
    int compat = is_compat_code(sel);
    far_to.sel = (uint16_t)sel;
    far_back.sel = user_cs;
    if (call) {
        far_to.off = (uint32_t)(uintptr_t)(compat ? compat_ret : far_ret64);
        __asm__ volatile("sub $128, %%rsp\n\tlcall *far_to(%%rip)\n\tadd $128, %%rsp" ::: "memory");
    } else {
        __asm__ volatile("lea 1f(%%rip), %%rax\n\tmov %%eax, far_back(%%rip)\n\t"
                         "test %0, %0\n\tjnz 2f\n\tmov %%eax, far_to(%%rip)\n\tjmp 3f\n"
                         "2: lea compat_jmp_back(%%rip), %%rax\n\tmov %%eax, far_to(%%rip)\n"
                         "3: ljmp *far_to(%%rip)\n1:" :: "r"(compat) : "rax", "memory");
    }
}
static void iret_frame(void)
{
    static const unsigned long bits[] = { 0x1, 0x4, 0x10, 0x40, 0x80, 0x400, 0x800, 0x3000, 0x4000, 0x10000, 0x20000,
                                          0x40000, 0x80000, 0x100000, 0x200000 };
    unsigned long flags; __asm__ volatile("pushfq; popq %0" : "=r"(flags));
    for (int n = (int)below(4); n > 0; n--) flags ^= bits[below(sizeof bits / sizeof bits[0])];
    if (!below(16)) flags |= 0x100; /* TF: a debug trap after the first instruction */
    unsigned long ss = sel_of(5), cs = user_cs;
    if (!below(3)) ss = pick_selector();
    if (!below(3)) cs = below(2) ? pick_selector() : compat_cs;
    int compat = is_compat_code((unsigned)cs);
    far_back.sel = user_cs;
    __asm__ volatile("lea 1f(%%rip), %%rax\n\tmov %%eax, far_back(%%rip)\n\t"
                     "test %3, %3\n\tjz 2f\n\tlea compat_jmp_back(%%rip), %%rax\n"
                     "2: mov %%rsp, %%rdx\n\tsub $128, %%rsp\n\tand $-16, %%rsp\n\tpush %%rdx\n" /* rsp to put back */
                     "\tmov %%rsp, %%rdx\n\tpush %0\n\tpush %%rdx\n\tpush %1\n\tpush %2\n\tpush %%rax\n\tiretq\n"
                     "1: pop %%rsp"
                     :: "r"(ss), "r"(flags), "r"(cs), "r"((long)compat) : "rax", "rdx", "memory", "cc");
}
static void odd_syscall(void)
{
    static char buf[256];
    switch (below(12)) {
    case 0: sc(158, 0x1002, (long)(uintptr_t)buf, 0); break; /* ARCH_SET_FS: a thread pointer that is not the TCB */
    case 1: sc(158, 0x1001 + below(4), (long)rnd(), 0); break;
    case 2: { uint64_t m = rnd(); sc(14, below(3), (long)(uintptr_t)&m, 8); break; } /* rt_sigprocmask */
    case 3: sc(131, (long)(uintptr_t)buf, 0, 0); break; /* sigaltstack */
    case 4: sc(157, below(64), (long)rnd(), (long)rnd()); break; /* prctl */
    case 5: sc(318, (long)(uintptr_t)buf, sizeof buf, 0); break; /* getrandom */
    case 6: sc(9, 0, 4096 << below(8), 3); break; /* mmap, flags left as rdx: odd */
    case 7: sc(450 + below(600), (long)rnd(), (long)rnd(), (long)rnd()); break;
    case 8: sc(0x40000000 | 39, 0, 0, 0); break; /* x32 getpid */
    case 9: { long r; __asm__ volatile("mov %%ss, %%ax\n\tmov %%ax, %%ss\n\tmov $39, %%eax\n\tsyscall" : "=a"(r) :: "rcx", "r11", "memory"); break; }
    case 10: { long r; __asm__ volatile("mov %%rsp, %%r12\n\txor %%esp, %%esp\n\tmov $39, %%eax\n\tsyscall\n\tmov %%r12, %%rsp" : "=a"(r) :: "rcx", "r11", "r12", "memory"); break; }
    default: sc(13, 1 + below(64), (long)rnd(), 0); break; /* rt_sigaction */
    }
}
static void privileged(void)
{
    unsigned idx = (unsigned[]){ 0xc0000080, 0xc0000081, 0xc0000082, 0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102,
                                 0xc0000103, 0x174, 0x175, 0x176, 0x10, 0x1b, 0x3a, 0x1d9, 0xc0010015 }[below(16)];
    unsigned long v = rnd();
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) dt = { (uint16_t)v, rnd() };
    switch (below(20)) {
    case 0: __asm__ volatile("wrmsr" :: "c"(idx), "a"((unsigned)v), "d"((unsigned)(v >> 32))); break;
    case 1: { unsigned lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(idx)); break; }
    case 2: __asm__ volatile("mov %0, %%dr0" :: "r"(v)); break;
    case 3: __asm__ volatile("mov %0, %%dr7" :: "r"(v)); break;
    case 4: __asm__ volatile("mov %%dr6, %0" : "=r"(v)); break;
    case 5: __asm__ volatile("mov %0, %%cr0" :: "r"(v)); break;
    case 6: __asm__ volatile("mov %%cr2, %0" : "=r"(v)); break;
    case 7: __asm__ volatile("mov %0, %%cr4" :: "r"(v)); break;
    case 8: __asm__ volatile("lgdt %0" :: "m"(dt)); break;
    case 9: __asm__ volatile("lidt %0" :: "m"(dt)); break;
    case 10: __asm__ volatile("lldt %w0" :: "r"((unsigned short)pick_selector())); break;
    case 11: __asm__ volatile("ltr %w0" :: "r"((unsigned short)pick_selector())); break;
    case 12: __asm__ volatile("swapgs"); break;
    case 13: __asm__ volatile("sysenter" ::: "rcx", "r11", "memory"); break;
    case 14: __asm__ volatile("xsetbv" :: "c"(0), "a"((unsigned)v), "d"(0)); break;
    case 15: __asm__ volatile("rdpmc" :: "c"((unsigned)v & 7) : "rax", "rdx"); break;
    case 16: __asm__ volatile("cli"); break;
    case 17: __asm__ volatile("clac"); break;
    case 18: __asm__ volatile("wbinvd"); break;
    default: __asm__ volatile("mov %0, %%ss\n\tint3" :: "r"((unsigned short)sel_of(5))); break; /* #DB/#BP in the shadow */
    }
}
static unsigned char xbuf[16384] __attribute__((aligned(64)));
static void fpu_state(void)
{
    static unsigned char vals[16 * 64] __attribute__((aligned(64)));
    for (unsigned i = 0; i < sizeof vals; i++) vals[i] = (unsigned char)rnd();
    switch (below(8)) {
    case 0: { unsigned m = (unsigned)rnd() & (below(8) ? 0xffbf : 0xffffffff); __asm__ volatile("ldmxcsr %0" :: "m"(m)); break; }
    case 1: { unsigned short cw = (unsigned short)rnd(); __asm__ volatile("fldcw %0\n\tfld1\n\tfldpi" :: "m"(cw)); break; }
    case 2: __asm__ volatile("fninit\n\tfld1\n\tfldz\n\tfldl2e\n\tfincstp\n\tffree %st(3)"); break;
    case 3:
        __asm__ volatile("movdqu 0(%0), %%xmm0\n\tmovdqu 16(%0), %%xmm1\n\tmovdqu 32(%0), %%xmm2\n\tmovdqu 48(%0), %%xmm3\n\t"
                         "movdqu 64(%0), %%xmm4\n\tmovdqu 80(%0), %%xmm5\n\tmovdqu 96(%0), %%xmm6\n\tmovdqu 112(%0), %%xmm7\n\t"
                         "movdqu 128(%0), %%xmm8\n\tmovdqu 144(%0), %%xmm9\n\tmovdqu 160(%0), %%xmm10\n\tmovdqu 176(%0), %%xmm11\n\t"
                         "movdqu 192(%0), %%xmm12\n\tmovdqu 208(%0), %%xmm13\n\tmovdqu 224(%0), %%xmm14\n\tmovdqu 240(%0), %%xmm15"
                         :: "r"(vals) : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                           "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
        break;
    case 4:
        if (!cap("avx")) break;
        __asm__ volatile("vmovdqu 0(%0), %%ymm0\n\tvmovdqu 32(%0), %%ymm1\n\tvmovdqu 64(%0), %%ymm2\n\tvmovdqu 96(%0), %%ymm3\n\t"
                         "vmovdqu 128(%0), %%ymm4\n\tvmovdqu 160(%0), %%ymm5\n\tvmovdqu 192(%0), %%ymm6\n\tvmovdqu 224(%0), %%ymm7\n\t"
                         "vmovdqu 256(%0), %%ymm8\n\tvmovdqu 288(%0), %%ymm9\n\tvmovdqu 320(%0), %%ymm10\n\tvmovdqu 352(%0), %%ymm11\n\t"
                         "vmovdqu 384(%0), %%ymm12\n\tvmovdqu 416(%0), %%ymm13\n\tvmovdqu 448(%0), %%ymm14\n\tvmovdqu 480(%0), %%ymm15"
                         :: "r"(vals) : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                           "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
        break;
    case 5:
        if (!cap("avx512")) break;
        __asm__ volatile("vmovdqu64 0(%0), %%zmm16\n\tvmovdqu64 64(%0), %%zmm31\n\tvmovdqu64 128(%0), %%zmm0\n\t"
                         "kmovq 192(%0), %%k1\n\tkmovq 200(%0), %%k7" :: "r"(vals) : "xmm0", "memory");
        break;
    case 6: /* an XSAVE image with a few bytes changed, put back (some are #GP: reserved bits) */
        if (!cap("xsave")) break;
        memset(xbuf, 0, sizeof xbuf);
        __asm__ volatile("xsave64 %0" : "=m"(xbuf) : "a"(~0u), "d"(~0u));
        for (int n = 1 + (int)below(4); n > 0; n--) xbuf[below(576)] ^= (unsigned char)(1u << below(8));
        __asm__ volatile("xrstor64 %0" :: "m"(xbuf), "a"(~0u), "d"(~0u));
        break;
    default:
        memset(xbuf, 0, 512);
        __asm__ volatile("fxsave64 %0" : "=m"(*(unsigned char (*)[512])xbuf));
        for (int n = 1 + (int)below(4); n > 0; n--) xbuf[below(512)] ^= (unsigned char)(1u << below(8));
        __asm__ volatile("fxrstor64 %0" :: "m"(*(unsigned char (*)[512])xbuf));
        break;
    }
}
static void bases_and_keys(void)
{
    uint64_t v = below(2) ? (uint64_t)(uintptr_t)xbuf : (below(2) ? rnd() : rnd() & 0x7fffffffffffull);
    switch (below(3)) {
    case 0: if (cap("wrgsbase")) __asm__ volatile("wrfsbase %0" :: "r"(v)); break;
    case 1: if (cap("wrgsbase")) __asm__ volatile("wrgsbase %0" :: "r"(v)); break;
    default:
        /* keys 1..15 only, mostly: key 0 (all guest memory) denied is a fault at the next access */
        if (cap("pku")) __asm__ volatile("wrpkru" :: "a"((unsigned)rnd() & (below(8) ? ~3u : ~0u)), "c"(0), "d"(0));
        break;
    }
}
static void flags(void)
{
    static const unsigned long bits[] = { 0x400 /* DF */, 0x40000 /* AC */, 0x200000 /* ID */, 0x4000 /* NT */,
                                          0x3000 /* IOPL */, 0x1 | 0x4 | 0x80 | 0x800 };
    unsigned long f; __asm__ volatile("pushfq; popq %0" : "=r"(f));
    f ^= bits[below(sizeof bits / sizeof bits[0])];
    if (!below(12)) f |= 0x100; /* TF */
    __asm__ volatile("pushq %0; popfq" :: "r"(f) : "memory", "cc");
}
static void exceptions(void)
{
    switch (below(5)) {
    case 0: __asm__ volatile("ud2"); break;
    case 1: __asm__ volatile("hlt"); break;
    case 2: __asm__ volatile("int3"); break;
    case 3: __asm__ volatile("int $0x80" ::: "rax", "memory"); break;
    default: __asm__ volatile("outb %%al, $0x80" :: "a"(0)); break;
    }
}

static void attack(uint64_t seed)
{
    rng = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < 20; i++) rnd();
    user_cs = sel_of(0);
    compat_cs = 0;
    for (unsigned sel = 3; sel < 0x100 && !compat_cs; sel += 8)
        if (is_compat_code(sel) && ((lar(sel) >> 13) & 3) == 3) compat_cs = (unsigned short)sel;
    /* Short sequences, weighted toward what does not fault, so that about a third end normally. */
    unsigned n = 1 + below(6);
    for (unsigned i = 0; i < n; i++) {
        unsigned w = below(100);
        if (w < 10) load_segment();
        else if (w < 18) far_transfer(below(2));
        else if (w < 26) iret_frame();
        else if (w < 36) odd_syscall();
        else if (w < 39) privileged();
        else if (w < 69) fpu_state();
        else if (w < 84) bases_and_keys();
        else if (w < 97) flags();
        else exceptions();
    }
    finish();
}

const char *state_main(const char *params)
{
    char mode[16] = "", insn[32] = "";
    double seed = 0;
    vespid_get_string(params, "mode", mode, sizeof mode);
    vespid_get_string(params, "insn", insn, sizeof insn);
    caps[0] = ',';
    vespid_get_string(params, "caps", caps + 1, sizeof caps - 2);
    strcat(caps, ",");
    vespid_get_number(params, "seed", &seed);
    out = vespid_json_new();
    if (!strcmp(mode, "observe")) observe();
    else if (!strcmp(mode, "attack")) attack((uint64_t)seed);
    else if (!strcmp(mode, "probe")) vespid_json_int(out, "ok", probe(insn));
    else vespid_fail("unknown mode");
    return vespid_json_finish(out);
}`;

/** Optional instructions: each is tried in a call of its own (a crash or 0 says it is not here). */
const PROBES = ["rdfsbase", "rdgsbase", "wrgsbase", "sgdt", "sidt", "sldt", "str", "smsw", "rdpid", "rdtscp", "avx", "avx512", "pku"];

/**
 * In a sandbox these name the host CPU the call ran on, which the guest cannot choose: Linux keeps
 * the CPU number in TSC_AUX and in the limit of its per-CPU GDT segment (0x7b, what getcpu reads),
 * and without UMIP sgdt shows the per-CPU GDT. kvm_pvm runs a virtine in host user mode and leaves
 * TSC_AUX to the host too. A guest cannot write any of them (wrmsr and lgdt are #GP at CPL 3, which
 * the attacks try), so there they are only checked to be CPU numbers.
 */
const PER_HOST_CPU = ["tsc_aux_rdpid", "tsc_aux_rdtscp", "desc_0x7b", "desc_0x7f", "gdtr_base"];
const KVM_PVM = existsSync("/sys/module/kvm_pvm");
const perHostCpu = (tier: Tier, key: string) =>
  (tier.isolation === "process" && PER_HOST_CPU.includes(key)) || (tier.isolation === "kvm" && KVM_PVM && key.startsWith("tsc_aux"));

function differences(tier: Tier, first: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(first), ...Object.keys(now)])) {
    if (perHostCpu(tier, key)) continue;
    if (JSON.stringify(first[key]) !== JSON.stringify(now[key])) out.push(`${key}: ${JSON.stringify(first[key])} → ${JSON.stringify(now[key])}`);
  }
  return out;
}

async function probeCaps(t: ExecutionContext, run: (p: unknown) => Promise<EngineOutcome>): Promise<string[]> {
  const caps: string[] = [];
  for (const insn of PROBES) {
    const o = await run({ mode: "probe", insn });
    if (o.status === "ok") {
      if (json(o).ok === 1) caps.push(insn);
    } else {
      t.is(o.status, "crash", `probe ${insn}: ${o.status}: ${o.error}`);
    }
  }
  if (caps.includes("avx")) caps.push("xsave");
  return caps;
}

for (const tier of tiers) {
  tier.serial("C: random attacks on segment, descriptor, MSR, flag and FPU state never carry into the next call", async (t) => {
    const run = await tier.action("c", STATE_FUZZ_C);
    const caps = await probeCaps(t, run);
    t.log(`instructions here: ${caps.join(", ")}`);
    const observe = async () => json(await run({ mode: "observe", caps: caps.join(",") })) as Record<string, unknown>;
    const first = await observe();
    t.is(first.cpl, 3, "the guest runs at CPL 3");
    const ends: Record<string, number> = {};
    const mismatches: string[] = [];
    const faults = new Map<string, number>();
    for (let seed = 1; seed <= SEEDS && mismatches.length < 20; seed++) {
      const a = await run({ mode: "attack", seed, caps: caps.join(",") });
      ends[a.status] = (ends[a.status] ?? 0) + 1;
      if (a.status !== "ok") {
        const what = (a.error ?? "").replace(/ at rip 0x[0-9a-f]+| address 0x[0-9a-f]+/g, "");
        faults.set(what, (faults.get(what) ?? 0) + 1);
      }
      t.true(a.status === "ok" || a.status === "crash", `seed ${seed}: ${a.status}: ${a.error}`);
      const now = await observe();
      t.is(now.cpl, 3, `seed ${seed}: CPL`);
      for (const d of differences(tier, first, now)) mismatches.push(`after seed ${seed} (${a.status}): ${d}`);
      for (const key of Object.keys(now).filter((k) => k.startsWith("tsc_aux") && perHostCpu(tier, k))) {
        t.true(Number(now[key]) < 1 << 20, `${key} = ${now[key]}: a CPU and node number`);
      }
    }
    t.log(`attacks ended: ${JSON.stringify(ends)}; faults: ${JSON.stringify(Object.fromEntries(faults))}`);
    t.deepEqual(mismatches, [], "every observation equals the first");
    // both restore paths ran: after a normal end (warm) and after a fault (a new VM or sandbox)
    t.true((ends.ok ?? 0) >= SEEDS / 10, `attacks that ended normally: ${ends.ok}`);
    t.true((ends.crash ?? 0) >= SEEDS / 10, `attacks that faulted: ${ends.crash}`);
  });
}
