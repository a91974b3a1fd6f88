/*
 * The vCPU loop of one invocation: enter the guest, decode each exit, serve doorbells, turn every
 * fault or unexpected exit into an error for this invocation only. Nothing here aborts the host.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <asm/prctl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vm.h"

void vsp_call_end(struct vsp_call *call, uint32_t status, const char *fmt, ...)
{
	if (call->done)
		return;
	const struct vsp_request *req = call->req;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf((char *)req->result, req->result_cap, fmt, ap);
	va_end(ap);
	call->out->result_len = n < 0 ? 0 : (uint64_t)n < req->result_cap ? (uint64_t)n : req->result_cap - 1;
	call->status = status;
	call->done = true;
}

/* Copies `data` into the guest's input buffer described in the frame (all of it, or nothing if it
 * does not fit: the guest then asks again with room for in_len bytes). */
void vsp_call_end_ok(struct vsp_call *call, const char *json)
{
	call->done = false;
	vsp_call_end(call, VSP_OK, "%s", json);
}

static void copy_input(struct vsp_vm *vm, struct vsp_call *call, const uint8_t *data, uint64_t len)
{
	volatile struct vsp_frame *f = vsp_frame(vm, true);
	uint64_t ptr = f->in_ptr, cap = f->in_cap;
	if (len <= cap) {
		uint8_t *dst = vsp_guest_wptr(vm, ptr, len);
		if (!dst) {
			vsp_call_end(call, VSP_CRASH, "bad hypercall: input buffer outside guest memory");
			return;
		}
		if (len)
			memcpy(dst, data, len);
	}
	f->in_len = len;
}

void vsp_serve_params(struct vsp_vm *vm, struct vsp_call *call)
{
	copy_input(vm, call, call->req->params, call->req->params_len);
}

static void serve_input(struct vsp_vm *vm, struct vsp_call *call)
{
	const struct vsp_request *req = call->req;
	uint64_t kind = vsp_frame(vm, false)->in_kind;

	if (kind == VSP_INPUT_INIT) {
		copy_input(vm, call, req->init, req->init ? req->init_len : 0);
	} else if (kind == VSP_INPUT_PARAMS) {
		if (call->stop_at_params && !call->ready) {
			/* The snapshot point: the guest is initialised and waits for its parameters. */
			call->ready = true;
			call->status = VSP_OK;
			call->done = true;
			return;
		}
		vsp_serve_params(vm, call);
	} else {
		vsp_call_end(call, VSP_CRASH, "bad hypercall: unknown input kind %llu", (unsigned long long)kind);
	}
}

static void take_result(struct vsp_vm *vm, struct vsp_call *call)
{
	volatile struct vsp_frame *f = vsp_frame(vm, false);
	const struct vsp_request *req = call->req;
	uint64_t status = f->out_status, ptr = f->out_ptr, len = f->out_len;

	if (status != VSP_OUT_OK && status != VSP_OUT_ERROR) {
		vsp_call_end(call, VSP_CRASH, "bad hypercall: unknown result status %llu", (unsigned long long)status);
		return;
	}
	if (len >= req->result_cap) {
		vsp_call_end(call, VSP_ERROR,
			     "The action produced a response that exceeded the allowed length: %llu > %llu bytes.",
			     (unsigned long long)len, (unsigned long long)req->result_cap - 1);
		return;
	}
	const uint8_t *src = vsp_guest_ptr(vm, ptr, len);
	if (!src) {
		vsp_call_end(call, VSP_CRASH, "bad hypercall: result outside guest memory");
		return;
	}
	memcpy(req->result, src, len);
	call->out->result_len = len;
	call->status = status == VSP_OUT_OK ? VSP_OK : VSP_ERROR;
	call->done = true;
}

static const char *exception_name(uint64_t vec)
{
	static const char *const names[32] = {
		[0] = "division by zero", [1] = "debug trap", [2] = "NMI", [3] = "breakpoint",
		[4] = "overflow", [5] = "bound range exceeded", [6] = "invalid instruction",
		[7] = "FPU not available", [8] = "double fault", [10] = "invalid TSS",
		[11] = "segment not present", [12] = "stack fault",
		[13] = "general protection fault (privileged or malformed instruction)",
		[14] = "page fault", [16] = "x87 floating-point error", [17] = "alignment check",
		[18] = "machine check", [19] = "SIMD floating-point error",
	};
	return vec < 32 && names[vec] ? names[vec] : "CPU exception";
}

/* Ends the call with a message for a CPU exception `vec` at `rip` (for page faults, at `addr`). */
static void vsp_fault(struct vsp_vm *vm, struct vsp_call *call, uint64_t vec, uint64_t err, uint64_t rip, uint64_t addr)
{
	if (vec != 14) {
		vsp_call_end(call, VSP_CRASH, "the function crashed: %s (vector %llu) at rip 0x%llx",
			     exception_name(vec), (unsigned long long)vec, (unsigned long long)rip);
		return;
	}
	uint64_t guard = vm->mem_size - VSP_STACK_SIZE - VSP_GUARD_SIZE;
	if (vm->tier == VSP_TIER_PROCESS && addr >= VSP_GPA_DOORBELL && addr < VSP_GPA_DOORBELL + VSP_HUGE_PAGE_SIZE) {
		/* In a virtine this page has nothing behind it: every access is an exit, said the same way. */
		if (err & 2)
			vsp_call_end(call, VSP_CRASH, "bad hypercall at doorbell offset 0x%llx",
				     (unsigned long long)(addr - VSP_GPA_DOORBELL));
		else
			vsp_call_end(call, VSP_CRASH, "the function crashed: read of address 0x%llx, which has no memory",
				     (unsigned long long)addr);
		return;
	}
	if (addr >= guard && addr < guard + VSP_GUARD_SIZE) {
		vsp_call_end(call, VSP_CRASH, "the function crashed: stack overflow at rip 0x%llx",
			     (unsigned long long)rip);
		return;
	}
	const char *what = (err & 0x10) ? "executing" : (err & 2) ? "writing" : "reading";
	vsp_call_end(call, VSP_CRASH, "the function crashed: segmentation fault %s address 0x%llx at rip 0x%llx",
		     what, (unsigned long long)addr, (unsigned long long)rip);
}

/* Nothing the made-up report says is quoted: an error message names only what the host saw. */
void vsp_fault_forged(struct vsp_call *call)
{
	vsp_call_end(call, VSP_CRASH, "bad hypercall: the fault doorbell rung by the function itself");
}

/*
 * A fault report. In a virtine the exception stub left [vector, error code, rip, cs, rflags, rsp,
 * ss] on the IST stack; in a sandbox the helper's signal handler wrote vector, error code, rip and
 * address to the frame, and sandbox.c has already checked that the kernel delivered a fault signal
 * (after which only the helper's handler runs until this hypercall).
 */
static void report_fault(struct vsp_vm *vm, struct vsp_call *call)
{
	if (vm->tier == VSP_TIER_PROCESS) {
		volatile struct vsp_frame *f = vsp_frame(vm, false);
		vsp_fault(vm, call, f->fault[0], f->fault[1], f->fault[2], f->fault[3]);
		return;
	}
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &regs) < 0 || ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		vsp_call_end(call, VSP_CRASH, "the function crashed (CPU exception)");
		return;
	}
	/* Only the exception stubs, at CPL 0, ring this: a report rung from CPL 3 is made up. */
	if (sregs.cs.selector & 3) {
		vsp_fault_forged(call);
		return;
	}
	if (regs.rsp < VSP_GPA_IST_BASE || regs.rsp > VSP_GPA_IST_TOP - 7 * 8) {
		vsp_call_end(call, VSP_CRASH, "the function crashed (exception stack corrupt)");
		return;
	}
	uint64_t w[7];
	memcpy(w, vm->mem + regs.rsp, sizeof(w));
	vsp_fault(vm, call, w[0], w[1], w[2], sregs.cr2);
}

void vsp_doorbell(struct vsp_vm *vm, struct vsp_call *call, uint64_t offset)
{
	switch (offset) {
	case VSP_BELL_SYSCALL: vsp_syscall(vm, call); break;
	case VSP_BELL_INPUT: serve_input(vm, call); break;
	case VSP_BELL_RESULT: take_result(vm, call); break;
	case VSP_BELL_FAULT: report_fault(vm, call); break;
	default:
		vsp_call_end(call, VSP_CRASH, "bad hypercall at doorbell offset 0x%llx", (unsigned long long)offset);
	}
}

static void handle_doorbell(struct vsp_vm *vm, struct vsp_call *call)
{
	struct kvm_run *run = vm->run;
	uint64_t addr = run->mmio.phys_addr;

	if (!run->mmio.is_write || addr < VSP_GPA_DOORBELL || addr >= VSP_GPA_DOORBELL + VSP_HUGE_PAGE_SIZE) {
		vsp_call_end(call, VSP_CRASH, "the function crashed: %s of address 0x%llx, which has no memory",
			     run->mmio.is_write ? "write" : "read", (unsigned long long)addr);
		return;
	}
	vsp_doorbell(vm, call, addr - VSP_GPA_DOORBELL);
}

/* Serves one exit of the vCPU (the reason and data in vm->run); may end the call. */
void vsp_handle_exit(struct vsp_vm *vm, struct vsp_call *call)
{
	struct kvm_run *run = vm->run;
	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		handle_doorbell(vm, call);
		break;
	case KVM_EXIT_SHUTDOWN:
		vsp_call_end(call, VSP_CRASH, "the function crashed: the virtine shut down (triple fault)");
		break;
	case KVM_EXIT_IO:
		vsp_call_end(call, VSP_CRASH, "the function crashed: port I/O is not allowed");
		break;
	case KVM_EXIT_HLT:
		vsp_call_end(call, VSP_CRASH, "the function crashed: the CPU halted");
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		vsp_call_end(call, VSP_CRASH, "the function crashed: KVM internal error (suberror %u)",
			     run->internal.suberror);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		vsp_call_end(call, VSP_INTERNAL, "KVM could not enter the virtine (reason 0x%llx)",
			     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	default:
		vsp_call_end(call, VSP_CRASH, "the function crashed: unexpected exit %u", run->exit_reason);
	}
}

/*
 * kvm_pvm runs the guest in host user mode and switches neither DS, ES, FS nor GS selectors: the
 * guest sees this thread's, and what it loads into them stays there, for whatever the thread runs
 * next, a later call of any action included (test/engine-state-fuzz.test.ts found it). So before
 * every entry they are null again: a plain load for DS and ES (ignored in 64-bit mode), and for
 * FS and GS, rarely non-null (only after a guest loaded one), arch_prctl, which nulls the selector
 * and keeps this thread's base. On VMX and SVM the VM has its own, and they are null here anyway.
 */
static void null_data_selectors(void)
{
	uint16_t ds, es, fs, gs;
	__asm__ volatile("mov %%ds, %0; mov %%es, %1; mov %%fs, %2; mov %%gs, %3" : "=r"(ds), "=r"(es), "=r"(fs), "=r"(gs));
	if (ds | es)
		__asm__ volatile("mov %0, %%ds; mov %0, %%es" :: "r"(0));
	unsigned long base;
	if (fs && syscall(SYS_arch_prctl, ARCH_GET_FS, &base) == 0)
		syscall(SYS_arch_prctl, ARCH_SET_FS, base);
	if (gs && syscall(SYS_arch_prctl, ARCH_GET_GS, &base) == 0)
		syscall(SYS_arch_prctl, ARCH_SET_GS, base);
}

void vsp_run_loop(struct vsp_vm *vm, struct vsp_call *call, volatile int *expired)
{
	struct kvm_run *run = vm->run;
	while (!call->done) {
		if (*expired) {
			vsp_call_end(call, VSP_TIMEOUT, "The action exceeded its time limit of %u milliseconds.",
				     call->req->timeout_ms);
			break;
		}
		null_data_selectors();
		int r = ioctl(vm->vcpu_fd, KVM_RUN, 0);
		vm->exits++;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				run->immediate_exit = 0;
				continue; /* the deadline signal, or another signal: the loop head decides */
			}
			vsp_call_end(call, VSP_INTERNAL, "KVM_RUN failed: %s", strerror(errno));
			break;
		}
		vsp_handle_exit(vm, call);
	}
}
