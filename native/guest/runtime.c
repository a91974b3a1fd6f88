/* The guest end of the doorbell protocol. Runs at CPL 3 inside the virtine. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

#define INITIAL_INPUT_CAP (64 * 1024)

static volatile struct vsp_frame *frame(void)
{
	return (volatile struct vsp_frame *)(uintptr_t)VSP_GPA_FRAME;
}

static void ring(unsigned offset)
{
	/* Everything written before (buffers included) must be in memory when the host looks. */
	__asm__ volatile("" ::: "memory");
	uint64_t fn = frame()->bell_fn;
	if (fn)
		((void (*)(uint64_t))(uintptr_t)fn)(offset); /* process tier: the sandbox's hypercall */
	else
		*(volatile uint8_t *)(uintptr_t)(VSP_GPA_DOORBELL + offset) = 0; /* virtine: an MMIO exit */
	__asm__ volatile("" ::: "memory");
}

char *vsp_input(int kind, size_t *len)
{
	size_t cap = INITIAL_INPUT_CAP;
	for (;;) {
		char *buf = malloc(cap + 1);
		if (!buf)
			vsp_finish(VSP_OUT_ERROR, "out of memory reading the input", 31);
		frame()->in_kind = (uint64_t)kind;
		frame()->in_ptr = (uint64_t)(uintptr_t)buf;
		frame()->in_cap = cap;
		ring(VSP_BELL_INPUT);
		size_t n = frame()->in_len;
		if (n <= cap) {
			buf[n] = 0;
			*len = n;
			return buf;
		}
		free(buf); /* did not fit: ask again with room for all of it */
		cap = n;
	}
}

void vsp_finish(int status, const char *data, size_t len)
{
	fflush(stdout);
	fflush(stderr);
	for (;;) {
		frame()->out_status = (uint64_t)status;
		frame()->out_ptr = (uint64_t)(uintptr_t)data;
		frame()->out_len = len;
		ring(VSP_BELL_RESULT); /* the host never resumes a finished virtine */
	}
}
