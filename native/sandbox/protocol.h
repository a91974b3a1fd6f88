/*
 * What the host (native/src/sandbox.c) tells the sandbox helper (native/sandbox/shim.c) when it
 * starts one, over the socket the helper gets as fd 3. Guest memory arrives as fd 4 (a memfd of
 * the guest's whole memory, laid out as in a virtine: include/vespid_abi.h).
 */
#ifndef VSP_SANDBOX_PROTOCOL_H
#define VSP_SANDBOX_PROTOCOL_H

#include <stdint.h>

#define VSP_SANDBOX_FD_SOCK 3
#define VSP_SANDBOX_FD_MEM  4

/* The helper is linked here, far above any guest memory (include/vespid_abi.h). */
#define VSP_SANDBOX_BASE 0x100000000000ull

/*
 * The syscall that is a hypercall: served by the host through a seccomp user notification, and
 * only when made from the helper's own stub. vserver (236) is a syscall Linux never implemented.
 */
#define VSP_SANDBOX_HYPERCALL 236

/* Hypercall return value that tells the stub to reload the snapshot's registers (sandbox.c). */
#define VSP_SANDBOX_RESTORE 0x5e57043e5e57043eull

/*
 * The signals the helper turns into a FAULT hypercall, as a mask of bits 1 << (signal - 1):
 * SIGILL 4, SIGTRAP 5, SIGBUS 7, SIGFPE 8, SIGSEGV 11. Each one's handler runs with all of them
 * blocked and never returns, so the sandbox's blocked mask holds them only after the kernel
 * delivered one.
 */
#define VSP_SANDBOX_FAULT_SIGNALS ((1ull << 3) | (1ull << 4) | (1ull << 6) | (1ull << 7) | (1ull << 10))

enum vsp_sandbox_mode {
	VSP_SANDBOX_PROBE = 0,  /* set everything up short of seccomp, report, exit */
	VSP_SANDBOX_BOOT = 1,   /* start the image at its entry point */
	VSP_SANDBOX_RESUME = 2, /* guest memory holds a snapshot: reload its registers and go on */
};

/* A run of guest pages mapped with one protection. */
struct vsp_sandbox_range {
	uint64_t start, end;    /* guest addresses, page aligned */
	uint32_t prot;          /* PROT_READ | PROT_WRITE or PROT_READ | PROT_EXEC or PROT_READ */
	uint32_t pad;
};

#define VSP_SANDBOX_MAX_RANGES 16
#define VSP_SANDBOX_MAX_FILTER 256 /* BPF instructions */

struct vsp_sandbox_config {
	uint32_t mode;
	uint32_t nranges;
	uint64_t mem_size;
	uint64_t entry, rsp;    /* VSP_SANDBOX_BOOT */
	uint64_t as_limit;      /* RLIMIT_AS */
	uint32_t host_uid;      /* the unprivileged host uid the guest runs as (mapped to 1000) */
	uint32_t in_userns;     /* clone already made the user namespace (host not root) */
	uint32_t filter_len;    /* instructions in filter */
	uint32_t pad;
	struct vsp_sandbox_range ranges[VSP_SANDBOX_MAX_RANGES];
	uint64_t filter[VSP_SANDBOX_MAX_FILTER]; /* struct sock_filter, 8 bytes each (libseccomp's) */
};

/* The helper's answer when setup fails: the step and its errno. Success closes the socket. */
struct vsp_sandbox_error {
	char step[56];
	int32_t err;
	int32_t pad;
};

#endif
