/* vsp-run: runs invocations from the command line, for debugging the engine without Node.
 *   vsp-run IMAGE PARAMS_JSON [INIT_FILE] [MEMORY_MB] [TIMEOUT_MS]
 * Environment: VSP_INIT_ONLY=1 boots to the ready point only; VSP_KEY=name starts calls from a
 * snapshot of that name; VSP_REPEAT=n runs the call n times (the logs and result of the last). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/vespid_engine.h"

static uint8_t *read_file(const char *path, uint64_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (uint64_t)n;
	return buf;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s IMAGE PARAMS_JSON [INIT_FILE] [MEMORY_MB] [TIMEOUT_MS]\n", argv[0]);
		return 2;
	}
	static uint8_t result[1 << 20], logs[1 << 20];
	struct vsp_request req = {
		.image_path = argv[1],
		.params = (const uint8_t *)argv[2], .params_len = strlen(argv[2]),
		.memory_mb = argc > 4 ? (uint32_t)atoi(argv[4]) : 64,
		.timeout_ms = argc > 5 ? (uint32_t)atoi(argv[5]) : 5000,
		.flags = getenv("VSP_INIT_ONLY") ? VSP_FLAG_INIT_ONLY : 0,
		.snapshot_key = getenv("VSP_KEY"),
		.result = result, .result_cap = sizeof(result), .logs = logs, .logs_cap = sizeof(logs),
		/* VSP_TIER=process runs it in a sandboxed process instead of a virtine */
		.tier = getenv("VSP_TIER") && strcmp(getenv("VSP_TIER"), "process") == 0 ? VSP_TIER_PROCESS : VSP_TIER_KVM,
	};
	if (argc > 3 && !(req.init = read_file(argv[3], &req.init_len))) {
		perror(argv[3]);
		return 2;
	}
	struct vsp_outcome out;
	int repeat = getenv("VSP_REPEAT") ? atoi(getenv("VSP_REPEAT")) : 1;
	for (int i = 0; i < repeat; i++) {
		if (vsp_run(&req, &out) < 0) {
			fprintf(stderr, "vsp_run: invalid arguments\n");
			return 2;
		}
		if (repeat > 1)
			printf("call %d: status=%d micros=%llu cold=%llu warm=%llu cpu_micros=%llu memory_peak=%llu\n", i,
			       out.status, (unsigned long long)out.micros, (unsigned long long)out.cold_start,
			       (unsigned long long)out.warm, (unsigned long long)out.cpu_micros,
			       (unsigned long long)out.memory_peak);
	}
	int64_t c[8];
	vsp_pool_counters(c);
	printf("pool: hits=%lld misses=%lld colds=%lld evictions=%lld snapshots=%lld bytes=%lld idle=%lld\n",
	       (long long)c[0], (long long)c[1], (long long)c[2], (long long)c[3], (long long)c[4], (long long)c[5],
	       (long long)c[6]);
	for (uint64_t off = 0; off + VSP_LOG_HEADER <= out.logs_len;) {
		uint32_t len;
		memcpy(&len, logs + off + 8, 4);
		printf("log[%u]: %.*s", logs[off + 12], (int)len, logs + off + VSP_LOG_HEADER);
		off += VSP_LOG_HEADER + len;
	}
	printf("status=%d exits=%llu micros=%llu result=%.*s\n", out.status, (unsigned long long)out.exits,
	       (unsigned long long)out.micros, (int)out.result_len, result);
	free((void *)req.init);
	return 0;
}
