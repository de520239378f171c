/*
 * The compressed tier's worker: reclaim (the clock picks cold pages, they are write-protected,
 * compressed, committed to the store and dropped), for memory.reclaim jobs and --mem-limit.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "../util.h"
#include "memtier_priv.h"

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * gm_discard() is giving pages [idx, idx + nr) back to the host (gm->lock held): their stored
 * copies go too, and those in the chunk the worker is scanning are marked gone, so its commit
 * does not store what it read of them (zeros, or a guest write it cannot protect).
 */
void mt_on_discard(void *opaque, uint64_t idx, uint64_t nr)
{
	struct memtier *t = opaque;
	uint64_t lo = MAX(idx, t->scan_first), hi = MIN(idx + nr, t->scan_first + t->scan_n);

	cs_drop(&t->store, idx, nr);
	for (uint64_t i = idx; i < idx + nr && i < t->clock.nr_pages; i++)
		wsc_set_incompressible(&t->clock, i, false);
	for (uint64_t i = lo; i < hi; i++)
		t->scan_gone[(i - t->scan_first) / 64] |= 1ULL << ((i - t->scan_first) % 64);
}

/* Page @idx of the chunk being scanned was discarded since the scan began. gm->lock held. */
static bool scan_gone(const struct memtier *t, uint64_t idx)
{
	uint64_t i = idx - t->scan_first;

	return idx < t->scan_first || i >= t->scan_n || (t->scan_gone[i / 64] >> (i % 64) & 1);
}

/*
 * Open (@n > 0) or close (@n == 0) the scan window of chunk [@first, @first + @n). Opened before
 * anything of the chunk is sampled (mincore, pagemap, the state map): a discard after that is
 * seen by on_discard(); one before it is seen by the sampling.
 */
static void scan_window(struct memtier *t, uint64_t first, uint64_t n)
{
	pthread_mutex_lock(&t->gm->lock);
	t->scan_first = first;
	t->scan_n = n;
	memset(t->scan_gone, 0, sizeof(t->scan_gone));
	pthread_mutex_unlock(&t->gm->lock);
}

static int ensure_registered(struct memtier *t, uint64_t chunk)
{
	uint64_t first = chunk * WSC_CHUNK, n;
	uint8_t *hva = t->gm->base + first * PG;
	int ret;

	if (t->registered[chunk])
		return 0;
	n = MIN((uint64_t)WSC_CHUNK, t->gm->nr_pages - first);
	ret = uffd_register(t->uffd, hva, n * PG, true);
	if (ret) {
		pr_err_ratelimited("compressed tier: UFFDIO_REGISTER: %s", strerror(-ret));
		return ret;
	}
	/* Fault-ins are 4 KiB; keep khugepaged from re-collapsing what was split. */
	madvise(hva, n * PG, MADV_NOHUGEPAGE);
	t->registered[chunk] = 1;
	__atomic_add_fetch(&t->registered_pages, n, __ATOMIC_RELAXED);
	return 0;
}

/* Call @fn on every run of consecutive pages in sorted @idx[0..k) that @sel (NULL: all) picks. */
static int for_runs(struct memtier *t, const uint64_t *idx, const bool *sel, unsigned int k,
		    int (*fn)(struct memtier *t, uint8_t *hva, size_t len, void *arg), void *arg)
{
	int ret = 0;

	for (unsigned int i = 0; i < k;) {
		unsigned int j = i + 1;
		int r;

		if (sel && !sel[i]) {
			i++;
			continue;
		}
		while (j < k && idx[j] == idx[j - 1] + 1 && (!sel || sel[j]))
			j++;
		r = fn(t, t->gm->base + idx[i] * PG, (j - i) * PG, arg);
		if (r)
			ret = r;
		i = j;
	}
	return ret;
}

static int run_madvise(struct memtier *t, uint8_t *hva, size_t len, void *arg)
{
	(void)t;
	return madvise(hva, len, (int)(intptr_t)arg) ? -errno : 0;
}

static int run_wp(struct memtier *t, uint8_t *hva, size_t len, void *arg)
{
	return uffd_writeprotect(t->uffd, hva, len, arg != NULL, true);
}

static void set_window(struct memtier *t, uintptr_t lo, uintptr_t hi)
{
	pthread_mutex_lock(&t->wlock);
	t->batch_lo = lo;
	t->batch_hi = hi;
	pthread_mutex_unlock(&t->wlock);
}

/*
 * Present pages hold guest data: resident ones, free-reported ones the guest has taken back, and
 * ballooned ones it wrote again (before its deflate reached us, or against the balloon contract):
 * nothing tells the host, present means the guest wrote them. All of them may be evicted (and
 * leave the ballooned and reported counts); otherwise a guest could hold memory outside
 * --mem-limit by writing into its balloon.
 */
static bool evictable_state(uint8_t st)
{
	return st == GM_PAGE_RESIDENT || st == GM_PAGE_REPORTED || st == GM_PAGE_BALLOONED;
}

/*
 * Test hook: flip a byte of the stored copy of page @idx, one whose flip the decoder must notice.
 * Called with gm->lock held, right after the page was stored and dropped, so the guest's next touch
 * of it is what finds the damage.
 */
static void test_corrupt_locked(struct memtier *t, uint64_t idx)
{
	struct cs_entry e;
	unsigned int byte;

	if (!cs_take(&t->store, idx, &e))
		return;
	/* Prefer a flip that still decompresses, so the checksum is what catches it. */
	for (byte = e.len / 2; byte < 3u * e.len; byte++) {
		int ret;

		e.blob[byte % e.len] ^= 0x10;
		ret = cs_decode(&t->enc, idx, &e, t->enc.buf);
		if (ret == -EBADMSG || (ret && byte >= 2u * e.len))
			break;
		e.blob[byte % e.len] ^= 0x10; /* harmless or undecodable: try the next byte */
	}
	byte %= e.len;
	if (cs_insert(&t->store, idx, &e))
		cs_entry_free(&e);
	t->test_corrupted = true;
	pr_warn("compressed tier: test hook: flipped byte %u of the stored copy of guest page "
		"0x%" PRIx64,
		byte, idx_gpa(t->gm, idx));
}

/*
 * Commit the encoded pages of a batch: store them and drop them from guest RAM, except those a
 * discard gave back since the chunk's scan began (scan_gone(): what was read of them may be the
 * zero page, and a guest write after that read is not write-protected).
 */
static unsigned int commit(struct memtier *t, const uint64_t *idx, struct cs_entry *ent, bool *drop,
			   unsigned int k, struct memtier_result *r)
{
	struct guest_mem *gm = t->gm;
	unsigned int evicted = 0;

	pthread_mutex_lock(&gm->lock);
	for (unsigned int j = 0; j < k; j++) {
		struct cs_entry e = ent[j];

		drop[j] = false;
		if (e.kind == CS_EMPTY || scan_gone(t, idx[j]) ||
		    !evictable_state(gm->state[idx[j]]) || cs_insert(&t->store, idx[j], &ent[j]))
			continue;
		gm_set_state_locked(gm, idx[j], GM_PAGE_COMPRESSED);
		drop[j] = true;
		evicted++;
		if (e.kind == CS_SAME) {
			r->same_pages++;
		} else {
			r->compressed_pages++;
			r->output_bytes += e.len;
		}
	}
	for (unsigned int i = 0, j; i < k; i = j) {
		for (j = i + 1; drop[i] && j < k && drop[j] && idx[j] == idx[j - 1] + 1; j++)
			;
		if (!drop[i] || !madvise(gm->base + idx[i] * PG, (j - i) * PG, MADV_DONTNEED))
			continue;
		/* This run could not be dropped: it stays resident and its copies go. */
		pr_err_ratelimited("compressed tier: MADV_DONTNEED: %s", strerror(errno));
		inc(&t->errors);
		for (unsigned int m = i; m < j; m++) {
			cs_drop(&t->store, idx[m], 1);
			gm_set_state_locked(gm, idx[m], GM_PAGE_RESIDENT);
			evicted--;
		}
	}
	/* Test hook: the first compressed page stored at or above test_corrupt_gpa, once. */
	for (unsigned int j = 0; t->cfg.test_corrupt && !t->test_corrupted && j < k; j++)
		if (drop[j] && idx_gpa(gm, idx[j]) >= t->cfg.test_corrupt_gpa &&
		    cs_first(&t->store, idx[j], t->cfg.algo == CS_ALGO_ZSTD ? CS_ZSTD : CS_LZ4) ==
			    idx[j])
			test_corrupt_locked(t, idx[j]);
	pthread_mutex_unlock(&gm->lock);
	for (unsigned int j = 0; j < k; j++)
		cs_entry_free(&ent[j]);
	return evicted;
}

/*
 * Evict the pages @idx[0..k) (sorted, one chunk): lift KSM merging and write-protect them, encode
 * them, commit, then lift the protection (which wakes any writer that waited) and restore merging.
 */
static int evict_batch(struct memtier *t, const uint64_t *idx, unsigned int k,
		       struct memtier_result *r)
{
	struct guest_mem *gm = t->gm;
	struct cs_entry ent[BATCH];
	bool drop[BATCH];
	unsigned int evicted = 0;
	uint64_t c0;
	int ret;

	ret = ensure_registered(t, idx[0] / WSC_CHUNK);
	if (ret)
		return ret;
	set_window(t, (uintptr_t)(gm->base + idx[0] * PG),
		   (uintptr_t)(gm->base + (idx[k - 1] + 1) * PG));
	/* A KSM merge replaces the PTE and with it the write protection: no merging meanwhile. */
	if (gm->mergeable &&
	    for_runs(t, idx, NULL, k, run_madvise, (void *)(intptr_t)MADV_UNMERGEABLE)) {
		pr_err_ratelimited("compressed tier: MADV_UNMERGEABLE: %s", strerror(errno));
		ret = -EIO;
		goto out;
	}
	ret = for_runs(t, idx, NULL, k, run_wp, (void *)1);
	if (ret) {
		pr_err_ratelimited("compressed tier: write-protect: %s", strerror(-ret));
		goto unprotect;
	}
	c0 = cpu_ns();
	for (unsigned int j = 0; j < k; j++) {
		int res = cs_encode(&t->enc, idx[j], gm->base + idx[j] * PG, &ent[j]);

		r->input_bytes += PG;
		if (res == CS_R_INCOMPRESSIBLE) {
			r->incompressible_pages++;
			wsc_set_incompressible(&t->clock, idx[j], true);
		} else if (res >= 0) {
			wsc_set_incompressible(&t->clock, idx[j], false);
		}
	}
	r->cpu_ns += cpu_ns() - c0;
	evicted = commit(t, idx, ent, drop, k, r);
unprotect:
	if (for_runs(t, idx, NULL, k, run_wp, NULL)) {
		inc(&t->errors);
		pr_err_ratelimited("compressed tier: write-unprotect failed");
	}
out:
	if (gm->mergeable)
		for_runs(t, idx, NULL, k, run_madvise, (void *)(intptr_t)MADV_MERGEABLE);
	set_window(t, 0, 0);
	r->evicted_pages += evicted;
	return ret ? ret : (int)evicted;
}

/* One step of the hand: pick the cold pages of chunk [first, first + n) and evict them. */
static int64_t scan_chunk(struct memtier *t, uint64_t first, uint64_t n, unsigned int pass,
			  struct memtier_result *r)
{
	struct guest_mem *gm = t->gm;
	uint8_t *hva = gm->base + first * PG;
	unsigned char vec[WSC_CHUNK];
	uint64_t pm[WSC_CHUNK], cand[WSC_CHUNK];
	uint8_t st[WSC_CHUNK];
	int8_t idle[WSC_CHUNK];
	unsigned int k = 0;
	int64_t evicted = 0;

	scan_window(t, first, n);
	if (mincore(hva, n * PG, vec)) {
		evicted = -errno;
		goto out;
	}
	mt_read_pagemap(t, hva, n, pm);
	mt_idle_scan(t, pm, n, idle);
	pthread_mutex_lock(&gm->lock);
	memcpy(st, gm->state + first, n);
	pthread_mutex_unlock(&gm->lock);
	for (uint64_t i = 0; i < n; i++) {
		if (!(vec[i] & 1) || !evictable_state(st[i]))
			continue;
		if (!(pm[i] & PM_EXCLUSIVE)) {
			r->shared_pages++;
			continue;
		}
		switch (wsc_visit(&t->clock, first + i, pass, idle[i])) {
		case WSC_EVICT:
			cand[k++] = first + i;
			break;
		case WSC_KEEP_HOT:
			r->hot_pages++;
			break;
		case WSC_KEEP_INCOMP:
			break;
		}
	}
	for (unsigned int j = 0; j < k; j += BATCH) {
		int ret = evict_batch(t, cand + j, MIN(BATCH, k - j), r);

		if (ret < 0) {
			evicted = ret;
			break;
		}
		evicted += ret;
	}
out:
	scan_window(t, 0, 0);
	return evicted;
}

static uint64_t incompressible_resident(struct memtier *t)
{
	uint64_t n = 0;

	pthread_mutex_lock(&t->gm->lock);
	for (uint64_t i = 0; i < t->clock.nr_pages; i++)
		n += (t->clock.flags[i] & WSC_INCOMP) && evictable_state(t->gm->state[i]);
	pthread_mutex_unlock(&t->gm->lock);
	return n * PG;
}

static bool stopping(struct memtier *t)
{
	return __atomic_load_n(&t->stop, __ATOMIC_RELAXED);
}

/* The heap the store holds now (blobs and tables). */
static uint64_t store_bytes(struct memtier *t)
{
	struct cs_stats cs;

	cs_get_stats(&t->store, &cs);
	return cs.alloc_bytes;
}

/*
 * Reclaim until resident guest RAM is at most @target bytes (the worker's one job); with
 * @with_store (--mem-limit) until resident guest RAM plus the store's heap is.
 */
static void reclaim(struct memtier *t, uint64_t target, uint64_t timeout_ms, bool with_store,
		    struct memtier_result *r)
{
	uint64_t t0 = now_ns(), resident, chunks = 0, nr = t->gm->nr_pages;
	uint64_t deadline = timeout_ms ? t0 + timeout_ms * 1000000ULL : UINT64_MAX;

	memset(r, 0, sizeof(*r));
	r->target_bytes = target;
	resident = r->resident_before = gm_resident_bytes(t->gm);
	mt_dirty_start(t);
	mt_dirty_harvest(t);
	while (resident + (with_store ? store_bytes(t) : 0) > target) {
		unsigned int pass = (unsigned int)(r->scanned_pages / nr);
		uint64_t first, n;
		bool wrapped;
		int64_t ev;

		if (stopping(t)) {
			r->why = "stopped";
			break;
		}
		if (now_ns() >= deadline) {
			r->why = "timeout";
			break;
		}
		if (pass >= MAX_PASSES) {
			r->why = "nothing-left";
			break;
		}
		n = wsc_next_chunk(&t->clock, &first, &wrapped);
		ev = scan_chunk(t, first, n, pass, r);
		r->scanned_pages += n;
		if (ev < 0) {
			inc(&t->errors);
			r->why = "error";
			break;
		}
		resident -= MIN(resident, (uint64_t)ev * PG);
		if (wrapped)
			mt_dirty_harvest(t);
		if (++chunks % RESIDENT_REM == 0)
			resident = gm_resident_bytes(t->gm);
	}
	r->resident_after = gm_resident_bytes(t->gm);
	r->reached = r->resident_after + (with_store ? store_bytes(t) : 0) <= target;
	if (!r->why)
		r->why = "reached";
	r->revolutions = (unsigned int)(r->scanned_pages / nr);
	r->incompressible_resident_bytes = incompressible_resident(t);
	r->elapsed_ns = now_ns() - t0;
	pthread_mutex_lock(&t->wlock);
	t->runs++;
	t->evicted_total += r->evicted_pages;
	t->incomp_total += r->incompressible_pages;
	t->shared_total += r->shared_pages;
	t->input_total += r->input_bytes;
	t->cpu_total += r->cpu_ns;
	pthread_mutex_unlock(&t->wlock);
}

static void *worker_main(void *arg)
{
	struct memtier *t = arg;
	uint64_t period = (t->cfg.limit_period_ms ? t->cfg.limit_period_ms : 1000) * 1000000ULL;
	uint64_t next_check = now_ns() + period;

	pthread_mutex_lock(&t->wlock);
	for (;;) {
		struct memtier_result r;
		uint64_t now = now_ns();

		/*
		 * A job accepted before the stop is run even so (reclaim() ends it at once,
		 * "stopped"): its client is owed a result.
		 */
		if (t->job_pending) {
			uint64_t job = t->job, target = t->job_target, tmo = t->job_timeout_ms;

			t->job_pending = false;
			t->job_running = true;
			pthread_mutex_unlock(&t->wlock);
			reclaim(t, target, tmo, false, &r);
			r.job = job;
			/* Idle before telling: the reply may bring the next request at once. */
			pthread_mutex_lock(&t->wlock);
			t->job_running = false;
			t->last = r;
			t->done_job = job;
			pthread_cond_broadcast(&t->dcond);
			pthread_mutex_unlock(&t->wlock);
			if (t->cfg.done)
				t->cfg.done(t->cfg.opaque, &r);
			pthread_mutex_lock(&t->wlock);
			continue;
		}
		if (t->stop)
			break;
		if (t->cfg.mem_limit_bytes && now >= next_check) {
			uint64_t limit = t->cfg.mem_limit_bytes;

			next_check = now + period;
			t->limit_running = true;
			pthread_mutex_unlock(&t->wlock);
			/* Hysteresis: go 1/32 below the limit so it is not hit again at once. */
			if (gm_resident_bytes(t->gm) + store_bytes(t) > limit)
				reclaim(t, limit - limit / 32, period / 1000000 * 10, true, &r);
			pthread_mutex_lock(&t->wlock);
			t->limit_running = false;
			continue;
		}
		if (t->cfg.mem_limit_bytes) {
			struct timespec ts = {.tv_sec = next_check / 1000000000ULL,
					      .tv_nsec = next_check % 1000000000ULL};

			pthread_cond_timedwait(&t->wcond, &t->wlock, &ts);
		} else {
			pthread_cond_wait(&t->wcond, &t->wlock);
		}
	}
	pthread_mutex_unlock(&t->wlock);
	return NULL;
}

int mt_start_worker(struct memtier *t)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	int ret;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->wcond, &ca);
	pthread_cond_init(&t->dcond, &ca);
	pthread_condattr_destroy(&ca);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -vmm_thread_create_role(&t->worker, VMM_THREAD_RECLAIM, worker_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return ret;
	pthread_setname_np(t->worker, "vmm-reclaim");
	t->worker_started = true;
	return 0;
}
