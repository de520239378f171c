/*
 * libFuzzer target for virtio-rng (devices/virtio_rng.c): random ring contents, features, rate
 * limits and a random sequence of driver operations (kicks, resets, DRIVER_OK, guest rewrites of
 * RAM, loop turns that fire the rate limiter's timer), driven through the device's
 * virtio_dev_ops with a transport that records notify_again and replays it as the loop would.
 * Checks: no request gets more than RNG_CHAIN_MAX bytes, the bytes delivered never exceed the
 * bucket (burst + rate x elapsed), and no crash, leak or sanitizer report (AddressSanitizer
 * catches any host access outside guest RAM).
 * Input: 8-byte header, 48 two-byte operations, then the guest RAM image.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_rng.h"
#include "../../vmm/loop.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"

/* Two regions: 3 GiB below the PCI hole (MAP_NORESERVE) and 4 MiB from 4 GiB (issue 12). */
#define RAM    (GM_LOW_RAM_MAX + 4 * MiB)
#define WINDOW (64 * KiB) /* the part of RAM the input fills: rings, tables, buffers */
#define HDR    8
#define NR_OPS 48

static struct guest_mem gm;
static struct loop *lp;
static unsigned int again;

static void t_signal_used(struct virtio_dev *d, uint16_t qidx)
{
	(void)d;
	if (qidx != 0)
		__builtin_trap();
}

static void t_signal_config(struct virtio_dev *d)
{
	d->config_generation++;
}

static void t_notify_again(struct virtio_dev *d, uint16_t qidx)
{
	(void)d;
	if (qidx != 0)
		__builtin_trap();
	again++;
}

static const struct virtio_transport_ops transport = {
	.signal_used = t_signal_used,
	.signal_config = t_signal_config,
	.notify_again = t_notify_again,
};

static void setup_queue(struct virtio_dev *dev, const uint8_t *h)
{
	struct virtqueue *vq = &dev->vqs[0];

	vq_reset(vq);
	vq->size = (uint16_t)(1u << (h[2] % 7)); /* 1..64 */
	vq->desc_gpa = 0;
	vq->avail_gpa = 16ULL * vq->size;
	vq->used_gpa = ALIGN_UP(vq->avail_gpa + 6 + 2ULL * vq->size, 4);
	if (h[3] & 1)
		vq->used_gpa += 2; /* misaligned: vq_enable refuses, the queue stays off */
	vq_enable(vq, &gm, dev->driver_features);
}

static void negotiate(struct virtio_dev *dev, const uint8_t *h)
{
	dev->driver_features = (uint64_t)(h[1] & 0x30) << 24 | 1ULL << VIRTIO_F_VERSION_1;
	dev->status =
		VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
	setup_queue(dev, h);
}

static void driver_ok(struct virtio_dev *dev)
{
	pthread_mutex_lock(&dev->lock);
	dev->status |= VIRTIO_CONFIG_S_DRIVER_OK;
	dev->ops->activate(dev);
	pthread_mutex_unlock(&dev->lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *h = data, *ops = data + HDR;
	struct rng_config cfg;
	struct rng_counters c;
	struct virtio_dev *dev;
	uint64_t t0, rate;
	struct rng *r;

	if (!gm.base) {
		if (gm_init(&gm, RAM, false))
			__builtin_trap();
		lp = loop_create();
	}
	if (size < HDR + 2 * NR_OPS)
		return 0;
	/* What the last input made the device touch anywhere in RAM is given back (bounded RSS). */
	madvise(gm.base + WINDOW, gm.size - WINDOW, MADV_DONTNEED);
	memset(gm.base, 0, WINDOW);
	memcpy(gm.base, data + HDR + 2 * NR_OPS, MIN(size - HDR - 2 * NR_OPS, WINDOW));
	rate = 1 + ((uint64_t)h[4] << 8 | h[5]) * 64;
	cfg = (struct rng_config){
		.enabled = true, .rate_bytes_per_s = rate, .burst_bytes = (uint64_t)h[6] * 16};
	r = rng_create(&gm, &cfg, (h[0] & 1) ? lp : NULL);
	if (!r)
		__builtin_trap();
	dev = rng_virtio_dev(r);
	dev->transport = &transport;
	if (h[0] & 2)
		dev->budget.ns = 0;
	again = 0;
	t0 = now_ns();
	negotiate(dev, h);
	if (!(h[0] & 4))
		driver_ok(dev);
	for (unsigned int i = 0; i < NR_OPS; i++) {
		uint8_t op = ops[2 * i], arg = ops[2 * i + 1];

		switch (op & 7) {
		case 0:
		case 1:
		case 2:
			dev->ops->queue_notify(dev, arg & 1 ? 0 : arg % 3);
			break;
		case 3:
			pthread_mutex_lock(&dev->lock);
			virtio_dev_reset(dev);
			pthread_mutex_unlock(&dev->lock);
			break;
		case 4:
			negotiate(dev, h);
			driver_ok(dev);
			break;
		case 5:
			/* The loop's turn: notify_again replays, a due timer fires. */
			while (again) {
				again--;
				dev->ops->queue_notify(dev, 0);
			}
			loop_dispatch(lp, 0);
			break;
		default:
			/* The guest rewrites part of its rings and tables between kicks. */
			memset(gm.base + (uint64_t)arg * 64, op, 64);
			break;
		}
	}
	rng_get_counters(r, &c);
	/* The used ring itself is guest RAM a hostile chain may point the device at (the guest
	 * only hurts itself), so the invariants are checked on the device's counters. */
	if (c.bytes > c.requests * (uint64_t)RNG_CHAIN_MAX)
		__builtin_trap();
	/* The bucket: burst + rate x elapsed (+ one RNG_MIN_GRANT of rounding). */
	if (c.bytes > MAX(cfg.burst_bytes ? cfg.burst_bytes : rate, (uint64_t)RNG_MIN_GRANT) +
			      (uint64_t)((unsigned __int128)(now_ns() - t0) * rate / 1000000000u) +
			      RNG_MIN_GRANT)
		__builtin_trap();
	rng_destroy(r);
	return 0;
}
