/*
 * Worker threads that run submitted invocations, so that Node only ever makes short synchronous
 * calls into the engine. Jobs own copies of their inputs and buffers for their outputs; a finished
 * job waits in the table until vsp_collect() copies it out.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "vespid_engine.h"

#define MAX_THREADS 256

struct job {
	uint64_t id;
	bool finished;
	char *image_path;
	char *snapshot_key;
	uint8_t *init, *params, *result, *logs;
	struct vsp_request req;
	struct vsp_outcome out;
	struct job *next;      /* in the queue while waiting, in the finished list after */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queued = PTHREAD_COND_INITIALIZER;
static struct job *queue_head, *queue_tail, *finished;
static vsp_done_fn *on_done;
static uint32_t started;

static void job_free(struct job *j)
{
	free(j->image_path);
	free(j->snapshot_key);
	free(j->init);
	free(j->params);
	free(j->result);
	free(j->logs);
	free(j);
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (!queue_head)
			pthread_cond_wait(&queued, &lock);
		struct job *j = queue_head;
		queue_head = j->next;
		if (!queue_head)
			queue_tail = NULL;
		pthread_mutex_unlock(&lock);

		struct vsp_lease lease;
		vsp_run_leased(&j->req, &j->out, &lease);

		pthread_mutex_lock(&lock);
		j->finished = true;
		j->next = finished;
		finished = j;
		uint64_t id = j->id;
		pthread_mutex_unlock(&lock);
		on_done(id);
		/* Restoring the VM for the next call happens after the answer is on its way. */
		vsp_pool_release(&lease);
		vsp_cpu_mark();
	}
	return NULL;
}

int vsp_workers_start(uint32_t threads, vsp_done_fn *done)
{
	if (threads == 0 || threads > MAX_THREADS || !done)
		return -EINVAL;
	pthread_mutex_lock(&lock);
	int err = 0;
	if (!on_done)
		on_done = done;
	if (done == on_done) { /* a later, larger request adds threads: one pool per process */
		for (; started < threads; started++) {
			pthread_t t;
			pthread_attr_t attr;
			pthread_attr_init(&attr);
			pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
			err = -pthread_create(&t, &attr, worker, NULL);
			pthread_attr_destroy(&attr);
			if (err)
				break;
		}
	}
	pthread_mutex_unlock(&lock);
	return started ? 0 : err;
}

static uint8_t *copy(const uint8_t *src, uint64_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	if (p && len)
		memcpy(p, src, len);
	return p;
}

int vsp_submit(uint64_t job, const char *image_path, const uint8_t *init, uint64_t init_len,
	       const uint8_t *params, uint64_t params_len, uint32_t memory_mb, uint32_t timeout_ms,
	       uint32_t flags, const char *snapshot_key, uint64_t result_cap, uint64_t logs_cap, uint32_t tier)
{
	if (!started)
		return -ENOTCONN;
	if (!image_path || (!init && init_len) || (!params && params_len))
		return -EINVAL;
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->id = job;
	j->image_path = strdup(image_path);
	j->snapshot_key = strdup(snapshot_key ? snapshot_key : "");
	j->init = copy(init, init_len);
	j->params = copy(params, params_len);
	j->result = malloc(result_cap ? result_cap : 1);
	j->logs = malloc(logs_cap ? logs_cap : 1);
	if (!j->image_path || !j->snapshot_key || !j->init || !j->params || !j->result || !j->logs) {
		job_free(j);
		return -ENOMEM;
	}
	j->req = (struct vsp_request){
		.image_path = j->image_path, .init = j->init, .init_len = init_len,
		.params = j->params, .params_len = params_len,
		.memory_mb = memory_mb, .timeout_ms = timeout_ms, .flags = flags, .snapshot_key = j->snapshot_key,
		.result = j->result, .result_cap = result_cap, .logs = j->logs, .logs_cap = logs_cap,
		.tier = tier,
	};
	/* Reject bad limits now, not on a worker where nobody could be told. */
	if (vsp_request_check(&j->req) < 0) {
		job_free(j);
		return -EINVAL;
	}
	pthread_mutex_lock(&lock);
	if (queue_tail)
		queue_tail->next = j;
	else
		queue_head = j;
	queue_tail = j;
	pthread_cond_signal(&queued);
	pthread_mutex_unlock(&lock);
	return 0;
}

int vsp_collect(uint64_t job, uint8_t *result, uint64_t result_cap, uint8_t *logs, uint64_t logs_cap,
		int64_t *outcome)
{
	return vsp_collect_fields(job, result, result_cap, logs, logs_cap, outcome, 7);
}

int vsp_collect_fields(uint64_t job, uint8_t *result, uint64_t result_cap, uint8_t *logs, uint64_t logs_cap,
		       int64_t *outcome, uint32_t nfields)
{
	if (nfields == 0 || nfields > VSP_OUTCOME_FIELDS)
		return -EINVAL;
	pthread_mutex_lock(&lock);
	struct job **pp = &finished;
	while (*pp && (*pp)->id != job)
		pp = &(*pp)->next;
	struct job *j = *pp;
	if (j)
		*pp = j->next;
	pthread_mutex_unlock(&lock);
	if (!j)
		return -ENOENT;

	uint64_t rlen = j->out.result_len < result_cap ? j->out.result_len : result_cap;
	uint64_t llen = j->out.logs_len < logs_cap ? j->out.logs_len : logs_cap;
	memcpy(result, j->result, rlen);
	memcpy(logs, j->logs, llen);
	const int64_t fields[VSP_OUTCOME_FIELDS] = {
		j->out.status, j->out.logs_truncated, (int64_t)rlen, (int64_t)llen, (int64_t)j->out.micros,
		(int64_t)j->out.exits, (int64_t)j->out.cold_start, (int64_t)j->out.cpu_micros,
		(int64_t)j->out.memory_peak, (int64_t)j->out.warm,
	};
	memcpy(outcome, fields, nfields * sizeof(fields[0]));
	job_free(j);
	return 0;
}
