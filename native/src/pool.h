/*
 * Snapshots and idle VM shells, per snapshot key (an action version and its memory size), under
 * one memory budget with least-recently-used eviction. A lease is what one invocation holds.
 */
#ifndef VSP_POOL_H
#define VSP_POOL_H

#include "vm.h"

struct vsp_pool_entry;

struct vsp_lease {
	struct vsp_pool_entry *entry;   /* NULL: a one-off VM outside the pool */
	struct vsp_vm vm;
	bool have_vm;
	bool reusable;                  /* the call ended cleanly: restore the VM and keep it */
};

/*
 * Finds or creates the entry for `key` (of that memory size and tier) and hands back a VM (or
 * sandbox) ready at the snapshot point: an idle shell (hit), a new one from the snapshot (miss),
 * or, for the first caller of a key, nothing: then *cold is set and the caller boots a VM and
 * publishes its snapshot with vsp_pool_publish().
 */
int vsp_pool_acquire(const char *key, uint64_t mem_size, uint32_t tier, struct vsp_lease *lease, bool *cold);
/* Hands the snapshot of a cold start to the entry; waiters wake up. NULL: the boot failed. */
void vsp_pool_publish(struct vsp_lease *lease, struct vsp_snapshot *snap);
/* Ends a lease: a reusable VM is restored and kept idle, any other destroyed. */
void vsp_pool_release(struct vsp_lease *lease);
/* engine.c: vsp_run() without the release, so the caller can answer before the VM is restored. */
int vsp_run_leased(const struct vsp_request *req, struct vsp_outcome *out, struct vsp_lease *lease);

/* Sets the memory budget for snapshots and idle shells, in bytes (0: default). */
void vsp_pool_set_budget(uint64_t bytes);
/* hits, misses, cold starts, evictions, entries, bytes, idle shells, bytes of snapshots alone */
void vsp_pool_stats(int64_t out[8]);

#endif
