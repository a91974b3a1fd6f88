/* /dev/kvm, VM and vCPU lifetime. Errors are returned as -errno; nothing here aborts. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

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

	if (ioctl(vm->vcpu_fd, KVM_SET_CPUID2, supported_cpuid) < 0)
		goto fail_errno;
	return 0;

fail_errno:
	err = errno ? -errno : -EIO;
	vsp_vm_destroy(vm);
	return err;
}

void vsp_vm_destroy(struct vsp_vm *vm)
{
	vsp_mm_free(vm);
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
