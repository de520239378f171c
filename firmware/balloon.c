/*
 * balloon: drive the virtio-balloon device (virtio 1.2 §5.5) like a guest driver would and check
 * it follows the spec: feature negotiation, queue indices that count only negotiated queues,
 * inflate/deflate buffers of up to 256 PFNs returned with used length 0, `actual` written and
 * read back, the stats buffer held and returned, free page reporting, and num_pages changes
 * announced through config_generation and the ISR. Prints pages/s and cycles per page.
 *
 * Arguments (vmm run --firmware balloon.elf --cmdline "..."):
 *   mode=basic    inflate mib, deflate, deflate-on-OOM step, reporting, stats (default)
 *   mode=rewrite  what a hostile guest does: fill mib, inflate it all, write every ballooned page
 *                 again without a deflate, stay idle hold=S seconds (default 20) so the host can
 *                 take the memory back, then check every page, deflate and check again
 *   mode=follow   track num_pages until it went up and came back to 0 (drive it with
 *                 `vmm ctl balloon set`); follow-timeout=S (default 60); the pool (all free
 *                 RAM) is touched first, touch-mib=N: only its first N MiB
 *   mib=N         basic: MiB to inflate (default 16)
 *   depth=N       buffers in flight (default 1, as Linux)
 *   stats=0|1 report=0|1 oom=0|1   negotiate the feature when offered (default 1)
 *   stats-rounds=N   basic: wait for N stats requests (needs --balloon stats-period=S; default 0)
 *   discard=0|1   check inflated/reported pages read back as zero (default 1)
 * Ends with "balloon: PASS" (exit 0) or "FAIL: ..." (exit 1).
 */
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>

#include "virtio.h"

#define PFNS_PER_BUF 256
#define WAIT_MS	     5000
#define MAX_DEPTH    16
#define NR_STATS     11

static struct virtio_dev dev;
static struct virtq *inflate_q, *deflate_q, *stats_q, *report_q;
static unsigned int errors;

/* The pages the balloon may take: a contiguous pool; pages [0, nr_in) are inflated. */
static uint8_t *pool;
static uint64_t pool_pages, nr_in;

static uint32_t *pfn_bufs[MAX_DEPTH];
static unsigned int depth = 1;

static struct virtio_balloon_stat *stats_buf;
static int stats_head = -1;
static uint64_t stats_returned;

static void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error(const char *fmt, ...)
{
	va_list ap;

	errors++;
	printf("balloon: ERROR: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static uint32_t cfg_num_pages(uint8_t *gen)
{
	struct virtio_balloon_config c;

	*gen = virtio_cfg_read(&dev, 0, &c, 8);
	return c.num_pages;
}

static uint32_t cfg_actual(void)
{
	struct virtio_balloon_config c;

	virtio_cfg_read(&dev, 0, &c, 8);
	return c.actual;
}

static void set_actual(uint32_t pages)
{
	uint32_t got;

	virtio_cfg_write32(&dev, offsetof(struct virtio_balloon_config, actual), pages);
	got = cfg_actual();
	if (got != pages)
		error("wrote actual %u, read back %u", pages, got);
}

/* Wait for one used element of @q and check it is a device-readable buffer we published. */
static int reap(struct virtq *q, const char *what, uint32_t *id_out)
{
	uint32_t id, len;

	if (virtq_wait(q, &id, &len, WAIT_MS)) {
		error("%s: a buffer did not come back within %u ms (queue %u, status 0x%x)", what,
		      WAIT_MS, q->index, virtio_status(&dev));
		return -1;
	}
	if (len != 0)
		error("%s: used length %u for a device-readable buffer (§2.7.8: must be 0)", what,
		      len);
	if (id_out)
		*id_out = id;
	return 0;
}

/*
 * Move @n pages between the pool and the balloon through @q (inflate: the next @n pool pages;
 * deflate: the last @n inflated), up to `depth` buffers in flight, updating `actual` after
 * each buffer. Returns the TSC cycles spent.
 */
static uint64_t transfer(struct virtq *q, bool inflate, uint64_t n)
{
	uint64_t first = inflate ? nr_in : nr_in - n, queued = 0, done = 0, t0 = rdtsc();
	unsigned int inflight = 0, slot = 0;
	uint32_t buf_pages[MAX_DEPTH];
	int heads[MAX_DEPTH];

	for (unsigned int s = 0; s < MAX_DEPTH; s++)
		heads[s] = -1;

	while (done < n) {
		while (inflight < depth && queued < n) {
			uint32_t k = (uint32_t)FW_MIN(n - queued, (uint64_t)PFNS_PER_BUF);
			struct virtq_buf b = {(uintptr_t)pfn_bufs[slot], k * 4, false};

			for (uint32_t i = 0; i < k; i++)
				pfn_bufs[slot][i] =
					(uint32_t)(((uintptr_t)pool >> 12) + first + queued + i);
			heads[slot] = virtq_add(q, &b, 1);
			buf_pages[slot] = k;
			queued += k;
			inflight++;
			slot = (slot + 1) % depth;
		}
		virtq_kick(q);
		{
			uint32_t id;
			unsigned int s;

			if (reap(q, inflate ? "inflate" : "deflate", &id))
				fw_fail("balloon: device stopped answering");
			for (s = 0; s < depth && heads[s] != (int)id; s++)
				;
			if (s == depth)
				fw_fail("balloon: device returned id %u, not one in flight", id);
			done += buf_pages[s];
			heads[s] = -1;
			inflight--;
		}
		nr_in = inflate ? first + done : first + (n - done);
		set_actual((uint32_t)nr_in);
	}
	return rdtsc() - t0;
}

static void print_rate(const char *what, uint64_t pages, uint64_t cycles)
{
	uint64_t us = fw_cycles_to_us(cycles);

	printf("balloon: %s %llu pages in %llu us: %llu pages/s, %llu cycles/page\n", what,
	       (unsigned long long)pages, (unsigned long long)us,
	       (unsigned long long)(us ? pages * 1000000 / us : 0),
	       (unsigned long long)(pages ? cycles / pages : 0));
}

static void touch(uint8_t *p, uint64_t pages, uint64_t tag)
{
	for (uint64_t i = 0; i < pages; i++)
		*(volatile uint64_t *)(p + i * FW_PAGE_SIZE) = tag + i;
}

/* Pages the host discarded read back as zero (a fresh anonymous page). */
static uint64_t count_nonzero(uint8_t *p, uint64_t pages)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < pages; i++)
		n += *(volatile uint64_t *)(p + i * FW_PAGE_SIZE) != 0;
	return n;
}

/* ---- stats (§5.5.6.3) ------------------------------------------------------------------------ */

static void stats_fill(uint64_t round)
{
	static const uint16_t tags[NR_STATS] = {
		VIRTIO_BALLOON_S_SWAP_IN,
		VIRTIO_BALLOON_S_SWAP_OUT,
		VIRTIO_BALLOON_S_MAJFLT,
		VIRTIO_BALLOON_S_MINFLT,
		VIRTIO_BALLOON_S_MEMFREE,
		VIRTIO_BALLOON_S_MEMTOT,
		VIRTIO_BALLOON_S_AVAIL,
		VIRTIO_BALLOON_S_CACHES,
		VIRTIO_BALLOON_S_HTLB_PGALLOC,
		VIRTIO_BALLOON_S_HTLB_PGFAIL,
		0x7fff, /* unknown: the device must ignore it */
	};

	for (unsigned int i = 0; i < NR_STATS; i++) {
		stats_buf[i].tag = tags[i];
		stats_buf[i].val = i == 4 ? fw_mem_left() : i == 5 ? fw_ram_bytes : round * 100 + i;
	}
}

static void stats_post(uint64_t round)
{
	struct virtq_buf b = {(uintptr_t)stats_buf, NR_STATS * sizeof(struct virtio_balloon_stat),
			      false};

	stats_fill(round);
	stats_head = virtq_add(stats_q, &b, 1);
	virtq_kick(stats_q);
}

/* If the device returned the stats buffer (a request for fresh stats), refill and requeue it. */
static bool stats_poll(void)
{
	uint32_t id, len;

	if (!stats_q || !virtq_get(stats_q, &id, &len))
		return false;
	if ((int)id != stats_head)
		error("stats: device returned id %u, the held buffer is %d", id, stats_head);
	if (len)
		error("stats: used length %u for a device-readable buffer", len);
	stats_returned++;
	stats_post(stats_returned);
	return true;
}

/* ---- free page reporting (§5.5.6.5) ---------------------------------------------------------- */

static void report_test(bool check_discard)
{
	uint64_t pages = 1024; /* 4 MiB in two device-writable ranges, like page_reporting */
	uint8_t *area = fw_alloc(pages * FW_PAGE_SIZE, 2 * FW_MIB);
	struct virtq_buf b[2] = {
		{(uintptr_t)area, (uint32_t)(pages / 2 * FW_PAGE_SIZE), true},
		{(uintptr_t)area + pages / 2 * FW_PAGE_SIZE, (uint32_t)(pages / 2 * FW_PAGE_SIZE),
		 true},
	};
	uint64_t t0, left;
	uint32_t id, len;

	touch(area, pages, 0x5eed0000);
	t0 = rdtsc();
	virtq_add(report_q, b, 2);
	virtq_kick(report_q);
	if (virtq_wait(report_q, &id, &len, WAIT_MS)) {
		error("reporting: buffer not returned");
		return;
	}
	print_rate("report", pages, rdtsc() - t0);
	if (len > pages * FW_PAGE_SIZE)
		error("reporting: used length %u larger than the buffer", len);
	left = count_nonzero(area, pages);
	printf("balloon: reported 4 MiB, %llu pages still hold data\n", (unsigned long long)left);
	if (check_discard && left)
		error("reporting: %llu reported pages were not discarded",
		      (unsigned long long)left);
}

/* ---- setup --------------------------------------------------------------------------------- */

static void setup(void)
{
	uint64_t want = 0;
	uint16_t q = 0;

	if (virtio_find(&dev, VIRTIO_ID_BALLOON, 0))
		fw_fail("balloon: no virtio-balloon (1af4:%04x) found", 0x1040 + VIRTIO_ID_BALLOON);
	if (fw_arg_u64("stats", 1))
		want |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
	if (fw_arg_u64("oom", 1))
		want |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (fw_arg_u64("report", 1))
		want |= 1ULL << VIRTIO_BALLOON_F_REPORTING;
	want |= 1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST; /* we always deflate before reuse */
	if (virtio_negotiate(&dev, want))
		fw_fail("balloon: feature negotiation failed");
	printf("balloon: 00:%02x.%x, BAR 0x%llx, features offered 0x%llx, negotiated 0x%llx, "
	       "%u queues\n",
	       dev.pci.dev, dev.pci.fn, (unsigned long long)dev.bar_addr[0],
	       (unsigned long long)dev.device_features, (unsigned long long)dev.features,
	       dev.common->num_queues);

	/* §5.5.2: inflateq, deflateq, statsq, free_page_vq, reporting_vq, numbered densely over
	 * the queues the negotiated features create. */
	if (virtq_setup(&dev, q, PFNS_PER_BUF))
		fw_fail("balloon: inflate queue %u unavailable", q);
	inflate_q = &dev.vq[q++];
	if (virtq_setup(&dev, q, PFNS_PER_BUF))
		fw_fail("balloon: deflate queue %u unavailable", q);
	deflate_q = &dev.vq[q++];
	if (dev.features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ)) {
		if (virtq_setup(&dev, q, 4))
			fw_fail("balloon: stats queue %u unavailable", q);
		stats_q = &dev.vq[q++];
	}
	if (dev.features & (1ULL << VIRTIO_BALLOON_F_REPORTING)) {
		if (virtq_setup(&dev, q, 32) || dev.vq[q].size < 32)
			fw_fail("balloon: reporting queue %u unavailable or below 32 entries", q);
		report_q = &dev.vq[q++];
	}
	printf("balloon: queues inflate %u deflate %u stats %d reporting %d\n", inflate_q->index,
	       deflate_q->index, stats_q ? stats_q->index : -1, report_q ? report_q->index : -1);

	for (unsigned int i = 0; i < depth; i++)
		pfn_bufs[i] = fw_alloc(PFNS_PER_BUF * 4, 64);
	if (stats_q) {
		/* Like Linux: prime the stats buffer during probe, before DRIVER_OK. */
		stats_buf = fw_alloc(NR_STATS * sizeof(*stats_buf), 64);
		stats_post(0);
	}
	if (virtio_driver_ok(&dev))
		fw_fail("balloon: device refused DRIVER_OK");
	if (cfg_actual() != 0)
		error("actual is %u after reset, expected 0", cfg_actual());
}

static void check_health(void)
{
	uint8_t st = virtio_status(&dev);

	if (st & VIRTIO_CONFIG_S_NEEDS_RESET)
		error("device status 0x%x: NEEDS_RESET", st);
	for (unsigned int i = 0; i < VIRTIO_FW_MAX_QUEUES; i++)
		if (dev.vq[i].size && dev.vq[i].bad_used)
			error("queue %u: %u used elements named buffers not in flight", i,
			      dev.vq[i].bad_used);
}

/* ---- modes ----------------------------------------------------------------------------------- */

static void basic(void)
{
	uint64_t pages = fw_arg_u64("mib", 16) * FW_MIB / FW_PAGE_SIZE, cyc, left;
	uint64_t rounds = fw_arg_u64("stats-rounds", 0);
	bool check_discard = fw_arg_u64("discard", 1);

	pool_pages = pages;
	pool = fw_alloc(pages * FW_PAGE_SIZE, 2 * FW_MIB);
	touch(pool, pages, 0xba110000);

	cyc = transfer(inflate_q, true, pages);
	print_rate("inflate", pages, cyc);
	if (cfg_actual() != pages)
		error("actual %u after inflating %llu pages", cfg_actual(),
		      (unsigned long long)pages);

	if (dev.features & (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)) {
		/* What Linux's OOM notifier does: give back 1 MiB and update actual. */
		transfer(deflate_q, false, FW_MIN(pages, 256ULL));
		printf("balloon: deflate-on-oom step: actual %u\n", cfg_actual());
	}

	cyc = transfer(deflate_q, false, nr_in);
	print_rate("deflate", pages, cyc);
	left = count_nonzero(pool, pages);
	printf("balloon: after deflate %llu of %llu pages still hold data (discarded ones read "
	       "0)\n",
	       (unsigned long long)left, (unsigned long long)pages);
	if (check_discard && left)
		error("%llu inflated pages were not discarded by the host",
		      (unsigned long long)left);

	if (report_q)
		report_test(check_discard);

	if (stats_q && rounds) {
		uint64_t deadline = fw_deadline(rounds * 3000 + 5000);

		while (stats_returned < rounds && !fw_expired(deadline))
			if (!stats_poll())
				fw_pause();
		printf("balloon: stats buffer returned %llu times\n",
		       (unsigned long long)stats_returned);
		if (stats_returned < rounds)
			error("stats: %llu requests seen, expected %llu (is stats-period set?)",
			      (unsigned long long)stats_returned, (unsigned long long)rounds);
	}
}

/* A compressible page: word i of page @p of generation @gen. */
static uint64_t rewrite_word(uint64_t p, uint64_t gen, unsigned int i)
{
	return (p << 24 | gen << 16 | (i % 32)) * 0x0101ULL;
}

static uint64_t rewrite_check(uint64_t gen)
{
	uint64_t bad = 0;

	for (uint64_t p = 0; p < pool_pages; p++) {
		volatile uint64_t *w = (volatile uint64_t *)(pool + p * FW_PAGE_SIZE);

		for (unsigned int i = 0; i < FW_PAGE_SIZE / 8; i += 61)
			if (w[i] != rewrite_word(p, gen, i)) {
				bad++;
				break;
			}
	}
	return bad;
}

static void rewrite(void)
{
	uint64_t hold = fw_arg_u64("hold", 20), bad, deadline;

	pool_pages = fw_arg_u64("mib", 16) * FW_MIB / FW_PAGE_SIZE;
	pool = fw_alloc(pool_pages * FW_PAGE_SIZE, 2 * FW_MIB);
	for (uint64_t p = 0; p < pool_pages; p++)
		for (unsigned int i = 0; i < FW_PAGE_SIZE / 8; i++)
			((uint64_t *)(pool + p * FW_PAGE_SIZE))[i] = rewrite_word(p, 0, i);
	transfer(inflate_q, true, pool_pages);
	/* The contract says deflate first; a hostile guest does not. */
	for (uint64_t p = 0; p < pool_pages; p++)
		for (unsigned int i = 0; i < FW_PAGE_SIZE / 8; i++)
			((uint64_t *)(pool + p * FW_PAGE_SIZE))[i] = rewrite_word(p, 1, i);
	printf("balloon: rewrote %llu ballooned pages (%llu MiB), idle for %llu s\n",
	       (unsigned long long)pool_pages,
	       (unsigned long long)(pool_pages * FW_PAGE_SIZE / FW_MIB), (unsigned long long)hold);
	deadline = fw_deadline(hold * 1000);
	while (!fw_expired(deadline))
		fw_pause();
	bad = rewrite_check(1);
	printf("balloon: after idling %llu bad pages\n", (unsigned long long)bad);
	if (bad)
		error("%llu rewritten ballooned pages lost their data", (unsigned long long)bad);
	transfer(deflate_q, false, nr_in);
	bad = rewrite_check(1);
	printf("balloon: after deflate %llu bad pages\n", (unsigned long long)bad);
	if (bad)
		error("%llu rewritten pages lost their data at deflate", (unsigned long long)bad);
}

static void follow(void)
{
	uint64_t deadline = fw_deadline(fw_arg_u64("follow-timeout", 60) * 1000);
	uint64_t next_check = 0, changes = 0, in_cycles = 0, in_pages = 0, out_cycles = 0;
	uint64_t out_pages = 0;
	bool went_up = false;
	uint8_t gen, seen_gen;
	uint32_t target = cfg_num_pages(&seen_gen), seen_target = target;

	/* Everything but a small reserve may be ballooned. */
	pool_pages = (fw_mem_left() - 4 * FW_MIB) / FW_PAGE_SIZE;
	pool = fw_alloc(pool_pages * FW_PAGE_SIZE, FW_PAGE_SIZE);
	/* Resident, so inflating visibly frees host RAM (touch-mib: only the first MiB). */
	touch(pool,
	      FW_MIN(pool_pages, fw_arg_u64("touch-mib", ~0ULL >> 20) * FW_MIB / FW_PAGE_SIZE),
	      0xf0110000);
	printf("balloon: following num_pages (pool %llu MiB, target %u pages)\n",
	       (unsigned long long)(pool_pages * FW_PAGE_SIZE / FW_MIB), target);
	for (;;) {
		uint8_t g = virtio_generation(&dev);

		stats_poll();
		if (g != seen_gen) {
			uint8_t isr = mmio_read8(dev.isr); /* reading clears it (§4.1.4.5) */

			target = cfg_num_pages(&gen);
			changes++;
			printf("balloon: config generation %u -> %u: num_pages %u (isr 0x%x)\n",
			       seen_gen, gen, target, isr);
			if (!(isr & VIRTIO_PCI_ISR_CONFIG))
				error("config changed but the ISR configuration bit was not set");
			seen_gen = gen;
			seen_target = target;
		} else if (fw_expired(next_check)) {
			/* A num_pages change must come with a new generation (§4.1.4.3.1). */
			uint32_t now = cfg_num_pages(&gen);

			if (now != seen_target && gen == seen_gen)
				error("num_pages changed %u -> %u without a config generation "
				      "change",
				      seen_target, now);
			next_check = fw_deadline(200);
		}
		if (target > nr_in && nr_in < pool_pages) {
			uint64_t n = FW_MIN((uint64_t)target, pool_pages) - nr_in;

			in_cycles += transfer(inflate_q, true, n);
			in_pages += n;
			printf("balloon: inflated to %llu pages\n", (unsigned long long)nr_in);
			went_up = true;
		} else if (target < nr_in) {
			uint64_t n = nr_in - target;

			out_cycles += transfer(deflate_q, false, n);
			out_pages += n;
			printf("balloon: deflated to %llu pages\n", (unsigned long long)nr_in);
		}
		if (went_up && target == 0 && nr_in == 0)
			break;
		if (fw_expired(deadline)) {
			error("follow: timed out (target %u, balloon %llu pages, %llu changes)",
			      target, (unsigned long long)nr_in, (unsigned long long)changes);
			break;
		}
		fw_pause();
	}
	print_rate("inflate", in_pages, in_cycles);
	print_rate("deflate", out_pages, out_cycles);
	printf("balloon: followed %llu config changes\n", (unsigned long long)changes);
}

int main(void)
{
	const char *mode = fw_arg_str("mode", "basic");

	depth = (unsigned int)fw_arg_u64("depth", 1);
	if (depth < 1 || depth > MAX_DEPTH)
		fw_fail("balloon: depth must be 1..%u", MAX_DEPTH);
	setup();
	if (!strcmp(mode, "follow"))
		follow();
	else if (!strcmp(mode, "basic"))
		basic();
	else if (!strcmp(mode, "rewrite"))
		rewrite();
	else
		fw_fail("balloon: unknown mode '%s' (basic, rewrite or follow)", mode);
	check_health();
	if (errors)
		fw_fail("balloon: %u errors", errors);
	printf("balloon: PASS\n");
	return 0;
}
