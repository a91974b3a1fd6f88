/* The snapshot pool: see pool.h. One mutex guards the table; VM work happens outside it. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

#define BUCKETS 1024
#define MAX_KEY 256
#define DEFAULT_BUDGET (2ull << 30)  /* bytes of snapshots and idle shells */
#define MAX_IDLE 16                  /* idle shells kept per entry */

struct vsp_pool_entry {
	char key[MAX_KEY];
	uint64_t mem_size;
	uint32_t tier;
	struct vsp_snapshot *snap;
	bool building;                   /* a cold start is under way */
	unsigned refs;                   /* leases out */
	struct vsp_vm idle[MAX_IDLE];
	unsigned nidle;
	uint64_t shell_bytes;            /* estimated resident bytes of the idle shells */
	uint64_t last_used;
	struct vsp_pool_entry *next;     /* hash chain */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t built = PTHREAD_COND_INITIALIZER;
static struct vsp_pool_entry *table[BUCKETS];
static uint64_t budget = DEFAULT_BUDGET, used_bytes, snapshot_bytes, clock_ticks;
static int64_t hits, misses, colds, evictions, entries, idle_shells;

static unsigned bucket_of(const char *key)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *key; key++)
		h = (h ^ (uint8_t)*key) * 16777619u;
	return h % BUCKETS;
}

static uint64_t popcount_pages(const struct vsp_vm *vm)
{
	uint64_t n = 0;
	for (uint64_t i = 0, words = (vsp_pages(vm) + 63) / 64; i < words; i++)
		n += (uint64_t)__builtin_popcountll(vm->ever_dirty[i]);
	return n;
}

/* What an idle shell is taken to cost: its copy of image and snapshot, and the pages it dirtied. */
static uint64_t shell_cost(const struct vsp_pool_entry *e, const struct vsp_vm *vm)
{
	return vsp_snapshot_vm_bytes(e->snap) + popcount_pages(vm) * VSP_PAGE_SIZE;
}

static uint64_t entry_bytes(const struct vsp_pool_entry *e)
{
	return (e->snap ? vsp_snapshot_bytes(e->snap) : 0) + e->shell_bytes;
}

/* Frees the idle shells and snapshot of unused entries, oldest first, until within budget. Locked. */
static void evict_locked(struct vsp_vm *doomed, unsigned *ndoomed, unsigned cap)
{
	while (used_bytes > budget && *ndoomed < cap) {
		struct vsp_pool_entry *oldest = NULL, **oldest_link = NULL;
		for (unsigned b = 0; b < BUCKETS; b++)
			for (struct vsp_pool_entry **link = &table[b]; *link; link = &(*link)->next)
				if ((*link)->refs == 0 && !(*link)->building &&
				    (!oldest || (*link)->last_used < oldest->last_used))
					oldest = *link, oldest_link = link;
		if (!oldest)
			return;
		while (oldest->nidle && *ndoomed < cap) {
			doomed[(*ndoomed)++] = oldest->idle[--oldest->nidle];
			idle_shells--;
		}
		if (oldest->nidle)
			return; /* out of room to hand shells back; the next release continues */
		used_bytes -= entry_bytes(oldest);
		if (oldest->snap)
			snapshot_bytes -= vsp_snapshot_bytes(oldest->snap);
		*oldest_link = oldest->next;
		vsp_snapshot_free(oldest->snap);
		free(oldest);
		entries--;
		evictions++;
	}
}

static struct vsp_pool_entry *lookup_locked(const char *key, uint64_t mem_size, uint32_t tier)
{
	unsigned b = bucket_of(key);
	for (struct vsp_pool_entry *e = table[b]; e; e = e->next)
		if (e->mem_size == mem_size && e->tier == tier && strcmp(e->key, key) == 0)
			return e;
	struct vsp_pool_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	strcpy(e->key, key);
	e->mem_size = mem_size;
	e->tier = tier;
	e->next = table[b];
	table[b] = e;
	entries++;
	return e;
}

int vsp_pool_acquire(const char *key, uint64_t mem_size, uint32_t tier, struct vsp_lease *lease, bool *cold)
{
	memset(lease, 0, sizeof(*lease));
	*cold = false;
	if (strlen(key) >= MAX_KEY)
		return -ENAMETOOLONG;

	pthread_mutex_lock(&lock);
	struct vsp_pool_entry *e = lookup_locked(key, mem_size, tier);
	if (!e) {
		pthread_mutex_unlock(&lock);
		return -ENOMEM;
	}
	e->refs++;
	e->last_used = ++clock_ticks;
	lease->entry = e;
	while (e->building)
		pthread_cond_wait(&built, &lock);
	if (e->nidle) {
		lease->vm = e->idle[--e->nidle];
		lease->have_vm = true;
		idle_shells--;
		uint64_t cost = shell_cost(e, &lease->vm);
		e->shell_bytes -= cost < e->shell_bytes ? cost : e->shell_bytes;
		used_bytes -= cost < used_bytes ? cost : used_bytes;
		hits++;
		pthread_mutex_unlock(&lock);
		return 0;
	}
	if (!e->snap) {
		e->building = true;
		colds++;
		*cold = true;
		pthread_mutex_unlock(&lock);
		return 0;
	}
	misses++;
	struct vsp_snapshot *snap = e->snap; /* immutable, and kept alive by our reference */
	pthread_mutex_unlock(&lock);

	int r = vsp_snapshot_instantiate(snap, &lease->vm);
	if (r < 0)
		return r;
	lease->have_vm = true;
	return 0;
}

void vsp_pool_publish(struct vsp_lease *lease, struct vsp_snapshot *snap)
{
	struct vsp_pool_entry *e = lease->entry;
	pthread_mutex_lock(&lock);
	e->building = false;
	if (snap) {
		e->snap = snap;
		used_bytes += vsp_snapshot_bytes(snap);
		snapshot_bytes += vsp_snapshot_bytes(snap);
	}
	pthread_cond_broadcast(&built);
	pthread_mutex_unlock(&lock);
}

void vsp_pool_release(struct vsp_lease *lease)
{
	struct vsp_pool_entry *e = lease->entry;
	struct vsp_vm doomed[MAX_IDLE + 1];
	unsigned ndoomed = 0;

	if (!e) {
		if (lease->have_vm)
			vsp_vm_destroy(&lease->vm);
		return;
	}
	/* Restoring touches only this VM and the immutable snapshot: no lock needed. */
	bool keep = lease->have_vm && lease->reusable && e->snap && vsp_snapshot_restore(e->snap, &lease->vm) == 0;

	pthread_mutex_lock(&lock);
	if (e->building) { /* a cold start that ended before publishing */
		e->building = false;
		pthread_cond_broadcast(&built);
	}
	if (keep && e->nidle < MAX_IDLE) {
		uint64_t cost = shell_cost(e, &lease->vm);
		e->idle[e->nidle++] = lease->vm;
		e->shell_bytes += cost;
		used_bytes += cost;
		idle_shells++;
	} else if (lease->have_vm) {
		doomed[ndoomed++] = lease->vm;
	}
	e->refs--;
	evict_locked(doomed, &ndoomed, MAX_IDLE + 1);
	pthread_mutex_unlock(&lock);

	for (unsigned i = 0; i < ndoomed; i++)
		vsp_vm_destroy(&doomed[i]);
	memset(lease, 0, sizeof(*lease));
}

void vsp_pool_set_budget(uint64_t bytes)
{
	pthread_mutex_lock(&lock);
	budget = bytes ? bytes : DEFAULT_BUDGET;
	pthread_mutex_unlock(&lock);
}

void vsp_set_pool_budget(uint64_t bytes)
{
	vsp_pool_set_budget(bytes);
}

void vsp_pool_counters(int64_t out[8])
{
	vsp_pool_stats(out);
}

void vsp_pool_stats(int64_t out[8])
{
	pthread_mutex_lock(&lock);
	out[0] = hits;
	out[1] = misses;
	out[2] = colds;
	out[3] = evictions;
	out[4] = entries;
	out[5] = (int64_t)used_bytes;
	out[6] = idle_shells;
	out[7] = (int64_t)snapshot_bytes;
	pthread_mutex_unlock(&lock);
}
