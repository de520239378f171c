/*
 * Guest RAM in a snapshot (issue 14; docs/snapshot.md): DIR/memory, one sparse file of the
 * guest's pages in state-map order (page i at byte i * 4 KiB: region 0 from GPA 0, then region 1
 * from 4 GiB). Ballooned and zero pages (and pages never touched or given back by free page
 * reporting and not reused since) are holes; pages the compressed tier holds are written
 * decompressed (read through the tier). The page state map (which pages are ballooned) is a
 * section of the state file; reported pages are resident after a restore (the guest reuses
 * them without telling the host, so that state says nothing about their content).
 *
 * Restore maps the file MAP_PRIVATE over guest RAM (SNAP_MEM_PRIVATE, the default): clones of one
 * snapshot share its page cache copy-on-write, and KSM still merges the private copies. Or it
 * reads the file into anonymous RAM (SNAP_MEM_COPY), where the compressed tier can work (its
 * userfaultfd needs anonymous memory).
 */
#ifndef VMM_SNAPSHOT_MEMORY_H
#define VMM_SNAPSHOT_MEMORY_H

#include <stdint.h>

#include "../mem/guest_mem.h"
#include "../state.h"

enum snap_mem_mode { SNAP_MEM_PRIVATE, SNAP_MEM_COPY };

struct snap_mem_stats {
	uint64_t data_pages;	   /* written */
	uint64_t zero_pages;	   /* present but all zeros: holes */
	uint64_t absent_pages;	   /* never touched or given back: holes */
	uint64_t discarded_pages;  /* ballooned or reported: holes */
	uint64_t compressed_pages; /* read back through the compressed tier, written */
	uint64_t apparent_bytes, allocated_bytes; /* of the file written */
};

/**
 * snap_memory_save() - write every guest page of @gm with content to @path (created 0600,
 * fsync'ed). @backing_fd: the memory file guest RAM is mapped from (a restored guest), or -1:
 * then a page absent from this process reads as zeros; with a backing file it has that file's
 * content. The VM must be paused. @st may be NULL. Returns 0 or -errno (message printed).
 */
int snap_memory_save(struct guest_mem *gm, int backing_fd, const char *path,
		     struct snap_mem_stats *st);

/** snap_memory_state_save() - the page state map (ballooned/reported ranges) into @o. */
void snap_memory_state_save(struct guest_mem *gm, struct state_out *o);

/**
 * snap_memory_state_load() - set the page state map from @in (ranges checked against
 * gm->nr_pages). Returns 0 or -EINVAL.
 */
int snap_memory_state_load(struct guest_mem *gm, struct state_in *in);

/**
 * snap_memory_map() - back guest RAM of @gm with the memory file @path (size must be exactly
 * gm->size): @mode SNAP_MEM_PRIVATE maps it MAP_PRIVATE|MAP_FIXED over the RAM mapping (then
 * *@fd_out is the open file, which the caller keeps open as the backing fd for later
 * snapshots); SNAP_MEM_COPY reads its data extents into the anonymous mapping (*@fd_out -1).
 * Before any vCPU runs. Returns 0 or -errno with one line in @why (missing, wrong size, ...).
 */
int snap_memory_map(struct guest_mem *gm, const char *path, enum snap_mem_mode mode, int *fd_out,
		    char *why, size_t why_len);

#endif
