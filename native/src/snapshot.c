/*
 * Snapshots: a virtine frozen at its ready point (initialised, asking for its parameters), and the
 * two ways back to it. instantiate() builds a new VM from a snapshot; restore() puts a VM that ran
 * one invocation back into the snapshot's state by rewriting only the pages that changed: those the
 * dirty log has ever reported for this VM, and those the host wrote itself. A snapshot stores only
 * the pages that differ from zero and from its image, which all snapshots of that image share.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "sandbox.h"
#include "vm.h"

#define PAGE VSP_PAGE_SIZE

struct vsp_snapshot {
	uint32_t tier;
	uint64_t mem_size;
	uint64_t npages;
	uint32_t *pages;       /* page numbers of the non-zero pages, ascending */
	uint8_t *data;         /* their contents, PAGE bytes each, in the same order */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	/*
	 * x87/SSE state as XSAVE: KVM_SET_FPU would restore the registers but not MXCSR (it never
	 * writes that field), so a call that changed the SSE rounding mode would pass it on.
	 */
	struct kvm_xsave xsave;
	struct vsp_mm mm;
	struct vsp_image *image;
};

/*
 * An exit to userspace is only complete once KVM_RUN is entered again: until then the vCPU may hold
 * a half-finished MMIO instruction. Entering with immediate_exit finishes it and runs nothing.
 */
static int complete_exit(struct vsp_vm *vm)
{
	vm->run->immediate_exit = 1;
	int r = ioctl(vm->vcpu_fd, KVM_RUN, 0);
	int err = errno;
	vm->run->immediate_exit = 0;
	return r < 0 && err != EINTR ? -err : 0;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	for (size_t i = 0; i < PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* Pages that can hold anything at the ready point: system area, image and heap, mmap'd, stack. */
static bool page_in_use(const struct vsp_vm *vm, uint64_t addr)
{
	return addr < VSP_SYSTEM_END || (addr >= VSP_IMAGE_BASE && addr < vm->mm.brk) ||
	       vsp_mm_page_used(&vm->mm, addr) || addr >= vm->mem_size - VSP_STACK_SIZE;
}

/* The image's content for the page at `addr`, or NULL outside the image. */
static const uint8_t *image_page(const struct vsp_image *img, uint64_t addr)
{
	return addr >= VSP_IMAGE_BASE && addr < img->end ? img->bytes + (addr - VSP_IMAGE_BASE) : NULL;
}

/*
 * A sandbox's CPU state needs no capture: its helper saved it in guest memory (VSP_GPA_PROC_SAVE)
 * on the way into the snapshot's hypercall, where the sandbox still waits.
 */
int vsp_snapshot_capture(struct vsp_vm *vm, struct vsp_snapshot **out)
{
	bool sandbox = vm->tier == VSP_TIER_PROCESS;
	int r = sandbox ? 0 : complete_exit(vm);
	if (r < 0)
		return r;
	struct vsp_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->tier = vm->tier;
	s->mem_size = vm->mem_size;
	s->image = vsp_image_ref(vm->image);
	if (!sandbox && (ioctl(vm->vcpu_fd, KVM_GET_REGS, &s->regs) < 0 || ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s->sregs) < 0 ||
			 ioctl(vm->vcpu_fd, KVM_GET_XSAVE, &s->xsave) < 0)) {
		r = -errno;
		goto fail;
	}

	uint64_t n = 0, cap = 256;
	s->pages = malloc(cap * sizeof(*s->pages));
	s->data = malloc(cap * PAGE);
	if (!s->pages || !s->data)
		goto nomem;
	/*
	 * A sandbox's memory is a memfd, where reading a page that does not exist yet creates it:
	 * look only at those that exist (everything else reads as zero anyway).
	 */
	if (sandbox && (r = vsp_sandbox_collect_pages(vm)) < 0)
		goto fail;
	for (uint64_t addr = 0; addr < vm->mem_size; addr += PAGE) {
		uint64_t p = addr / PAGE;
		if (sandbox && !(vm->ever_dirty[p / 64] & (1ull << (p % 64))))
			continue;
		if (!page_in_use(vm, addr) || page_is_zero(vm->mem + addr) ||
		    (image_page(vm->image, addr) && memcmp(vm->mem + addr, image_page(vm->image, addr), PAGE) == 0))
			continue;
		if (n == cap) {
			cap *= 2;
			uint32_t *pages = realloc(s->pages, cap * sizeof(*s->pages));
			if (!pages)
				goto nomem;
			s->pages = pages;
			uint8_t *data = realloc(s->data, cap * PAGE);
			if (!data)
				goto nomem;
			s->data = data;
		}
		s->pages[n] = (uint32_t)(addr / PAGE);
		memcpy(s->data + n * PAGE, vm->mem + addr, PAGE);
		n++;
	}
	s->npages = n;
	if ((r = vsp_mm_copy(&s->mm, &vm->mm)) < 0)
		goto fail;

	/* From here on this VM is a shell of the snapshot: track what changes. */
	memset(vm->host_dirty, 0, (vsp_pages(vm) + 63) / 64 * sizeof(uint64_t));
	if ((r = sandbox ? 0 : vsp_vm_log_dirty(vm)) < 0)
		goto fail;
	*out = s;
	return 0;

nomem:
	r = -ENOMEM;
fail:
	vsp_snapshot_free(s);
	return r;
}

void vsp_snapshot_free(struct vsp_snapshot *s)
{
	if (!s)
		return;
	free(s->pages);
	free(s->data);
	free(s->mm.used);
	vsp_image_put(s->image);
	free(s);
}

uint64_t vsp_snapshot_bytes(const struct vsp_snapshot *s)
{
	return sizeof(*s) + s->npages * (PAGE + sizeof(uint32_t)) + (s->mm.mmap_top - s->mm.mmap_base) / PAGE / 8;
}

uint64_t vsp_snapshot_vm_bytes(const struct vsp_snapshot *s)
{
	return (s->image->end - VSP_IMAGE_BASE) + s->npages * PAGE;
}

static int set_cpu(const struct vsp_snapshot *s, struct vsp_vm *vm)
{
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s->sregs) < 0 || ioctl(vm->vcpu_fd, KVM_SET_REGS, &s->regs) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_SET_XSAVE, &s->xsave) < 0)
		return -errno;
	return 0;
}

int vsp_snapshot_instantiate(const struct vsp_snapshot *s, struct vsp_vm *vm)
{
	bool sandbox = s->tier == VSP_TIER_PROCESS;
	int r = sandbox ? vsp_sandbox_create(vm, s->mem_size) : vsp_vm_create(vm, s->mem_size);
	if (r < 0)
		return r;
	if ((r = vsp_elf_load(vm, s->image)) < 0) {
		vsp_vm_destroy(vm);
		return r;
	}
	for (uint64_t i = 0; i < s->npages; i++)
		memcpy(vm->mem + (uint64_t)s->pages[i] * PAGE, s->data + i * PAGE, PAGE);
	if (sandbox) {
		if ((r = vsp_mm_copy(&vm->mm, &s->mm)) < 0 || (r = vsp_sandbox_resume(vm)) < 0) {
			vsp_vm_destroy(vm);
			return r;
		}
		return 0;
	}
	if ((r = vsp_mm_copy(&vm->mm, &s->mm)) < 0 || (r = vsp_layout_set_msrs(vm)) < 0 ||
	    (r = set_cpu(s, vm)) < 0 || (r = vsp_vm_log_dirty(vm)) < 0) {
		vsp_vm_destroy(vm);
		return r;
	}
	return 0;
}

/* Index of page `p` in the snapshot, or -1 when the snapshot holds it as zero. */
static int64_t find_page(const struct vsp_snapshot *s, uint64_t p)
{
	uint64_t lo = 0, hi = s->npages;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (s->pages[mid] < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->npages && s->pages[lo] == p ? (int64_t)lo : -1;
}

/* Whether the segment state the last exit left in kvm_run differs from the snapshot's. */
static bool sregs_differ(const struct vsp_snapshot *s, const struct vsp_vm *vm)
{
	const struct kvm_sregs *now = &vm->run->s.regs.sregs, *then = &s->sregs;
	if (!vsp_kvm_sync_regs() || vm->sregs_changed)
		return true;
	/* What a guest can change from CPL 3: selectors (and with them bases) of its data segments. */
	const struct kvm_segment *a[] = { &now->cs, &now->ds, &now->es, &now->fs, &now->gs, &now->ss };
	const struct kvm_segment *b[] = { &then->cs, &then->ds, &then->es, &then->fs, &then->gs, &then->ss };
	for (int i = 0; i < 6; i++)
		if (memcmp(a[i], b[i], sizeof(*a[i])) != 0)
			return true;
	/* Only CPL 0 could change these; compared anyway, since it costs nothing. */
	if (memcmp(&now->tr, &then->tr, sizeof(now->tr)) != 0 || memcmp(&now->ldt, &then->ldt, sizeof(now->ldt)) != 0 ||
	    memcmp(&now->gdt, &then->gdt, sizeof(now->gdt)) != 0 || memcmp(&now->idt, &then->idt, sizeof(now->idt)) != 0)
		return true;
	return now->cr0 != then->cr0 || now->cr3 != then->cr3 || now->cr4 != then->cr4 || now->efer != then->efer;
}

/*
 * The CPU state a restore must put back, with as few vCPU ioctls (~7 µs each on kvm_pvm) as it
 * can: segment registers only when they differ from the snapshot's (a guest at CPL 3 can reload
 * its data segment selectors, and the host changes FS base for arch_prctl); general registers
 * through kvm_run's sync area, which the next KVM_RUN loads; x87/SSE state, MXCSR included, with
 * KVM_SET_XSAVE.
 */
static int put_back_cpu(const struct vsp_snapshot *s, struct vsp_vm *vm)
{
	if (sregs_differ(s, vm)) {
		if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s->sregs) < 0)
			return -errno;
		vm->sregs_changed = false;
	}
	if (vsp_kvm_sync_regs()) {
		vm->run->s.regs.regs = s->regs;
		vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
	} else if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &s->regs) < 0) {
		return -errno;
	}
	return ioctl(vm->vcpu_fd, KVM_SET_XSAVE, &s->xsave) < 0 ? -errno : 0;
}

int vsp_snapshot_restore(const struct vsp_snapshot *s, struct vsp_vm *vm)
{
	int r;
	if (s->mem_size != vm->mem_size)
		return -EINVAL;
	/*
	 * No complete_exit() here: the call ended with an MMIO *write* (the RESULT doorbell), which
	 * KVM has fully emulated, RIP included, before exiting; its completion on the next KVM_RUN
	 * only clears a flag and leaves the registers handed over through the sync area alone.
	 * A sandbox rewrites every page its memory holds except those the guest cannot write.
	 */
	bool sandbox = vm->tier == VSP_TIER_PROCESS;
	if ((r = sandbox ? vsp_sandbox_collect_pages(vm) : vsp_vm_collect_dirty(vm)) < 0)
		return r;
	for (uint64_t w = 0, words = (vsp_pages(vm) + 63) / 64; w < words; w++) {
		uint64_t bits = vm->ever_dirty[w] | vm->host_dirty[w];
		vm->host_dirty[w] = 0;
		while (bits) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(bits);
			bits &= bits - 1;
			int64_t i = find_page(s, p);
			const uint8_t *from_image = image_page(s->image, p * PAGE);
			if (i >= 0)
				memcpy(vm->mem + p * PAGE, s->data + (uint64_t)i * PAGE, PAGE);
			else if (from_image)
				memcpy(vm->mem + p * PAGE, from_image, PAGE);
			else
				memset(vm->mem + p * PAGE, 0, PAGE);
		}
	}
	if ((r = vsp_mm_copy(&vm->mm, &s->mm)) < 0)
		return r;
	return sandbox ? vsp_sandbox_rewind(vm) : put_back_cpu(s, vm);
}
