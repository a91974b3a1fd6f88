/*
 * The process tier's host side (sandbox.c): a guest image run as a sandboxed process instead of
 * in a KVM virtine, with the same guest memory layout, doorbells and snapshot semantics.
 */
#ifndef VSP_SANDBOX_H
#define VSP_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "vm.h"

/* Non-zero when sandboxes can be started here; `why` says why not otherwise. */
int vsp_sandbox_available(char *why, uint64_t why_cap);

/* Guest memory (a memfd) for a sandbox; no process yet. */
int vsp_sandbox_create(struct vsp_vm *vm, uint64_t mem_size);
void vsp_sandbox_destroy(struct vsp_vm *vm);
/* Starts the helper on the loaded image (vm->image, stack at rsp); `why` names a failed step. */
int vsp_sandbox_boot(struct vsp_vm *vm, uint64_t entry, uint64_t rsp, char *why, size_t why_cap);
/* Runs the guest until the call ends (the deadline included), serving its hypercalls. */
void vsp_sandbox_run_loop(struct vsp_vm *vm, struct vsp_call *call, volatile int *expired);

/* Snapshots: the pages a restore must rewrite, and the guest put back at its ready point. */
int vsp_sandbox_collect_pages(struct vsp_vm *vm);
int vsp_sandbox_resume(struct vsp_vm *vm);
int vsp_sandbox_rewind(struct vsp_vm *vm);

#endif
