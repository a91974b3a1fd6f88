/*
 * The guest's brk heap and anonymous mmap region, managed by the host. The heap grows up from the
 * end of the image; mmap hands out pages top-down from below the stack guard; they fail (and the
 * call is marked out-of-memory) where they would meet. Freed pages are returned to the kernel, so
 * they read back as zero, as fresh anonymous memory must.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vm.h"

#define PAGE VSP_PAGE_SIZE
#define LINUX_MAP_FIXED     0x10
#define LINUX_MAP_ANONYMOUS 0x20
#define LINUX_MAP_FIXED_NOREPLACE 0x100000

static uint64_t page_up(uint64_t v)
{
	return (v + PAGE - 1) & ~(PAGE - 1);
}

static bool page_used(const struct vsp_mm *mm, uint64_t addr)
{
	uint64_t i = (addr - mm->mmap_base) / PAGE;
	return mm->used[i / 8] & (1u << (i % 8));
}

bool vsp_mm_page_used(const struct vsp_mm *mm, uint64_t addr)
{
	return addr >= mm->mmap_base && addr < mm->mmap_top && page_used(mm, addr);
}

static uint64_t bitmap_bytes(const struct vsp_mm *mm)
{
	return (mm->mmap_top - mm->mmap_base) / PAGE / 8 + 1;
}

int vsp_mm_copy(struct vsp_mm *dst, const struct vsp_mm *src)
{
	uint8_t *used = dst->used;
	if (!used || dst->mmap_base != src->mmap_base || dst->mmap_top != src->mmap_top) {
		free(used);
		used = malloc(bitmap_bytes(src));
		if (!used)
			return -ENOMEM;
	}
	memcpy(used, src->used, bitmap_bytes(src));
	*dst = *src;
	dst->used = used;
	return 0;
}

static void mark(struct vsp_mm *mm, uint64_t addr, uint64_t len, bool used)
{
	for (uint64_t a = addr; a < addr + len; a += PAGE) {
		uint64_t i = (a - mm->mmap_base) / PAGE;
		uint8_t bit = (uint8_t)(1u << (i % 8));
		if (!(mm->used[i / 8] & bit) == used)
			mm->mapped += used ? 1 : (uint64_t)-1;
		if (used)
			mm->used[i / 8] |= bit;
		else
			mm->used[i / 8] &= (uint8_t)~bit;
	}
	if (mm->mapped > mm->peak_mapped)
		mm->peak_mapped = mm->mapped;
}

void vsp_mm_reset_peak(struct vsp_mm *mm)
{
	mm->peak_brk = mm->brk;
	mm->peak_mapped = mm->mapped;
}

uint64_t vsp_mm_peak_bytes(const struct vsp_vm *vm)
{
	const struct vsp_mm *mm = &vm->mm;
	uint64_t image = vm->image ? vm->image->end - VSP_IMAGE_BASE : 0;
	return image + (page_up(mm->peak_brk) - mm->brk_base) + mm->peak_mapped * PAGE;
}

static bool range_free(const struct vsp_mm *mm, uint64_t addr, uint64_t len)
{
	for (uint64_t a = addr; a < addr + len; a += PAGE)
		if (page_used(mm, a))
			return false;
	return true;
}

/*
 * Gives pages back to the kernel: the guest sees zeros there next time. A sandbox's memory is a
 * shared memfd, where MADV_DONTNEED would only drop the host's view: the pages are freed instead.
 */
static void discard(struct vsp_vm *vm, uint64_t addr, uint64_t len)
{
	if (len) {
		if (vm->tier == VSP_TIER_PROCESS)
			madvise(vm->mem + addr, len, MADV_REMOVE);
		else
			madvise(vm->mem + addr, len, MADV_DONTNEED);
		vsp_mark_host_write(vm, addr, len);
	}
}

int vsp_mm_init(struct vsp_vm *vm, uint64_t image_end)
{
	struct vsp_mm *mm = &vm->mm;
	memset(mm, 0, sizeof(*mm));
	mm->brk_base = mm->brk = mm->peak_brk = mm->mmap_base = page_up(image_end);
	mm->mmap_top = vm->mem_size - VSP_STACK_SIZE - VSP_GUARD_SIZE;
	if (mm->mmap_base >= mm->mmap_top)
		return -ENOMEM;
	mm->used = calloc(bitmap_bytes(mm), 1);
	return mm->used ? 0 : -ENOMEM;
}

void vsp_mm_free(struct vsp_vm *vm)
{
	free(vm->mm.used);
	vm->mm.used = NULL;
}

uint64_t vsp_mm_brk(struct vsp_vm *vm, uint64_t addr)
{
	struct vsp_mm *mm = &vm->mm;
	if (addr < mm->brk_base || addr == mm->brk)
		return mm->brk;
	uint64_t old_end = page_up(mm->brk), new_end = page_up(addr);
	if (addr > mm->brk) {
		if (addr > mm->mmap_top || !range_free(mm, old_end, new_end - old_end)) {
			mm->oom = true;
			return mm->brk; /* Linux's way of saying no */
		}
	} else {
		/* Shrinking: the bytes given up must read as zero if the heap grows back. */
		memset(vm->mem + addr, 0, page_up(addr) - addr);
		vsp_mark_host_write(vm, addr, page_up(addr) - addr);
		discard(vm, new_end, old_end - new_end);
	}
	mm->brk = addr;
	if (addr > mm->peak_brk)
		mm->peak_brk = addr;
	return mm->brk;
}

/* Lowest address of a free run of `len` bytes, searched from the top; 0 if none. */
static uint64_t find_free(const struct vsp_mm *mm, uint64_t len)
{
	uint64_t floor = page_up(mm->brk), run = 0;
	for (uint64_t a = mm->mmap_top; a > floor; a -= PAGE) {
		run = page_used(mm, a - PAGE) ? 0 : run + PAGE;
		if (run == len)
			return a - PAGE;
	}
	return 0;
}

int64_t vsp_mm_mmap(struct vsp_vm *vm, uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd)
{
	struct vsp_mm *mm = &vm->mm;
	(void)prot; /* the guest protects nothing from itself that the host must enforce */
	if (!(flags & LINUX_MAP_ANONYMOUS) || fd != -1)
		return -ENODEV; /* no files in a virtine */
	if (len == 0 || len > mm->mmap_top)
		return -EINVAL;
	len = page_up(len);

	if (flags & (LINUX_MAP_FIXED | LINUX_MAP_FIXED_NOREPLACE)) {
		if (addr % PAGE || addr < page_up(mm->brk) || addr > mm->mmap_top || len > mm->mmap_top - addr)
			return -EINVAL;
		if ((flags & LINUX_MAP_FIXED_NOREPLACE) && !range_free(mm, addr, len))
			return -EEXIST;
		discard(vm, addr, len);
		mark(mm, addr, len, true);
		return (int64_t)addr;
	}
	uint64_t a = find_free(mm, len);
	if (!a) {
		mm->oom = true;
		return -ENOMEM;
	}
	mark(mm, a, len, true);
	return (int64_t)a;
}

int64_t vsp_mm_munmap(struct vsp_vm *vm, uint64_t addr, uint64_t len)
{
	struct vsp_mm *mm = &vm->mm;
	if (addr % PAGE || len == 0)
		return -EINVAL;
	len = page_up(len);
	if (addr < mm->mmap_base || addr > mm->mmap_top || len > mm->mmap_top - addr)
		return -EINVAL;
	mark(mm, addr, len, false);
	discard(vm, addr, len);
	return 0;
}
