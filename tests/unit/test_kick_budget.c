/*
 * The work budget of one queue notification (devices/virtio.h, struct virtio_kick_budget;
 * issue 12 item 4), on the virtio-balloon driven by the fake driver: a driver thread keeps
 * republishing buffers while the device processes the queue, as a hostile vCPU would. The
 * notification must return after the budget, ask the transport for another notification, and
 * the rest must be processed on the later notifications.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_balloon.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "fake_driver.h"

#define RAM	  (64 * MiB)
#define RING_BASE 0x100000ULL
#define BUF_GPA	  0x200000ULL
#define QSIZE	  256
#define DEFLATE	  1	 /* transport index of the deflate queue */
#define FLOOD	  200000 /* chains the republisher publishes at most */

static struct guest_mem gm;
static struct balloon *b;
static struct virtio_dev *dev;
static struct fake_vq q[2];
static unsigned int again[VIRTIO_MAX_QUEUES];

static void t_signal_used(struct virtio_dev *d, uint16_t qidx)
{
	(void)d;
	(void)qidx;
}

static void t_signal_config(struct virtio_dev *d)
{
	d->config_generation++;
}

/* Records the request; the test plays the loop's later turn itself. */
static void t_notify_again(struct virtio_dev *d, uint16_t qidx)
{
	cr_assert_neq(pthread_mutex_trylock(&d->lock), 0, "notify_again runs under dev->lock");
	__atomic_add_fetch(&again[qidx], 1, __ATOMIC_SEQ_CST);
}

static const struct virtio_transport_ops transport = {
	.signal_used = t_signal_used,
	.signal_config = t_signal_config,
	.notify_again = t_notify_again,
};

static void bring_up(void)
{
	struct balloon_config cfg = {.enabled = true};
	uint32_t pfn = htole32(0x1000);

	cr_assert_eq(gm_init(&gm, RAM, false), 0);
	b = balloon_create(&gm, &cfg);
	cr_assert_not_null(b);
	dev = balloon_virtio_dev(b);
	dev->transport = &transport;
	dev->driver_features = 1ULL << VIRTIO_F_VERSION_1;
	dev->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	for (unsigned int i = 0; i < 2; i++) {
		fake_vq_init(&q[i], &gm, &dev->vqs[i], QSIZE, RING_BASE + i * 0x10000ULL);
		cr_assert_eq(vq_enable(&dev->vqs[i], &gm, dev->driver_features), 0);
	}
	/* One deflate buffer of one PFN (cheap, never an error), published again and again. */
	cr_assert_eq(gm_write(&gm, BUF_GPA, &pfn, 4), 0);
	fake_set_desc(&q[DEFLATE], 0, BUF_GPA, 4, 0, 0);
	memset(again, 0, sizeof(again));
}

static void teardown(void)
{
	balloon_destroy(b);
	gm_destroy(&gm);
}

TestSuite(kick_budget, .init = bring_up, .fini = teardown);

static uint16_t in_flight(const struct fake_vq *f)
{
	return (uint16_t)(f->avail_idx - fake_used_idx(f));
}

static void fill_ring(struct fake_vq *f)
{
	while (in_flight(f) < f->size)
		fake_publish(f, 0);
}

/* The hostile driver: keep the ring full while the device works. */
static volatile bool stop;
static unsigned int published;

static void *republisher(void *arg)
{
	struct fake_vq *f = arg;

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE) && published < FLOOD) {
		if (in_flight(f) < f->size) {
			fake_publish(f, 0);
			published++;
		} else {
			sched_yield();
		}
	}
	return NULL;
}

Test(kick_budget, notify_returns_after_the_chain_budget_while_the_driver_republishes)
{
	pthread_t t;
	uint64_t popped;

	dev->budget.ns = UINT64_MAX; /* the chain count alone decides here */
	fill_ring(&q[DEFLATE]);
	published = 0;
	stop = false;
	cr_assert_eq(pthread_create(&t, NULL, republisher, &q[DEFLATE]), 0);
	dev->ops->queue_notify(dev, DEFLATE);
	popped = dev->vqs[DEFLATE].popped;
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	cr_assert_eq(popped, VIRTIO_KICK_BUDGET_CHAINS,
		     "one notification handled %llu chains (budget %u; the driver published %u)",
		     (unsigned long long)popped, VIRTIO_KICK_BUDGET_CHAINS, published);
	cr_assert_eq(again[DEFLATE], 1, "the device asked for another notification");
	cr_assert_eq(dev->budget_yields, 1);
	cr_assert_eq(again[0], 0, "only the flooded queue is re-armed");
}

Test(kick_budget, the_rest_is_processed_on_later_notifications)
{
	unsigned int turns = 0, total = QSIZE;

	dev->budget.ns = UINT64_MAX;
	fill_ring(&q[DEFLATE]);
	/* The loop's later turns: notify again for as long as the device asks. */
	dev->ops->queue_notify(dev, DEFLATE);
	for (turns = 1; again[DEFLATE] == turns && turns < 100; turns++) {
		uint64_t before = dev->vqs[DEFLATE].popped;

		dev->ops->queue_notify(dev, DEFLATE);
		cr_assert_leq(dev->vqs[DEFLATE].popped - before, VIRTIO_KICK_BUDGET_CHAINS);
	}
	cr_assert_eq(fake_used_idx(&q[DEFLATE]), total, "every chain came back (%u of %u)",
		     fake_used_idx(&q[DEFLATE]), total);
	/* 256 chains, 64 per turn: four full turns, the fifth finds the ring empty. */
	cr_assert_eq(turns, QSIZE / VIRTIO_KICK_BUDGET_CHAINS + 1);
	cr_assert_eq(dev->err_count, 0);
}

Test(kick_budget, time_budget_zero_means_one_chain_per_notification)
{
	dev->budget.ns = 0;
	fill_ring(&q[DEFLATE]);
	dev->ops->queue_notify(dev, DEFLATE);
	cr_assert_eq(dev->vqs[DEFLATE].popped, 1);
	cr_assert_eq(again[DEFLATE], 1);
}

Test(kick_budget, short_queue_needs_no_second_notification)
{
	for (unsigned int i = 0; i < 10; i++)
		fake_publish(&q[DEFLATE], 0);
	dev->ops->queue_notify(dev, DEFLATE);
	cr_assert_eq(fake_used_idx(&q[DEFLATE]), 10);
	cr_assert_eq(again[DEFLATE], 0);
	cr_assert_eq(dev->budget_yields, 0);
}

Test(kick_budget, activate_drains_at_most_a_budget_and_rearms)
{
	/* Buffers queued before DRIVER_OK are picked up at activate, within the same budget. */
	dev->budget.ns = UINT64_MAX;
	dev->status &= ~VIRTIO_CONFIG_S_DRIVER_OK;
	fill_ring(&q[DEFLATE]);
	pthread_mutex_lock(&dev->lock);
	dev->status |= VIRTIO_CONFIG_S_DRIVER_OK;
	cr_assert_eq(dev->ops->activate(dev), 0);
	pthread_mutex_unlock(&dev->lock);
	cr_assert_eq(dev->vqs[DEFLATE].popped, VIRTIO_KICK_BUDGET_CHAINS);
	cr_assert_eq(again[DEFLATE], 1);
}

/*
 * A single buffer can be expensive (256 PFNs that merge into no range: 256 discards). The time
 * budget splits it: with budget.ns = 0 each notification applies one range, the buffer comes
 * back only once all its PFNs are done, and a reset in between drops the rest.
 */
static uint64_t scattered_inflate(void)
{
	uint32_t pfns[256];
	uint64_t gpa = BUF_GPA + 0x1000;

	for (unsigned int i = 0; i < 256; i++)
		pfns[i] = htole32(0x2000 + 2 * i);
	cr_assert_eq(gm_write(&gm, gpa, pfns, sizeof(pfns)), 0);
	return fake_add_chain(&q[0], &(struct fake_buf){gpa, sizeof(pfns), false}, 1);
}

Test(kick_budget, time_budget_splits_an_expensive_buffer)
{
	struct balloon_counters bc;
	unsigned int turns;

	dev->budget.ns = 0;
	scattered_inflate();
	dev->ops->queue_notify(dev, 0);
	balloon_get_counters(b, &bc);
	cr_assert_eq(bc.discard_ranges, 1, "one notification applied %llu ranges",
		     (unsigned long long)bc.discard_ranges);
	cr_assert_eq(fake_used_idx(&q[0]), 0, "the buffer is not back before all its PFNs");
	cr_assert_eq(again[0], 1);
	for (turns = 1; turns < 256; turns++) {
		cr_assert_eq(again[0], turns, "notification %u asked for the next one", turns);
		cr_assert_eq(fake_used_idx(&q[0]), 0);
		dev->ops->queue_notify(dev, 0);
	}
	balloon_get_counters(b, &bc);
	cr_assert_eq(bc.discard_ranges, 256);
	cr_assert_eq(bc.inflated_pages, 256);
	cr_assert_eq(fake_used_idx(&q[0]), 1);
	cr_assert_eq(gm.nr_ballooned, 256);
}

Test(kick_budget, reset_drops_a_half_done_buffer)
{
	struct balloon_counters bc;

	dev->budget.ns = 0;
	scattered_inflate();
	dev->ops->queue_notify(dev, 0);
	pthread_mutex_lock(&dev->lock);
	virtio_dev_reset(dev);
	pthread_mutex_unlock(&dev->lock);
	cr_assert_eq(gm.nr_ballooned, 0, "the reset gave the ballooned pages back");
	/* Re-enable the queue (as a new driver would) and kick: the old buffer is gone. */
	dev->driver_features = 1ULL << VIRTIO_F_VERSION_1;
	dev->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	fake_vq_init(&q[0], &gm, &dev->vqs[0], QSIZE, RING_BASE);
	cr_assert_eq(vq_enable(&dev->vqs[0], &gm, dev->driver_features), 0);
	dev->ops->queue_notify(dev, 0);
	balloon_get_counters(b, &bc);
	cr_assert_eq(bc.discard_ranges, 1, "nothing of the dropped buffer was applied after reset");
	cr_assert_eq(fake_used_idx(&q[0]), 0);
}
