#include "virtio_pci.h"

#include <endian.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../vmm/loop.h"
#include "../vmm/util.h"
#include "pci.h"
#include "virtio.h"

#define CC(f)	  offsetof(struct virtio_pci_common_cfg, f)
#define NO_VECTOR VIRTIO_MSI_NO_VECTOR

struct vp_queue {
	uint16_t size;	 /* queue_size as the driver sees it: max at reset, may be lowered */
	uint16_t vector; /* queue_msix_vector */
	uint64_t desc, driver, device;
};

struct vp_notify {
	struct virtio_pci *vp;
	uint16_t qidx;
	int fd;		    /* eventfd, -1 without a loop */
	uint64_t ioeventfd; /* address registered with KVM, or PCI_BAR_UNMAPPED */
};

struct virtio_pci {
	struct virtio_dev *dev;
	struct pci_dev *pdev;
	struct loop *loop;
	uint16_t nq;

	/* Protected by dev->lock. */
	uint32_t dfselect, gfselect;
	uint16_t queue_sel, config_vector;
	uint8_t isr;
	bool activated;
	uint32_t early_mask; /* queues kicked before DRIVER_OK: replayed after activate */
	struct vp_queue q[VIRTIO_MAX_QUEUES];

	/* Protected by the PCI bus lock (configuration-space hooks). */
	struct vp_notify notify[VIRTIO_MAX_QUEUES];
	unsigned int cfg_cap; /* offset of the VIRTIO_PCI_CAP_PCI_CFG capability */
	uint8_t cfg_win[sizeof(struct virtio_pci_cfg_cap)]; /* its guest-written bytes */
};

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static bool overlaps(uint64_t off, uint64_t len, uint64_t start, uint64_t n)
{
	return off < start + n && start < off + len;
}

/* ---- interrupts (virtio 1.2 §4.1.4.5, §4.1.5.3-4) -------------------------------------- */

/* Caller holds dev->lock. MSI-X enabled: the vector or nothing; disabled: INTx + ISR bit. */
static void vp_raise(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	if (vector != NO_VECTOR) {
		if (pci_msix_signal(vp->pdev, vector) != -EAGAIN)
			return;
	} else if (pci_msix_enabled(vp->pdev)) {
		return;
	}
	vp->isr |= isr_bit;
	pci_set_irq(vp->pdev, 1);
}

static void vp_signal_used(struct virtio_dev *dev, uint16_t qidx)
{
	struct virtio_pci *vp = dev->transport_priv;

	if (qidx < vp->nq)
		vp_raise(vp, vp->q[qidx].vector, 1);
}

static void vp_signal_config(struct virtio_dev *dev)
{
	struct virtio_pci *vp = dev->transport_priv;

	dev->config_generation++;
	vp_raise(vp, vp->config_vector, VIRTIO_PCI_ISR_CONFIG);
}

static const struct virtio_transport_ops vp_transport = {
	.signal_used = vp_signal_used,
	.signal_config = vp_signal_config,
};

/* ---- notifications ----------------------------------------------------------------------- */

/* No lock held: queue_notify takes dev->lock itself. */
static void vp_kick(struct virtio_pci *vp, uint16_t qidx)
{
	struct virtio_dev *dev = vp->dev;
	bool live, early = false;

	pthread_mutex_lock(&dev->lock);
	live = vp->activated && !(dev->status & VIRTIO_CONFIG_S_NEEDS_RESET) &&
	       dev->vqs[qidx].ready;
	if (!live && !(dev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		early = true;
		dev->early_kicks++;
		vp->early_mask |= 1u << qidx;
	} else if (!live) {
		dev->err_count++;
	}
	pthread_mutex_unlock(&dev->lock);
	if (live)
		dev->ops->queue_notify(dev, qidx);
	else if (early)
		pr_debug("%s: queue %u kicked before DRIVER_OK: deferred", dev->ops->name, qidx);
	else
		pr_err_ratelimited("%s: queue %u kicked while not ready: dropped", dev->ops->name,
				   qidx);
}

static void vp_notify_cb(void *opaque, int fd, uint32_t events)
{
	struct vp_notify *n = opaque;
	uint64_t cnt;

	(void)events;
	if (read(fd, &cnt, sizeof(cnt)) != sizeof(cnt))
		return; /* spurious wakeup: nothing to drain */
	vp_kick(n->vp, n->qidx);
}

/* A notify write that KVM did not turn into an ioeventfd signal (any thread, no lock held). */
static void vp_notify_write(struct virtio_pci *vp, uint16_t qidx)
{
	uint64_t one = 1;

	if (vp->notify[qidx].fd < 0) {
		vp_kick(vp, qidx);
		return;
	}
	if (write(vp->notify[qidx].fd, &one, sizeof(one)) != sizeof(one))
		pr_err_ratelimited("%s: signalling queue %u eventfd: %s", vp->dev->ops->name, qidx,
				   strerror(errno));
}

/* Called by the PCI bus (its lock held) whenever BAR 0 starts, stops or moves decoding. */
static void vp_bar_remap(void *opaque, unsigned int bar, uint64_t old_addr, uint64_t new_addr)
{
	struct virtio_pci *vp = opaque;

	(void)old_addr;
	if (bar != VIRTIO_PCI_BAR)
		return;
	for (uint16_t q = 0; q < vp->nq; q++) {
		struct vp_notify *n = &vp->notify[q];
		uint64_t addr =
			new_addr + VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT;
		int ret;

		if (n->fd < 0)
			continue;
		if (n->ioeventfd != PCI_BAR_UNMAPPED)
			pci_ioeventfd(vp->pdev, n->ioeventfd, 0, n->fd, false);
		n->ioeventfd = PCI_BAR_UNMAPPED;
		if (new_addr == PCI_BAR_UNMAPPED)
			continue;
		ret = pci_ioeventfd(vp->pdev, addr, 0, n->fd, true);
		if (!ret)
			n->ioeventfd = addr;
		else if (ret != -ENOSYS)
			pr_warn_ratelimited("%s: no ioeventfd for queue %u (%s): using MMIO exits",
					    vp->dev->ops->name, q, strerror(-ret));
	}
}

/* ---- common configuration (virtio 1.2 §4.1.4.3) ---------------------------------------- */

static uint16_t vp_vector_ok(struct virtio_pci *vp, uint16_t v)
{
	/* §4.1.5.1.2: a vector the device cannot map reads back as NO_VECTOR. */
	return v < pci_msix_nr_vectors(vp->pdev) ? v : NO_VECTOR;
}

/* Caller holds dev->lock. The fixed reset path, then the transport's own registers. */
static void vp_reset(struct virtio_pci *vp)
{
	struct virtio_dev *dev = vp->dev;

	virtio_dev_reset(dev);
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

static void vp_common_image(struct virtio_pci *vp, uint8_t *img)
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
static uint32_t vp_common_write(struct virtio_pci *vp, uint32_t off, const void *data, uint32_t len)
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

/* ---- BAR 0 ------------------------------------------------------------------------------ */

/* Caller holds dev->lock; §4.1.4.6: reading ISR clears it and deasserts INTx. */
static void vp_isr_read(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len)
{
	memset(data, 0, len);
	if (off)
		return;
	data[0] = vp->isr;
	vp->isr = 0;
	pci_set_irq(vp->pdev, 0);
}

/* Caller holds dev->lock. Only accesses entirely inside config_size reach the device. */
static void vp_device_cfg(struct virtio_pci *vp, uint64_t off, void *data, uint32_t len,
			  bool is_write)
{
	struct virtio_dev *dev = vp->dev;
	const struct virtio_dev_ops *ops = dev->ops;

	if (off + len > ops->config_size) {
		if (!is_write)
			memset(data, 0, len);
		dev->err_count++;
		pr_err_ratelimited("%s: config %s of %u bytes at %#llx beyond %u bytes", ops->name,
				   is_write ? "write" : "read", len, (unsigned long long)off,
				   ops->config_size);
		return;
	}
	if (is_write) {
		if (ops->config_write)
			ops->config_write(dev, (uint32_t)off, data, len);
	} else if (ops->config_read) {
		ops->config_read(dev, (uint32_t)off, data, len);
	} else {
		memset(data, 0, len);
	}
}

static void vp_replay(struct virtio_pci *vp, uint32_t mask)
{
	for (uint16_t q = 0; q < vp->nq; q++)
		if (mask & (1u << q))
			vp_notify_write(vp, q);
}

static void vp_bar_access(void *opaque, unsigned int bar, uint64_t off, void *data, uint32_t len,
			  bool is_write)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *dev = vp->dev;
	uint32_t replay = 0;

	if (bar != VIRTIO_PCI_BAR)
		goto ignore;
	if (off >= VIRTIO_PCI_NOTIFY_OFF &&
	    off < VIRTIO_PCI_NOTIFY_OFF + (uint64_t)vp->nq * VIRTIO_PCI_NOTIFY_MULT) {
		/* Outside dev->lock: queue_notify may run right here (no loop). */
		if (is_write)
			vp_notify_write(vp, (uint16_t)((off - VIRTIO_PCI_NOTIFY_OFF) /
						       VIRTIO_PCI_NOTIFY_MULT));
		else
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&dev->lock);
	if (off < VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_CFG_SIZE) {
		if (is_write) {
			replay = vp_common_write(vp, (uint32_t)off, data, len);
		} else {
			uint8_t img[VIRTIO_PCI_COMMON_CFG_SIZE + 8] = {0};

			vp_common_image(vp, img);
			memcpy(data, img + off, len);
		}
	} else if (off >= VIRTIO_PCI_ISR_OFF && off < VIRTIO_PCI_ISR_OFF + VIRTIO_PCI_REGION_SIZE) {
		if (!is_write)
			vp_isr_read(vp, off - VIRTIO_PCI_ISR_OFF, data, len);
	} else if (off >= VIRTIO_PCI_DEVICE_OFF &&
		   off < VIRTIO_PCI_DEVICE_OFF + VIRTIO_PCI_REGION_SIZE) {
		vp_device_cfg(vp, off - VIRTIO_PCI_DEVICE_OFF, data, len, is_write);
	} else if (!is_write) {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&dev->lock);
	if (replay)
		vp_replay(vp, replay);
	return;
ignore:
	if (!is_write)
		memset(data, 0, len);
}

/* ---- VIRTIO_PCI_CAP_PCI_CFG window (§4.1.4.9), under the PCI bus lock -------------------- */

#define WIN(f) offsetof(struct virtio_pci_cfg_cap, f)

/* The BAR access the window describes, or false when the driver set it up wrongly. */
static bool vp_window(struct virtio_pci *vp, uint32_t *off, uint32_t *len)
{
	uint8_t bar = vp->cfg_win[WIN(cap.bar)];

	*off = get32(vp->cfg_win + WIN(cap.offset));
	*len = get32(vp->cfg_win + WIN(cap.length));
	return bar == VIRTIO_PCI_BAR && (*len == 1 || *len == 2 || *len == 4) && !(*off % *len) &&
	       *off < VIRTIO_PCI_BAR_SIZE;
}

static void vp_cfg_write(void *opaque, uint32_t off, const void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint32_t c = vp->cfg_cap, woff, wlen;

	if (!overlaps(off, len, c, sizeof(vp->cfg_win)))
		return;
	for (uint32_t i = 0; i < len; i++)
		if (off + i >= c && off + i < c + sizeof(vp->cfg_win))
			vp->cfg_win[off + i - c] = ((const uint8_t *)data)[i];
	if (!overlaps(off, len, c + WIN(pci_cfg_data), 4))
		return;
	if (vp_window(vp, &woff, &wlen))
		pci_bar_access(vp->pdev, VIRTIO_PCI_BAR, woff, vp->cfg_win + WIN(pci_cfg_data),
			       wlen, true);
	else
		pr_err_ratelimited("%s: bad VIRTIO_PCI_CAP_PCI_CFG window: write dropped",
				   vp->dev->ops->name);
}

static void vp_cfg_read(void *opaque, uint32_t off, void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint32_t d = vp->cfg_cap + WIN(pci_cfg_data), woff, wlen;
	uint8_t buf[4] = {0};

	if (!overlaps(off, len, d, 4))
		return;
	if (vp_window(vp, &woff, &wlen))
		pci_bar_access(vp->pdev, VIRTIO_PCI_BAR, woff, buf, wlen, false);
	memcpy(vp->cfg_win + WIN(pci_cfg_data), buf, 4);
	for (uint32_t i = 0; i < len; i++)
		if (off + i >= d && off + i < d + 4)
			((uint8_t *)data)[i] = buf[off + i - d];
}

#undef WIN

static const struct pci_dev_ops vp_pci_ops = {
	.bar_access = vp_bar_access,
	.bar_remap = vp_bar_remap,
	.cfg_read = vp_cfg_read,
	.cfg_write = vp_cfg_write,
};

/* ---- attach / detach -------------------------------------------------------------------- */

static uint32_t vp_class(uint16_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET:
		return 0x020000; /* network, ethernet */
	case VIRTIO_ID_BLOCK:
		return 0x010000; /* mass storage, SCSI (what QEMU reports) */
	case VIRTIO_ID_CONSOLE:
		return 0x078000; /* communication, other */
	default:
		return 0xff0000; /* unassigned class: balloon, rng, ... */
	}
}

static int vp_add_cap(struct virtio_pci *vp, uint8_t type, uint32_t off, uint32_t len)
{
	struct virtio_pci_cap cap = {
		.cap_vndr = PCI_CAP_ID_VNDR,
		.cap_len = sizeof(cap),
		.cfg_type = type,
		.bar = VIRTIO_PCI_BAR,
		.offset = htole32(off),
		.length = htole32(len),
	};

	return pci_add_cap(vp->pdev, &cap, sizeof(cap));
}

static int vp_add_caps(struct virtio_pci *vp)
{
	const struct virtio_dev_ops *ops = vp->dev->ops;
	struct virtio_pci_notify_cap ncap = {
		.cap = {.cap_vndr = PCI_CAP_ID_VNDR,
			.cap_len = sizeof(ncap),
			.cfg_type = VIRTIO_PCI_CAP_NOTIFY_CFG,
			.bar = VIRTIO_PCI_BAR,
			.offset = htole32(VIRTIO_PCI_NOTIFY_OFF),
			.length = htole32((uint32_t)vp->nq * VIRTIO_PCI_NOTIFY_MULT)},
		.notify_off_multiplier = htole32(VIRTIO_PCI_NOTIFY_MULT),
	};
	struct virtio_pci_cfg_cap wcap = {
		.cap = {.cap_vndr = PCI_CAP_ID_VNDR,
			.cap_len = sizeof(wcap),
			.cfg_type = VIRTIO_PCI_CAP_PCI_CFG},
	};
	int ret;

	ret = vp_add_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
			 VIRTIO_PCI_COMMON_CFG_SIZE);
	if (ret >= 0)
		ret = pci_add_cap(vp->pdev, &ncap, sizeof(ncap));
	if (ret >= 0)
		ret = vp_add_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1);
	/* A zero-length DEVICE_CFG capability makes Linux fail the probe: omit it instead. */
	if (ret >= 0 && ops->config_size)
		ret = vp_add_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF,
				 ops->config_size);
	if (ret >= 0)
		ret = pci_add_cap(vp->pdev, &wcap, sizeof(wcap));
	if (ret < 0)
		return ret;
	vp->cfg_cap = (unsigned int)ret;
	memcpy(vp->cfg_win, &wcap, sizeof(wcap));
	pci_cfg_set_writable(vp->pdev, vp->cfg_cap + offsetof(struct virtio_pci_cap, bar), 1);
	pci_cfg_set_writable(vp->pdev, vp->cfg_cap + offsetof(struct virtio_pci_cap, offset),
			     sizeof(wcap) - offsetof(struct virtio_pci_cap, offset));
	return pci_msix_init(vp->pdev, vp->nq + 1u, VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_TABLE_OFF,
			     VIRTIO_PCI_MSIX_PBA_OFF);
}

static void vp_free(struct virtio_pci *vp)
{
	for (uint16_t q = 0; q < vp->nq; q++) {
		struct vp_notify *n = &vp->notify[q];

		if (n->fd < 0)
			continue;
		if (n->ioeventfd != PCI_BAR_UNMAPPED)
			pci_ioeventfd(vp->pdev, n->ioeventfd, 0, n->fd, false);
		loop_del_fd(vp->loop, n->fd);
		close(n->fd);
	}
	pci_dev_remove(vp->pdev);
	free(vp);
}

static int vp_setup_notify(struct virtio_pci *vp)
{
	for (uint16_t q = 0; q < vp->nq; q++) {
		struct vp_notify *n = &vp->notify[q];
		int fd, ret;

		if (!vp->loop)
			continue;
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			return -errno;
		ret = loop_add_fd(vp->loop, fd, EPOLLIN, vp_notify_cb, n);
		if (ret) {
			close(fd);
			return ret;
		}
		n->fd = fd;
	}
	return 0;
}

int virtio_pci_attach(struct pci_bus *bus, struct virtio_dev *dev, struct loop *loop)
{
	const struct virtio_dev_ops *ops = dev->ops;
	struct pci_dev_info info = {
		.vendor = VIRTIO_PCI_VENDOR,
		.subsys_vendor = VIRTIO_PCI_VENDOR,
		.revision = 1, /* §4.1.2.1: modern devices have revision 1 or higher */
		.intx = true,
	};
	struct virtio_pci *vp;
	int ret;

	if (!ops || !ops->queue_notify || !ops->max_queues || ops->max_queues > VIRTIO_MAX_QUEUES ||
	    !ops->max_queue_size || ops->max_queue_size > VQ_MAX_SIZE ||
	    (ops->max_queue_size & (ops->max_queue_size - 1)) ||
	    ops->config_size > VIRTIO_PCI_REGION_SIZE || ops->device_id > 0x3f)
		return -EINVAL;
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	vp->dev = dev;
	vp->loop = loop;
	vp->nq = ops->max_queues;
	for (uint16_t q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->notify[q] = (struct vp_notify){vp, q, -1, PCI_BAR_UNMAPPED};
	info.device = VIRTIO_PCI_DEVICE_BASE + ops->device_id;
	info.subsys_id = ops->device_id;
	info.class_code = vp_class(ops->device_id);
	ret = pci_dev_add(bus, &info, &vp_pci_ops, vp, &vp->pdev);
	if (ret) {
		free(vp);
		return ret;
	}
	ret = pci_bar_add(vp->pdev, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE, PCI_BAR_MEM64);
	if (!ret)
		ret = vp_add_caps(vp);
	if (!ret)
		ret = vp_setup_notify(vp);
	if (ret) {
		vp_free(vp);
		return ret;
	}
	pthread_mutex_lock(&dev->lock);
	dev->transport = &vp_transport;
	dev->transport_priv = vp;
	dev->device_features =
		(ops->get_features ? ops->get_features(dev) : 0) | (1ULL << VIRTIO_F_VERSION_1);
	vp->config_vector = NO_VECTOR;
	for (uint16_t q = 0; q < vp->nq; q++)
		vp->q[q] = (struct vp_queue){.size = ops->max_queue_size, .vector = NO_VECTOR};
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

void virtio_pci_detach(struct virtio_dev *dev)
{
	struct virtio_pci *vp = dev->transport_priv;

	if (!vp || dev->transport != &vp_transport)
		return;
	vp_free(vp);
	dev->transport = NULL;
	dev->transport_priv = NULL;
}

struct pci_dev *virtio_pci_dev(struct virtio_dev *dev)
{
	struct virtio_pci *vp = dev->transport_priv;

	return vp && dev->transport == &vp_transport ? vp->pdev : NULL;
}
