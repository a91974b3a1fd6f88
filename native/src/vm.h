/* One virtine: a KVM VM with one vCPU and its guest memory, and the host state of one invocation. */
#ifndef VSP_VM_H
#define VSP_VM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

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
	uint64_t mapped;       /* pages mmap has handed out now */
	/* High-water marks since the call began (vsp_mm_reset_peak), for its memory_peak */
	uint64_t peak_brk;
	uint64_t peak_mapped;
};

/* A guest image in its loaded form, shared and reference-counted (elf.c). */
struct vsp_image {
	char *path;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
	uint64_t entry, phdr, phnum;
	uint64_t end;          /* page-aligned end of the last segment */
	/* Loadable segments: page rights in both tiers (W^X), see vsp_image_page_flags() */
	struct { uint64_t start, end; uint32_t flags; } segs[8];   /* PF_R/PF_W/PF_X */
	unsigned nsegs;
	uint8_t *bytes;        /* guest memory [VSP_IMAGE_BASE, end) as loaded */
	unsigned refs;
	struct vsp_image *next;
};

struct vsp_vm {
	uint32_t tier;         /* enum vsp_tier: a KVM virtine, or a sandboxed process (sandbox.c) */
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;          /* host mapping of guest-physical [0, mem_size) */
	uint64_t mem_size;
	struct vsp_mm mm;
	uint64_t exits;
	/*
	 * What a restore must undo, one bit per page: pages the host wrote (KVM's dirty log cannot
	 * see those) and every page the dirty log has ever reported for this VM.
	 */
	uint64_t *host_dirty;
	uint64_t *ever_dirty;
	uint64_t *dirty_scratch;  /* KVM_GET_DIRTY_LOG's buffer */
	struct vsp_image *image;  /* a reference, released with the VM */
	bool sregs_changed;       /* the host changed segment state during the call (FS base) */
	/* Process tier: the sandbox and its guest memory (a memfd mapped here and in the sandbox). */
	struct {
		int memfd, pidfd, listener;
		pid_t pid;
		bool pending;          /* the guest waits in a hypercall, notification `id` */
		uint64_t id;
		uint64_t bell;         /* ... for this doorbell */
		pid_t tid;             /* ... made by this thread (host PID namespace) */
		uint64_t blocks;       /* memfd's st_blocks when its pages were last listed */
		/* Its CPU time (ns) when it last parked at the ready point, read off the call's path */
		uint64_t parked_cpu_ns;
	} sb;
};

static inline uint64_t vsp_pages(const struct vsp_vm *vm)
{
	return vm->mem_size / VSP_PAGE_SIZE;
}

/* Records that the host changed guest memory [gpa, gpa+len), which must lie inside it. */
static inline void vsp_mark_host_write(struct vsp_vm *vm, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		return;
	for (uint64_t p = gpa / VSP_PAGE_SIZE; p <= (gpa + len - 1) / VSP_PAGE_SIZE; p++)
		vm->host_dirty[p / 64] |= 1ull << (p % 64);
}

/* kvm.c */
int vsp_kvm_fd(void);
/* Whether registers can be handed to KVM_RUN through kvm_run->s.regs instead of an ioctl. */
bool vsp_kvm_sync_regs(void);
int vsp_vm_create(struct vsp_vm *vm, uint64_t mem_size);
void vsp_vm_destroy(struct vsp_vm *vm);
/* Turns on KVM's dirty log for guest memory (sticky, manual-protect mode where available). */
int vsp_vm_log_dirty(struct vsp_vm *vm);
/* ORs the pages KVM saw the guest write into ever_dirty. */
int vsp_vm_collect_dirty(struct vsp_vm *vm);

/* layout.c: system area, registers, MSRs, CPUID; entry at `rip` with stack `rsp` */
int vsp_layout_init(struct vsp_vm *vm, uint64_t rip, uint64_t rsp);
/* The syscall MSRs, which live in the vCPU, not in memory or the register sets */
int vsp_layout_set_msrs(struct vsp_vm *vm);

/* snapshot.c: a virtine frozen at its ready point, and VMs made from or put back to it */
struct vsp_snapshot;
int vsp_snapshot_capture(struct vsp_vm *vm, struct vsp_snapshot **out);
void vsp_snapshot_free(struct vsp_snapshot *s);
uint64_t vsp_snapshot_bytes(const struct vsp_snapshot *s);
/* Guest memory a VM made from the snapshot holds before it runs: its image and snapshot pages */
uint64_t vsp_snapshot_vm_bytes(const struct vsp_snapshot *s);
int vsp_snapshot_instantiate(const struct vsp_snapshot *s, struct vsp_vm *vm);
int vsp_snapshot_restore(const struct vsp_snapshot *s, struct vsp_vm *vm);

/* elf.c: guest images, parsed once and shared; loading one into a VM takes a reference */
int vsp_image_get(const char *path, struct vsp_image **out);
struct vsp_image *vsp_image_ref(struct vsp_image *img);
void vsp_image_put(struct vsp_image *img);
int vsp_elf_load(struct vsp_vm *vm, struct vsp_image *img);
/* PF_R/PF_W/PF_X of the image's segments that overlap the page at `addr` (0 outside them). */
uint32_t vsp_image_page_flags(const struct vsp_image *img, uint64_t addr);
int vsp_stack_init(struct vsp_vm *vm, uint64_t entry, uint64_t phdr, uint64_t phnum, uint64_t *rsp);

/* mm.c */
int vsp_mm_init(struct vsp_vm *vm, uint64_t image_end);
void vsp_mm_free(struct vsp_vm *vm);
/* Makes dst's heap and mmap bookkeeping a copy of src's (same memory size). */
int vsp_mm_copy(struct vsp_mm *dst, const struct vsp_mm *src);
/* True when mmap has handed out the page at `addr`. */
bool vsp_mm_page_used(const struct vsp_mm *mm, uint64_t addr);
uint64_t vsp_mm_brk(struct vsp_vm *vm, uint64_t addr);
/* Starts the high-water marks afresh from the current heap and mappings (a warm call's start). */
void vsp_mm_reset_peak(struct vsp_mm *mm);
/* The guest's peak memory since the marks were reset: image, heap and mmap'd pages, bytes. */
uint64_t vsp_mm_peak_bytes(const struct vsp_vm *vm);
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

/* vsp_guest_ptr() for a range the host is about to write. */
static inline void *vsp_guest_wptr(struct vsp_vm *vm, uint64_t gpa, uint64_t len)
{
	void *p = vsp_guest_ptr(vm, gpa, len);
	if (p)
		vsp_mark_host_write(vm, gpa, len);
	return p;
}

/* The frame page; `writing` when the host is about to change it. */
static inline volatile struct vsp_frame *vsp_frame(struct vsp_vm *vm, bool writing)
{
	if (writing)
		vsp_mark_host_write(vm, VSP_GPA_FRAME, sizeof(struct vsp_frame));
	return (volatile struct vsp_frame *)(vm->mem + VSP_GPA_FRAME);
}

/* The invocation being run: request, outputs being filled, and how it ends. */
struct vsp_call {
	const struct vsp_request *req;
	struct vsp_outcome *out;
	bool done;
	uint32_t status;       /* enum vsp_status once done */
	/* Stop when the guest first asks for PARAMS (boot to the snapshot point); `ready` says it did. */
	bool stop_at_params;
	bool ready;
	uint64_t deadline_us;  /* CLOCK_MONOTONIC µs at which the call times out */
	uint64_t guest_cpu0;   /* process tier: the sandbox's CPU time (ns) when the call took it */
};

/* run.c: serves a doorbell rung by the guest (both tiers) */
void vsp_doorbell(struct vsp_vm *vm, struct vsp_call *call, uint64_t offset);
/* run.c: ends the call for a fault report that no CPU exception made (both tiers say it alike) */
void vsp_fault_forged(struct vsp_call *call);
/* engine.c: CLOCK_MONOTONIC in µs */
uint64_t vsp_now_us(void);
/* engine.c: CPU time of the whole process `pid`, ns (0 when it cannot be read) */
uint64_t vsp_process_cpu_ns(pid_t pid);
/*
 * engine.c: notes the calling thread's CPU time now, as the start of its next call's cpu_micros.
 * A worker calls it once its VM is restored: it then only waits (no CPU) until its next job, so
 * the call's path reads the clock once, at the end, instead of twice (~1.4 µs a reading here).
 */
void vsp_cpu_mark(void);

/* run.c: serves the PARAMS input into the buffer the guest described in the frame */
void vsp_serve_params(struct vsp_vm *vm, struct vsp_call *call);

/* syscalls.c: emulates the syscall in the frame; may end the call (exit) */
void vsp_syscall(struct vsp_vm *vm, struct vsp_call *call);

/* logs.c */
void vsp_log_append(struct vsp_call *call, int stream, const uint8_t *data, uint64_t len);

/* run.c: serves one exit (also the fuzzers' entry point); runs the vCPU until the call is done */
void vsp_handle_exit(struct vsp_vm *vm, struct vsp_call *call);
void vsp_run_loop(struct vsp_vm *vm, struct vsp_call *call, volatile int *expired);
void vsp_call_end(struct vsp_call *call, uint32_t status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Ends the call with status VSP_OK and `json` as its result. */
void vsp_call_end_ok(struct vsp_call *call, const char *json);

#endif
