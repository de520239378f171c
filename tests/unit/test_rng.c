/*
 * virtio-rng (virtio 1.2 §5.4) driven through its virtio_dev_ops by the fake driver: bytes
 * delivered, the token-bucket rate limit (waiting requests completed later from a loop timer,
 * the loop thread never blocked), hostile chains, reset, and the --rng option.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_rng.h"
#include "../../vmm/loop.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "fake_driver.h"

#define RAM	  (16 * MiB)
#define RING_BASE 0x100000ULL
#define BUF_BASE  0x200000ULL /* request buffers, 64 KiB slots */
#define ITABLE	  0x180000ULL
#define QSIZE	  64

static struct guest_mem gm;
static struct loop *lp;
static struct rng *r;
static struct virtio_dev *dev;
static struct fake_vq q;
static unsigned int signals, again;

static void t_signal_used(struct virtio_dev *d, uint16_t qidx)
{
	(void)d;
	(void)qidx;
	signals++;
}

static void t_signal_config(struct virtio_dev *d)
{
	d->config_generation++;
}

static void t_notify_again(struct virtio_dev *d, uint16_t qidx)
{
	(void)d;
	(void)qidx;
	again++;
}

static const struct virtio_transport_ops transport = {
	.signal_used = t_signal_used,
	.signal_config = t_signal_config,
	.notify_again = t_notify_again,
};

static void bring_up_rate(uint64_t rate, uint64_t burst, uint64_t features)
{
	struct rng_config cfg = {.enabled = true, .rate_bytes_per_s = rate, .burst_bytes = burst};

	cr_assert_eq(gm_init(&gm, RAM, false), 0);
	lp = loop_create();
	cr_assert_not_null(lp);
	r = rng_create(&gm, &cfg, lp);
	cr_assert_not_null(r);
	dev = rng_virtio_dev(r);
	dev->transport = &transport;
	dev->driver_features = features | 1ULL << VIRTIO_F_VERSION_1;
	dev->status =
		VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
	fake_vq_init(&q, &gm, &dev->vqs[0], QSIZE, RING_BASE);
	cr_assert_eq(vq_enable(&dev->vqs[0], &gm, dev->driver_features), 0);
	pthread_mutex_lock(&dev->lock);
	dev->status |= VIRTIO_CONFIG_S_DRIVER_OK;
	cr_assert_eq(dev->ops->activate(dev), 0);
	pthread_mutex_unlock(&dev->lock);
	signals = again = 0;
}

static void bring_up(void)
{
	bring_up_rate(RNG_DEFAULT_RATE, 0, 1ULL << VIRTIO_RING_F_INDIRECT_DESC);
}

static void teardown(void)
{
	rng_destroy(r);
	loop_destroy(lp);
	gm_destroy(&gm);
}

TestSuite(rng, .fini = teardown);

static struct rng_counters counters(void)
{
	struct rng_counters c;

	rng_get_counters(r, &c);
	return c;
}

static void kick(void)
{
	dev->ops->queue_notify(dev, 0);
}

static uint64_t slot(unsigned int i)
{
	return BUF_BASE + 0x10000ULL * i;
}

/* Post one device-writable buffer of @len bytes in slot @i, filled with @pattern first. */
static uint16_t post(unsigned int i, uint32_t len, uint8_t pattern)
{
	memset(gm_ptr(&gm, slot(i), len), pattern, len);
	return fake_add_chain(&q, &(struct fake_buf){slot(i), len, true}, 1);
}

static void expect_used(uint16_t head, uint32_t want_len)
{
	uint32_t id, len;

	cr_assert(fake_get_used(&q, &id, &len), "buffer %u not returned", head);
	cr_assert_eq(id, head);
	cr_assert_eq(len, want_len, "used length %u, expected %u", len, want_len);
}

/* Bytes of [p, p + n) that differ from @pattern. */
static unsigned int changed(const uint8_t *p, uint32_t n, uint8_t pattern)
{
	unsigned int k = 0;

	for (uint32_t i = 0; i < n; i++)
		k += p[i] != pattern;
	return k;
}

Test(rng, identity_no_config_and_features)
{
	bring_up();
	cr_assert_eq(dev->ops->device_id, VIRTIO_ID_RNG);
	cr_assert_eq(dev->ops->max_queues, 1);
	cr_assert_eq(dev->ops->config_size, 0);
	cr_assert(dev->device_features & (1ULL << VIRTIO_RING_F_EVENT_IDX));
	cr_assert(dev->device_features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
}

Test(rng, request_filled_with_random_bytes)
{
	uint8_t a[64], b[64];
	uint16_t h;

	bring_up();
	h = post(0, 64, 0);
	kick();
	expect_used(h, 64);
	memcpy(a, gm_ptr(&gm, slot(0), 64), 64);
	h = post(1, 64, 0);
	kick();
	expect_used(h, 64);
	memcpy(b, gm_ptr(&gm, slot(1), 64), 64);
	/* 64 random bytes equal to 0 or to another request's: 2^-512, i.e. a bug. */
	cr_assert_gt(changed(a, 64, 0), 40);
	cr_assert_neq(memcmp(a, b, 64), 0, "two requests got the same bytes");
	cr_assert_eq(counters().bytes, 128);
	cr_assert_eq(counters().requests, 2);
	cr_assert_eq(signals, 2);
}

Test(rng, chain_of_writable_buffers_and_indirect_table_filled_across)
{
	struct fake_buf bufs[3] = {
		{slot(0), 10, true}, {slot(0) + 100, 20, true}, {slot(0) + 1000, 34, true}};
	uint8_t *p;
	uint16_t h;

	bring_up();
	p = gm_ptr(&gm, slot(0), 2048);
	memset(p, 0xee, 2048);
	h = fake_add_chain(&q, bufs, 3);
	kick();
	expect_used(h, 64);
	cr_assert_gt(changed(p + 1000, 34, 0xee), 20);
	cr_assert_eq(changed(p + 10, 90, 0xee), 0, "nothing written between the buffers");
	cr_assert_eq(changed(p + 1034, 100, 0xee), 0, "nothing written past the last buffer");
	h = fake_add_indirect(&q, ITABLE, bufs, 3);
	kick();
	expect_used(h, 64);
}

Test(rng, large_request_gets_at_most_rng_chain_max)
{
	uint16_t h;

	bring_up();
	h = post(0, 0x10000 * 2, 0);
	kick();
	expect_used(h, RNG_CHAIN_MAX);
}

Test(rng, device_readable_buffer_is_malformed_and_untouched)
{
	struct fake_buf mixed[2] = {{slot(1), 16, false}, {slot(1) + 64, 16, true}};
	uint16_t h;

	bring_up();
	memset(gm_ptr(&gm, slot(0), 64), 0x33, 64);
	h = fake_add_chain(&q, &(struct fake_buf){slot(0), 64, false}, 1);
	kick();
	expect_used(h, 0);
	cr_assert_eq(changed(gm_ptr(&gm, slot(0), 64), 64, 0x33), 0, "readable buffer written");
	h = fake_add_chain(&q, mixed, 2);
	kick();
	expect_used(h, 0);
	/* Zero-length writable buffer: nothing to fill, malformed. */
	h = fake_add_chain(&q, &(struct fake_buf){slot(2), 0, true}, 1);
	kick();
	expect_used(h, 0);
	cr_assert_eq(counters().err_count, 3);
	cr_assert_eq(counters().bytes, 0);
	/* The device goes on. */
	h = post(3, 32, 0);
	kick();
	expect_used(h, 32);
}

Test(rng, hostile_chains_come_back_with_length_0)
{
	uint16_t h;

	bring_up();
	/* Outside RAM, wrapping, a loop, an out-of-range next. */
	fake_set_desc(&q, 10, 0xfffffffff000ULL, 64, VRING_DESC_F_WRITE, 0);
	fake_publish(&q, 10);
	fake_set_desc(&q, 11, UINT64_MAX - 16, 64, VRING_DESC_F_WRITE, 0);
	fake_publish(&q, 11);
	fake_set_desc(&q, 12, slot(0), 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 13);
	fake_set_desc(&q, 13, slot(0), 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 12);
	fake_publish(&q, 12);
	fake_set_desc(&q, 14, slot(0), 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0xffff);
	fake_publish(&q, 14);
	kick();
	expect_used(10, 0);
	expect_used(11, 0);
	expect_used(12, 0);
	expect_used(14, 0);
	cr_assert_eq(counters().err_count, 4);
	/* A head index past the ring cannot be returned; the next buffer is. */
	fake_publish(&q, QSIZE + 5);
	q.next_desc = 20;
	h = post(0, 16, 0);
	kick();
	expect_used(h, 16);
	cr_assert_eq(counters().err_count, 5);
}

Test(rng, avail_idx_runaway_needs_reset)
{
	bring_up();
	fake_set_avail_idx(&q, QSIZE + 7);
	kick();
	cr_assert(dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_assert_eq(fake_used_idx(&q), 0);
}

Test(rng, notify_before_driver_ok_served_at_activate)
{
	struct rng_config cfg = {.enabled = true, .rate_bytes_per_s = RNG_DEFAULT_RATE};
	uint16_t h;

	cr_assert_eq(gm_init(&gm, RAM, false), 0);
	lp = loop_create();
	r = rng_create(&gm, &cfg, lp);
	dev = rng_virtio_dev(r);
	dev->transport = &transport;
	again = 0;
	dev->driver_features = 1ULL << VIRTIO_F_VERSION_1;
	dev->status = VIRTIO_CONFIG_S_FEATURES_OK;
	fake_vq_init(&q, &gm, &dev->vqs[0], QSIZE, RING_BASE);
	cr_assert_eq(vq_enable(&dev->vqs[0], &gm, dev->driver_features), 0);
	h = post(0, 32, 0);
	kick();
	cr_assert_eq(fake_used_idx(&q), 0, "nothing before DRIVER_OK");
	cr_assert_eq(dev->early_kicks, 1);
	pthread_mutex_lock(&dev->lock);
	dev->status |= VIRTIO_CONFIG_S_DRIVER_OK;
	dev->ops->activate(dev);
	pthread_mutex_unlock(&dev->lock);
	/* Not on the activating (vCPU) thread: it asks the transport for a loop-thread kick. */
	cr_assert_eq(fake_used_idx(&q), 0, "served on the thread that wrote DRIVER_OK");
	cr_assert_eq(again, 1);
	kick();
	expect_used(h, 32);
}

/* Run the loop (timers) for @ms milliseconds. */
static void run_loop_for(uint64_t ms)
{
	uint64_t end = now_ns() + ms * 1000000ULL;

	while (now_ns() < end)
		loop_dispatch(lp, (int)MAX((end - now_ns()) / 1000000ULL, 1ULL));
}

Test(rng, rate_limit_waits_on_a_timer_and_is_respected)
{
	const uint64_t rate = 8192, burst = 2048;
	uint64_t t0, t1, elapsed_ms, bytes;
	uint16_t heads[60];
	uint32_t id, len;
	unsigned int done = 0;

	bring_up_rate(rate, burst, 0);
	t0 = now_ns();
	for (unsigned int i = 0; i < 60; i++)
		heads[i] = post(i % 32, 256, 0);
	kick();
	t1 = now_ns();
	/*
	 * The burst is served at once; the rest waits, and the kick did not wait for it (waiting
	 * would take 1.6 s: a loaded machine's scheduling delays stay far under 500 ms).
	 */
	cr_assert_eq(counters().bytes, burst);
	cr_assert_eq(counters().requests, burst / 256);
	cr_assert_lt(t1 - t0, 500 * 1000000ULL, "queue_notify blocked on the rate limit");
	cr_assert_eq(counters().throttled, 1);
	/* Further kicks while the request waits do nothing (no spinning on the bucket). */
	for (int i = 0; i < 100; i++)
		kick();
	cr_assert_eq(counters().bytes, burst);
	cr_assert_eq(counters().throttled, 1);
	run_loop_for(300);
	elapsed_ms = (now_ns() - t0) / 1000000ULL;
	bytes = counters().bytes;
	cr_assert_leq(bytes, burst + rate * elapsed_ms / 1000 + RNG_MIN_GRANT,
		      "%llu bytes in %llu ms: more than the bucket allows",
		      (unsigned long long)bytes, (unsigned long long)elapsed_ms);
	/* At least an eighth of what 300 ms allows: the loop thread may be starved a while. */
	cr_assert_geq(bytes, burst + MAX(rate * 300 / 1000 / 8, (uint64_t)RNG_MIN_GRANT),
		      "%llu bytes in %llu ms: the timer did not serve the waiting requests",
		      (unsigned long long)bytes, (unsigned long long)elapsed_ms);
	/* One timer per wait: bounded by rate / RNG_MIN_GRANT per second, not a busy loop. */
	cr_assert_leq(counters().timer_wakeups, rate * elapsed_ms / 1000 / RNG_MIN_GRANT + 2);
	while (fake_get_used(&q, &id, &len)) {
		cr_assert_eq(id, heads[done]);
		cr_assert_leq(len, 256);
		cr_assert_geq(len, RNG_MIN_GRANT);
		done++;
	}
	cr_assert_eq(counters().requests, done);
	cr_assert_lt(done, 60, "every request served within %llu ms at 8 KiB/s",
		     (unsigned long long)elapsed_ms);
}

Test(rng, reset_drops_a_waiting_request)
{
	bring_up_rate(1024, 64, 0);
	post(0, 64, 0);
	post(1, 64, 0);
	kick();
	cr_assert_eq(counters().requests, 1);
	cr_assert_eq(counters().throttled, 1);
	pthread_mutex_lock(&dev->lock);
	virtio_dev_reset(dev);
	pthread_mutex_unlock(&dev->lock);
	run_loop_for(200); /* the armed timer fires on a reset device: nothing happens */
	cr_assert_eq(counters().requests, 1);
	cr_assert_eq(counters().timer_wakeups, 1);
}

Test(rng, budget_ends_a_notification)
{
	bring_up();
	dev->budget.ns = UINT64_MAX;
	for (unsigned int i = 0; i < QSIZE; i++)
		fake_add_chain(&q, &(struct fake_buf){slot(0), 8, true}, 1);
	kick();
	cr_assert_eq(fake_used_idx(&q), VIRTIO_KICK_BUDGET_CHAINS);
	cr_assert_eq(again, 1);
}

Test(rng, create_rejects_bad_rates)
{
	struct rng_config cfg = {.enabled = true, .rate_bytes_per_s = 0};

	cr_assert_null(rng_create(NULL, &cfg, NULL));
	cfg.rate_bytes_per_s = RNG_MAX_RATE + 1;
	cr_assert_null(rng_create(NULL, &cfg, NULL));
	cr_assert_eq(gm_init(&gm, RAM, false), 0);
	lp = loop_create();
	cfg.rate_bytes_per_s = 1;
	r = rng_create(&gm, &cfg, lp);
	cr_assert_not_null(r);
}

Test(rng_option, parse)
{
	struct rng_config c;
	char err[160];

	cr_assert_eq(rng_parse_option("on", &c, err, sizeof(err)), 0);
	cr_assert(c.enabled);
	cr_assert_eq(c.rate_bytes_per_s, RNG_DEFAULT_RATE);
	cr_assert_eq(rng_parse_option("off", &c, err, sizeof(err)), 0);
	cr_assert_not(c.enabled);
	cr_assert_eq(rng_parse_option("on,rate=64K", &c, err, sizeof(err)), 0);
	cr_assert_eq(c.rate_bytes_per_s, 65536);
	cr_assert_eq(rng_parse_option("rate=1000", &c, err, sizeof(err)), 0);
	cr_assert(c.enabled);
	cr_assert_eq(c.rate_bytes_per_s, 1000);
	cr_assert_eq(rng_parse_option("on,rate=0", &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "bad rate '0'"), "%s", err);
	cr_assert_eq(rng_parse_option("on,rate=2G", &c, err, sizeof(err)), -EINVAL);
	cr_assert_eq(rng_parse_option("maybe", &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "'maybe'"), "%s", err);
	cr_assert_eq(rng_parse_option("on,speed=1", &c, err, sizeof(err)), -EINVAL);
	cr_assert_eq(rng_parse_option("", &c, err, sizeof(err)), -EINVAL);
	cr_assert_eq(rng_parse_option("rate=1,on", &c, err, sizeof(err)), -EINVAL);
}
