/*
 * The system area of a virtine (page tables, GDT, TSS, IDT, stubs) and its initial CPU state:
 * 64-bit long mode entered directly at CPL 3, no boot code. See docs/architecture.md for the map.
 */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm.h"

#define PTE_P   (1ull << 0)
#define PTE_RW  (1ull << 1)
#define PTE_US  (1ull << 2)
#define PTE_PS  (1ull << 7)
#define PTE_NX  (1ull << 63)

#define CR0_PE  (1ull << 0)
#define CR0_MP  (1ull << 1)
#define CR0_ET  (1ull << 4)
#define CR0_NE  (1ull << 5)
#define CR0_WP  (1ull << 16)
#define CR0_AM  (1ull << 18)
#define CR0_PG  (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

#define MSR_STAR   0xc0000081
#define MSR_LSTAR  0xc0000082
#define MSR_CSTAR  0xc0000083
#define MSR_SFMASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

/* GDT selectors. STAR's layout makes sysret land on USER_CS/USER_DS. */
#define SEL_KERNEL_CS 0x08
#define SEL_KERNEL_DS 0x10
#define SEL_USER_CS32 0x18
#define SEL_USER_DS   0x20
#define SEL_USER_CS   0x28
#define SEL_TSS       0x30
#define GDT_ENTRIES   8

#define RFLAGS_RESERVED 0x2ull
/* Cleared on syscall entry (at CPL 0 on real hardware): TF, IF, DF, AC. */
#define SFMASK_BITS ((1ull << 8) | (1ull << 9) | (1ull << 10) | (1ull << 18))

extern const uint8_t vsp_syscall_stub[], vsp_syscall_stub_end[];
extern const uint8_t vsp_exception_stubs[], vsp_exception_stubs_end[];

static uint64_t *table(struct vsp_vm *vm, uint64_t gpa)
{
	return (uint64_t *)(vm->mem + gpa);
}

/* PTE_RW and/or PTE_NX for the page at `addr` from the image's segments (past the image: data). */
static uint64_t image_page_rights(const struct vsp_image *img, uint64_t addr)
{
	if (addr >= img->end)
		return PTE_RW | PTE_NX;
	uint32_t flags = vsp_image_page_flags(img, addr);
	if ((flags & PF_X) && !(flags & PF_W))
		return 0;                           /* text: read and execute */
	return ((flags & PF_W) ? PTE_RW : 0) | PTE_NX; /* data, or read-only data; never both W and X */
}

static void build_page_tables(struct vsp_vm *vm)
{
	uint64_t *pml4 = table(vm, VSP_GPA_PML4), *pdpt = table(vm, VSP_GPA_PDPT);
	uint64_t *pd0 = table(vm, VSP_GPA_PD0), *pt0 = table(vm, VSP_GPA_PT0);
	uint64_t *pd1 = table(vm, VSP_GPA_PD1);
	const uint64_t dir = PTE_P | PTE_RW | PTE_US; /* leaves decide the real rights */

	pml4[0] = VSP_GPA_PDPT | dir;
	pdpt[0] = VSP_GPA_PD0 | dir;
	pdpt[1] = VSP_GPA_PD1 | dir;
	pd0[0] = VSP_GPA_PT0 | dir;

	/*
	 * The first 2 MiB: only what the CPU or the guest must reach by address. Page tables are
	 * not mapped at all; page 0 stays absent so NULL dereferences fault.
	 */
	pt0[VSP_GPA_GDT / VSP_PAGE_SIZE] = VSP_GPA_GDT | PTE_P | PTE_RW;
	pt0[VSP_GPA_IDT / VSP_PAGE_SIZE] = VSP_GPA_IDT | PTE_P;
	pt0[VSP_GPA_EXC_CODE / VSP_PAGE_SIZE] = VSP_GPA_EXC_CODE | PTE_P;
	pt0[VSP_GPA_SYSCALL / VSP_PAGE_SIZE] = VSP_GPA_SYSCALL | PTE_P | PTE_US;
	pt0[VSP_GPA_FRAME / VSP_PAGE_SIZE] = VSP_GPA_FRAME | PTE_P | PTE_RW | PTE_US;
	for (uint64_t a = VSP_GPA_IST_BASE; a < VSP_GPA_IST_TOP; a += VSP_PAGE_SIZE)
		pt0[a / VSP_PAGE_SIZE] = a | PTE_P | PTE_RW;

	/*
	 * User area in 2 MiB pages, with a hole below the stack as its guard: writable, never
	 * executable. The image's regions get 4 KiB pages instead, with its segments' rights: text
	 * read and execute, read-only data read-only, the rest (data, bss, heap) read and write.
	 */
	uint64_t guard = vm->mem_size - VSP_STACK_SIZE - VSP_GUARD_SIZE;
	for (uint64_t a = VSP_HUGE_PAGE_SIZE; a < vm->mem_size; a += VSP_HUGE_PAGE_SIZE) {
		uint64_t region = a / VSP_HUGE_PAGE_SIZE - 1;
		if (a == guard)
			continue;
		if (a < vm->image->end && region < VSP_IMAGE_PTS_MAX) {
			uint64_t pt_gpa = VSP_GPA_IMAGE_PTS + region * VSP_PAGE_SIZE;
			uint64_t *pt = table(vm, pt_gpa);
			for (uint64_t i = 0; i < 512; i++)
				pt[i] = (a + i * VSP_PAGE_SIZE) | PTE_P | PTE_US | image_page_rights(vm->image, a + i * VSP_PAGE_SIZE);
			pd0[a / VSP_HUGE_PAGE_SIZE] = pt_gpa | dir;
			continue;
		}
		pd0[a / VSP_HUGE_PAGE_SIZE] = a | PTE_P | PTE_RW | PTE_US | PTE_PS | PTE_NX;
	}

	/* The doorbell: mapped for the guest, but no memslot behind it, so every store exits. */
	pd1[0] = VSP_GPA_DOORBELL | PTE_P | PTE_RW | PTE_US | PTE_PS;
}

static void build_gdt_tss_idt(struct vsp_vm *vm)
{
	uint64_t *gdt = table(vm, VSP_GPA_GDT);
	gdt[0] = 0;
	gdt[SEL_KERNEL_CS / 8] = 0x00af9b000000ffffull; /* 64-bit code, DPL 0 */
	gdt[SEL_KERNEL_DS / 8] = 0x00cf93000000ffffull;
	/*
	 * The slot STAR's layout reserves for 32-bit user code stays null: with a 32-bit code segment
	 * to iretq to, a guest reached compatibility mode, where `syscall` enters CPL 0 at CSTAR.
	 * (sysretq to 64-bit mode takes the selector 16 above it and never reads this descriptor.)
	 */
	gdt[SEL_USER_CS32 / 8] = 0;
	gdt[SEL_USER_DS / 8] = 0x00cff3000000ffffull;
	gdt[SEL_USER_CS / 8] = 0x00affb000000ffffull;   /* 64-bit code, DPL 3 */
	uint64_t tss = VSP_GPA_TSS, limit = 103;
	gdt[SEL_TSS / 8] = (limit & 0xffff) | ((tss & 0xffffff) << 16) | (0x89ull << 40) |
			   (((tss >> 24) & 0xff) << 56);
	gdt[SEL_TSS / 8 + 1] = tss >> 32;

	/* 64-bit TSS: RSP0 and IST1 both point at the exception stack; no I/O bitmap (base > limit). */
	uint8_t *t = vm->mem + VSP_GPA_TSS;
	uint64_t top = VSP_GPA_IST_TOP;
	memcpy(t + 4, &top, 8);   /* RSP0 */
	memcpy(t + 36, &top, 8);  /* IST1 */
	uint16_t iomap = 104;
	memcpy(t + 102, &iomap, 2);

	/* IDT: 32 interrupt gates, DPL 0 (so `int n` from the guest is a #GP), all on IST1. */
	uint64_t *idt = table(vm, VSP_GPA_IDT);
	for (uint64_t v = 0; v < 32; v++) {
		uint64_t h = VSP_GPA_EXC_CODE + 16 * v;
		idt[2 * v] = (h & 0xffff) | ((uint64_t)SEL_KERNEL_CS << 16) | (1ull << 32) /* IST1 */ |
			     (0x8eull << 40) | (((h >> 16) & 0xffff) << 48);
		idt[2 * v + 1] = h >> 32;
	}

	memcpy(vm->mem + VSP_GPA_EXC_CODE, vsp_exception_stubs,
	       (size_t)(vsp_exception_stubs_end - vsp_exception_stubs));
	memcpy(vm->mem + VSP_GPA_SYSCALL, vsp_syscall_stub,
	       (size_t)(vsp_syscall_stub_end - vsp_syscall_stub));
}

static struct kvm_segment segment(uint16_t sel, uint8_t type, uint8_t dpl, uint8_t l, uint8_t db)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type, .present = 1,
		.dpl = dpl, .db = db, .s = 1, .l = l, .g = 1,
	};
}

static int set_cpu_state(struct vsp_vm *vm, uint64_t rip, uint64_t rsp)
{
	struct kvm_sregs sregs;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
	sregs.cr3 = VSP_GPA_PML4;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
	sregs.cs = segment(SEL_USER_CS | 3, 0xb, 3, 1, 0);
	sregs.ss = segment(SEL_USER_DS | 3, 0x3, 3, 0, 1);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss;
	sregs.tr = (struct kvm_segment){ .base = VSP_GPA_TSS, .limit = 103, .selector = SEL_TSS,
					 .type = 0xb, .present = 1 };
	/*
	 * No LDT: a present LDTR (it was base 0, limit 0xffff) put the user-writable frame page under
	 * LDT selectors, and a call gate written there reached CPL 0. Unusable, every LDT selector
	 * is a #GP.
	 */
	sregs.ldt = (struct kvm_segment){ .selector = 0, .type = 0x2, .present = 0, .unusable = 1, .limit = 0 };
	sregs.gdt.base = VSP_GPA_GDT;
	sregs.gdt.limit = GDT_ENTRIES * 8 - 1;
	sregs.idt.base = VSP_GPA_IDT;
	sregs.idt.limit = 32 * 16 - 1;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	struct kvm_regs regs = { .rip = rip, .rsp = rsp, .rflags = RFLAGS_RESERVED };
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	/* x87 control word as after FNINIT; MXCSR keeps its reset value 0x1f80 (KVM_SET_FPU ignores it). */
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	if (ioctl(vm->vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;

	return vsp_layout_set_msrs(vm);
}

int vsp_layout_set_msrs(struct vsp_vm *vm)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[5];
	} msrs = {
		.hdr.nmsrs = 5,
		.e = {
			{ .index = MSR_STAR, .data = ((uint64_t)SEL_USER_CS32 << 48) | ((uint64_t)SEL_KERNEL_CS << 32) },
			{ .index = MSR_LSTAR, .data = VSP_GPA_SYSCALL },
			{ .index = MSR_CSTAR, .data = 0 },
			{ .index = MSR_SFMASK, .data = SFMASK_BITS },
			{ .index = MSR_KERNEL_GS_BASE, .data = 0 },
		},
	};
	if (ioctl(vm->vcpu_fd, KVM_SET_MSRS, &msrs) != 5)
		return -EINVAL;
	return 0;
}

int vsp_layout_init(struct vsp_vm *vm, uint64_t rip, uint64_t rsp)
{
	build_page_tables(vm);
	build_gdt_tss_idt(vm);
	return set_cpu_state(vm, rip, rsp);
}
