/* Log records of one invocation, packed into the caller's buffer (format in vespid_engine.h). */
#include <string.h>
#include <time.h>

#include "vm.h"

void vsp_log_append(struct vsp_call *call, int stream, const uint8_t *data, uint64_t len)
{
	const struct vsp_request *req = call->req;
	struct vsp_outcome *out = call->out;
	if (out->logs_truncated || !req->logs)
		return;
	uint64_t room = req->logs_cap - out->logs_len;
	if (room <= VSP_LOG_HEADER) {
		out->logs_truncated = 1;
		return;
	}
	if (len > room - VSP_LOG_HEADER) {
		len = room - VSP_LOG_HEADER;
		out->logs_truncated = 1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	uint32_t len32 = (uint32_t)len;
	uint8_t *p = req->logs + out->logs_len;
	memcpy(p, &ns, 8);
	memcpy(p + 8, &len32, 4);
	p[12] = (uint8_t)stream;
	memcpy(p + VSP_LOG_HEADER, data, len);
	out->logs_len += VSP_LOG_HEADER + len;
}
