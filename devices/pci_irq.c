/*
 * PCI interrupts (devices/pci.h): legacy INTx, wired-OR per shared pin, and MSI-X (PCI 3.0 §6.8.2):
 * the table and PBA in a BAR, per-vector masking, delivery through an irqfd or KVM_SIGNAL_MSI.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../vmm/util.h"
#include "pci.h"
#include "pci_priv.h"

/* ---- INTx ------------------------------------------------------------------------------- */

/* Caller holds d->irq_lock. Devices sharing a pin are wired-OR: count the asserted ones. */
static void intx_update(struct pci_dev *d)
{
	struct pci_bus *pci = d->bus;
	bool out = d->intx_level && !d->intx_disabled && !d->msix_enabled;
	unsigned int gsi = pci_intx_gsi(d->slot), *cnt = &pci->intx_count[gsi - PCI_INTX_GSI_BASE];

	if (!d->intx || out == d->intx_out)
		return;
	d->intx_out = out;
	pthread_mutex_lock(&pci->intx_lock);
	if (out ? (*cnt)++ == 0 : --(*cnt) == 0) {
		int ret =
			pci->ops.irq_line ? pci->ops.irq_line(pci->ops.opaque, gsi, out) : -ENOSYS;

		if (ret)
			pr_err_ratelimited("pci: %02x.0: setting IRQ %u to %d: %s", d->slot, gsi,
					   out, strerror(-ret));
	}
	pthread_mutex_unlock(&pci->intx_lock);
}

void pci_set_irq(struct pci_dev *pdev, int level)
{
	pthread_mutex_lock(&pdev->irq_lock);
	pdev->intx_level = level != 0;
	intx_update(pdev);
	pthread_mutex_unlock(&pdev->irq_lock);
}

/* ---- MSI-X ------------------------------------------------------------------------------ */

int pci_msix_route(struct pci_dev *d, struct msix_vec *v, uint64_t addr, uint32_t data)
{
	const struct pci_irq_ops *ops = &d->bus->ops;
	int ret;

	if (v->routed && v->r_addr == addr && v->r_data == data)
		return 0;
	ret = ops->set_msi_route(ops->opaque, (uint32_t)v->gsi, addr, data, true);
	if (ret)
		return ret;
	v->routed = true;
	v->r_addr = addr;
	v->r_data = data;
	return 0;
}

/* Caller holds d->irq_lock. */
static int msix_fire(struct pci_dev *d, struct msix_vec *v)
{
	const struct pci_irq_ops *ops = &d->bus->ops;
	uint64_t addr = v->w[0] | (uint64_t)v->w[1] << 32;
	uint32_t data = v->w[2];
	uint64_t one = 1;
	int ret;

	if ((v->w[0] & MSI_ADDR_MASK) != MSI_ADDR_BASE) {
		d->err_count++;
		pr_err_ratelimited("pci: %02x.0: MSI-X vector %ld has bad address %#llx: dropped",
				   d->slot, (long)(v - d->vec), (unsigned long long)addr);
		return -EINVAL;
	}
	if (v->efd >= 0 && !pci_msix_route(d, v, addr, data) &&
	    write(v->efd, &one, sizeof(one)) == sizeof(one))
		return 0;
	ret = ops->signal_msi ? ops->signal_msi(ops->opaque, addr, data) : -ENOSYS;
	if (ret) {
		pr_err_ratelimited("pci: %02x.0: MSI-X delivery failed: %s", d->slot,
				   strerror(-ret));
		return -EIO;
	}
	return 0;
}

static bool msix_vec_masked(const struct pci_dev *d, const struct msix_vec *v)
{
	return d->msix_fmask || (v->w[3] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

/* Caller holds d->irq_lock: deliver a pending message once its vector is deliverable. */
static void msix_sync(struct pci_dev *d, struct msix_vec *v)
{
	if (!d->msix_enabled || msix_vec_masked(d, v) || !v->pending)
		return;
	v->pending = false;
	msix_fire(d, v);
}

int pci_msix_signal(struct pci_dev *pdev, unsigned int vector)
{
	struct msix_vec *v;
	int ret = 0;

	pthread_mutex_lock(&pdev->irq_lock);
	if (!pdev->msix_enabled) {
		ret = -EAGAIN;
	} else if (vector >= pdev->msix_nr) {
		ret = -EINVAL;
	} else {
		v = &pdev->vec[vector];
		if (msix_vec_masked(pdev, v))
			v->pending = true;
		else
			ret = msix_fire(pdev, v);
		if (ret == -EINVAL)
			ret = 0; /* the guest's bad message, already counted */
	}
	pthread_mutex_unlock(&pdev->irq_lock);
	return ret;
}

bool pci_msix_enabled(struct pci_dev *pdev)
{
	bool en;

	pthread_mutex_lock(&pdev->irq_lock);
	en = pdev->msix_enabled;
	pthread_mutex_unlock(&pdev->irq_lock);
	return en;
}

unsigned int pci_msix_nr_vectors(const struct pci_dev *pdev)
{
	return pdev->msix_nr;
}

uint64_t pci_dev_err_count(struct pci_dev *pdev)
{
	uint64_t n;

	pthread_mutex_lock(&pdev->irq_lock);
	n = pdev->err_count;
	pthread_mutex_unlock(&pdev->irq_lock);
	return n;
}

/* Table entries: any width and alignment; only the mask bit of Vector Control is writable. */
static void msix_table_access(struct pci_dev *d, uint64_t off, uint8_t *data, uint32_t len,
			      bool is_write)
{
	uint64_t first = off / PCI_MSIX_ENTRY_SIZE, last = (off + len - 1) / PCI_MSIX_ENTRY_SIZE;

	pthread_mutex_lock(&d->irq_lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t t = off + i, n = t / PCI_MSIX_ENTRY_SIZE;
		unsigned int word = (t % PCI_MSIX_ENTRY_SIZE) / 4, shift = (t % 4) * 8;
		uint32_t *w;

		if (n >= d->msix_nr) {
			if (!is_write)
				data[i] = 0;
			continue;
		}
		w = &d->vec[n].w[word];
		if (is_write)
			*w = (*w & ~(0xFFu << shift)) | (uint32_t)data[i] << shift;
		else
			data[i] = (uint8_t)(*w >> shift);
	}
	if (is_write) {
		for (uint64_t n = first; n <= last && n < d->msix_nr; n++) {
			d->vec[n].w[3] &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
			msix_sync(d, &d->vec[n]);
		}
	}
	pthread_mutex_unlock(&d->irq_lock);
}

static void msix_pba_read(struct pci_dev *d, uint64_t off, uint8_t *data, uint32_t len)
{
	pthread_mutex_lock(&d->irq_lock);
	for (uint32_t i = 0; i < len; i++) {
		uint8_t b = 0;

		for (unsigned int bit = 0; bit < 8; bit++) {
			uint64_t n = (off + i) * 8 + bit;

			if (n < d->msix_nr && d->vec[n].pending)
				b |= (uint8_t)(1u << bit);
		}
		data[i] = b;
	}
	pthread_mutex_unlock(&d->irq_lock);
}

void pci_irq_control(struct pci_dev *d, bool intx_disabled, bool msix_enable, bool msix_fmask)
{
	pthread_mutex_lock(&d->irq_lock);
	d->intx_disabled = intx_disabled;
	if (msix_enable != d->msix_enabled || msix_fmask != d->msix_fmask) {
		d->msix_enabled = msix_enable;
		d->msix_fmask = msix_fmask;
		for (unsigned int n = 0; n < d->msix_nr; n++)
			msix_sync(d, &d->vec[n]);
	}
	intx_update(d);
	pthread_mutex_unlock(&d->irq_lock);
}

bool pci_msix_bar_access(struct pci_dev *d, unsigned int bar, uint64_t off, void *data,
			 uint32_t len, bool is_write)
{
	uint64_t tlen = (uint64_t)d->msix_nr * PCI_MSIX_ENTRY_SIZE;
	uint64_t plen = ALIGN_UP((uint64_t)d->msix_nr, 64) / 8;

	if (!d->msix_nr || bar != d->msix_bar)
		return false;
	if (off >= d->msix_table_off && off - d->msix_table_off < tlen) {
		msix_table_access(d, off - d->msix_table_off, data, len, is_write);
		return true;
	}
	if (off >= d->msix_pba_off && off - d->msix_pba_off < plen) {
		if (!is_write) /* the PBA is read-only */
			msix_pba_read(d, off - d->msix_pba_off, data, len);
		return true;
	}
	return false;
}

static void msix_setup_irqfd(struct pci_dev *d, struct msix_vec *v)
{
	const struct pci_irq_ops *ops = &d->bus->ops;
	int gsi, efd;

	v->gsi = v->efd = -1;
	if (!ops->alloc_gsi || !ops->irqfd || !ops->set_msi_route)
		return;
	gsi = ops->alloc_gsi(ops->opaque);
	if (gsi < 0)
		goto fail;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		goto fail;
	if (ops->irqfd(ops->opaque, efd, (uint32_t)gsi, true)) {
		close(efd);
		goto fail;
	}
	v->gsi = gsi;
	v->efd = efd;
	return;
fail:
	pr_warn("pci: %02x.0: no irqfd for an MSI-X vector, using direct MSI injection", d->slot);
}

int pci_msix_init(struct pci_dev *pdev, unsigned int nr_vectors, unsigned int bar,
		  uint32_t table_off, uint32_t pba_off)
{
	uint8_t cap[MSIX_CAP_LEN] = {PCI_CAP_ID_MSIX};
	uint64_t tlen = (uint64_t)nr_vectors * PCI_MSIX_ENTRY_SIZE;
	uint64_t plen = ALIGN_UP((uint64_t)nr_vectors, 64) / 8;
	const struct pci_bar *b = bar < PCI_STD_NUM_BARS ? &pdev->bars[bar] : NULL;
	int off;

	if (pdev->msix_nr || !nr_vectors || nr_vectors > MSIX_MAX_VECTORS || !b || !b->size ||
	    (table_off | pba_off) & 7 || table_off + tlen > b->size || pba_off + plen > b->size ||
	    overlaps(table_off, (uint32_t)tlen, pba_off, (uint32_t)plen))
		return -EINVAL;
	pdev->vec = calloc(nr_vectors, sizeof(*pdev->vec));
	if (!pdev->vec)
		return -ENOMEM;
	wr16(cap + PCI_MSIX_FLAGS, (uint16_t)(nr_vectors - 1));
	wr32(cap + PCI_MSIX_TABLE, table_off | bar);
	wr32(cap + PCI_MSIX_PBA, pba_off | bar);
	off = pci_add_cap(pdev, cap, sizeof(cap));
	if (off < 0) {
		free(pdev->vec);
		pdev->vec = NULL;
		return off;
	}
	pdev->wmask[off + PCI_MSIX_FLAGS + 1] =
		(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	for (unsigned int n = 0; n < nr_vectors; n++) {
		pdev->vec[n].w[3] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
		msix_setup_irqfd(pdev, &pdev->vec[n]);
	}
	pdev->msix_cap = (unsigned int)off;
	pdev->msix_bar = bar;
	pdev->msix_table_off = table_off;
	pdev->msix_pba_off = pba_off;
	pdev->msix_nr = nr_vectors;
	return 0;
}

void pci_msix_free(struct pci_dev *d)
{
	const struct pci_irq_ops *ops = &d->bus->ops;

	for (unsigned int n = 0; d->vec && n < d->msix_nr; n++) {
		struct msix_vec *v = &d->vec[n];

		if (v->efd < 0)
			continue;
		ops->irqfd(ops->opaque, v->efd, (uint32_t)v->gsi, false);
		if (v->routed)
			ops->set_msi_route(ops->opaque, (uint32_t)v->gsi, 0, 0, false);
		close(v->efd);
	}
	free(d->vec);
	d->vec = NULL;
}
