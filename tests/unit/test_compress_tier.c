/*
 * The compressed tier without KVM: the clock (vmm/mem/wsclock.h), userfaultfd on ordinary
 * anonymous memory (vmm/mem/uffd.h), and the whole tier (vmm/mem/memtier.h) on guest RAM mapped by
 * gm_init() with host threads standing in for vCPUs: fault-in, integrity, balloon interplay, the
 * memory limit, and the lost-write race.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/mem/memtier.h"
#include "../../vmm/mem/wsclock.h"
#include "../../vmm/mem/uffd.h"
#include "../../vmm/util.h"

#define PG 4096u

/* --- the clock -------------------------------------------------------------------------------- */

Test(wsclock, second_chance_then_evict)
{
	struct wsclock c;

	cr_assert_eq(wsc_init(&c, 1000), 0);
	cr_assert_eq(wsc_visit(&c, 3, 0, WSC_IDLE_UNKNOWN), WSC_EVICT);
	wsc_ref(&c, 3);
	cr_assert_eq(wsc_visit(&c, 3, 0, WSC_IDLE_UNKNOWN), WSC_KEEP_HOT);
	cr_assert_eq(wsc_visit(&c, 3, 0, WSC_IDLE_UNKNOWN), WSC_EVICT, "the bit was cleared");
	wsc_ref(&c, 3);
	cr_assert_eq(wsc_visit(&c, 3, 2, WSC_IDLE_UNKNOWN), WSC_EVICT, "pass 2 ignores refs");
	cr_assert_eq(c.second_chances, 1);
	wsc_ref(&c, 5000); /* out of range: ignored */
	wsc_destroy(&c);
}

Test(wsclock, idle_tracking_feeds_references)
{
	struct wsclock c;

	cr_assert_eq(wsc_init(&c, 16), 0);
	/* Not armed yet: what the idle bit says means nothing. */
	cr_assert_eq(wsc_visit(&c, 1, 0, WSC_IDLE_ACCESSED), WSC_EVICT);
	/* Armed now: accessed since means referenced. */
	cr_assert_eq(wsc_visit(&c, 1, 0, WSC_IDLE_ACCESSED), WSC_KEEP_HOT);
	cr_assert_eq(wsc_visit(&c, 1, 0, WSC_IDLE_IDLE), WSC_EVICT);
	wsc_destroy(&c);
}

Test(wsclock, incompressible_pages_wait)
{
	struct wsclock c;

	cr_assert_eq(wsc_init(&c, 16), 0);
	wsc_set_incompressible(&c, 2, true);
	cr_assert_eq(wsc_visit(&c, 2, 0, WSC_IDLE_UNKNOWN), WSC_KEEP_INCOMP);
	c.revolutions = WSC_RETRY_REV - 1;
	cr_assert_eq(wsc_visit(&c, 2, 0, WSC_IDLE_UNKNOWN), WSC_EVICT, "retried now and then");
	wsc_set_incompressible(&c, 2, false);
	c.revolutions = 0;
	cr_assert_eq(wsc_visit(&c, 2, 0, WSC_IDLE_UNKNOWN), WSC_EVICT);
	wsc_destroy(&c);
}

Test(wsclock, hand_walks_chunks_and_wraps)
{
	struct wsclock c;
	uint64_t first, n, seen = 0;
	bool wrapped;

	cr_assert_eq(wsc_init(&c, 2 * WSC_CHUNK + 100), 0);
	n = wsc_next_chunk(&c, &first, &wrapped);
	cr_assert_eq(first, 0);
	cr_assert_eq(n, WSC_CHUNK);
	cr_assert_not(wrapped);
	seen += n;
	n = wsc_next_chunk(&c, &first, &wrapped);
	seen += n;
	n = wsc_next_chunk(&c, &first, &wrapped);
	seen += n;
	cr_assert_eq(first, 2 * WSC_CHUNK);
	cr_assert_eq(n, 100);
	cr_assert(wrapped);
	cr_assert_eq(seen, 2 * WSC_CHUNK + 100);
	cr_assert_eq(c.revolutions, 1);
	n = wsc_next_chunk(&c, &first, &wrapped);
	cr_assert_eq(first, 0);
	wsc_destroy(&c);
}

Test(wsclock, dirty_bitmap_marks_pages)
{
	struct wsclock c;
	uint64_t bits[2] = {1ULL << 5 | 1ULL << 63, 1ULL << 1};

	cr_assert_eq(wsc_init(&c, 300), 0);
	wsc_ref_bitmap(&c, 100, bits, 66);
	cr_assert(c.flags[105] & WSC_REF);
	cr_assert(c.flags[163] & WSC_REF);
	cr_assert(c.flags[165] & WSC_REF);
	cr_assert_not(c.flags[104] & WSC_REF);
	cr_assert_eq(c.refs_fed, 3);
	wsc_destroy(&c);
}

/* --- userfaultfd on ordinary memory ----------------------------------------------------------- */

static int open_or_skip(bool wp)
{
	int fd = -1, ret = uffd_open(wp, &fd);

	if (ret == -ENOSYS || ret == -EPERM || ret == -EOPNOTSUPP)
		cr_skip_test("userfaultfd%s unavailable here (%s)", wp ? " write-protect" : "",
			     strerror(-ret));
	cr_assert_eq(ret, 0, "uffd_open: %s", strerror(-ret));
	return fd;
}

struct filler {
	int fd;
	uint8_t fill;
	uint64_t missing, wp;
	uint8_t *wp_page; /* un-protect this page after the first write-protect fault */
};

static void fill_missing(void *opaque, uintptr_t addr, bool write)
{
	struct filler *f = opaque;
	static uint8_t buf[PG] __attribute__((aligned(PG)));

	(void)write;
	memset(buf, __atomic_load_n(&f->fill, __ATOMIC_SEQ_CST), PG);
	__atomic_add_fetch(&f->missing, 1, __ATOMIC_SEQ_CST);
	uffd_copy(f->fd, (void *)addr, buf, PG);
}

static void note_wp(void *opaque, uintptr_t addr)
{
	struct filler *f = opaque;

	(void)addr;
	__atomic_add_fetch(&f->wp, 1, __ATOMIC_SEQ_CST);
}

static const struct uffd_ops filler_ops = {.missing = fill_missing, .wp = note_wp};

Test(uffd, missing_faults_are_filled)
{
	struct filler f = {.fill = 0x7e};
	struct uffd_thread *th;
	uint8_t *m = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	f.fd = open_or_skip(false);
	cr_assert_neq(m, MAP_FAILED);
	m[0] = 1; /* before registration: an ordinary page */
	cr_assert_eq(uffd_register(f.fd, m, 8 * PG, false), 0);
	cr_assert_eq(uffd_thread_start(f.fd, &filler_ops, &f, &th), 0);
	cr_assert_eq(m[0], 1, "present pages do not fault");
	cr_assert_eq(m[PG + 5], 0x7e);
	cr_assert_eq(m[7 * PG], 0x7e);
	cr_assert_eq(f.missing, 2);
	/* Dropped again, it faults again. */
	cr_assert_eq(madvise(m, PG, MADV_DONTNEED), 0);
	__atomic_store_n(&f.fill, 0x11, __ATOMIC_SEQ_CST);
	cr_assert_eq(m[100], 0x11, "got %x after %lu faults", m[100], (unsigned long)f.missing);
	cr_assert_eq(uffd_zeropage(f.fd, m + 2 * PG, PG), 0);
	cr_assert_eq(m[2 * PG], 0);
	cr_assert_eq(uffd_zeropage(f.fd, m + 2 * PG, PG), -EEXIST);
	cr_assert_eq(uffd_thread_faults(th), 3);
	uffd_thread_stop(th);
	cr_assert_eq(uffd_unregister(f.fd, m, 8 * PG), 0);
	close(f.fd);
	munmap(m, 8 * PG);
}

struct writer {
	volatile uint8_t *p;
	volatile bool done;
};

static void *write_one(void *arg)
{
	struct writer *w = arg;

	w->p[0] = 0x42;
	w->done = true;
	return NULL;
}

Test(uffd, write_protect_holds_writers_until_lifted)
{
	struct filler f = {.fill = 0};
	struct uffd_thread *th;
	struct writer w;
	pthread_t tid;
	uint8_t *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	f.fd = open_or_skip(true);
	memset(m, 9, 4 * PG);
	cr_assert_eq(uffd_register(f.fd, m, 4 * PG, true), 0);
	cr_assert_eq(uffd_thread_start(f.fd, &filler_ops, &f, &th), 0);
	cr_assert_eq(uffd_writeprotect(f.fd, m, 4 * PG, true, false), 0);
	cr_assert_eq(m[PG], 9, "reads go through");
	w = (struct writer){.p = m + PG};
	pthread_create(&tid, NULL, write_one, &w);
	for (int i = 0; i < 200 && !__atomic_load_n(&f.wp, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	usleep(20000);
	cr_assert_eq(f.wp, 1, "the write raised one write-protect fault");
	cr_assert_not(w.done, "the writer waits");
	cr_assert_eq(m[PG], 9);
	cr_assert_eq(uffd_writeprotect(f.fd, m, 4 * PG, false, true), 0);
	pthread_join(tid, NULL);
	cr_assert(w.done);
	cr_assert_eq(m[PG], 0x42);
	uffd_thread_stop(th);
	close(f.fd);
	munmap(m, 4 * PG);
}

/* --- the tier on guest RAM -------------------------------------------------------------------- */

struct fatal_rec {
	int calls;
	char msg[256];
};

static void on_fatal(void *opaque, const char *msg)
{
	struct fatal_rec *f = opaque;

	snprintf(f->msg, sizeof(f->msg), "%s", msg);
	__atomic_add_fetch(&f->calls, 1, __ATOMIC_SEQ_CST);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

/* Page @i of the mix: zero, same-filled, text-like, or random, by i % 8. */
static void mix_page(uint8_t *p, uint64_t i, uint64_t gen)
{
	uint64_t *w = (uint64_t *)p;

	switch (i % 8) {
	case 0:
	case 1:
		memset(p, 0, PG);
		break;
	case 2:
		for (unsigned int k = 0; k < PG / 8; k++)
			w[k] = 0x0101010101010101ULL * (i & 0xff) + gen;
		break;
	case 7:
		for (unsigned int k = 0; k < PG / 8; k++)
			w[k] = mix(i * 1000003 + k + gen * 7919);
		break;
	default:
		for (unsigned int k = 0; k < PG; k++)
			p[k] = (uint8_t)("abcdefgh ijklmn\n"[mix(i + k / 6 + gen) % 16]);
		w[0] = i;
		w[1] = gen;
		break;
	}
}

struct tier_env {
	struct guest_mem gm;
	struct memtier *t;
	struct fatal_rec fatal;
};

static void tier_up(struct tier_env *e, uint64_t mib, bool merge, struct memtier_config *cfg)
{
	struct memtier_config def = {.algo = CS_ALGO_LZ4, .vm_fd = -1};
	int fd = -1, ret = uffd_open(true, &fd);

	if (ret)
		cr_skip_test("userfaultfd write-protect unavailable here (%s)", strerror(-ret));
	close(fd);
	memset(e, 0, sizeof(*e));
	cr_assert_eq(gm_init(&e->gm, mib * MiB, merge ? GM_MERGE : 0), 0);
	if (!cfg)
		cfg = &def;
	cfg->vm_fd = -1;
	cfg->fatal = on_fatal;
	cfg->opaque = &e->fatal;
	cr_assert_eq(memtier_create(&e->gm, cfg, &e->t), 0);
}

static void tier_down(struct tier_env *e)
{
	memtier_destroy(e->t);
	gm_destroy(&e->gm);
}

static uint64_t fill_mix(struct tier_env *e, uint64_t pages)
{
	uint8_t buf[PG];

	for (uint64_t i = 0; i < pages; i++) {
		mix_page(buf, i, 0);
		memcpy(e->gm.base + i * PG, buf, PG);
	}
	return pages;
}

static uint64_t verify_mix(struct tier_env *e, uint64_t pages)
{
	uint8_t buf[PG];
	uint64_t bad = 0;

	for (uint64_t i = 0; i < pages; i++) {
		mix_page(buf, i, 0);
		bad += memcmp(e->gm.base + i * PG, buf, PG) != 0;
	}
	return bad;
}

static void reclaim_and_verify(enum cs_algo algo, bool merge)
{
	struct memtier_config cfg = {.algo = algo};
	struct tier_env e;
	struct memtier_result r;
	struct memtier_stats st;
	uint64_t pages = 24 * MiB / PG;

	tier_up(&e, 32, merge, &cfg);
	fill_mix(&e, pages);
	cr_assert_geq(gm_resident_bytes(&e.gm), 24 * MiB);
	cr_assert_eq(memtier_reclaim_sync(e.t, 2 * MiB, 0, &r), 0);
	cr_assert_str_eq(r.why, "nothing-left", "random pages stay: %s", r.why);
	/* 1/8 of the pages are random: they and only they stay. */
	cr_assert_leq(r.resident_after, 2 * MiB + r.incompressible_resident_bytes,
		      "resident %lu, incompressible %lu", (unsigned long)r.resident_after,
		      (unsigned long)r.incompressible_resident_bytes);
	cr_assert_eq(r.incompressible_pages, pages / 8);
	cr_assert_eq(r.evicted_pages, pages - pages / 8);
	cr_assert_eq(r.same_pages, pages * 3 / 8);
	memtier_get_stats(e.t, &st);
	cr_assert_eq(st.stored_pages, pages - pages / 8);
	cr_assert_eq(st.zero_pages, pages / 4);
	cr_assert(st.compressed_bytes * 2 < st.compressed_pages * PG, "text compresses > 2:1");
	cr_assert_eq(st.registered_bytes, 24 * MiB);
	cr_assert_eq(verify_mix(&e, pages), 0, "every byte reads back");
	memtier_get_stats(e.t, &st);
	cr_assert_eq(st.faults_stored, pages - pages / 8, "%lu stored faults, %lu zero",
		     (unsigned long)st.faults_stored, (unsigned long)st.faults_zero);
	cr_assert_eq(st.stored_pages, 0);
	cr_assert_gt(st.fault_p50_ns, 0);
	cr_assert_geq(st.fault_p99_ns, st.fault_p50_ns);
	cr_assert_eq(st.errors, 0);
	cr_assert_eq(e.fatal.calls, 0);
	tier_down(&e);
}

Test(memtier, reclaim_then_fault_back_lz4, .timeout = 60)
{
	reclaim_and_verify(CS_ALGO_LZ4, false);
}

Test(memtier, reclaim_then_fault_back_zstd_mergeable, .timeout = 60)
{
	reclaim_and_verify(CS_ALGO_ZSTD, true);
}

Test(memtier, untouched_memory_costs_nothing, .timeout = 30)
{
	struct tier_env e;
	struct memtier_result r;
	struct memtier_stats st;

	tier_up(&e, 16, false, NULL);
	cr_assert_eq(memtier_reclaim_sync(e.t, 0, 0, &r), 0);
	cr_assert(r.reached);
	memtier_get_stats(e.t, &st);
	cr_assert_eq(st.registered_bytes, 0, "nothing registered without an eviction");
	cr_assert_eq(st.store_alloc_bytes, 0);
	e.gm.base[0] = 1;
	cr_assert_eq(st.faults, 0);
	tier_down(&e);
}

Test(memtier, balloon_discard_drops_stored_copies, .timeout = 30)
{
	struct tier_env e;
	struct memtier_result r;
	struct memtier_stats st;

	tier_up(&e, 16, false, NULL);
	for (uint64_t i = 0; i < 1024; i++)
		memset(e.gm.base + i * PG, 'a' + (int)(i % 7), PG - 8);
	cr_assert_eq(memtier_reclaim_sync(e.t, 0, 0, &r), 0);
	memtier_get_stats(e.t, &st);
	cr_assert_eq(st.stored_pages, 1024);
	/* Balloon inflate of pages 100..199: their copies go, they read back as zeros. */
	cr_assert_eq(gm_discard(&e.gm, 100, 100, GM_PAGE_BALLOONED), 0);
	memtier_get_stats(e.t, &st);
	cr_assert_eq(st.stored_pages, 924);
	cr_assert_eq(gm_clear_discarded(&e.gm, 100, 100), 0);
	for (uint64_t i = 100; i < 200; i++)
		for (unsigned int k = 0; k < PG; k += 512)
			cr_assert_eq(e.gm.base[i * PG + k], 0, "deflated page %lu",
				     (unsigned long)i);
	cr_assert_eq(e.gm.base[99 * PG], 'a' + 99 % 7);
	cr_assert_eq(e.gm.base[200 * PG], 'a' + 200 % 7);
	memtier_get_stats(e.t, &st);
	cr_assert_eq(st.faults_zero, 100);
	cr_assert_eq(st.faults_stored, 2, "%lu", (unsigned long)st.faults_stored);
	tier_down(&e);
}

Test(memtier, reported_pages_the_guest_reused_are_reclaimed, .timeout = 30)
{
	struct tier_env e;
	struct memtier_result r;

	tier_up(&e, 16, false, NULL);
	/* Free page reporting discarded them; then the guest allocated and wrote them again. */
	cr_assert_eq(gm_discard(&e.gm, 0, 1024, GM_PAGE_REPORTED), 0);
	cr_assert_eq(e.gm.nr_reported, 1024);
	fill_mix(&e, 1024);
	cr_assert_eq(memtier_reclaim_sync(e.t, 0, 0, &r), 0);
	cr_assert_eq(r.evicted_pages, 1024 - 1024 / 8);
	cr_assert_eq(e.gm.nr_reported, 1024 / 8, "the reclaimed ones left the reported count");
	cr_assert_eq(verify_mix(&e, 1024), 0);
	tier_down(&e);
}

Test(memtier, corrupted_copy_stops_the_vm, .timeout = 30)
{
	struct memtier_config cfg = {.algo = CS_ALGO_LZ4, .test_corrupt = true};
	struct tier_env e;
	struct memtier_result r;
	struct memtier_stats st;

	tier_up(&e, 16, false, &cfg);
	fill_mix(&e, 512);
	cr_assert_eq(memtier_reclaim_sync(e.t, 0, 0, &r), 0);
	cr_assert_eq(e.fatal.calls, 0);
	/* The corrupted page reads back as zeros once the VM is stopped: one bad page. */
	cr_assert_eq(verify_mix(&e, 512), 1);
	cr_assert_eq(__atomic_load_n(&e.fatal.calls, __ATOMIC_SEQ_CST), 1,
		     "the fault-in stopped the VM");
	cr_assert(strstr(e.fatal.msg, "checksum mismatch") || strstr(e.fatal.msg, "undecodable"),
		  "%s", e.fatal.msg);
	cr_assert(strstr(e.fatal.msg, "guest page 0x"), "%s", e.fatal.msg);
	memtier_get_stats(e.t, &st);
	cr_assert_eq(st.errors, 1);
	tier_down(&e);
}

Test(memtier, memory_limit_is_kept, .timeout = 60)
{
	struct memtier_config cfg = {
		.algo = CS_ALGO_LZ4, .mem_limit_bytes = 8 * MiB, .limit_period_ms = 20};
	struct tier_env e;
	struct memtier_stats st;
	uint64_t res = 0;

	tier_up(&e, 32, false, &cfg);
	fill_mix(&e, 24 * MiB / PG);
	for (int i = 0; i < 500; i++) {
		res = gm_resident_bytes(&e.gm);
		memtier_get_stats(e.t, &st);
		/* Only the random eighth (3 MiB) cannot go. */
		if (res <= 8 * MiB && !st.busy)
			break;
		usleep(10000);
	}
	cr_assert_leq(res, 8 * MiB, "resident %lu", (unsigned long)res);
	cr_assert_gt(st.reclaim_runs, 0);
	cr_assert_eq(verify_mix(&e, 24 * MiB / PG), 0);
	tier_down(&e);
}

/* Poll until resident guest RAM plus the store's heap is at most @limit and no reclaim runs. */
static uint64_t wait_under_limit(struct tier_env *e, uint64_t limit, struct memtier_stats *st)
{
	uint64_t held = 0;

	for (int i = 0; i < 500; i++) {
		memtier_get_stats(e->t, st);
		held = gm_resident_bytes(&e->gm) + st->store_alloc_bytes;
		if (held <= limit && !st->busy)
			break;
		usleep(10000);
	}
	return held;
}

/*
 * --mem-limit bounds guest RAM resident plus the store's heap (README), also for a guest that
 * balloons pages and then writes them again without deflating: those pages are guest data again
 * and must be evictable like any other.
 */
Test(memtier, memory_limit_holds_against_balloon_rewrite, .timeout = 60)
{
	struct memtier_config cfg = {
		.algo = CS_ALGO_LZ4, .mem_limit_bytes = 12 * MiB, .limit_period_ms = 20};
	uint64_t pages = 24 * MiB / PG, held;
	struct tier_env e;
	struct memtier_stats st;

	tier_up(&e, 32, false, &cfg);
	/* Text-like pages only (mix_page 3..6): all of them compress. */
	for (uint64_t i = 0; i < pages; i++)
		mix_page(e.gm.base + i * PG, 3 + i % 4, i);
	/* Inflate 16 MiB, then the guest writes those pages again. */
	cr_assert_eq(gm_discard(&e.gm, 0, 16 * MiB / PG, GM_PAGE_BALLOONED), 0);
	for (uint64_t i = 0; i < 16 * MiB / PG; i++)
		mix_page(e.gm.base + i * PG, 3 + i % 4, i + 1);
	held = wait_under_limit(&e, 12 * MiB, &st);
	cr_log_info("balloon rewrite: resident %lu + store %lu bytes, limit %lu, %lu runs",
		    (unsigned long)gm_resident_bytes(&e.gm), (unsigned long)st.store_alloc_bytes,
		    (unsigned long)(12 * MiB), (unsigned long)st.reclaim_runs);
	cr_assert_leq(held, 12 * MiB, "resident + store %lu > limit", (unsigned long)held);
	for (uint64_t i = 0; i < pages; i++) {
		uint8_t want[PG];

		mix_page(want, 3 + i % 4, i < 16 * MiB / PG ? i + 1 : i);
		cr_assert_eq(memcmp(e.gm.base + i * PG, want, PG), 0, "page %lu", (unsigned long)i);
	}
	cr_assert_eq(st.errors, 0);
	tier_down(&e);
}

/* The shared zero page costs the host nothing: reading untouched RAM is not resident memory. */
Test(memtier, zero_page_mappings_are_not_resident, .timeout = 30)
{
	struct memtier_config cfg = {
		.algo = CS_ALGO_LZ4, .mem_limit_bytes = 4 * MiB, .limit_period_ms = 20};
	volatile uint8_t sum = 0;
	struct tier_env e;
	struct memtier_stats st;

	tier_up(&e, 32, false, &cfg);
	for (uint64_t i = 0; i < 24 * MiB / PG; i++)
		sum += e.gm.base[i * PG];
	cr_assert_eq(sum, 0);
	cr_assert_leq(gm_resident_bytes(&e.gm), 64 * 1024, "%lu bytes counted",
		      (unsigned long)gm_resident_bytes(&e.gm));
	usleep(200000); /* ten limit periods */
	memtier_get_stats(e.t, &st);
	cr_assert_eq(st.reclaim_runs, 0, "the limit worker ran %lu passes for nothing",
		     (unsigned long)st.reclaim_runs);
	tier_down(&e);
}

/*
 * The lost-write race: writers rewrite and verify pages while the host reclaims in a loop. With
 * @churn a writer also gives pages back as a guest does before it writes them again: free page
 * reporting (gm_discard REPORTED) or a balloon inflate + deflate (gm_discard BALLOONED, then
 * gm_clear_discarded), a block of pages at a time, so discards land between the worker's snapshot
 * of a chunk and its commit.
 */
enum churn { CHURN_NONE, CHURN_REPORT, CHURN_BALLOON };

#define CHURN_BLOCK 32u /* pages given back together */

struct racer {
	struct guest_mem *gm;
	uint64_t first, pages;
	enum churn churn;
	volatile bool *stop;
	uint64_t mismatches, passes, discards;
};

static uint64_t race_word(const struct racer *r, uint64_t i, unsigned int k, uint64_t gen)
{
	return k < PG / 16 || (i & 1) ? (r->first + i) << 20 | gen : 0;
}

/* Give pages [first, first + n) of the writer's area back the way @r->churn says. */
static void race_give_back(struct racer *r, uint64_t first, uint64_t n)
{
	uint64_t pfn = r->first + first;

	if (r->churn == CHURN_REPORT) {
		cr_assert_eq(gm_discard(r->gm, pfn, n, GM_PAGE_REPORTED), 0);
	} else {
		cr_assert_eq(gm_discard(r->gm, pfn, n, GM_PAGE_BALLOONED), 0);
		cr_assert_eq(gm_clear_discarded(r->gm, pfn, n), 0);
	}
	r->discards++;
}

static void *race_writer(void *arg)
{
	struct racer *r = arg;
	uint8_t *base = r->gm->base;
	uint64_t gen = 0;

	for (uint64_t i = 0; i < r->pages; i++)
		memset(base + (r->first + i) * PG, 0, PG);
	while (!*r->stop) {
		for (uint64_t b = 0; b < r->pages; b += CHURN_BLOCK) {
			uint64_t n = MIN((uint64_t)CHURN_BLOCK, r->pages - b);

			/* Check the previous generation (a lost write shows up here); every other
			 * page keeps half of itself zero so it stays compressible. */
			for (uint64_t i = b; gen && i < b + n; i++) {
				uint64_t *w = (uint64_t *)(base + (r->first + i) * PG);

				for (unsigned int k = 0; k < PG / 8; k += 64)
					if (w[k] != race_word(r, i, k, gen - 1))
						r->mismatches++;
			}
			/* Half of the blocks, a different half each pass, go back to the
			 * host first: their old contents are gone, the writes below must stay. */
			if (r->churn != CHURN_NONE && (b / CHURN_BLOCK + gen) % 2 == 0)
				race_give_back(r, b, n);
			for (uint64_t i = b; i < b + n; i++) {
				uint64_t *w = (uint64_t *)(base + (r->first + i) * PG);

				for (unsigned int k = 0; k < PG / 8; k += 64)
					w[k] = race_word(r, i, k, gen);
			}
		}
		gen++;
		r->passes++;
	}
	return NULL;
}

/* Seconds each race runs: VMM_TEST_RACE_SECS (the 60 s run), 5 by default. */
static uint64_t race_secs(void)
{
	const char *s = getenv("VMM_TEST_RACE_SECS");

	return s && atoi(s) > 0 ? (uint64_t)atoi(s) : 5;
}

static void race(enum churn churn)
{
	struct memtier_config cfg = {.algo = CS_ALGO_LZ4};
	struct tier_env e;
	struct racer rs[2];
	pthread_t tid[2];
	volatile bool stop = false;
	struct memtier_stats st;
	uint64_t t0, rounds = 0, evicted = 0, secs = race_secs();

	tier_up(&e, 32, true, &cfg);
	for (int i = 0; i < 2; i++) {
		rs[i] = (struct racer){.gm = &e.gm,
				       .first = i * 2048,
				       .pages = 2048,
				       .churn = churn,
				       .stop = &stop};
		pthread_create(&tid[i], NULL, race_writer, &rs[i]);
	}
	t0 = now_ns();
	while (now_ns() - t0 < secs * 1000000000ULL) {
		struct memtier_result r;

		cr_assert_eq(memtier_reclaim_sync(e.t, 0, 0, &r), 0);
		rounds++;
		evicted += r.evicted_pages;
	}
	stop = true;
	for (int i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	memtier_get_stats(e.t, &st);
	cr_log_info("race (churn %d, %lu s): %lu reclaims, %lu evicted, %lu refaults, %lu wp "
		    "faults, passes %lu/%lu, discards %lu, mismatches %lu",
		    churn, (unsigned long)secs, (unsigned long)rounds, (unsigned long)evicted,
		    (unsigned long)st.faults_stored, (unsigned long)st.wp_faults,
		    (unsigned long)rs[0].passes, (unsigned long)rs[1].passes,
		    (unsigned long)(rs[0].discards + rs[1].discards),
		    (unsigned long)(rs[0].mismatches + rs[1].mismatches));
	cr_assert_eq(rs[0].mismatches + rs[1].mismatches, 0, "lost writes: %lu",
		     (unsigned long)(rs[0].mismatches + rs[1].mismatches));
	cr_assert_gt(evicted, 1000, "reclaim really ran against the writers");
	cr_assert_gt(st.faults_stored, 100);
	cr_assert_gt(rs[0].passes, 2);
	if (churn != CHURN_NONE)
		cr_assert_gt(rs[0].discards + rs[1].discards, 100, "the writers gave pages back");
	cr_assert_eq(st.errors, 0);
	tier_down(&e);
}

Test(memtier, no_lost_writes_under_reclaim, .timeout = 120)
{
	race(CHURN_NONE);
}

Test(memtier, no_lost_writes_with_free_page_reporting, .timeout = 120)
{
	race(CHURN_REPORT);
}

Test(memtier, no_lost_writes_with_balloon_inflate_deflate, .timeout = 120)
{
	race(CHURN_BALLOON);
}

struct done_rec {
	unsigned int calls;
	uint64_t job;
	char why[32];
};

static struct done_rec done_rec; /* the config's opaque is the fatal hook's */

static void on_done(void *opaque, const struct memtier_result *r)
{
	struct done_rec *d = &done_rec;

	(void)opaque;
	d->calls++;
	d->job = r->job;
	snprintf(d->why, sizeof(d->why), "%s", r->why ? r->why : "");
}

/*
 * A reclaim job accepted just before the tier is destroyed still reports its result, even when
 * the worker had not picked it up yet: the control server answers memory.reclaim with it (unit
 * machine reclaim_finishing_during_shutdown_answers_its_client failed on a loaded CI machine
 * with "no result in time": the worker saw the stop first and left the job untold).
 */
Test(memtier, job_accepted_before_destroy_reports_a_result, .timeout = 60)
{
	for (unsigned int i = 0; i < 200; i++) {
		struct done_rec d;
		struct memtier_config cfg = {.algo = CS_ALGO_LZ4, .done = on_done};
		struct tier_env e;
		uint64_t job;

		memset(&done_rec, 0, sizeof(done_rec));
		tier_up(&e, 4, false, &cfg);
		memset(e.gm.base, 0x5a, 4 * MiB);
		cr_assert_eq(memtier_reclaim(e.t, 0, 0, &job), 0);
		tier_down(&e);
		d = done_rec;
		cr_assert_eq(d.calls, 1, "round %u: job %lu reported %u times", i,
			     (unsigned long)job, d.calls);
		cr_expect_eq(d.job, job);
	}
}
