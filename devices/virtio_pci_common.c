/* virtio-pci's common configuration structure (virtio 1.2 §4.1.4.3): features, queues, status. */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stddef.h>
#include <string.h>

#include "../vmm/util.h"
#include "pci.h"
#include "virtio.h"
#include "virtio_pci.h"
#include "virtio_pci_priv.h"

/* ---- common configuration (virtio 1.2 §4.1.4.3) ---------------------------------------- */

static uint16_t vp_vector_ok(struct virtio_pci *vp, uint16_t v)
{
	/* §4.1.5.1.2: a vector the device cannot map reads back as NO_VECTOR. */
	return v < pci_msix_nr_vectors(vp->pdev) ? v : NO_VECTOR;
}

/* Caller holds dev->lock. The fixed reset path, then the transport's own registers. */
void vp_reset(struct virtio_pci *vp)
{
	virtio_dev_reset(vp->dev);
	vp_reset_regs(vp);
}

void vp_reset_regs(struct virtio_pci *vp)
{
	struct virtio_dev *dev = vp->dev;

	dev->device_features = (dev->ops->get_features ? dev->ops->get_features(dev) : 0) |
			       (1ULL << VIRTIO_F_VERSION_1);
	vp->dfselect = vp->gfselect = 0;
	vp->queue_sel = 0;
	vp->config_vector = NO_VECTOR;
	vp->activated = false;
	vp->early_mask = 0;
	for (uint16_t q = 0; q < vp->nq; q++)
		vp->q[q] = (struct vp_queue){.size = dev->ops->max_queue_size, .vector = NO_VECTOR};
	vp->isr = 0;
	pci_set_irq(vp->pdev, 0);
}

void vp_common_image(struct virtio_pci *vp, uint8_t *img)
{
	struct virtio_dev *dev = vp->dev;
	uint16_t sel = vp->queue_sel;

	put32(img + CC(device_feature_select), vp->dfselect);
	put32(img + CC(device_feature),
	      vp->dfselect < 2 ? (uint32_t)(dev->device_features >> (32 * vp->dfselect)) : 0);
	put32(img + CC(guest_feature_select), vp->gfselect);
	put32(img + CC(guest_feature),
	      vp->gfselect < 2 ? (uint32_t)(dev->driver_features >> (32 * vp->gfselect)) : 0);
	put16(img + CC(msix_config), vp->config_vector);
	put16(img + CC(num_queues), vp->nq);
	img[CC(device_status)] = dev->status;
	img[CC(config_generation)] = dev->config_generation;
	put16(img + CC(queue_select), sel);
	if (sel >= vp->nq)
		return; /* a queue that does not exist reads as size 0 */
	put16(img + CC(queue_size), vp->q[sel].size);
	put16(img + CC(queue_msix_vector), vp->q[sel].vector);
	put16(img + CC(queue_enable), dev->vqs[sel].ready);
	put16(img + CC(queue_notify_off), sel);
	put64(img + CC(queue_desc_lo), vp->q[sel].desc);
	put64(img + CC(queue_avail_lo), vp->q[sel].driver);
	put64(img + CC(queue_used_lo), vp->q[sel].device);
	put16(img + VIRTIO_PCI_COMMON_Q_NDATA, sel);
}

/* Caller holds dev->lock. Returns the queues whose early kicks must be replayed. */
static uint32_t vp_status_write(struct virtio_pci *vp, uint8_t v)
{
	struct virtio_dev *dev = vp->dev;
	uint8_t old = dev->status;
	uint32_t replay;
	uint64_t bad;
	int ret;

	if (!v) {
		vp_reset(vp);
		return 0;
	}
	if ((v & old) != old) {
		dev->err_count++;
		pr_err_ratelimited("%s: driver cleared status bits (%#x -> %#x): ignored",
				   dev->ops->name, old, v);
		return 0;
	}
	if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
		bad = dev->driver_features & ~dev->device_features;
		if (bad || !virtio_has_feature(dev, VIRTIO_F_VERSION_1)) {
			/* §2.2.2: leave FEATURES_OK clear; the driver reads it back and gives up.
			 */
			v &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
			pr_warn_ratelimited(
				"%s: refusing features %#llx (unoffered %#llx%s)", dev->ops->name,
				(unsigned long long)dev->driver_features, (unsigned long long)bad,
				virtio_has_feature(dev, VIRTIO_F_VERSION_1)
					? ""
					: ", VERSION_1 missing");
		}
	}
	dev->status = v;
	if (!(v & VIRTIO_CONFIG_S_DRIVER_OK) || (old & VIRTIO_CONFIG_S_DRIVER_OK))
		return 0;
	ret = (v & VIRTIO_CONFIG_S_FEATURES_OK) ? (dev->ops->activate ? dev->ops->activate(dev) : 0)
						: -EPROTO;
	if (ret) {
		dev->err_count++;
		pr_err_ratelimited("%s: activation failed: %s", dev->ops->name, strerror(-ret));
		virtio_needs_reset(dev);
		return 0;
	}
	vp->activated = true;
	replay = vp->early_mask;
	vp->early_mask = 0;
	return replay;
}

/* Caller holds dev->lock. */
static void vp_queue_enable(struct virtio_pci *vp, uint16_t sel, uint16_t v)
{
	struct virtio_dev *dev = vp->dev;
	struct virtqueue *vq = &dev->vqs[sel];
	int ret;

	if (v != 1 || vq->ready) {
		/* §4.1.4.3.2: the driver must not write 0 (queue_reset is not offered). */
		if (v != 1)
			pr_warn_ratelimited("%s: queue %u: queue_enable %u ignored", dev->ops->name,
					    sel, v);
		return;
	}
	vq->size = vp->q[sel].size;
	vq->desc_gpa = vp->q[sel].desc;
	vq->avail_gpa = vp->q[sel].driver;
	vq->used_gpa = vp->q[sel].device;
	ret = vq_enable(vq, dev->gm, dev->driver_features);
	if (ret) {
		vq_reset(vq);
		dev->err_count++;
		pr_err_ratelimited(
			"%s: queue %u: rejecting rings desc %#llx avail %#llx used %#llx "
			"size %u: %s",
			dev->ops->name, sel, (unsigned long long)vp->q[sel].desc,
			(unsigned long long)vp->q[sel].driver,
			(unsigned long long)vp->q[sel].device, vp->q[sel].size, strerror(-ret));
	}
	vq->msix_vector = vp->q[sel].vector;
}

/* Caller holds dev->lock. */
static void vp_queue_size(struct virtio_pci *vp, uint16_t sel, uint16_t v)
{
	struct virtio_dev *dev = vp->dev;

	/* Split rings: a power of two no larger than what the device offered (§2.7). */
	if (!v || (v & (v - 1)) || v > dev->ops->max_queue_size || dev->vqs[sel].ready) {
		dev->err_count++;
		pr_err_ratelimited("%s: queue %u: queue_size %u rejected", dev->ops->name, sel, v);
		return;
	}
	vp->q[sel].size = v;
}

/* Caller holds dev->lock. Returns the queues whose early kicks must be replayed. */
uint32_t vp_common_write(struct virtio_pci *vp, uint32_t off, const void *data, uint32_t len)
{
	struct virtio_dev *dev = vp->dev;
	uint8_t img[VIRTIO_PCI_COMMON_CFG_SIZE + 8] = {0};
	uint16_t sel = vp->queue_sel;
	bool qok = sel < vp->nq, qlive = qok && dev->vqs[sel].ready;
	uint32_t replay = 0;

	vp_common_image(vp, img);
	memcpy(img + off, data, len);
#define HIT(field, size) overlaps(off, len, (field), (size))
	if (HIT(CC(device_feature_select), 4))
		vp->dfselect = get32(img + CC(device_feature_select));
	if (HIT(CC(guest_feature_select), 4))
		vp->gfselect = get32(img + CC(guest_feature_select));
	if (HIT(CC(guest_feature), 4)) {
		uint64_t half = get32(img + CC(guest_feature));

		if ((dev->status & VIRTIO_CONFIG_S_FEATURES_OK) || vp->gfselect > 1) {
			dev->err_count++;
			pr_err_ratelimited("%s: driver_feature write ignored", dev->ops->name);
		} else if (vp->gfselect == 0) {
			dev->driver_features = (dev->driver_features & ~0xFFFFFFFFULL) | half;
		} else {
			dev->driver_features = (dev->driver_features & 0xFFFFFFFFULL) | half << 32;
		}
	}
	if (HIT(CC(msix_config), 2))
		vp->config_vector = vp_vector_ok(vp, get16(img + CC(msix_config)));
	if (HIT(CC(device_status), 1))
		replay = vp_status_write(vp, img[CC(device_status)]);
	if (HIT(CC(queue_select), 2))
		vp->queue_sel = get16(img + CC(queue_select));
	if (!qok)
		goto out;
	if (HIT(CC(queue_size), 2))
		vp_queue_size(vp, sel, get16(img + CC(queue_size)));
	if (HIT(CC(queue_msix_vector), 2)) {
		vp->q[sel].vector = vp_vector_ok(vp, get16(img + CC(queue_msix_vector)));
		dev->vqs[sel].msix_vector = vp->q[sel].vector;
	}
	if ((HIT(CC(queue_desc_lo), 24)) && qlive) {
		dev->err_count++;
		pr_err_ratelimited("%s: queue %u: ring address written while enabled: ignored",
				   dev->ops->name, sel);
	} else if (HIT(CC(queue_desc_lo), 24)) {
		vp->q[sel].desc = get64(img + CC(queue_desc_lo));
		vp->q[sel].driver = get64(img + CC(queue_avail_lo));
		vp->q[sel].device = get64(img + CC(queue_used_lo));
	}
	if (HIT(CC(queue_enable), 2))
		vp_queue_enable(vp, sel, get16(img + CC(queue_enable)));
#undef HIT
out:
	return replay;
}
