/*
 * Shared by the virtio device fuzz targets (fuzz_balloon, fuzz_blk, fuzz_console): the queue
 * layout taken from fuzz bytes, and DRIVER_OK under the device lock as the transport does it.
 */
#ifndef TESTS_FUZZ_FUZZ_VIRTIO_H
#define TESTS_FUZZ_FUZZ_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_config.h>

#include "../../devices/virtio.h"
#include "../../devices/virtqueue.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"

#define FZ_QSTRIDE 0x2000 /* queue i's rings at i * FZ_QSTRIDE (size <= 256 fits) */

/*
 * Configure every queue slot @dev exposes, sizes 1 .. 2^(@max_order - 1) from @h[2], a
 * misaligned used ring where @h[3]'s bit i says so (vq_enable refuses it, the queue stays off).
 */
static inline void fz_setup_queues(struct virtio_dev *dev, struct guest_mem *gm, const uint8_t *h,
				   unsigned int max_order)
{
	for (unsigned int i = 0; i < dev->ops->max_queues && i < VIRTIO_MAX_QUEUES; i++) {
		struct virtqueue *vq = &dev->vqs[i];

		vq_reset(vq);
		vq->size = (uint16_t)(1u << ((h[2] >> (i % 4)) % max_order));
		vq->desc_gpa = i * FZ_QSTRIDE;
		vq->avail_gpa = vq->desc_gpa + 16ULL * vq->size;
		vq->used_gpa = ALIGN_UP(vq->avail_gpa + 6 + 2ULL * vq->size, 4);
		if (h[3] & (1u << i))
			vq->used_gpa += 2;
		vq_enable(vq, gm, dev->driver_features);
	}
}

/* ACKNOWLEDGE | DRIVER | FEATURES_OK with dev->driver_features already set, then the queues. */
static inline void fz_features_ok(struct virtio_dev *dev, struct guest_mem *gm, const uint8_t *h,
				  unsigned int max_order)
{
	dev->status =
		VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
	fz_setup_queues(dev, gm, h, max_order);
}

/*
 * One config-space access of the fuzz op @op with argument @arg, as a transport makes it: offset
 * @arg within the config space, 1, 2, 4 or 8 bytes from @op bits 4-5 (clipped to the end), under
 * the device lock; @write takes bytes derived from @arg.
 */
static inline void fz_config_access(struct virtio_dev *dev, uint8_t op, uint8_t arg, bool write)
{
	uint8_t buf[8] = {arg, arg ^ 0x5a, 0, arg >> 1};
	uint32_t off = arg % dev->ops->config_size, len = 1u << (op >> 4 & 3);

	len = MIN(len, dev->ops->config_size - off);
	pthread_mutex_lock(&dev->lock);
	if (write)
		dev->ops->config_write(dev, off, buf, len);
	else
		dev->ops->config_read(dev, off, buf, len);
	pthread_mutex_unlock(&dev->lock);
}

static inline void fz_driver_ok(struct virtio_dev *dev)
{
	pthread_mutex_lock(&dev->lock);
	dev->status |= VIRTIO_CONFIG_S_DRIVER_OK;
	dev->ops->activate(dev);
	pthread_mutex_unlock(&dev->lock);
}

#endif
