/*
 * The sandbox helper's trusted entry points. Everything here runs inside the sandbox with guest
 * registers, so nothing after a syscall trusts a register: the restore path reloads all state from
 * guest memory at fixed addresses, which the host has just put back to the snapshot.
 */
#include "../include/vespid_abi.h"

#define HYPERCALL 236
#define RESTORE_LO 0x5e57043e
#define SYS_arch_prctl 158
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002

#define SAVE(field) (VSP_GPA_PROC_SAVE + 8 * (field))
#define S_RBX 0
#define S_RBP 1
#define S_R12 2
#define S_R13 3
#define S_R14 4
#define S_R15 5
#define S_RSP 6
#define S_RFLAGS 7
#define S_BELL 8
#define S_FS 9
#define S_GS 10

	.text

/* edx:eax = the XSAVE components to save and restore: XCR0 without AMX tile state (17, 18), which
 * the kernel enables per process only on request. */
.macro xmask
	xorl %ecx, %ecx
	xgetbv
	andl $~0x60000, %eax
.endm

/*
 * void vsp_hc_call(uint64_t bell): rings doorbell `bell` (the guest's frame.bell_fn, and the
 * signal handlers' way out). Saves what a restore must put back, then makes the hypercall, which
 * the host serves through a seccomp user notification while this thread waits in the kernel.
 */
	.globl vsp_hc_call
	.type vsp_hc_call, @function
vsp_hc_call:
	movq %rbx, SAVE(S_RBX)
	movq %rbp, SAVE(S_RBP)
	movq %r12, SAVE(S_R12)
	movq %r13, SAVE(S_R13)
	movq %r14, SAVE(S_R14)
	movq %r15, SAVE(S_R15)
	movq %rsp, SAVE(S_RSP)
	pushfq
	popq SAVE(S_RFLAGS)
	movq %rdi, SAVE(S_BELL)
	xmask
	xsave64 VSP_GPA_PROC_XSAVE
.Lring:
	movl $HYPERCALL, %eax
	.globl vsp_hc_site
vsp_hc_site:
	syscall                 /* the only hypercall site the seccomp filter lets through */
	movl $RESTORE_LO, %ecx
	shlq $32, %rcx
	orq $RESTORE_LO, %rcx
	cmpq %rcx, %rax
	je vsp_restore
	ret

/*
 * Back to the snapshot point: callee-saved registers, stack, flags, x87/SSE/AVX state, segment
 * selectors and FS/GS base as they were at the snapshot's hypercall, then ring its doorbell again
 * (the first PARAMS request), where the host finds the sandbox waiting for its next call.
 */
	.globl vsp_restore
	.type vsp_restore, @function
vsp_restore:
	movq SAVE(S_RSP), %rsp
	xorl %eax, %eax
	movl %eax, %ds
	movl %eax, %es
	xmask
	xrstor64 VSP_GPA_PROC_XSAVE
	pushq SAVE(S_RFLAGS)
	popfq
	movl $ARCH_SET_FS, %edi
	movq SAVE(S_FS), %rsi
	call vsp_set_base
	movl $ARCH_SET_GS, %edi
	movq SAVE(S_GS), %rsi
	call vsp_set_base
	movq SAVE(S_RBX), %rbx
	movq SAVE(S_RBP), %rbp
	movq SAVE(S_R12), %r12
	movq SAVE(S_R13), %r13
	movq SAVE(S_R14), %r14
	movq SAVE(S_R15), %r15
	movq SAVE(S_BELL), %rdi
	xorl %esi, %esi
	xorl %edx, %edx
	xorl %r8d, %r8d
	xorl %r9d, %r9d
	xorl %r10d, %r10d
	xorl %r11d, %r11d
	jmp .Lring

/* long vsp_set_base(int code, uint64_t base): arch_prctl, from the one site the filter allows. */
	.globl vsp_set_base
	.type vsp_set_base, @function
vsp_set_base:
	movl $SYS_arch_prctl, %eax
	.globl vsp_prctl_site
vsp_prctl_site:
	syscall
	ret

/*
 * void vsp_sigreturn(ucontext_t *uc): returns from a signal handler to the interrupted context
 * without rt_sigreturn, which the filter does not allow (a forged frame would let the guest set
 * its signal mask and stack, kernel state that a restore could not see). Reloads the x87/SSE/AVX
 * state the kernel saved in the frame, then every general register, flags and rip.
 */
#define UC_GREGS 40
#define G(n) (UC_GREGS + 8 * (n))
#define UC_FPREGS 224
	.globl vsp_sigreturn
	.type vsp_sigreturn, @function
vsp_sigreturn:
	movq %rdi, %r15
	movq UC_FPREGS(%r15), %rsi
	testq %rsi, %rsi
	jz 1f
	xmask
	xrstor64 (%rsi)
1:	/* rflags and rip go below the target stack, past its 128-byte red zone */
	movq G(15)(%r15), %rax
	leaq -144(%rax), %rcx
	movq G(17)(%r15), %rdx
	movq %rdx, (%rcx)
	movq G(16)(%r15), %rdx
	movq %rdx, 8(%rcx)
	movq %rcx, G(15)(%r15)
	leaq UC_GREGS(%r15), %rsp
	popq %r8
	popq %r9
	popq %r10
	popq %r11
	popq %r12
	popq %r13
	popq %r14
	popq %r15
	popq %rdi
	popq %rsi
	popq %rbp
	popq %rbx
	popq %rdx
	popq %rax
	popq %rcx
	popq %rsp
	popfq
	ret $128

/* The kernel insists on a signal restorer; handlers never return through it. */
	.globl vsp_no_restorer
vsp_no_restorer:
	ud2

/* void vsp_enter(uint64_t entry, uint64_t rsp): starts the image with a clean register file. */
	.globl vsp_enter
	.type vsp_enter, @function
vsp_enter:
	movq %rsi, %rsp
	movq %rdi, %rax
	xorl %ebx, %ebx
	xorl %ecx, %ecx
	xorl %edx, %edx
	xorl %esi, %esi
	xorl %edi, %edi
	xorl %ebp, %ebp
	xorl %r8d, %r8d
	xorl %r9d, %r9d
	xorl %r10d, %r10d
	xorl %r11d, %r11d
	xorl %r12d, %r12d
	xorl %r13d, %r13d
	xorl %r14d, %r14d
	xorl %r15d, %r15d
	jmp *%rax

/* void vsp_on_stack(uint64_t top, void (*fn)(void)): calls fn on another stack; fn never returns. */
	.globl vsp_on_stack
vsp_on_stack:
	movq %rdi, %rsp
	call *%rsi
	ud2

/* Process entry: the kernel's stack pointer (argc, argv…) goes to vsp_shim_main. */
	.globl _start
_start:
	movq %rsp, %rdi
	andq $-16, %rsp
	call vsp_shim_main
	ud2

	.section .note.GNU-stack, "", @progbits
