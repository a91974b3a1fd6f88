/*
 * The engine's whole public interface, called from Node through koffi (runner/engine-native.ts).
 * A call blocks its thread for one invocation; the runner calls it on worker threads.
 */
#ifndef VESPID_ENGINE_H
#define VESPID_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/* How an invocation ended (vsp_outcome.status). Mirrored in runner/engine-native.ts. */
enum vsp_status {
	VSP_OK = 0,          /* the guest returned a JSON result */
	VSP_ERROR = 1,       /* the guest reported an error (uncaught exception, bad return) */
	VSP_TIMEOUT = 2,     /* stopped at the deadline */
	VSP_CRASH = 3,       /* guest fault, bad hypercall, early exit */
	VSP_OOM = 4,         /* guest ran out of memory and then failed */
	VSP_INTERNAL = 5,    /* the host could not run the guest (bad image, KVM failure) */
};

struct vsp_request {
	const char *image_path;   /* static ELF linked at VSP_IMAGE_BASE */
	const uint8_t *init;      /* VSP_INPUT_INIT bytes (JS source), may be NULL */
	uint64_t init_len;
	const uint8_t *params;    /* VSP_INPUT_PARAMS bytes (JSON) */
	uint64_t params_len;
	uint32_t memory_mb;       /* guest memory, 16 .. 512 */
	uint32_t timeout_ms;      /* wall-clock limit */
	uint8_t *result;          /* out: result (VSP_OK) or error message (other statuses) */
	uint64_t result_cap;
	uint8_t *logs;            /* out: log records, see vsp_log_record */
	uint64_t logs_cap;
};

struct vsp_outcome {
	int32_t status;           /* enum vsp_status */
	int32_t logs_truncated;   /* 1 when a log record did not fit */
	uint64_t result_len;
	uint64_t logs_len;
	uint64_t micros;          /* wall time of the invocation inside the engine */
	uint64_t exits;           /* exits to the host (doorbells and others) */
};

/*
 * Log records are packed back to back in vsp_request.logs:
 *   u64 unix time in ns | u32 length | u8 stream (1 stdout, 2 stderr) | bytes
 */
#define VSP_LOG_HEADER 13

/* Runs one invocation in a fresh virtine. Returns 0, or -errno when the arguments are unusable. */
int vsp_run(const struct vsp_request *req, struct vsp_outcome *out);

/* Non-zero when /dev/kvm can be opened; fills `why` (if given) with the reason otherwise. */
int vsp_available(char *why, uint64_t why_cap);

#endif
