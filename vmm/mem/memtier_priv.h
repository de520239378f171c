/*
 * Internals of the compressed tier (memtier.h), shared by its files, one per thread:
 *   memtier.c        lifecycle and the API (any thread)
 *   memtier_fault.c  the userfaultfd thread: fault-in of stored pages, write-protect faults
 *   memtier_evict.c  the worker: the reclaim loop (clock, write-protect, compress, commit)
 *   memtier_age.c    the page-age signals the worker reads: KVM dirty log, pagemap, idle pages
 */
#ifndef VMM_MEM_MEMTIER_PRIV_H
#define VMM_MEM_MEMTIER_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "compress_store.h"
#include "guest_mem.h"
#include "memtier.h"
#include "uffd.h"
#include "wsclock.h"

#define PG	     GM_PAGE_SIZE
#define BATCH	     64u    /* pages write-protected and compressed together */
#define LAT_RING     16384u /* fault-in latency samples kept */
#define RESIDENT_REM 64u    /* chunks between two gm_resident_bytes() during a reclaim */
#define MAX_PASSES   3u	    /* revolutions per reclaim: 2 honour references, the 3rd does not */

/* /proc/self/pagemap bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT   (1ULL << 63)
#define PM_EXCLUSIVE (1ULL << 56)
#define PM_PFN_MASK  ((1ULL << 55) - 1)

struct memtier {
	struct guest_mem *gm;
	struct memtier_config cfg;
	struct cs_store store;
	bool test_corrupted; /* the test hook has run (under gm->lock) */
	struct wsclock clock;
	int uffd;
	struct uffd_thread *uthread;
	struct cs_codec dec; /* the userfaultfd thread's */
	uint8_t *fault_buf;  /* its page buffer for UFFDIO_COPY */
	uint8_t *zero_buf;
	struct cs_codec enc; /* the worker's */
	int pagemap_fd, idle_fd;
	uint8_t *registered; /* per WSC_CHUNK chunk: registered with userfaultfd (worker only) */
	uint64_t nr_chunks, registered_pages;
	bool dirty_on, dirty_failed;
	uint64_t *dirty_bm[2];
	/*
	 * The chunk the worker is scanning, [scan_first, scan_first + scan_n), and its pages that
	 * gm_discard() gave back since the scan began (bit i: page scan_first + i). Under gm->lock.
	 */
	uint64_t scan_first, scan_n;
	uint64_t scan_gone[WSC_CHUNK / 64];

	pthread_t worker;
	bool worker_started;
	pthread_mutex_t wlock; /* everything below up to the latency ring */
	pthread_cond_t wcond;  /* wakes the worker */
	pthread_cond_t dcond;  /* a job finished */
	bool stop, job_pending, job_running, limit_running;
	uint64_t next_job, job, job_target, job_timeout_ms;
	uint64_t done_job;
	struct memtier_result last;
	uintptr_t batch_lo, batch_hi; /* host range write-protected by the worker right now */
	uint64_t runs, evicted_total, incomp_total, shared_total, input_total, cpu_total;
	uint64_t wp_faults;

	/* Touched by the userfaultfd thread (atomics). */
	uint64_t faults, faults_stored, faults_zero, errors, csum_errors;
	bool dead;

	pthread_mutex_t lat_lock;
	uint32_t *lat;
	uint64_t lat_n;
};

static inline void inc(uint64_t *v)
{
	__atomic_add_fetch(v, 1, __ATOMIC_RELAXED);
}

/* Guest-physical address of state-map page @idx (for messages). */
static inline uint64_t idx_gpa(const struct guest_mem *gm, uint64_t idx)
{
	for (unsigned int i = gm->nr_regions; i-- > 0;)
		if (idx >= gm->regions[i].first_pg)
			return gm->regions[i].gpa + (idx - gm->regions[i].first_pg) * PG;
	return idx * PG;
}

/* memtier_fault.c: the userfaultfd thread's handlers (uffd_thread_start()). */
extern const struct uffd_ops mt_fault_ops;

/* memtier_age.c (worker only). */
/* Dirty logging on every RAM slot (slot i = region i, as vm.c maps them), once. */
void mt_dirty_start(struct memtier *t);
/* Pages the guest wrote since the last harvest are referenced. */
void mt_dirty_harvest(struct memtier *t);
/* pagemap entries of the @n pages at @hva into @pm (PM_*); unknown: present and exclusive. */
void mt_read_pagemap(struct memtier *t, const uint8_t *hva, uint64_t n, uint64_t *pm);
/* Idle-page tracking of the @n pages with pagemap entries @pm: @idle (enum wsc_idle), re-armed. */
void mt_idle_scan(struct memtier *t, const uint64_t *pm, uint64_t n, int8_t *idle);

/* memtier_evict.c. */
/* The gm_discard() hook (gm_set_discard_hook()): drops stored copies, marks scanned pages gone. */
void mt_on_discard(void *opaque, uint64_t idx, uint64_t nr);
/* Start the worker thread ("vmm-reclaim"). Returns 0 or -errno. */
int mt_start_worker(struct memtier *t);

#endif
