/*
 * libFuzzer target for virtio-blk's request handling: random ring contents, descriptor chains,
 * request headers, discard segments, negotiated feature sets and a random sequence of driver
 * operations (kicks, config access, reset, renegotiation) driven through the device's
 * virtio_dev_ops as the transport would (no PCI), with real io_uring rings on a scratch image
 * whose completions are reaped through the event loop between operations.
 * Input: 8-byte header, 64 two-byte operations, then the guest RAM image (first 64 KiB).
 * Invariants: requests in flight never exceed the queues' entries, and none survive a reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_blk.h"
#include "../../vmm/loop.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "fuzz_virtio.h"

/* Two regions: 3 GiB below the PCI hole (MAP_NORESERVE) and 4 MiB from 4 GiB (issue 12). */
#define RAM	    (GM_LOW_RAM_MAX + 4 * MiB)
#define WINDOW	    (64 * KiB)
#define HDR	    8
#define NR_OPS	    64
#define IMAGE_BYTES (1 * MiB)

static struct guest_mem gm;
static struct loop *loop;
static struct blk *disks[2]; /* read-write with 2 queues, read-only with 1 */
static char image[] = "/tmp/vmm-fuzz-blk-XXXXXX";

static const struct virtio_transport_ops transport; /* no hooks: the device must cope */

static void cleanup(void)
{
	unlink(image);
}

static void init(void)
{
	struct blk_config rw = {.path = image, .nr_queues = 2, .serial = "fuzz"};
	struct blk_config ro = {.path = image, .nr_queues = 1, .ro = true};
	int fd;

	log_level = LOG_QUIET;
	if (gm_init(&gm, RAM, 0))
		__builtin_trap();
	loop = loop_create();
	fd = mkstemp(image);
	if (!loop || fd < 0 || ftruncate(fd, IMAGE_BYTES))
		__builtin_trap();
	close(fd);
	atexit(cleanup);
	if (blk_create(&gm, loop, &rw, &disks[0]) || blk_create(&gm, loop, &ro, &disks[1]))
		__builtin_trap();
}

static void reset(struct virtio_dev *dev, struct blk *b)
{
	struct blk_counters c;

	pthread_mutex_lock(&dev->lock);
	virtio_dev_reset(dev);
	pthread_mutex_unlock(&dev->lock);
	blk_get_counters(b, &c);
	if (c.inflight)
		__builtin_trap(); /* a request outlived the reset */
}

static void negotiate(struct virtio_dev *dev, const uint8_t *h)
{
	/* Raw feature bits, not masked by a transport: includes ones never offered. */
	dev->driver_features = (uint64_t)h[1] | (uint64_t)h[4] << 8 |
			       (uint64_t)(h[5] & 0x30) << 24 | 1ULL << VIRTIO_F_VERSION_1;
	fz_features_ok(dev, &gm, h, 9);
}

static void run_op(struct blk *b, struct virtio_dev *dev, const uint8_t *h, uint8_t op, uint8_t arg)
{
	struct blk_counters c;

	switch (op & 15) {
	case 0:
	case 1:
	case 2:
		dev->ops->queue_notify(dev, arg % (VIRTIO_MAX_QUEUES + 2));
		break;
	case 3:
	case 4:
	case 5:
		loop_dispatch(loop, op & 0x10 ? 1 : 0); /* completions */
		break;
	case 6:
		fz_config_access(dev, op, arg, true);
		break;
	case 7:
		fz_config_access(dev, op, arg, false);
		break;
	case 8:
		reset(dev, b);
		break;
	case 9:
		negotiate(dev, h);
		break;
	case 10:
		fz_driver_ok(dev);
		break;
	case 11:
		blk_get_counters(b, &c);
		if (c.inflight > 2 * BLK_QUEUE_SIZE)
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
	struct virtio_dev *dev;
	struct blk *b;

	if (!loop)
		init();
	if (size < HDR + 2 * NR_OPS)
		return 0;
	b = disks[h[0] & 1];
	dev = blk_virtio_dev(b);
	reset(dev, b); /* nothing of the last input is in flight before RAM is rewritten */
	/* What the last input made the device touch anywhere in RAM is given back (bounded RSS). */
	madvise(gm.base + WINDOW, gm.size - WINDOW, MADV_DONTNEED);
	memset(gm.base, 0, WINDOW);
	memcpy(gm.base, data + HDR + 2 * NR_OPS, MIN(size - HDR - 2 * NR_OPS, WINDOW));
	dev->transport = h[0] & 8 ? &transport : NULL;
	negotiate(dev, h);
	if (!(h[0] & 32))
		fz_driver_ok(dev);
	for (unsigned int i = 0; i < NR_OPS; i++)
		run_op(b, dev, h, ops[2 * i], ops[2 * i + 1]);
	reset(dev, b);
	return 0;
}
