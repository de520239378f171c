#include "virtio_pci.h"

#include <endian.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <sched.h>
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
#include "virtio_pci_priv.h"

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

/* Kick budgets a notify_on_vcpu device's notification runs on the vCPU thread before the loop's. */
#define VP_INLINE_BUDGETS 16

/* This thread is running a notify_on_vcpu device's queue inline (vp_notify_write()). */
static __thread bool vp_inline;

/*
 * The device stopped at its kick budget (dev->lock held): signal the queue's eventfd again, so
 * the loop delivers the notification after the events already pending (epoll hands out ready
 * fds in turn). Without a loop, vp_kick() and vp_bar_access() replay it iteratively.
 */
static void vp_notify_again(struct virtio_dev *dev, uint16_t qidx)
{
	struct virtio_pci *vp = dev->transport_priv;
	uint64_t one = 1;

	if (qidx >= vp->nq)
		return;
	if (vp->notify[qidx].fd < 0 || vp_inline) {
		vp->again_mask |= 1u << qidx;
		return;
	}
	if (write(vp->notify[qidx].fd, &one, sizeof(one)) != sizeof(one))
		pr_err_ratelimited("%s: re-signalling queue %u eventfd: %s", dev->ops->name, qidx,
				   strerror(errno));
}

static const struct virtio_transport_ops vp_transport = {
	.signal_used = vp_signal_used,
	.signal_config = vp_signal_config,
	.notify_again = vp_notify_again,
};

/* ---- notifications ----------------------------------------------------------------------- */

/* No lock held: queue_notify takes dev->lock itself. */
static void vp_kick_once(struct virtio_pci *vp, uint16_t qidx)
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

/* One notification of @qidx; returns whether the device stopped at its budget (notify_again). */
static bool vp_kick_budget(struct virtio_pci *vp, uint16_t qidx)
{
	struct virtio_dev *dev = vp->dev;
	bool again;

	vp_kick_once(vp, qidx);
	pthread_mutex_lock(&dev->lock);
	again = vp->again_mask & (1u << qidx);
	vp->again_mask &= ~(1u << qidx);
	pthread_mutex_unlock(&dev->lock);
	return again;
}

/* Without a loop a budget's notify_again is replayed here, one notification after another. */
static void vp_kick(struct virtio_pci *vp, uint16_t qidx)
{
	while (vp_kick_budget(vp, qidx))
		;
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
	if (vp->dev->ops->notify_on_vcpu) {
		/*
		 * On this vCPU thread, up to VP_INLINE_BUDGETS kick budgets: a guest flooding the
		 * queue spends its own vCPU's time, not the loop thread's. Past them, the rest goes
		 * to the loop like any other kick.
		 */
		for (unsigned int i = 0; i < VP_INLINE_BUDGETS; i++) {
			bool again;

			vp_inline = true;
			again = vp_kick_budget(vp, qidx);
			vp_inline = false;
			if (!again)
				return;
			/* Between two budgets, without dev->lock: a loop-thread caller waiting for
			 * it (vm.info, the autopilot) gets the CPU and the lock first. */
			sched_yield();
		}
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
		if (new_addr == PCI_BAR_UNMAPPED || vp->dev->ops->notify_on_vcpu)
			continue;
		ret = pci_ioeventfd(vp->pdev, addr, 0, n->fd, true);
		if (!ret)
			n->ioeventfd = addr;
		else if (ret != -ENOSYS)
			pr_warn_ratelimited("%s: no ioeventfd for queue %u (%s): using MMIO exits",
					    vp->dev->ops->name, q, strerror(-ret));
	}
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
	/* Without a loop: queues activate() left at their budget (vp_notify_again). */
	replay |= vp->again_mask;
	vp->again_mask = 0;
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

bool vp_is_transport(const struct virtio_dev *dev)
{
	return dev->transport_priv && dev->transport == &vp_transport;
}

void virtio_pci_restart_queues(struct virtio_dev *dev)
{
	struct virtio_pci *vp = dev->transport_priv;
	uint32_t mask = 0;

	if (!vp_is_transport(dev))
		return;
	pthread_mutex_lock(&dev->lock);
	if (vp->activated && !(dev->status & VIRTIO_CONFIG_S_NEEDS_RESET))
		for (uint16_t q = 0; q < vp->nq; q++)
			if (dev->vqs[q].ready)
				mask |= 1u << q;
	pthread_mutex_unlock(&dev->lock);
	vp_replay(vp, mask);
}

struct pci_dev *virtio_pci_dev(struct virtio_dev *dev)
{
	struct virtio_pci *vp = dev->transport_priv;

	return vp && dev->transport == &vp_transport ? vp->pdev : NULL;
}
