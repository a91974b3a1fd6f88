/* One virtine: a KVM VM with one vCPU and its guest memory, and the host state of one invocation. */
#ifndef VSP_VM_H
#define VSP_VM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../include/vespid_abi.h"
#include "vespid_engine.h"

/* Host-side memory map of the guest's user area (brk heap and mmap region), in guest addresses. */
struct vsp_mm {
	uint64_t brk_base;     /* end of the image, page aligned: heap starts here */
	uint64_t brk;          /* current break */
	uint64_t mmap_base;    /* lowest address mmap may hand out */
	uint64_t mmap_top;     /* mmap hands out pages below this, top-down */
	uint8_t *used;         /* one bit per page in [mmap_base, mmap_top): handed out by mmap */
	bool oom;              /* a brk/mmap request was refused for lack of memory */
};

struct vsp_vm {
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;          /* host mapping of guest-physical [0, mem_size) */
	uint64_t mem_size;
	struct vsp_mm mm;
	uint64_t exits;
};

/* kvm.c */
int vsp_kvm_fd(void);
int vsp_vm_create(struct vsp_vm *vm, uint64_t mem_size);
void vsp_vm_destroy(struct vsp_vm *vm);

/* layout.c: system area, registers, MSRs, CPUID; entry at `rip` with stack `rsp` */
int vsp_layout_init(struct vsp_vm *vm, uint64_t rip, uint64_t rsp);

/* elf.c: loads a static ELF; returns its entry and the end of its last segment */
int vsp_elf_load(struct vsp_vm *vm, const char *path, uint64_t *entry, uint64_t *image_end,
		 uint64_t *phdr, uint64_t *phnum);
int vsp_stack_init(struct vsp_vm *vm, uint64_t entry, uint64_t phdr, uint64_t phnum, uint64_t *rsp);

/* mm.c */
int vsp_mm_init(struct vsp_vm *vm, uint64_t image_end);
void vsp_mm_free(struct vsp_vm *vm);
uint64_t vsp_mm_brk(struct vsp_vm *vm, uint64_t addr);
int64_t vsp_mm_mmap(struct vsp_vm *vm, uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd);
int64_t vsp_mm_munmap(struct vsp_vm *vm, uint64_t addr, uint64_t len);

/*
 * Host pointer to guest range [gpa, gpa+len) inside the user area, or NULL when any byte of it
 * lies outside (or the sum overflows). Every guest-supplied pointer goes through here.
 */
static inline void *vsp_guest_ptr(struct vsp_vm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa < VSP_SYSTEM_END || gpa > vm->mem_size || len > vm->mem_size - gpa)
		return NULL;
	return vm->mem + gpa;
}

static inline volatile struct vsp_frame *vsp_frame(struct vsp_vm *vm)
{
	return (volatile struct vsp_frame *)(vm->mem + VSP_GPA_FRAME);
}

/* The invocation being run: request, outputs being filled, and how it ends. */
struct vsp_call {
	const struct vsp_request *req;
	struct vsp_outcome *out;
	bool done;
	uint32_t status;       /* enum vsp_status once done */
	bool params_sent;
};

/* syscalls.c: emulates the syscall in the frame; may end the call (exit) */
void vsp_syscall(struct vsp_vm *vm, struct vsp_call *call);

/* logs.c */
void vsp_log_append(struct vsp_call *call, int stream, const uint8_t *data, uint64_t len);

/* run.c: runs the vCPU until the call is done */
void vsp_run_loop(struct vsp_vm *vm, struct vsp_call *call, volatile int *expired);
void vsp_call_end(struct vsp_call *call, uint32_t status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
