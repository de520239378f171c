/*
 * virtio-balloon driven through its virtio_dev_ops by the fake driver (no PCI): one test per
 * guest-contract rule of design.md ("virtio-balloon: the guest's contract") and per hostile case.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_balloon.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "fake_driver.h"

#define RAM	  (64 * MiB)
#define RING_BASE 0x100000ULL /* queue i's rings at RING_BASE + i * 0x10000 */
#define BUF_BASE  0x200000ULL /* buffers the fake driver hands over, one 4 KiB slot each */
#define PFN_BASE  0x1000U     /* pages the tests inflate start at 16 MiB */

#define F(bit)	    (1ULL << (bit))
#define F_STATS	    F(VIRTIO_BALLOON_F_STATS_VQ)
#define F_OOM	    F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM)
#define F_REPORTING F(VIRTIO_BALLOON_F_REPORTING)
#define F_EVENT_IDX F(VIRTIO_RING_F_EVENT_IDX)

static struct guest_mem gm;
static struct balloon *b;
static struct virtio_dev *dev;
static struct fake_vq q[VIRTIO_MAX_QUEUES];
static unsigned int nq, next_slot;
static unsigned int signals[VIRTIO_MAX_QUEUES], config_signals;

static void t_signal_used(struct virtio_dev *d, uint16_t qidx)
{
	(void)d;
	signals[qidx]++;
}

static void t_signal_config(struct virtio_dev *d)
{
	d->config_generation++;
	config_signals++;
}

static const struct virtio_transport_ops transport = {
	.signal_used = t_signal_used,
	.signal_config = t_signal_config,
};

/* Event sink: records what arrived; tests wait on it with a deadline. */
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;
static unsigned int n_change, n_stats;
static char change_data[128], stats_data[128];

static void sink(void *opaque, const char *event, const char *data)
{
	(void)opaque;
	pthread_mutex_lock(&ev_lock);
	if (!strcmp(event, "balloon.change")) {
		n_change++;
		snprintf(change_data, sizeof(change_data), "%s", data);
	} else if (!strcmp(event, "balloon.stats")) {
		n_stats++;
		snprintf(stats_data, sizeof(stats_data), "%s", data);
	}
	pthread_cond_broadcast(&ev_cond);
	pthread_mutex_unlock(&ev_lock);
}

static bool wait_count(unsigned int *counter, unsigned int want)
{
	struct timespec dl;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	pthread_mutex_lock(&ev_lock);
	while (*counter < want && pthread_cond_timedwait(&ev_cond, &ev_lock, &dl) == 0)
		;
	ok = *counter >= want;
	pthread_mutex_unlock(&ev_lock);
	return ok;
}

static void driver_ok(void)
{
	pthread_mutex_lock(&dev->lock);
	dev->status |= VIRTIO_CONFIG_S_DRIVER_OK;
	cr_assert_eq(dev->ops->activate(dev), 0);
	pthread_mutex_unlock(&dev->lock);
}

/* Probe as Linux does: negotiate @features, create the queues they imply, optionally DRIVER_OK. */
static void bring_up(uint64_t features, bool ok)
{
	struct balloon_config cfg = {
		.enabled = true,
		.stats = true,
		.deflate_on_oom = true,
		.free_page_reporting = true,
	};

	cr_assert_eq(gm_init(&gm, RAM, false), 0);
	b = balloon_create(&gm, &cfg);
	cr_assert_not_null(b);
	dev = balloon_virtio_dev(b);
	dev->transport = &transport;
	balloon_set_event_sink(b, sink, NULL);
	dev->driver_features = features | F(VIRTIO_F_VERSION_1);
	dev->status =
		VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
	nq = 2 + !!(features & F_STATS) + !!(features & F_REPORTING);
	for (unsigned int i = 0; i < nq; i++) {
		fake_vq_init(&q[i], &gm, &dev->vqs[i], 256, RING_BASE + i * 0x10000ULL);
		cr_assert_eq(vq_enable(&dev->vqs[i], &gm, features), 0);
	}
	if (ok)
		driver_ok();
}

static void teardown(void)
{
	balloon_destroy(b);
	gm_destroy(&gm);
}

TestSuite(balloon, .fini = teardown);

static void kick(unsigned int qidx)
{
	dev->ops->queue_notify(dev, qidx);
}

static uint64_t slot(void)
{
	return BUF_BASE + 0x1000ULL * (next_slot++ % 256);
}

/* An inflate/deflate buffer as Linux tell_host() builds it: one device-readable le32 array. */
static uint16_t send_pfns(unsigned int qidx, const uint32_t *pfns, unsigned int n)
{
	uint64_t gpa = slot();
	uint16_t head;

	for (unsigned int i = 0; i < n; i++) {
		uint32_t le = htole32(pfns[i]);

		gm_write(&gm, gpa + 4ULL * i, &le, 4);
	}
	head = fake_add_chain(&q[qidx], &(struct fake_buf){gpa, 4 * n, false}, 1);
	kick(qidx);
	return head;
}

static void expect_used(unsigned int qidx, uint16_t head)
{
	uint32_t id, len;

	cr_assert(fake_get_used(&q[qidx], &id, &len), "buffer %u not returned", head);
	cr_assert_eq(id, head);
	cr_assert_eq(len, 0);
}

static struct balloon_counters counters(void)
{
	struct balloon_counters c;

	balloon_get_counters(b, &c);
	return c;
}

static uint32_t cfg_read32(uint32_t off)
{
	uint32_t v;

	pthread_mutex_lock(&dev->lock);
	dev->ops->config_read(dev, off, &v, 4);
	pthread_mutex_unlock(&dev->lock);
	return le32toh(v);
}

static void cfg_write(uint32_t off, const void *data, uint32_t len)
{
	pthread_mutex_lock(&dev->lock);
	dev->ops->config_write(dev, off, data, len);
	pthread_mutex_unlock(&dev->lock);
}

static void write_actual(uint32_t pages)
{
	uint32_t le = htole32(pages);

	cfg_write(offsetof(struct virtio_balloon_config, actual), &le, 4);
}

/* --- device identity and features ----------------------------------------------------------- */

Test(balloon, ops_and_offered_features)
{
	struct balloon_config cfg = {.enabled = true, .stats = true};
	uint64_t f;

	bring_up(0, true);
	cr_assert_eq(dev->ops->device_id, VIRTIO_ID_BALLOON);
	cr_assert_eq(dev->ops->config_size, sizeof(struct virtio_balloon_config));
	cr_assert_geq(dev->ops->max_queue_size, 32); /* the reporting queue needs >= 32 */
	cr_assert_geq(dev->ops->max_queues, 5);
	f = dev->ops->get_features(dev);
	cr_assert(f & F_STATS && f & F_OOM && f & F_REPORTING && f & F_EVENT_IDX);
	cr_assert_not(f & F(VIRTIO_BALLOON_F_FREE_PAGE_HINT));
	cr_assert_not(f & F(VIRTIO_BALLOON_F_MUST_TELL_HOST));

	struct balloon *b2 = balloon_create(&gm, &cfg);
	struct virtio_dev *d2 = balloon_virtio_dev(b2);

	f = d2->ops->get_features(d2);
	cr_assert(f & F_STATS);
	cr_assert_not(f & (F_OOM | F_REPORTING));
	cr_assert_eq(d2->device_features, f);
	balloon_destroy(b2);
}

/* --- rule: PFNs are 4 KiB units, at most 256 per buffer -------------------------------------- */

Test(balloon, inflate_discards_4k_pfns)
{
	uint32_t pfns[] = {PFN_BASE, PFN_BASE + 1};
	uint8_t *page;
	uint16_t head;

	bring_up(0, true);
	page = gm_ptr(&gm, (uint64_t)PFN_BASE << 12, 2 * GM_PAGE_SIZE);
	memset(page, 0x77, 2 * GM_PAGE_SIZE);
	head = send_pfns(0, pfns, 2);
	expect_used(0, head);
	cr_assert_eq(page[0], 0);
	cr_assert_eq(page[2 * GM_PAGE_SIZE - 1], 0);
	cr_assert_eq(gm.state[PFN_BASE], GM_PAGE_BALLOONED);
	cr_assert_eq(gm.state[PFN_BASE + 1], GM_PAGE_BALLOONED);
	cr_assert_eq(gm.state[PFN_BASE + 2], GM_PAGE_RESIDENT);
	cr_assert_eq(gm.nr_ballooned, 2);
	cr_assert_eq(counters().inflated_pages, 2);
	cr_assert_eq(counters().err_count, 0);
	cr_assert_eq(signals[0], 1);
}

Test(balloon, inflate_256_pfns_accepted_257_rejected)
{
	uint32_t pfns[257];
	uint16_t head;

	bring_up(0, true);
	for (unsigned int i = 0; i < 257; i++)
		pfns[i] = PFN_BASE + 2 * i; /* no two adjacent: 256 ranges */
	head = send_pfns(0, pfns, 256);
	expect_used(0, head);
	cr_assert_eq(counters().inflated_pages, 256);
	cr_assert_eq(gm.discard_calls, 256);
	head = send_pfns(0, pfns, 257);
	expect_used(0, head);
	cr_assert_eq(counters().err_count, 1);
	cr_assert_eq(gm.discard_calls, 256);
}

Test(balloon, pfns_sorted_deduplicated_merged_one_discard_per_range)
{
	uint32_t pfns[] = {PFN_BASE + 5,     PFN_BASE + 3, PFN_BASE + 4, PFN_BASE + 4,
			   PFN_BASE + 0x100, PFN_BASE + 6, PFN_BASE + 3, PFN_BASE + 0x101};

	bring_up(0, true);
	expect_used(0, send_pfns(0, pfns, ARRAY_SIZE(pfns)));
	/* [3..6] and [0x100..0x101]: two madvise calls for six distinct pages. */
	cr_assert_eq(gm.discard_calls, 2);
	cr_assert_eq(counters().discard_ranges, 2);
	cr_assert_eq(counters().inflated_pages, 6);
	cr_assert_eq(gm.nr_ballooned, 6);
}

Test(balloon, out_of_range_pfns_counted_skipped_buffer_completed)
{
	uint32_t pfns[] = {RAM >> 12, PFN_BASE, 0xffffffff, (RAM >> 12) - 1};

	bring_up(0, true);
	expect_used(0, send_pfns(0, pfns, 4));
	cr_assert_eq(counters().err_count, 2);
	cr_assert_eq(counters().inflated_pages, 2);
	cr_assert_eq(gm.state[PFN_BASE], GM_PAGE_BALLOONED);
	cr_assert_eq(gm.state[(RAM >> 12) - 1], GM_PAGE_BALLOONED);
}

Test(balloon, write_only_inflate_buffer_is_malformed)
{
	uint64_t gpa = slot();
	uint32_t pfn = htole32(PFN_BASE);
	uint16_t head;

	bring_up(0, true);
	gm_write(&gm, gpa, &pfn, 4);
	head = fake_add_chain(&q[0], &(struct fake_buf){gpa, 4, true}, 1);
	kick(0);
	expect_used(0, head);
	cr_assert_eq(counters().err_count, 1);
	cr_assert_eq(gm.discard_calls, 0);
	cr_assert_eq(gm.state[PFN_BASE], GM_PAGE_RESIDENT);
}

Test(balloon, inflate_length_not_multiple_of_4_is_malformed)
{
	uint64_t gpa = slot();
	uint16_t head;

	bring_up(0, true);
	head = fake_add_chain(&q[0], &(struct fake_buf){gpa, 6, false}, 1);
	kick(0);
	expect_used(0, head);
	cr_assert_eq(counters().err_count, 1);
	cr_assert_eq(gm.discard_calls, 0);
}

Test(balloon, inflate_pfns_split_over_descriptors)
{
	uint64_t gpa = slot();
	uint32_t pfns[3] = {htole32(PFN_BASE), htole32(PFN_BASE + 1), htole32(PFN_BASE + 2)};
	struct fake_buf bufs[] = {{gpa, 6, false}, {gpa + 6, 6, false}};
	uint16_t head;

	bring_up(0, true);
	gm_write(&gm, gpa, pfns, sizeof(pfns));
	head = fake_add_chain(&q[0], bufs, 2); /* a PFN straddles the two descriptors */
	kick(0);
	expect_used(0, head);
	cr_assert_eq(counters().inflated_pages, 3);
	cr_assert_eq(gm.discard_calls, 1);
}

Test(balloon, descriptor_outside_ram_completed_with_length_0)
{
	uint16_t head;

	bring_up(0, true);
	head = fake_add_chain(&q[0], &(struct fake_buf){RAM - 4, 8, false}, 1);
	kick(0);
	expect_used(0, head);
	head = fake_add_chain(&q[1], &(struct fake_buf){UINT64_MAX - 3, 8, false}, 1);
	kick(1);
	expect_used(1, head);
	cr_assert_eq(counters().err_count, 2);
}

Test(balloon, loop_in_chain_completed_and_queue_survives)
{
	uint32_t pfn = PFN_BASE;

	bring_up(0, true);
	fake_set_desc(&q[0], 7, BUF_BASE, 4, VRING_DESC_F_NEXT, 8);
	fake_set_desc(&q[0], 8, BUF_BASE, 4, VRING_DESC_F_NEXT, 7);
	q[0].next_desc = 9;
	fake_publish(&q[0], 7);
	kick(0);
	expect_used(0, 7);
	cr_assert_eq(counters().err_count, 1);
	expect_used(0, send_pfns(0, &pfn, 1));
	cr_assert_eq(counters().inflated_pages, 1);
}

Test(balloon, bad_head_index_counted_and_skipped)
{
	uint32_t pfn = PFN_BASE;

	bring_up(0, true);
	fake_publish(&q[0], 300); /* >= queue size 256: nothing to complete */
	kick(0);
	cr_assert_eq(counters().err_count, 1);
	cr_assert_eq(fake_used_idx(&q[0]), 0);
	expect_used(0, send_pfns(0, &pfn, 1));
}

Test(balloon, avail_idx_runaway_stops_processing)
{
	bring_up(0, true);
	fake_set_avail_idx(&q[0], 1000);
	kick(0);
	cr_assert_eq(counters().err_count, 1);
	cr_assert_eq(fake_used_idx(&q[0]), 0);
	/* virtio 1.2 §2.1.2: DEVICE_NEEDS_RESET, announced by one config notification. */
	cr_assert(dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_assert_eq(config_signals, 1);
	kick(0);
	cr_assert_eq(config_signals, 1, "announced once");
}

/* --- rule: every buffer is returned, malformed ones too --------------------------------------- */

Test(balloon, every_buffer_returned)
{
	uint32_t pfn;
	unsigned int i;
	uint32_t id, len;

	bring_up(0, true);
	for (i = 0; i < 40; i++) {
		uint64_t gpa = slot();

		pfn = htole32(PFN_BASE + i);
		gm_write(&gm, gpa, &pfn, 4);
		/* Every third buffer is malformed (odd length). */
		fake_add_chain(&q[i % 2], &(struct fake_buf){gpa, i % 3 ? 4 : 3, false}, 1);
	}
	kick(0);
	kick(1);
	for (i = 0; i < 40; i++)
		cr_assert(fake_get_used(&q[i % 2], &id, &len));
	cr_assert_eq(counters().err_count, 14);
}

/* --- rule: deflate clears state; the page reads as zero --------------------------------------- */

Test(balloon, deflate_then_page_reads_zero)
{
	uint32_t pfn = PFN_BASE + 9;
	uint8_t *p;

	bring_up(0, true);
	p = gm_ptr(&gm, (uint64_t)pfn << 12, GM_PAGE_SIZE);
	memset(p, 0xcc, GM_PAGE_SIZE);
	expect_used(0, send_pfns(0, &pfn, 1));
	cr_assert_eq(gm.nr_ballooned, 1);
	expect_used(1, send_pfns(1, &pfn, 1));
	cr_assert_eq(gm.state[pfn], GM_PAGE_RESIDENT);
	cr_assert_eq(gm.nr_ballooned, 0);
	cr_assert_eq(counters().deflated_pages, 1);
	for (unsigned int i = 0; i < GM_PAGE_SIZE; i++)
		cr_assert_eq(p[i], 0);
	p[0] = 1; /* usable again */
	cr_assert_eq(p[0], 1);
}

Test(balloon, host_rss_drops_after_inflate_of_touched_pages)
{
	enum { PAGES = 2048 }; /* 8 MiB */
	uint32_t pfns[256];
	uint64_t touched, after;

	bring_up(0, true);
	memset(gm_ptr(&gm, (uint64_t)PFN_BASE << 12, PAGES * GM_PAGE_SIZE), 0x3c,
	       PAGES * GM_PAGE_SIZE);
	touched = gm_resident_bytes(&gm);
	for (unsigned int done = 0; done < PAGES; done += 256) {
		for (unsigned int i = 0; i < 256; i++)
			pfns[i] = PFN_BASE + done + 255 - i; /* Linux sends them in any order */
		expect_used(0, send_pfns(0, pfns, 256));
	}
	after = gm_resident_bytes(&gm);
	/* Slack: the fake driver's buffers are touched in between. */
	cr_assert_leq(after + PAGES * GM_PAGE_SIZE, touched + 256 * KiB, "rss %lu -> %lu",
		      (unsigned long)touched, (unsigned long)after);
	cr_assert_eq(gm.discard_calls, PAGES / 256);
}

/* --- rule: config space is little-endian; the guest writes only `actual` -----------------------
 */

Test(balloon, config_target_and_actual)
{
	bring_up(F_OOM, true);
	cr_assert_eq(balloon_set_target(b, 1234), 0);
	cr_assert_eq(config_signals, 1);
	cr_assert_eq(cfg_read32(offsetof(struct virtio_balloon_config, num_pages)), 1234);
	cr_assert_eq(cfg_read32(offsetof(struct virtio_balloon_config, actual)), 0);
	write_actual(1024);
	cr_assert_eq(cfg_read32(offsetof(struct virtio_balloon_config, actual)), 1024);
	cr_assert_eq(counters().actual_pages, 1024);
	cr_assert_eq(counters().target_pages, 1234);
	cr_assert(wait_count(&n_change, 1));
	pthread_mutex_lock(&ev_lock);
	cr_assert_str_eq(change_data, "{\"actual_mib\":4,\"target_mib\":4}");
	pthread_mutex_unlock(&ev_lock);
	/* Raw bytes are little-endian. */
	uint8_t raw[8];
	pthread_mutex_lock(&dev->lock);
	dev->ops->config_read(dev, 0, raw, 8);
	pthread_mutex_unlock(&dev->lock);
	cr_assert(raw[0] == 0xd2 && raw[1] == 0x04 && raw[4] == 0x00 && raw[5] == 0x04);
}

Test(balloon, config_writes_outside_actual_ignored_and_counted)
{
	uint32_t v = htole32(99);

	bring_up(0, true);
	balloon_set_target(b, 10);
	cfg_write(offsetof(struct virtio_balloon_config, num_pages), &v, 4);
	cfg_write(offsetof(struct virtio_balloon_config, poison_val), &v, 4);
	cr_assert_eq(cfg_read32(0), 10);
	cr_assert_eq(counters().err_count, 2);
	/* A byte-wise write of actual works; a write spanning num_pages and actual is partly taken.
	 */
	uint8_t one = 5;
	cfg_write(offsetof(struct virtio_balloon_config, actual) + 1, &one, 1);
	cr_assert_eq(counters().actual_pages, 5 << 8);
	uint8_t span[4] = {1, 2, 3, 0};
	cfg_write(2, span, 4);
	cr_assert_eq(counters().actual_pages, 3); /* bytes 4-5 of the write: 3, 0 */
	cr_assert_eq(cfg_read32(0), 10);
	cr_assert_eq(counters().err_count, 3);
}

Test(balloon, set_target_beyond_ram_rejected)
{
	bring_up(0, true);
	cr_assert_eq(balloon_set_target(b, RAM / GM_PAGE_SIZE), 0);
	cr_assert_eq(balloon_set_target(b, RAM / GM_PAGE_SIZE + 1), -EINVAL);
	cr_assert_eq(balloon_set_target(b, 1ULL << 40), -EINVAL);
	cr_assert_eq(counters().target_pages, RAM / GM_PAGE_SIZE);
}

Test(balloon, deflate_on_oom_guest_lowers_actual)
{
	bring_up(F_OOM, true);
	balloon_set_target(b, 1024);
	write_actual(1024);
	cr_assert(wait_count(&n_change, 1)); /* undelivered changes coalesce: wait for each */
	/* OOM notifier: the guest deflates 1 MiB (256 pages) and updates actual. */
	uint32_t pfns[256];
	for (unsigned int i = 0; i < 256; i++)
		pfns[i] = PFN_BASE + i;
	expect_used(0, send_pfns(0, pfns, 256));
	expect_used(1, send_pfns(1, pfns, 256));
	write_actual(768);
	cr_assert_eq(counters().actual_pages, 768);
	cr_assert_eq(counters().target_pages, 1024); /* the host target is unchanged */
	cr_assert(counters().features & F_OOM);
	cr_assert(wait_count(&n_change, 2));
}

/* --- rule: queue indices count only the queues the negotiated features create ------------------
 */

static void report_range(unsigned int qidx, uint64_t gpa, uint32_t len)
{
	uint16_t head = fake_add_chain(&q[qidx], &(struct fake_buf){gpa, len, true}, 1);

	kick(qidx);
	expect_used(qidx, head);
}

Test(balloon, queue_map_without_stats)
{
	bring_up(F_REPORTING, true);
	/* inflate 0, deflate 1, reporting 2 */
	report_range(2, 32 * MiB, 2 * MiB);
	cr_assert_eq(counters().reported_bytes, 2 * MiB);
	cr_assert_eq(balloon_request_stats(b), -ENOTSUP);
	kick(3);
	cr_assert_eq(counters().err_count, 1);
}

Test(balloon, queue_map_with_stats)
{
	bring_up(F_STATS | F_REPORTING, true);
	/* inflate 0, deflate 1, stats 2, reporting 3 */
	report_range(3, 32 * MiB, 2 * MiB);
	cr_assert_eq(counters().reported_bytes, 2 * MiB);
	cr_assert_eq(gm.nr_reported, 512);
}

Test(balloon, queue_map_stats_only)
{
	bring_up(F_STATS, true);
	kick(3); /* no reporting queue */
	cr_assert_eq(counters().err_count, 1);
	cr_assert_eq(balloon_request_stats(b), -EAGAIN);
}

/* --- rule: stats queue: prime, hold, return to request; tags 0-15, unknown ignored -------------
 */

static uint16_t send_stats(unsigned int qidx, const uint16_t *tags, const uint64_t *vals,
			   unsigned int n)
{
	uint64_t gpa = slot();
	uint16_t head;

	for (unsigned int i = 0; i < n; i++) {
		struct virtio_balloon_stat s = {.tag = htole16(tags[i]), .val = htole64(vals[i])};

		gm_write(&gm, gpa + sizeof(s) * i, &s, sizeof(s));
	}
	head = fake_add_chain(&q[qidx], &(struct fake_buf){gpa, 10 * n, false}, 1);
	kick(qidx);
	return head;
}

Test(balloon, stats_buffer_held_and_returned_on_request)
{
	uint16_t tags[] = {VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_MEMTOT, 12, 15, 16, 999};
	uint64_t vals[] = {1000, 2000, 12, 15, 16, 999};
	struct balloon_stats st;
	uint16_t head;
	uint32_t id, len;

	bring_up(F_STATS, true);
	balloon_get_stats(b, &st);
	cr_assert_eq(st.seq, 0);
	cr_assert_eq(balloon_request_stats(b), -EAGAIN);
	head = send_stats(2, tags, vals, ARRAY_SIZE(tags));
	cr_assert_not(fake_get_used(&q[2], &id, &len), "stats buffer must be held");
	balloon_get_stats(b, &st);
	cr_assert_eq(st.seq, 1);
	cr_assert(st.valid[VIRTIO_BALLOON_S_MEMFREE]);
	cr_assert_eq(st.val[VIRTIO_BALLOON_S_MEMFREE], 1000);
	cr_assert_eq(st.val[VIRTIO_BALLOON_S_MEMTOT], 2000);
	cr_assert(st.valid[12] && st.valid[15]);
	cr_assert_eq(st.val[15], 15);
	cr_assert_not(st.valid[VIRTIO_BALLOON_S_SWAP_IN]);
	cr_assert_eq(counters().err_count, 0, "unknown tags are not errors");
	cr_assert(wait_count(&n_stats, 1));

	cr_assert_eq(balloon_request_stats(b), 0);
	expect_used(2, head);
	cr_assert_eq(balloon_request_stats(b), -EAGAIN);
	/* The guest refills with a fresh set: it replaces the old one. */
	uint16_t tags2[] = {VIRTIO_BALLOON_S_AVAIL};
	uint64_t vals2[] = {42};
	send_stats(2, tags2, vals2, 1);
	balloon_get_stats(b, &st);
	cr_assert_eq(st.seq, 2);
	cr_assert(st.valid[VIRTIO_BALLOON_S_AVAIL]);
	cr_assert_not(st.valid[VIRTIO_BALLOON_S_MEMFREE]);
	cr_assert(wait_count(&n_stats, 2));
}

Test(balloon, stats_primed_before_driver_ok_is_held)
{
	uint16_t tags[] = {VIRTIO_BALLOON_S_MEMFREE};
	uint64_t vals[] = {7};
	struct balloon_stats st;
	uint32_t id, len;

	bring_up(F_STATS, false);
	send_stats(2, tags, vals, 1); /* Linux init_vqs() kicks during probe */
	cr_assert_eq(dev->early_kicks, 1);
	cr_assert_not(fake_get_used(&q[2], &id, &len));
	driver_ok();
	balloon_get_stats(b, &st);
	cr_assert_eq(st.seq, 1);
	cr_assert_eq(balloon_request_stats(b), 0);
}

Test(balloon, stats_primed_without_kick_picked_up_at_driver_ok)
{
	uint16_t tags[] = {VIRTIO_BALLOON_S_MEMFREE};
	uint64_t vals[] = {7};
	uint64_t gpa = slot();
	struct virtio_balloon_stat s = {.tag = htole16(tags[0]), .val = htole64(vals[0])};
	struct balloon_stats st;

	bring_up(F_STATS, false);
	gm_write(&gm, gpa, &s, sizeof(s));
	fake_add_chain(&q[2], &(struct fake_buf){gpa, 10, false}, 1);
	driver_ok();
	balloon_get_stats(b, &st);
	cr_assert_eq(st.seq, 1);
	cr_assert_eq(st.val[VIRTIO_BALLOON_S_MEMFREE], 7);
}

Test(balloon, second_stats_buffer_returns_the_first)
{
	uint16_t tags[] = {0};
	uint64_t vals[] = {1};
	uint16_t first;

	bring_up(F_STATS, true);
	first = send_stats(2, tags, vals, 1);
	send_stats(2, tags, vals, 1);
	expect_used(2, first);
	cr_assert_eq(counters().err_count, 1);
	cr_assert_eq(balloon_request_stats(b), 0);
}

Test(balloon, stats_odd_length_and_writable_buffers)
{
	uint64_t gpa = slot();
	struct virtio_balloon_stat s = {.tag = htole16(4), .val = htole64(77)};
	struct balloon_stats st;
	uint16_t head;

	bring_up(F_STATS, true);
	gm_write(&gm, gpa, &s, sizeof(s));
	fake_add_chain(&q[2], &(struct fake_buf){gpa, 13, false}, 1);
	kick(2);
	balloon_get_stats(b, &st);
	cr_assert_eq(st.val[4], 77); /* whole entries parsed, the tail counted */
	cr_assert_eq(counters().err_count, 1);
	head = fake_add_chain(&q[2], &(struct fake_buf){gpa, 10, true}, 1);
	kick(2);
	/* Writable stats buffers are completed at once; the held one stays held. */
	expect_used(2, head);
	cr_assert_eq(counters().err_count, 2);
	cr_assert_eq(balloon_request_stats(b), 0);
}

Test(balloon, stats_tick_requests_only_with_a_period)
{
	uint16_t tags[] = {0};
	uint64_t vals[] = {1};
	uint16_t head;
	uint32_t id, len;

	bring_up(F_STATS, true);
	head = send_stats(2, tags, vals, 1);
	balloon_stats_tick(b); /* period 0 in bring_up: no-op */
	cr_assert_not(fake_get_used(&q[2], &id, &len));
	balloon_destroy(b);

	struct balloon_config cfg = {.enabled = true, .stats = true, .stats_period_s = 5};
	b = balloon_create(&gm, &cfg);
	dev = balloon_virtio_dev(b);
	dev->driver_features = F_STATS | F(VIRTIO_F_VERSION_1);
	dev->status = VIRTIO_CONFIG_S_DRIVER_OK;
	for (unsigned int i = 0; i < 3; i++) {
		fake_vq_init(&q[i], &gm, &dev->vqs[i], 256, RING_BASE + i * 0x10000ULL);
		cr_assert_eq(vq_enable(&dev->vqs[i], &gm, 0), 0);
	}
	head = send_stats(2, tags, vals, 1);
	balloon_stats_tick(b);
	expect_used(2, head);
}

/* --- rule: reporting queue buffers are device-writable address/length ranges ------------------ */

Test(balloon, reporting_discards_whole_pages_of_each_range)
{
	struct fake_buf r[] = {
		{32 * MiB, 4 * MiB, true},
		{40 * MiB + 0x800, 3 * GM_PAGE_SIZE, true}, /* unaligned: 2 whole pages inside */
		{48 * MiB, 0x800, true},		    /* no whole page */
	};
	uint8_t *p;
	uint16_t head;

	bring_up(F_REPORTING, true);
	p = gm_ptr(&gm, 32 * MiB, 4 * MiB);
	memset(p, 0xee, 4 * MiB);
	gm_write(&gm, 40 * MiB, "keep", 4);
	head = fake_add_chain(&q[2], r, 3);
	kick(2);
	expect_used(2, head);
	cr_assert_eq(counters().reported_bytes, 4 * MiB + 2 * GM_PAGE_SIZE);
	cr_assert_eq(gm.nr_reported, 1024 + 2);
	cr_assert_eq(gm.state[(40 * MiB >> 12)], GM_PAGE_RESIDENT);
	cr_assert_eq(gm.state[(40 * MiB >> 12) + 1], GM_PAGE_REPORTED);
	cr_assert_eq(gm.state[(40 * MiB >> 12) + 3], GM_PAGE_RESIDENT);
	cr_assert_eq(memcmp(gm_ptr(&gm, 40 * MiB, 4), "keep", 4), 0);
	cr_assert_eq(p[0], 0);
	cr_assert_eq(counters().err_count, 0);
}

Test(balloon, reporting_adjacent_ranges_merged)
{
	struct fake_buf r[] = {
		{34 * MiB, 2 * MiB, true},
		{32 * MiB, 2 * MiB, true},
		{36 * MiB, 2 * MiB, true},
	};

	bring_up(F_REPORTING, true);
	fake_add_chain(&q[2], r, 3);
	kick(2);
	cr_assert_eq(gm.discard_calls, 1);
	cr_assert_eq(counters().reported_bytes, 6 * MiB);
}

Test(balloon, reporting_via_indirect_table)
{
	struct fake_buf r[32];
	uint16_t head;

	bring_up(F_REPORTING | F(VIRTIO_RING_F_INDIRECT_DESC), true);
	for (unsigned int i = 0; i < 32; i++) /* PAGE_REPORTING_CAPACITY entries, 1 MiB apart */
		r[i] = (struct fake_buf){16 * MiB + i * 1 * MiB, 512 * KiB, true};
	head = fake_add_indirect(&q[2], BUF_BASE + 0x100000, r, 32);
	kick(2);
	expect_used(2, head);
	cr_assert_eq(counters().reported_bytes, 32 * 512 * KiB);
	cr_assert_eq(gm.discard_calls, 32);
}

Test(balloon, reporting_readable_buffer_is_malformed)
{
	uint16_t head;

	bring_up(F_REPORTING, true);
	head = fake_add_chain(&q[2], &(struct fake_buf){32 * MiB, 2 * MiB, false}, 1);
	kick(2);
	expect_used(2, head);
	cr_assert_eq(counters().err_count, 1);
	cr_assert_eq(counters().reported_bytes, 0);
	cr_assert_eq(gm.discard_calls, 0);
}

/* --- hostile: notify before DRIVER_OK ------------------------------------------------------- */

Test(balloon, notify_before_driver_ok_drained_counted_no_discard)
{
	uint32_t pfn = PFN_BASE;
	uint16_t head;

	bring_up(0, false);
	head = send_pfns(0, &pfn, 1);
	cr_assert_eq(dev->early_kicks, 1);
	expect_used(0, head); /* drained: returned, but nothing given away */
	cr_assert_eq(gm.discard_calls, 0);
	cr_assert_eq(counters().inflated_pages, 0);
	kick(4); /* a queue that does not exist, before DRIVER_OK: counted, no crash */
	cr_assert_eq(dev->early_kicks, 2);
	driver_ok();
	expect_used(0, send_pfns(0, &pfn, 1));
	cr_assert_eq(counters().inflated_pages, 1);
}

Test(balloon, notify_of_disabled_queue)
{
	bring_up(0, true);
	vq_reset(&dev->vqs[1]);
	kick(1);
	kick(VIRTIO_MAX_QUEUES + 3);
	cr_assert_eq(counters().err_count, 2);
}

/* --- notification suppression through virtio_complete ----------------------------------------- */

Test(balloon, event_idx_suppresses_interrupts)
{
	uint32_t pfn = PFN_BASE;

	bring_up(F_EVENT_IDX, true);
	fake_set_used_event(&q[0], 2); /* interrupt only when used->idx passes 2 */
	for (unsigned int i = 0; i < 5; i++)
		expect_used(0, send_pfns(0, &pfn, 1));
	cr_assert_eq(signals[0], 2); /* the first completion, then the one reaching idx 3 */
	cr_assert_eq(dev->used_signals, 2);
	/* The device tells the driver where to kick next. */
	cr_assert_eq(fake_avail_event(&q[0]), 5);
}

Test(balloon, no_interrupt_flag_honoured)
{
	uint32_t pfn = PFN_BASE;

	bring_up(0, true);
	fake_set_avail_flags(&q[0], VRING_AVAIL_F_NO_INTERRUPT);
	expect_used(0, send_pfns(0, &pfn, 1));
	cr_assert_eq(signals[0], 0);
}

Test(balloon, complete_without_transport_counts)
{
	uint32_t pfn = PFN_BASE;

	bring_up(0, true);
	dev->transport = NULL;
	expect_used(0, send_pfns(0, &pfn, 1));
	cr_assert_eq(dev->used_signals, 1);
	cr_assert_eq(balloon_set_target(b, 5), 0); /* no transport to signal: fine */
}

/* --- reset ---------------------------------------------------------------------------------- */

Test(balloon, reset_returns_pages_and_clears_actual)
{
	uint32_t pfns[] = {PFN_BASE, PFN_BASE + 1};
	uint16_t tags[] = {0};
	uint64_t vals[] = {1};

	bring_up(F_STATS, true);
	expect_used(0, send_pfns(0, pfns, 2));
	send_stats(2, tags, vals, 1);
	write_actual(2);
	cr_assert(wait_count(&n_change, 1));
	pthread_mutex_lock(&dev->lock);
	virtio_dev_reset(dev);
	pthread_mutex_unlock(&dev->lock);
	cr_assert_eq(dev->status, 0);
	cr_assert_eq(dev->driver_features, 0);
	cr_assert_not(dev->vqs[0].ready);
	cr_assert_eq(dev->vqs[0].msix_vector, 0xffff);
	cr_assert_eq(gm.nr_ballooned, 0);
	cr_assert_eq(gm.state[PFN_BASE], GM_PAGE_RESIDENT);
	cr_assert_eq(counters().actual_pages, 0);
	cr_assert_eq(balloon_request_stats(b), -ENOTSUP);
	cr_assert(wait_count(&n_change, 2));
}
