/*
 * libFuzzer target: the host side of the guest ABI. A hostile guest controls the frame page, the
 * memory its pointers name and which doorbell it rings; this feeds all of that from fuzz input to
 * vsp_handle_exit() (syscall emulation, input/result transfer, faults, odd exits) on a VM whose
 * memory is real but which has no vCPU. Checks: no memory error (ASan), no undefined behaviour
 * (UBSan), outputs never beyond their buffers, and the host keeps serving.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../src/vm.h"

#define MEM_SIZE (16ull << 20)
#define IMAGE_END 0x400000ull

static struct vsp_vm vm;
static struct kvm_run run;
static uint8_t result[4096], logs[4096];

static void setup_once(void)
{
	if (vm.mem)
		return;
	vm.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm.mem == MAP_FAILED)
		abort();
	vm.mem_size = MEM_SIZE;
	vm.run = &run;
	vm.vm_fd = vm.vcpu_fd = -1; /* any ioctl fails, as a dead vCPU's would */
	size_t words = (vsp_pages(&vm) + 63) / 64;
	vm.host_dirty = calloc(words, 8);
	vm.ever_dirty = calloc(words, 8);
	vm.dirty_scratch = calloc(words, 8);
}

struct reader {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct reader *r, size_t bytes)
{
	uint64_t v = 0;
	for (size_t i = 0; i < bytes && r->n; i++, r->n--)
		v |= (uint64_t)*r->p++ << (8 * i);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	vsp_mm_free(&vm);
	if (vsp_mm_init(&vm, IMAGE_END) < 0)
		abort();
	memset(vm.mem + VSP_GPA_FRAME, 0, VSP_PAGE_SIZE);

	static const uint8_t params[] = "{\"a\":1}", init[] = "function main(){}";
	struct vsp_request req = {
		.image_path = "fuzz", .init = init, .init_len = sizeof(init) - 1,
		.params = params, .params_len = sizeof(params) - 1, .memory_mb = 16, .timeout_ms = 1000,
		.result = result, .result_cap = sizeof(result), .logs = logs, .logs_cap = sizeof(logs),
	};
	struct vsp_outcome out = { 0 };
	struct vsp_call call = { .req = &req, .out = &out, .stop_at_params = true };
	struct reader r = { data, size };

	while (r.n) {
		uint8_t op = (uint8_t)take(&r, 1);
		volatile struct vsp_frame *f = (volatile struct vsp_frame *)(vm.mem + VSP_GPA_FRAME);
		if ((op & 7) == 6) { /* the guest writes some bytes somewhere in its memory */
			uint64_t at = VSP_SYSTEM_END + take(&r, 3) % (MEM_SIZE - VSP_SYSTEM_END - 256);
			size_t len = (size_t)take(&r, 1);
			for (size_t i = 0; i < len && r.n; i++)
				vm.mem[at + i] = (uint8_t)take(&r, 1);
			continue;
		}
		f->nr_ret = take(&r, 2) % 400;
		if (f->nr_ret == 35 || f->nr_ret == 230)
			f->nr_ret = 39; /* sleeping is bounded by the deadline timer, absent here */
		for (int i = 0; i < 6; i++)
			f->args[i] = take(&r, 1) & 1 ? VSP_SYSTEM_END + take(&r, 3) : take(&r, 8);
		f->in_kind = take(&r, 1) % 3;
		f->in_ptr = take(&r, 1) & 1 ? VSP_SYSTEM_END + take(&r, 3) : take(&r, 8);
		f->in_cap = take(&r, 3);
		f->out_status = take(&r, 1) % 3;
		f->out_ptr = take(&r, 1) & 1 ? VSP_SYSTEM_END + take(&r, 3) : take(&r, 8);
		f->out_len = take(&r, 3);

		memset(&run, 0, sizeof(run));
		switch (op & 7) {
		case 0: case 1: case 2: case 3:
			run.exit_reason = KVM_EXIT_MMIO;
			run.mmio.is_write = 1;
			run.mmio.phys_addr = VSP_GPA_DOORBELL + 8 * (op & 3);
			break;
		case 4:
			run.exit_reason = KVM_EXIT_MMIO;
			run.mmio.is_write = (uint8_t)(op >> 3) & 1;
			run.mmio.phys_addr = take(&r, 1) & 1 ? VSP_GPA_DOORBELL + take(&r, 3) : take(&r, 8);
			break;
		default:
			run.exit_reason = (uint32_t)take(&r, 1);
		}
		vsp_handle_exit(&vm, &call);
		if (out.result_len > sizeof(result) || out.logs_len > sizeof(logs))
			abort();
		if (call.done) { /* the call ended: the next input bytes drive a new one */
			memset(&out, 0, sizeof(out));
			call = (struct vsp_call){ .req = &req, .out = &out, .stop_at_params = op & 0x40 };
		}
	}
	return 0;
}
