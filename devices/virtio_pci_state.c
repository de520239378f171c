/* Snapshot state of the virtio-pci transport (virtio_pci.h: virtio_pci_save/load). */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <stddef.h>

#include "../vmm/state.h"
#include "../vmm/util.h"
#include "pci.h"
#include "virtio.h"
#include "virtio_pci.h"
#include "virtio_pci_priv.h"

#define WIN_BAR	 offsetof(struct virtio_pci_cfg_cap, cap.bar)
#define WIN_OFF	 offsetof(struct virtio_pci_cfg_cap, cap.offset)
#define WIN_TAIL (sizeof(struct virtio_pci_cfg_cap) - WIN_OFF) /* offset, length, data */

int virtio_pci_save(struct virtio_dev *dev, struct state_out *o)
{
	struct virtio_pci *vp = dev->transport_priv;
	int ret;

	if (!vp_is_transport(dev))
		return -ENODEV;
	pthread_mutex_lock(&dev->lock);
	state_put_u32(o, vp->dfselect);
	state_put_u32(o, vp->gfselect);
	state_put_u16(o, vp->queue_sel);
	state_put_u16(o, vp->config_vector);
	state_put_u8(o, vp->isr);
	state_put_bool(o, vp->activated);
	state_put_u32(o, vp->early_mask);
	state_put_u16(o, vp->nq);
	for (uint16_t q = 0; q < vp->nq; q++) {
		state_put_u16(o, vp->q[q].size);
		state_put_u16(o, vp->q[q].vector);
		state_put_u64(o, vp->q[q].desc);
		state_put_u64(o, vp->q[q].driver);
		state_put_u64(o, vp->q[q].device);
	}
	/* The window's guest-written bytes; only vCPUs' configuration accesses touch them. */
	state_put_u8(o, vp->cfg_win[WIN_BAR]);
	state_put(o, vp->cfg_win + WIN_OFF, WIN_TAIL);
	ret = virtio_dev_save(dev, o);
	pthread_mutex_unlock(&dev->lock);
	return ret ? ret : state_out_error(o);
}

static bool vector_ok(const struct virtio_pci *vp, uint16_t v)
{
	return v == NO_VECTOR || v < pci_msix_nr_vectors(vp->pdev);
}

/* The transport's registers into @t (a scratch copy), validated. */
static int regs_load(struct virtio_pci *vp, struct virtio_pci *t, struct state_in *in)
{
	uint16_t max = vp->dev->ops->max_queue_size, nq;

	t->dfselect = state_get_u32(in);
	t->gfselect = state_get_u32(in);
	t->queue_sel = state_get_u16(in);
	t->config_vector = state_get_u16(in);
	t->isr = state_get_u8(in);
	t->activated = state_get_bool(in);
	t->early_mask = state_get_u32(in);
	nq = state_get_u16(in);
	if (state_in_error(in))
		return state_in_error(in);
	if (nq != vp->nq)
		return state_fail(in, "transport queue count differs");
	if (!vector_ok(vp, t->config_vector))
		return state_fail(in, "msix_config outside the MSI-X table");
	if (t->isr & ~(1 | VIRTIO_PCI_ISR_CONFIG))
		return state_fail(in, "ISR has reserved bits");
	if (t->early_mask >> nq)
		return state_fail(in, "early kick of a queue that does not exist");
	for (uint16_t q = 0; q < nq; q++) {
		struct vp_queue *s = &t->q[q];

		s->size = state_get_u16(in);
		s->vector = state_get_u16(in);
		s->desc = state_get_u64(in);
		s->driver = state_get_u64(in);
		s->device = state_get_u64(in);
		if (state_in_error(in))
			return state_in_error(in);
		if (!s->size || (s->size & (s->size - 1)) || s->size > max)
			return state_fail(in, "queue_size not a power of two up to the maximum");
		if (!vector_ok(vp, s->vector))
			return state_fail(in, "queue_msix_vector outside the MSI-X table");
	}
	t->cfg_win[WIN_BAR] = state_get_u8(in);
	state_get(in, t->cfg_win + WIN_OFF, WIN_TAIL);
	return state_in_error(in);
}

/* Caller holds dev->lock; the device part is loaded. Cross-checks, then the registers. */
static int regs_apply(struct virtio_pci *vp, const struct virtio_pci *t, struct state_in *in)
{
	struct virtio_dev *dev = vp->dev;

	if (t->activated && !(dev->status & VIRTIO_CONFIG_S_DRIVER_OK))
		return state_fail(in, "transport activated without DRIVER_OK");
	for (uint16_t q = 0; q < vp->nq; q++)
		if (dev->vqs[q].msix_vector != t->q[q].vector)
			return state_fail(in, "queue vector differs from the transport's");
	vp->dfselect = t->dfselect;
	vp->gfselect = t->gfselect;
	vp->queue_sel = t->queue_sel;
	vp->config_vector = t->config_vector;
	vp->isr = t->isr;
	vp->activated = t->activated;
	vp->early_mask = t->early_mask;
	for (uint16_t q = 0; q < vp->nq; q++)
		vp->q[q] = t->q[q];
	vp->cfg_win[WIN_BAR] = t->cfg_win[WIN_BAR];
	memcpy(vp->cfg_win + WIN_OFF, t->cfg_win + WIN_OFF, WIN_TAIL);
	/* INTx is asserted exactly while ISR bits are set (vp_raise, ISR read-to-clear). */
	pci_set_irq(vp->pdev, vp->isr != 0);
	return 0;
}

int virtio_pci_load(struct virtio_dev *dev, struct state_in *in)
{
	struct virtio_pci *vp = dev->transport_priv;
	struct virtio_pci t = {0};
	int ret;

	if (!vp_is_transport(dev))
		return -ENODEV;
	pthread_mutex_lock(&dev->lock);
	/* Fresh already; no device reset hook (the balloon's would undo the restored page map). */
	virtio_dev_reset_common(dev);
	vp_reset_regs(vp);
	ret = regs_load(vp, &t, in);
	if (!ret)
		ret = virtio_dev_load(dev, in);
	if (!ret)
		ret = regs_apply(vp, &t, in);
	if (!ret)
		ret = state_in_end(in);
	if (ret) {
		pr_debug("%s: transport state rejected", dev->ops->name);
		virtio_dev_reset_common(dev);
		vp_reset_regs(vp);
	}
	pthread_mutex_unlock(&dev->lock);
	return ret ? -EINVAL : 0;
}
