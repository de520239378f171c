/*
 * libFuzzer target for virtio-balloon's queue handlers and config space: random ring contents,
 * random negotiated feature sets and a random sequence of driver/host operations, driven
 * through the device's virtio_dev_ops as the transport would (no PCI).
 * Input: 8-byte header, 64 two-byte operations, then the guest RAM image.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_balloon.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "fuzz_virtio.h"

/* Two regions: 3 GiB below the PCI hole (MAP_NORESERVE) and 4 MiB from 4 GiB (issue 12). */
#define RAM    (GM_LOW_RAM_MAX + 4 * MiB)
#define WINDOW (64 * KiB) /* the part of RAM the input fills */
#define HDR    8
#define NR_OPS 64

static struct guest_mem gm;

static void sink(void *opaque, const char *event, const char *data)
{
	(void)opaque;
	if (!event || !data || data[0] != '{')
		__builtin_trap();
}

static const struct virtio_transport_ops transport; /* no hooks: the device must cope */

static void negotiate(struct virtio_dev *dev, const uint8_t *h)
{
	/* Raw feature bits, not masked by a transport: includes ones never offered. */
	dev->driver_features =
		(uint64_t)h[1] | (uint64_t)(h[4] & 0x30) << 24 | 1ULL << VIRTIO_F_VERSION_1;
	fz_features_ok(dev, &gm, h, 9);
}

static void run_op(struct balloon *b, struct virtio_dev *dev, const uint8_t *h, uint8_t op,
		   uint8_t arg)
{
	struct balloon_counters bc;
	struct balloon_stats st;

	switch (op & 15) {
	case 0:
	case 1:
	case 2:
	case 3:
		dev->ops->queue_notify(dev, arg % (VIRTIO_MAX_QUEUES + 2));
		break;
	case 4:
		fz_config_access(dev, op, arg, true);
		break;
	case 5:
		fz_config_access(dev, op, arg, false);
		break;
	case 6:
		balloon_request_stats(b);
		break;
	case 7:
		balloon_set_target(b, (uint64_t)arg * 97);
		break;
	case 8:
		pthread_mutex_lock(&dev->lock);
		virtio_dev_reset(dev);
		pthread_mutex_unlock(&dev->lock);
		break;
	case 9:
		negotiate(dev, h);
		break;
	case 10:
		fz_driver_ok(dev);
		break;
	case 11:
		balloon_stats_tick(b);
		break;
	case 12:
		balloon_get_counters(b, &bc);
		balloon_get_stats(b, &st);
		if (bc.inflated_pages > gm.nr_pages * 1000000ULL)
			__builtin_trap();
		break;
	default:
		/* The guest rewrites part of RAM between kicks, as a real one would. */
		memset(gm.base + (uint64_t)arg * 64, op, 64);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *h = data, *ops = data + HDR;
	struct balloon_config cfg;
	struct virtio_dev *dev;
	struct balloon *b;

	if (!gm.base && gm_init(&gm, RAM, false))
		__builtin_trap();
	if (size < HDR + 2 * NR_OPS)
		return 0;
	/* What the last input made the device touch anywhere in RAM is given back (bounded RSS). */
	madvise(gm.base + WINDOW, gm.size - WINDOW, MADV_DONTNEED);
	memset(gm.base, 0, WINDOW);
	memcpy(gm.base, data + HDR + 2 * NR_OPS, MIN(size - HDR - 2 * NR_OPS, WINDOW));
	memset(gm.state, 0, gm.nr_pages);
	gm.nr_ballooned = gm.nr_reported = gm.discard_calls = 0;

	cfg = (struct balloon_config){
		.enabled = true,
		.stats = h[0] & 1,
		.deflate_on_oom = h[0] & 2,
		.free_page_reporting = h[0] & 4,
		.stats_period_s = h[0] >> 6,
	};
	b = balloon_create(&gm, &cfg);
	if (!b)
		return 0;
	dev = balloon_virtio_dev(b);
	if (h[0] & 8)
		dev->transport = &transport;
	if (h[0] & 16)
		balloon_set_event_sink(b, sink, NULL);
	negotiate(dev, h);
	if (!(h[0] & 32))
		fz_driver_ok(dev);
	for (unsigned int i = 0; i < NR_OPS; i++)
		run_op(b, dev, h, ops[2 * i], ops[2 * i + 1]);
	if (gm.nr_ballooned + gm.nr_reported > gm.nr_pages)
		__builtin_trap();
	balloon_destroy(b);
	return 0;
}
