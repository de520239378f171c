/*
 * Snapshot and restore of a whole machine (issue 14; docs/snapshot.md).
 *
 * A snapshot is a directory: DIR/state (vmm/snapshot/format.h: the machine's configuration,
 * the in-kernel irqchip/PIT/clock, every vCPU, the page state map and every device) and
 * DIR/memory (vmm/snapshot/memory.h: guest RAM, sparse). DIR/state is written last, so a
 * directory without it holds no complete snapshot.
 *
 * Create: the VM is paused (vCPUs parked after completing their last exit), devices quiesced
 * (in-flight disk requests completed), the state and memory written, then the VM resumed (or
 * stopped). Restore: a new process builds the same machine from the saved configuration (the
 * same devices in the same slots), maps the memory, loads the in-kernel, device and vCPU state,
 * moves the guest's clocks on by the real time that passed, and starts the vCPUs.
 */
#ifndef VMM_SNAPSHOT_SNAPSHOT_H
#define VMM_SNAPSHOT_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "format.h"
#include "memory.h"

struct machine;
struct machine_config;

struct snapshot_result {
	uint64_t pause_ns;    /* the guest was paused this long */
	uint64_t total_ns;    /* the whole command */
	uint64_t state_bytes; /* DIR/state */
	struct snap_mem_stats mem;
};

/**
 * snapshot_create() - write a snapshot of @m into directory @dir (created mode 0700 if needed;
 * an older snapshot there is replaced). The VM must be running or paused; it is paused for the
 * duration and then resumed when it was running; with @stop it stays paused (the caller stops
 * it once its reply is out).
 * Runs on the event-loop thread (the control socket's snapshot.create). @r may be NULL.
 * Returns 0, or -errno with a one-line reason in @why (then the VM is resumed as it was).
 */
int snapshot_create(struct machine *m, const char *dir, bool stop, struct snapshot_result *r,
		    char *why, size_t why_len);

/* A snapshot opened for restore. */
struct snapshot_restore {
	struct snap_image img;
	char dir[4096];
	enum snap_mem_mode mode;
	char *disk_paths[8];
};

/**
 * snapshot_open() - parse --restore's argument @arg ("DIR[,memory=private|copy]"), load and
 * check DIR/state, and fill @cfg (zeroed by the caller, runtime options such as the control
 * socket and the console set afterwards) with the snapshotted machine's configuration.
 * Returns 0, or -errno with one line for the user in @why (another build, a corrupt file, ...).
 */
int snapshot_open(const char *arg, struct snapshot_restore *r, struct machine_config *cfg,
		  char *why, size_t why_len);

/**
 * snapshot_parse_config() - the machine configuration of the parsed image r->img into @cfg
 * (zeroed by the caller); disk paths are owned by @r. Returns 0 or -EINVAL (malformed).
 * Part of snapshot_open(); the fuzz target tests/fuzz/fuzz_snapshot.c calls it directly.
 */
int snapshot_parse_config(struct snapshot_restore *r, struct machine_config *cfg);

/**
 * snapshot_restore() - after machine_create(@m, cfg from snapshot_open()): map the memory, load
 * the page state map, the in-kernel state, the devices and the vCPUs, and start the vCPUs (the
 * VM is then running, as after machine_start()). Returns 0 or -errno with @why set.
 */
int snapshot_restore(struct machine *m, struct snapshot_restore *r, char *why, size_t why_len);

/** snapshot_close() - release what snapshot_open() holds (after the machine is destroyed). */
void snapshot_close(struct snapshot_restore *r);

#endif
