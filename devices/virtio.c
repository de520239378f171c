#include "virtio.h"

#include <errno.h>
#include <string.h>

#include <linux/virtio_config.h>

#include "../vmm/util.h"

void virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops, struct guest_mem *gm)
{
	unsigned int i;

	memset(dev, 0, sizeof(*dev));
	dev->ops = ops;
	dev->gm = gm;
	pthread_mutex_init(&dev->lock, NULL);
	dev->budget = (struct virtio_kick_budget){VIRTIO_KICK_BUDGET_CHAINS, VIRTIO_KICK_BUDGET_NS};
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		vq_reset(&dev->vqs[i]);
	if (ops->get_features)
		dev->device_features = ops->get_features(dev);
}

void virtio_dev_reset_common(struct virtio_dev *dev)
{
	unsigned int i;

	dev->driver_features = 0;
	dev->status = 0;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		vq_reset(&dev->vqs[i]);
}

void virtio_dev_reset(struct virtio_dev *dev)
{
	virtio_dev_reset_common(dev);
	if (dev->ops->reset)
		dev->ops->reset(dev);
}

void virtio_needs_reset(struct virtio_dev *dev)
{
	if (dev->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	dev->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	pr_err_ratelimited("%s: driver error: device needs reset", dev->ops->name);
	if (dev->transport && dev->transport->signal_config)
		dev->transport->signal_config(dev);
}

int virtio_complete(struct virtio_dev *dev, uint16_t qidx, uint16_t head, uint32_t len)
{
	struct virtqueue *vq;
	int ret;

	if (qidx >= VIRTIO_MAX_QUEUES)
		return -EINVAL;
	vq = &dev->vqs[qidx];
	ret = vq_push(vq, head, len);
	if (ret)
		return ret;
	if (!vq_should_notify(vq))
		return 0;
	dev->used_signals++;
	if (dev->transport && dev->transport->signal_used)
		dev->transport->signal_used(dev, qidx);
	return 0;
}

void virtio_budget_begin(const struct virtio_dev *dev, struct virtio_budget *b)
{
	uint64_t now = now_ns();

	b->left = dev->budget.chains ? dev->budget.chains : 1;
	if (__builtin_add_overflow(now, dev->budget.ns, &b->deadline_ns))
		b->deadline_ns = UINT64_MAX;
}

bool virtio_budget_spend(struct virtio_dev *dev, struct virtio_budget *b, uint16_t qidx)
{
	if (!dev->transport || !dev->transport->notify_again)
		return true;
	if (b->left > 1 && now_ns() < b->deadline_ns) {
		b->left--;
		return true;
	}
	virtio_budget_yield(dev, qidx);
	return false;
}

bool virtio_budget_expired(const struct virtio_dev *dev, const struct virtio_budget *b)
{
	return dev->transport && dev->transport->notify_again && now_ns() >= b->deadline_ns;
}

void virtio_budget_yield(struct virtio_dev *dev, uint16_t qidx)
{
	dev->budget_yields++;
	if (dev->transport && dev->transport->notify_again)
		dev->transport->notify_again(dev, qidx);
}
