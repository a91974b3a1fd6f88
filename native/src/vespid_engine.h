/*
 * The engine's whole public interface, called from Node through koffi (runner/engine-native.ts).
 * A call blocks its thread for one invocation; the runner calls it on worker threads.
 */
#ifndef VESPID_ENGINE_H
#define VESPID_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/* Only what this header declares is exported from libvespid.so (built with -fvisibility=hidden). */
#define VSP_API __attribute__((visibility("default")))

/* How an invocation ended (vsp_outcome.status). Mirrored in runner/engine-native.ts. */
enum vsp_status {
	VSP_OK = 0,          /* the guest returned a JSON result */
	VSP_ERROR = 1,       /* the guest reported an error (uncaught exception, bad return) */
	VSP_TIMEOUT = 2,     /* stopped at the deadline */
	VSP_CRASH = 3,       /* guest fault, bad hypercall, early exit */
	VSP_OOM = 4,         /* guest ran out of memory and then failed */
	VSP_INTERNAL = 5,    /* the host could not run the guest (bad image, KVM failure) */
};

/*
 * Isolation tiers (vsp_request.tier). Both run the same guest images with the same semantics:
 * a virtine on KVM, or a sandboxed process (namespaces, empty root, seccomp) where KVM is missing.
 * Mirrored in runner/engine-native.ts.
 */
enum vsp_tier {
	VSP_TIER_KVM = 0,
	VSP_TIER_PROCESS = 1,
};

struct vsp_request {
	const char *image_path;   /* static ELF linked at VSP_IMAGE_BASE */
	const uint8_t *init;      /* VSP_INPUT_INIT bytes (JS source), may be NULL */
	uint64_t init_len;
	const uint8_t *params;    /* VSP_INPUT_PARAMS bytes (JSON) */
	uint64_t params_len;
	uint32_t memory_mb;       /* guest memory, 16 .. 512 */
	uint32_t timeout_ms;      /* wall-clock limit */
	uint32_t flags;           /* VSP_FLAG_* */
	/*
	 * Names the snapshot this call may start from: the same key must always mean the same image,
	 * init bytes and memory size (the runner uses the code hash). NULL or "": boot a fresh VM.
	 */
	const char *snapshot_key;
	uint8_t *result;          /* out: result (VSP_OK) or error message (other statuses) */
	uint64_t result_cap;
	uint8_t *logs;            /* out: log records, see vsp_log_record */
	uint64_t logs_cap;
	uint32_t tier;            /* enum vsp_tier */
};

/*
 * Boot and initialise only: the call ends, VSP_OK with result "{}", when the guest first asks for
 * its parameters (the point a snapshot would be taken). Checks that an action's code loads.
 */
#define VSP_FLAG_INIT_ONLY 1u

struct vsp_outcome {
	int32_t status;           /* enum vsp_status */
	int32_t logs_truncated;   /* 1 when a log record did not fit */
	uint64_t result_len;
	uint64_t logs_len;
	uint64_t micros;          /* wall time of the invocation inside the engine */
	uint64_t exits;           /* exits to the host (doorbells and others) */
	uint64_t cold_start;      /* 1 when this call booted the VM and took the snapshot */
	/*
	 * CPU time the call consumed, µs: the worker thread's (the vCPU in KVM_RUN, and the host's
	 * serving of exits or hypercalls) plus, in the process tier, the sandbox process's own.
	 */
	uint64_t cpu_micros;
	/*
	 * Peak guest memory of the call, bytes: the image plus the heap (brk) and the anonymous mmap
	 * region at their largest during the call, as the engine hands them out (both tiers alike).
	 * A cold start counts its boot and init; the stack (at most 2 MiB) is not counted.
	 */
	uint64_t memory_peak;
	/* 1 when the call started from a VM of its snapshot (an idle one or one built from it): no boot, no init */
	uint64_t warm;
};

/* Fields of struct vsp_outcome, in order, that vsp_collect_fields() can copy out. */
#define VSP_OUTCOME_FIELDS 10

/*
 * Log records are packed back to back in vsp_request.logs:
 *   u64 unix time in ns | u32 length | u8 stream (1 stdout, 2 stderr) | bytes
 */
#define VSP_LOG_HEADER 13

/*
 * Runs one invocation in its own virtine: from the snapshot named by snapshot_key (booting and
 * taking it on first use), or booted fresh without one. Returns 0, or -errno when the arguments
 * are unusable.
 */
VSP_API int vsp_run(const struct vsp_request *req, struct vsp_outcome *out);

/* 0 when the request's buffers and limits are usable by vsp_run(), -EINVAL otherwise. */
VSP_API int vsp_request_check(const struct vsp_request *req);

/*
 * Asynchronous interface for Node: the engine runs invocations on threads of its own (never on
 * Node's event loop or libuv pool) and reports each finished job through `done`, which may be
 * called from any of those threads. Inputs are copied at submission and outputs stay with the
 * engine until collected, so no caller memory is shared with a running virtine.
 */
typedef void vsp_done_fn(uint64_t job);

/*
 * Starts workers until there are `threads` (1 .. 256); later calls with the same callback may add
 * more, never fewer. Returns 0 or -errno.
 */
VSP_API int vsp_workers_start(uint32_t threads, vsp_done_fn *done);

/* Queues an invocation under the caller's `job` id. Returns 0, or -errno (-EINVAL: bad limits). */
VSP_API int vsp_submit(uint64_t job, const char *image_path, const uint8_t *init, uint64_t init_len,
	       const uint8_t *params, uint64_t params_len, uint32_t memory_mb, uint32_t timeout_ms,
	       uint32_t flags, const char *snapshot_key, uint64_t result_cap, uint64_t logs_cap, uint32_t tier);

/*
 * Copies out a finished job and forgets it: `outcome` receives the seven fields of struct
 * vsp_outcome as int64 values, in order; result and logs are copied up to their lengths, which
 * never exceed the caps given to vsp_submit. Returns 0, or -ENOENT for an unknown or unfinished job.
 */
VSP_API int vsp_collect(uint64_t job, uint8_t *result, uint64_t result_cap, uint8_t *logs, uint64_t logs_cap,
		int64_t *outcome);

/*
 * vsp_collect() with the first `fields` (1 .. VSP_OUTCOME_FIELDS) fields of struct vsp_outcome, so
 * a caller built against a shorter outcome keeps working as the struct grows. Returns 0, -EINVAL
 * for a bad `fields`, or -ENOENT as vsp_collect().
 */
VSP_API int vsp_collect_fields(uint64_t job, uint8_t *result, uint64_t result_cap, uint8_t *logs, uint64_t logs_cap,
		       int64_t *outcome, uint32_t fields);

/*
 * Snapshot pool: `bytes` bounds the memory of snapshots and idle VM shells together (0: the
 * default, 2 GiB); least recently used snapshots are evicted beyond it.
 */
VSP_API void vsp_set_pool_budget(uint64_t bytes);

/*
 * Pool counters: hits, misses, cold starts, evictions, snapshots, bytes (snapshots and idle
 * shells), idle shells, bytes of the snapshots alone.
 */
VSP_API void vsp_pool_counters(int64_t out[8]);

/* Non-zero when /dev/kvm can be opened; fills `why` (if given) with the reason otherwise. */
VSP_API int vsp_available(char *why, uint64_t why_cap);

/*
 * Non-zero when `tier` can run guests on this host; otherwise fills `why` (if given) with the
 * reason, e.g. "/dev/kvm: No such file or directory" or "user namespaces: Operation not permitted".
 */
VSP_API int vsp_tier_available(uint32_t tier, char *why, uint64_t why_cap);

#endif
