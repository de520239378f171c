/* The common part of every virtio device's snapshot state (virtio.h: virtio_dev_save/load). */
#include <errno.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "../vmm/state.h"
#include "../vmm/util.h"
#include "virtio.h"
#include "virtqueue.h"

static void vq_save(const struct virtqueue *vq, struct state_out *o)
{
	state_put_u16(o, vq->size);
	state_put_bool(o, vq->ready);
	state_put_u16(o, vq->msix_vector);
	state_put_u64(o, vq->desc_gpa);
	state_put_u64(o, vq->avail_gpa);
	state_put_u64(o, vq->used_gpa);
	state_put_u16(o, vq->last_avail);
	state_put_u16(o, vq->used_idx);
	state_put_u16(o, vq->signalled_used);
	state_put_bool(o, vq->signalled_valid);
	state_put_bool(o, vq->event_idx);
	state_put_bool(o, vq->indirect);
	state_put_u64(o, vq->popped);
	state_put_u64(o, vq->notifications);
}

int virtio_dev_save(struct virtio_dev *dev, struct state_out *o)
{
	const struct virtio_dev_ops *ops = dev->ops;

	state_put_u64(o, dev->device_features);
	state_put_u64(o, dev->driver_features);
	state_put_u8(o, dev->status);
	state_put_u8(o, dev->config_generation);
	state_put_u16(o, ops->max_queues);
	for (unsigned int i = 0; i < ops->max_queues && i < VIRTIO_MAX_QUEUES; i++)
		vq_save(&dev->vqs[i], o);
	state_put_u64(o, dev->err_count);
	state_put_u64(o, dev->early_kicks);
	state_put_u64(o, dev->used_signals);
	state_put_u64(o, dev->budget_yields);
	if (!state_out_error(o) && ops->save)
		return ops->save(dev, o);
	return state_out_error(o);
}

/* One queue; a ready one goes through vq_enable(), which validates size and rings. */
static int vq_load(struct virtio_dev *dev, struct virtqueue *vq, struct state_in *in)
{
	struct virtqueue s = {0};

	s.size = state_get_u16(in);
	s.ready = state_get_bool(in);
	s.msix_vector = state_get_u16(in);
	s.desc_gpa = state_get_u64(in);
	s.avail_gpa = state_get_u64(in);
	s.used_gpa = state_get_u64(in);
	s.last_avail = state_get_u16(in);
	s.used_idx = state_get_u16(in);
	s.signalled_used = state_get_u16(in);
	s.signalled_valid = state_get_bool(in);
	s.event_idx = state_get_bool(in);
	s.indirect = state_get_bool(in);
	s.popped = state_get_u64(in);
	s.notifications = state_get_u64(in);
	if (state_in_error(in))
		return state_in_error(in);
	vq_reset(vq);
	vq->msix_vector = s.msix_vector; /* range-checked by the transport */
	if (!s.ready)
		return 0; /* an unready queue's registers live in the transport */
	if (s.size > dev->ops->max_queue_size)
		return state_fail(in, "queue size above the device's maximum");
	vq->size = s.size;
	vq->desc_gpa = s.desc_gpa;
	vq->avail_gpa = s.avail_gpa;
	vq->used_gpa = s.used_gpa;
	if (vq_enable(vq, dev->gm, dev->driver_features)) {
		vq_reset(vq);
		return state_fail(in, "ready queue with a bad size or rings outside guest RAM");
	}
	if (vq->event_idx != s.event_idx || vq->indirect != s.indirect) {
		vq_reset(vq);
		return state_fail(in, "queue ring features differ from the accepted features");
	}
	vq->msix_vector = s.msix_vector;
	vq->last_avail = s.last_avail;
	vq->used_idx = s.used_idx;
	vq->signalled_used = s.signalled_used;
	vq->signalled_valid = s.signalled_valid;
	vq->popped = s.popped;
	vq->notifications = s.notifications;
	return 0;
}

static int common_load(struct virtio_dev *dev, struct state_in *in)
{
	uint64_t offered = state_get_u64(in), accepted = state_get_u64(in);
	uint8_t status = state_get_u8(in), generation = state_get_u8(in);
	uint16_t nq = state_get_u16(in);

	if (state_in_error(in))
		return state_in_error(in);
	if (offered != dev->device_features)
		return state_fail(in, "offered features differ: another device configuration");
	if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && (accepted & ~offered))
		return state_fail(in, "accepted features that were not offered");
	if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(status & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !(status & VIRTIO_CONFIG_S_NEEDS_RESET))
		return state_fail(in, "DRIVER_OK without FEATURES_OK");
	if (nq != dev->ops->max_queues)
		return state_fail(in, "number of queues differs");
	dev->driver_features = accepted;
	dev->status = status;
	dev->config_generation = generation;
	for (unsigned int i = 0; i < nq && i < VIRTIO_MAX_QUEUES; i++)
		if (vq_load(dev, &dev->vqs[i], in))
			return state_in_error(in);
	dev->err_count = state_get_u64(in);
	dev->early_kicks = state_get_u64(in);
	dev->used_signals = state_get_u64(in);
	dev->budget_yields = state_get_u64(in);
	return state_in_error(in);
}

int virtio_dev_load(struct virtio_dev *dev, struct state_in *in)
{
	int ret = common_load(dev, in);

	if (!ret && dev->ops->load)
		ret = dev->ops->load(dev, in);
	if (!ret)
		ret = state_in_error(in);
	if (ret) {
		if (!state_in_error(in))
			state_fail(in, "device state rejected");
		pr_debug("%s: state rejected", dev->ops->name);
		virtio_dev_reset_common(dev);
		return -EINVAL;
	}
	return 0;
}

int virtio_repop(struct virtio_dev *dev, uint16_t qidx, uint16_t head, struct vq_chain *c)
{
	struct virtqueue *vq = qidx < VIRTIO_MAX_QUEUES ? &dev->vqs[qidx] : NULL;
	uint16_t last;

	if (!vq || !vq->ready)
		return -EINVAL;
	last = vq->last_avail;
	vq->last_avail = (uint16_t)(last - 1);
	if (vq_pop(vq, c) != 1 || c->head != head) {
		vq->last_avail = last;
		return -EINVAL;
	}
	vq->popped--; /* popped once already, before the snapshot */
	return 0;
}
