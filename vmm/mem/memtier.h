/*
 * The compressed memory tier (design.md "Guest memory and host reclamation", step 4, and
 * "Threads"): cold guest pages are compressed into an in-process store (compress_store.h), dropped
 * with MADV_DONTNEED, and faulted back by a userfaultfd MISSING handler (uffd.h); a clock picks the
 * cold pages (wsclock.h).
 *
 * Threads: the userfaultfd thread (fault-in: take the entry, decompress, verify its checksum,
 * UFFDIO_COPY, or UFFDIO_ZEROPAGE for a page with no entry) and the reclaim worker (clock,
 * compression, eviction). The worker never loses a guest write: before reading a page it
 * write-protects it with userfaultfd (and lifts MADV_MERGEABLE from it, since a KSM merge would
 * drop that protection), and only then compresses and drops it; a vCPU writing meanwhile waits on
 * the write-protect fault until the batch is done and then faults the stored copy back in.
 * A checksum mismatch at fault-in stops the VM through @fatal rather than hand the guest wrong
 * data.
 *
 * "Reclaim" means one thing in this project: the tier compressing cold guest pages into the store
 * and dropping them until resident guest RAM is at a target (a memory.reclaim request, or a
 * --mem-limit run). The balloon's inflate/deflate is "discard" and "clear" (guest_mem.h).
 *
 * Files, one per thread: memtier.c (lifecycle and API), memtier_fault.c (the userfaultfd thread),
 * memtier_evict.c (the worker), memtier_age.c (the page-age signals the worker reads),
 * memtier_priv.h (what they share).
 *
 * Lock order: gm->lock, then the store's lock. Nobody holds either while touching guest RAM that
 * may be missing, so the userfaultfd thread can always take them.
 */
#ifndef VMM_MEM_MEMTIER_H
#define VMM_MEM_MEMTIER_H

#include <stdbool.h>
#include <stdint.h>

#include "compress_store.h"
#include "guest_mem.h"

struct memtier;

/* One reclaim's outcome (memory.reclaim reply, docs/control.md). */
struct memtier_result {
	uint64_t job;		  /* memtier_reclaim() id; 0 for --mem-limit runs */
	uint64_t target_bytes;	  /* guest RAM resident target */
	bool reached;		  /* resident_after <= target_bytes */
	const char *why;	  /* "reached", "nothing-left", "timeout", "stopped", "error" */
	uint64_t resident_before; /* bytes of guest RAM resident (mincore) at the start */
	uint64_t resident_after;  /* ... and at the end */
	uint64_t scanned_pages;	  /* pages the clock hand passed */
	uint64_t evicted_pages;	  /* dropped from guest RAM into the store */
	uint64_t compressed_pages, same_pages; /* of those: compressed / same-filled */
	uint64_t incompressible_pages;	       /* tried, worse than 3/4: left resident */
	uint64_t shared_pages; /* skipped: not exclusively mapped (KSM-merged or zero page) */
	uint64_t hot_pages;    /* skipped: referenced since the hand last passed */
	uint64_t incompressible_resident_bytes; /* resident pages known incompressible at the end */
	uint64_t input_bytes, output_bytes; /* compressed this run: page bytes in, blob bytes out */
	uint64_t elapsed_ns, cpu_ns;	    /* wall and worker CPU time */
	unsigned int revolutions;	    /* full clock revolutions */
};

struct memtier_config {
	enum cs_algo algo;
	int level; /* cs_codec_init() level (0: default) */
	uint64_t
		mem_limit_bytes; /* keep resident guest RAM + the store heap at or below; 0: none */
	uint64_t limit_period_ms; /* how often the limit is checked (0: 1000) */
	/* KVM VM fd for dirty logging (slot i = gm region i, as vm.c maps them); -1: none. */
	int vm_fd;
	bool test_corrupt;	   /* test hook: corrupt one stored page, once: the first */
	uint64_t test_corrupt_gpa; /* compressed one stored at or above this GPA */
	/* The VM must stop: integrity failure. Called on the userfaultfd thread, must not block. */
	void (*fatal)(void *opaque, const char *msg);
	/* A memtier_reclaim() job finished. Called on the worker thread. May be NULL. */
	void (*done)(void *opaque, const struct memtier_result *r);
	void *opaque;
};

struct memtier_stats {
	const char *algo;		 /* "lz4" or "zstd" */
	uint64_t stored_pages;		 /* pages held by the store (compressed + same-filled) */
	uint64_t compressed_pages;	 /* pages held as a compressed blob */
	uint64_t compressed_bytes;	 /* blob bytes held */
	uint64_t store_alloc_bytes;	 /* heap the store holds (blobs + tables) */
	uint64_t same_filled_pages;	 /* pages held as a pattern (zero pages included) */
	uint64_t zero_pages;		 /* ... of which zero pages */
	uint64_t incompressible_skipped; /* total pages left resident: worse than 3/4 */
	uint64_t shared_skipped;	 /* total pages skipped: not exclusively mapped */
	uint64_t evicted_pages;		 /* total pages dropped into the store */
	uint64_t faults;		 /* missing faults served */
	uint64_t faults_stored;		 /* ... from a stored page (refaults) */
	uint64_t faults_zero;		 /* ... with the zero page (never stored) */
	uint64_t wp_faults;		 /* write-protect faults seen (writers that waited) */
	uint64_t fault_p50_ns, fault_p99_ns, fault_max_ns; /* fault-in service time, recent */
	uint64_t fault_samples;				   /* samples behind the percentiles */
	uint64_t reclaim_runs;				   /* reclaims finished */
	uint64_t reclaim_input_bytes;			   /* page bytes compressed, total */
	uint64_t reclaim_cpu_ns;			   /* worker CPU time, total */
	uint64_t registered_bytes; /* guest RAM registered with userfaultfd */
	uint64_t mem_limit_bytes;
	uint64_t errors;	  /* checksum failures and host call failures */
	uint64_t checksum_errors; /* stored pages that failed verification */
	bool busy;		  /* a reclaim (memory.reclaim or --mem-limit) is running */
	bool idle_tracking;	  /* /sys/kernel/mm/page_idle feeds the clock */
	bool dirty_logging;	  /* KVM dirty logging feeds the clock */
};

/**
 * memtier_create() - set up the tier for @gm (which must outlive it) and start its two threads.
 * Nothing is registered with userfaultfd until the first eviction. Installs @gm's discard hook
 * (balloon inflate and free page reporting drop stored copies).
 * Returns 0, -ENOSYS/-EPERM/-EOPNOTSUPP when userfaultfd (with write-protect) is unavailable
 * (uffd_open()), -ENOMEM, or -errno; a message is printed.
 */
int memtier_create(struct guest_mem *gm, const struct memtier_config *cfg, struct memtier **out);

/**
 * memtier_destroy() - stop the worker (it finishes its batch) and the userfaultfd thread, free the
 * store. A memtier_reclaim() job accepted before still gets its result through @done (why
 * "stopped" if it had not begun). Call after every thread that may touch guest RAM is joined
 * (vCPUs, the event loop). NULL is a no-op.
 */
void memtier_destroy(struct memtier *t);

/**
 * memtier_reclaim() - ask the worker to compress cold pages until guest RAM resident in host
 * memory is at or below @target_bytes, for at most @timeout_ms (0: no limit). Does not wait: the
 * config's @done gets the result. Sets *@job (> 0). Returns 0, or -EBUSY while one runs.
 */
int memtier_reclaim(struct memtier *t, uint64_t target_bytes, uint64_t timeout_ms, uint64_t *job);

/**
 * memtier_reclaim_sync() - memtier_reclaim() and wait for its result in *@r (tests, benches).
 * Returns 0 or -EBUSY.
 */
int memtier_reclaim_sync(struct memtier *t, uint64_t target_bytes, uint64_t timeout_ms,
			 struct memtier_result *r);

/** memtier_get_stats() - the tier's counters. Thread-safe. */
void memtier_get_stats(struct memtier *t, struct memtier_stats *out);

/** memtier_algo_name() - "lz4" or "zstd". */
const char *memtier_algo_name(enum cs_algo algo);

#endif
