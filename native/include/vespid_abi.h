/*
 * The contract between the virtine host (native/src) and the guest runtime (native/guest):
 * where things live in guest-physical memory and how the guest talks to the host.
 *
 * Guest-physical memory is identity-mapped and starts at 0. The guest runs entirely at CPL 3
 * (on kvm_pvm CPL 0 is emulated and slow). It reaches the host only through stores to the
 * doorbell page, which has no memslot behind it, so each store is a KVM_EXIT_MMIO that the host
 * decodes by offset. Arguments travel in the frame page. Everything the guest writes is untrusted:
 * the host bounds-checks every pointer and length it reads from here.
 */
#ifndef VESPID_ABI_H
#define VESPID_ABI_H

#ifndef __ASSEMBLER__
#include <stdint.h>
#endif

#define VSP_PAGE_SIZE      0x1000
#define VSP_HUGE_PAGE_SIZE 0x200000

/* System area, the first 2 MiB, mapped with 4 KiB pages. Page 0 is never mapped (NULL traps). */
#define VSP_GPA_PML4       0x1000  /* supervisor: page tables */
#define VSP_GPA_PDPT       0x2000
#define VSP_GPA_PD0        0x3000  /* 0 .. 1 GiB */
#define VSP_GPA_PT0        0x4000  /* 0 .. 2 MiB in 4 KiB pages */
#define VSP_GPA_PD1        0x5000  /* 1 .. 2 GiB: the doorbell */
#define VSP_GPA_GDT        0x6000  /* supervisor: GDT, TSS at +0x80 */
#define VSP_GPA_TSS        (VSP_GPA_GDT + 0x80)
#define VSP_GPA_IDT        0x7000  /* supervisor */
#define VSP_GPA_EXC_CODE   0x8000  /* supervisor, executable: exception stubs */
#define VSP_GPA_SYSCALL    0x9000  /* user, read-only, executable: LSTAR target */
#define VSP_GPA_FRAME      0xA000  /* user, read-write: the struct vsp_frame below */
#define VSP_GPA_IST_BASE   0xB000  /* supervisor: exception stack, 4 pages */
#define VSP_GPA_IST_TOP    0xF000
/* supervisor: 4 KiB page tables for the image's 2 MiB regions (W^X by segment), up to 32 pages */
#define VSP_GPA_IMAGE_PTS  0x10000
#define VSP_IMAGE_PTS_MAX  32
#define VSP_SYSTEM_END     0x200000 /* guest pointers handed to the host must lie above this */

/*
 * Process tier only (the sandbox's helper, native/sandbox/): its state lives in guest memory too,
 * so that restoring guest memory restores it. Unused (and unmapped) in a virtine.
 */
#define VSP_GPA_PROC_SAVE   0x100000 /* struct vsp_proc_save: registers at the last hypercall */
#define VSP_GPA_PROC_XSAVE  0x101000 /* XSAVE area of the last hypercall (16 KiB, 64-byte aligned) */
#define VSP_GPA_PROC_STACK  0x110000 /* top of the helper's own stack while it sets up (32 KiB below) */
#define VSP_GPA_PROC_ALT    0x110000 /* signal stack, 256 KiB upwards */
#define VSP_PROC_ALT_SIZE   0x40000
#define VSP_GPA_PROC_END    0x200000

/* Guest images are linked at this address (-Wl,-Ttext-segment=0x200000). */
#define VSP_IMAGE_BASE     0x200000

/* The top 2 MiB of guest memory is the user stack; the 2 MiB below it is left unmapped as guard. */
#define VSP_STACK_SIZE     VSP_HUGE_PAGE_SIZE
#define VSP_GUARD_SIZE     VSP_HUGE_PAGE_SIZE

/* Doorbell: stores here exit to the host. 1 GiB, above the largest guest memory (512 MiB). */
#define VSP_GPA_DOORBELL   0x40000000
#define VSP_BELL_SYSCALL   0x00  /* emulate the syscall described in the frame */
#define VSP_BELL_INPUT     0x08  /* copy the input named by frame.in_kind to frame.in_ptr */
#define VSP_BELL_RESULT    0x10  /* the invocation is over: frame.out_* hold the result */
#define VSP_BELL_FAULT     0x18  /* rung by the CPL 0 exception stubs only */

/* Which input the guest asks for. The host snapshots a virtine when it first asks for PARAMS. */
#define VSP_INPUT_INIT     0  /* action code (JavaScript source); empty for C */
#define VSP_INPUT_PARAMS   1  /* invocation parameters, JSON */

/* What the guest says of its result. */
#define VSP_OUT_OK         0  /* out holds the JSON result */
#define VSP_OUT_ERROR      1  /* out holds an error message (uncaught exception, bad return) */

#ifndef __ASSEMBLER__
struct vsp_frame {
	/* syscall: number in, return value out, then the six arguments; scratch for the stub */
	uint64_t nr_ret;
	uint64_t args[6];
	uint64_t scratch;
	/* input: guest fills kind, ptr, cap; host fills len (the full length, even if > cap) */
	uint64_t in_kind;
	uint64_t in_ptr;
	uint64_t in_cap;
	uint64_t in_len;
	/* result */
	uint64_t out_status;
	uint64_t out_ptr;
	uint64_t out_len;
	/*
	 * Process tier: the function the guest calls to ring a doorbell (offset in the first argument)
	 * instead of storing to the doorbell page, which has nothing behind it in a process. Set by the
	 * sandbox's helper; always 0 in a virtine, where the store is the doorbell.
	 */
	uint64_t bell_fn;
	/* Process tier, fault report (VSP_BELL_FAULT): vector, error code, rip, faulting address. */
	uint64_t fault[4];
};

#ifdef __x86_64__
/* Process tier: what the hypercall stub saves, at VSP_GPA_PROC_SAVE. */
struct vsp_proc_save {
	uint64_t rbx, rbp, r12, r13, r14, r15, rsp, rflags;
	uint64_t bell;           /* the doorbell being rung */
	uint64_t fs_base, gs_base;
};
#endif

#endif

#define VSP_FRAME_OFF_NR       0
#define VSP_FRAME_OFF_ARG(i)   (8 + 8 * (i))
#define VSP_FRAME_OFF_SCRATCH  56

#endif
