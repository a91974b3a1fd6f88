/* /dev/kvm, VM and vCPU lifetime. Errors are returned as -errno; nothing here aborts. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sandbox.h"
#include "vm.h"

#define MAX_CPUID_ENTRIES 256

static pthread_once_t kvm_once = PTHREAD_ONCE_INIT;
static int kvm_fd = -ENODEV;
static struct kvm_cpuid2 *supported_cpuid;

static void kvm_open_once(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		kvm_fd = -errno;
		return;
	}
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		close(fd);
		kvm_fd = -ENOTSUP;
		return;
	}
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + MAX_CPUID_ENTRIES * sizeof(cpuid->entries[0]));
	if (!cpuid) {
		close(fd);
		kvm_fd = -ENOMEM;
		return;
	}
	cpuid->nent = MAX_CPUID_ENTRIES;
	if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		free(cpuid);
		close(fd);
		kvm_fd = -errno;
		return;
	}
	supported_cpuid = cpuid;
	kvm_fd = fd;
}

bool vsp_kvm_sync_regs(void)
{
	static int has = -1;
	if (has < 0)
		has = ioctl(vsp_kvm_fd(), KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) > 0;
	return has;
}

int vsp_kvm_fd(void)
{
	pthread_once(&kvm_once, kvm_open_once);
	return kvm_fd;
}

int vsp_vm_create(struct vsp_vm *vm, uint64_t mem_size)
{
	int kvm = vsp_kvm_fd();
	int err;

	memset(vm, 0, sizeof(*vm));
	vm->vm_fd = vm->vcpu_fd = -1;
	if (kvm < 0)
		return kvm;

	vm->vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		goto fail_errno;

	/* NORESERVE: a 512 MiB guest costs only the pages it touches. */
	vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		goto fail_errno;
	}
	vm->mem_size = mem_size;

	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = mem_size,
		.userspace_addr = (uint64_t)vm->mem,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		goto fail_errno;

	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		goto fail_errno;

	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (int)sizeof(struct kvm_run))
		goto fail_errno;
	vm->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		goto fail_errno;
	}
	vm->run_size = run_size;
	/* Every exit leaves the segment registers in kvm_run for free: a restore compares, not reads. */
	if (vsp_kvm_sync_regs())
		vm->run->kvm_valid_regs = KVM_SYNC_X86_SREGS;

	if (ioctl(vm->vcpu_fd, KVM_SET_CPUID2, supported_cpuid) < 0)
		goto fail_errno;

	size_t bitmap = (vsp_pages(vm) + 63) / 64 * sizeof(uint64_t);
	vm->host_dirty = calloc(1, bitmap);
	vm->ever_dirty = calloc(1, bitmap);
	vm->dirty_scratch = calloc(1, bitmap);
	if (!vm->host_dirty || !vm->ever_dirty || !vm->dirty_scratch) {
		errno = ENOMEM;
		goto fail_errno;
	}
	return 0;

fail_errno:
	err = errno ? -errno : -EIO;
	vsp_vm_destroy(vm);
	return err;
}

int vsp_vm_log_dirty(struct vsp_vm *vm)
{
	/*
	 * Manual-protect mode: KVM_GET_DIRTY_LOG neither clears the log nor write-protects pages
	 * again, so a page costs one write fault in the life of the VM and the log stays the sticky
	 * set of everything ever written. Without the capability the classic mode works too, only
	 * slower: ever_dirty accumulates what each call reports either way.
	 */
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
				      .args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE } };
	if (ioctl(vsp_kvm_fd(), KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0)
		ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap);
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = 0,
		.memory_size = vm->mem_size,
		.userspace_addr = (uint64_t)vm->mem,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return -errno;
	return 0;
}

int vsp_vm_collect_dirty(struct vsp_vm *vm)
{
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = vm->dirty_scratch };
	if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return -errno;
	for (uint64_t i = 0, n = (vsp_pages(vm) + 63) / 64; i < n; i++)
		vm->ever_dirty[i] |= vm->dirty_scratch[i];
	return 0;
}

void vsp_vm_destroy(struct vsp_vm *vm)
{
	if (vm->tier == VSP_TIER_PROCESS) {
		vsp_sandbox_destroy(vm);
		return;
	}
	vsp_mm_free(vm);
	vsp_image_put(vm->image);
	free(vm->host_dirty);
	free(vm->ever_dirty);
	free(vm->dirty_scratch);
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	memset(vm, 0, sizeof(*vm));
	vm->vm_fd = vm->vcpu_fd = -1;
}
