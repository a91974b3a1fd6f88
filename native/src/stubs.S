/*
 * Code the host copies into every virtine's system area. Position-independent except for
 * absolute references to the frame and doorbell, which sit at fixed guest-physical addresses.
 */
#include "../include/vespid_abi.h"

#define FRAME(off) (VSP_GPA_FRAME + (off))

	.section .rodata.vsp_stubs, "a"

/*
 * LSTAR target, on a user-readable page. On real hardware `syscall` enters here at CPL 0; on
 * kvm_pvm it stays at CPL 3. Either way: no stack use (the caller's red zone may be live), save the
 * number and arguments in the frame, ring the doorbell, load the return value, and go back with
 * sysretq at CPL 0 or a plain jump at CPL 3. Clobbers only rax, rcx, r11, as Linux does.
 */
	.globl vsp_syscall_stub, vsp_syscall_stub_end
vsp_syscall_stub:
	mov %rax, FRAME(VSP_FRAME_OFF_NR)
	mov %rdi, FRAME(VSP_FRAME_OFF_ARG(0))
	mov %rsi, FRAME(VSP_FRAME_OFF_ARG(1))
	mov %rdx, FRAME(VSP_FRAME_OFF_ARG(2))
	mov %r10, FRAME(VSP_FRAME_OFF_ARG(3))
	mov %r8,  FRAME(VSP_FRAME_OFF_ARG(4))
	mov %r9,  FRAME(VSP_FRAME_OFF_ARG(5))
	movb $0, VSP_GPA_DOORBELL + VSP_BELL_SYSCALL
	mov FRAME(VSP_FRAME_OFF_NR), %rax
	mov %rdx, FRAME(VSP_FRAME_OFF_SCRATCH)
	mov %cs, %edx
	test $3, %dl
	mov FRAME(VSP_FRAME_OFF_SCRATCH), %rdx
	jnz 1f
	sysretq
1:	jmp *%rcx
vsp_syscall_stub_end:

/*
 * Exception entry points, one per vector, 16 bytes apart, reached through the IDT at CPL 0 on the
 * IST stack. Each pushes a dummy error code where the CPU pushes none, then its vector, and rings
 * the fault doorbell; the host reads vector, error code and the interrupted RIP from the stack.
 * The host never resumes a faulted virtine, so the stubs need no return path.
 */
	.globl vsp_exception_stubs, vsp_exception_stubs_end
	.balign 16
vsp_exception_stubs:
	.irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.balign 16
	.if (\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || (\vec == 13) || (\vec == 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
	nop
	nop
	.else
	pushq $0
	.endif
	pushq $\vec
	jmp vsp_exception_common
	.endr
	.balign 16
vsp_exception_common:
	movb $0, VSP_GPA_DOORBELL + VSP_BELL_FAULT
2:	hlt
	jmp 2b
vsp_exception_stubs_end:

	.section .note.GNU-stack, "", @progbits
