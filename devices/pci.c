#include "pci.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../vmm/util.h"
#include "bus.h"

#define CONF1_ENABLE 0x80000000u
#define CMD_WRITABLE                                                                       \
	(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | \
	 PCI_COMMAND_INTX_DISABLE)
#define CAP_START	 0x40
#define MSIX_CAP_LEN	 12
#define MSIX_MAX_VECTORS 2048
#define MSI_ADDR_MASK	 0xFFF00000u /* x86: MSI messages go to 0xFEExxxxx */
#define MSI_ADDR_BASE	 0xFEE00000u

struct pci_bar {
	uint64_t size;	/* bytes, 0 = register unused */
	uint32_t flags; /* read-only low bits of the register (type, prefetch) */
	bool is64;
	bool upper; /* this register is the upper half of the previous BAR */
	bool decoded;
	uint64_t addr; /* decoded address when decoded */
};

struct msix_vec {
	uint32_t w[4]; /* address lo, address hi, data, vector control (PCI_MSIX_ENTRY_*) */
	bool pending;
	bool routed; /* route (r_addr, r_data) pushed for gsi */
	uint64_t r_addr;
	uint32_t r_data;
	int gsi; /* -1: no irqfd, use signal_msi */
	int efd;
};

struct pci_dev {
	struct pci_bus *bus;
	unsigned int slot;
	const struct pci_dev_ops *ops;
	void *opaque;
	uint8_t cfg[PCI_CFG_SPACE_SIZE];   /* protected by bus->lock */
	uint8_t wmask[PCI_CFG_SPACE_SIZE]; /* guest-writable bits */
	unsigned int cap_end, cap_last;
	struct pci_bar bars[PCI_STD_NUM_BARS];
	bool intx;

	pthread_mutex_t irq_lock; /* everything below; a leaf lock */
	bool intx_level;	  /* what the device asks for */
	bool intx_out;		  /* our contribution to the shared pin */
	bool intx_disabled;	  /* COMMAND.INTX_DISABLE */
	unsigned int msix_cap, msix_nr, msix_bar;
	uint32_t msix_table_off, msix_pba_off;
	bool msix_enabled, msix_fmask;
	struct msix_vec *vec;
	uint64_t err_count;
};

struct pci_bus {
	struct bus *pio, *mmio;
	struct pci_irq_ops ops;
	pthread_mutex_t lock; /* conf_addr, configuration spaces, BAR decode */
	uint32_t conf_addr;
	uint64_t mmio_next;
	struct pci_dev *devs[PCI_MAX_SLOTS];
	pthread_mutex_t intx_lock; /* wired-OR of the shared INTx pins */
	unsigned int intx_count[8];
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}

unsigned int pci_intx_gsi(unsigned int slot)
{
	return PCI_INTX_GSI_BASE + (slot - 1) % 8;
}

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
	if (v->efd >= 0) {
		if (!v->routed || v->r_addr != addr || v->r_data != data) {
			ret = ops->set_msi_route(ops->opaque, (uint32_t)v->gsi, addr, data, true);
			if (ret)
				goto fallback;
			v->routed = true;
			v->r_addr = addr;
			v->r_data = data;
		}
		if (write(v->efd, &one, sizeof(one)) == sizeof(one))
			return 0;
	}
fallback:
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

/* ---- BARs ------------------------------------------------------------------------------- */

void pci_bar_access(struct pci_dev *pdev, unsigned int bar, uint64_t off, void *data, uint32_t len,
		    bool is_write)
{
	const struct pci_bar *b = bar < PCI_STD_NUM_BARS ? &pdev->bars[bar] : NULL;

	if (!b || !b->size || !len || len > 8 || off >= b->size || len > b->size - off) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	if (pdev->msix_nr && bar == pdev->msix_bar) {
		uint64_t tlen = (uint64_t)pdev->msix_nr * PCI_MSIX_ENTRY_SIZE;
		uint64_t plen = ALIGN_UP((uint64_t)pdev->msix_nr, 64) / 8;

		if (off >= pdev->msix_table_off && off - pdev->msix_table_off < tlen) {
			msix_table_access(pdev, off - pdev->msix_table_off, data, len, is_write);
			return;
		}
		if (off >= pdev->msix_pba_off && off - pdev->msix_pba_off < plen) {
			if (!is_write) /* the PBA is read-only */
				msix_pba_read(pdev, off - pdev->msix_pba_off, data, len);
			return;
		}
	}
	pdev->ops->bar_access(pdev->opaque, bar, off, data, len, is_write);
}

/* Caller holds the bus lock: recompute where each BAR decodes and tell the device. */
static void update_decode(struct pci_dev *d)
{
	bool mem = rd16(d->cfg + PCI_COMMAND) & PCI_COMMAND_MEMORY;

	for (unsigned int i = 0; i < PCI_STD_NUM_BARS; i++) {
		struct pci_bar *b = &d->bars[i];
		const uint8_t *reg = d->cfg + PCI_BASE_ADDRESS_0 + 4 * i;
		uint64_t addr, end = 0, old;
		bool dec;

		if (!b->size || b->upper)
			continue;
		addr = rd32(reg) & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
		if (b->is64)
			addr |= (uint64_t)rd32(reg + 4) << 32;
		dec = mem && addr && !__builtin_add_overflow(addr, b->size, &end);
		if (dec == b->decoded && (!dec || addr == b->addr))
			continue;
		old = b->decoded ? b->addr : PCI_BAR_UNMAPPED;
		b->decoded = dec;
		b->addr = addr;
		if (dec && (addr < PCI_MMIO_BASE || end > PCI_MMIO_BASE + PCI_MMIO_SIZE))
			pr_warn_ratelimited("pci: %02x.0: BAR %u moved to %#llx, outside the MMIO "
					    "window: unreachable",
					    d->slot, i, (unsigned long long)addr);
		if (d->ops->bar_remap)
			d->ops->bar_remap(d->opaque, i, old, dec ? addr : PCI_BAR_UNMAPPED);
	}
}

/* Size probing works because only the address bits above the size are writable. */
static void bar_reg_write(struct pci_dev *d, unsigned int i, uint32_t v)
{
	const struct pci_bar *b = &d->bars[i];
	uint8_t *reg = d->cfg + PCI_BASE_ADDRESS_0 + 4 * i;
	uint64_t addr_mask;

	if (b->upper) {
		addr_mask = ~(d->bars[i - 1].size - 1);
		wr32(reg, v & (uint32_t)(addr_mask >> 32));
	} else if (b->size) {
		addr_mask = ~(b->size - 1) & PCI_BASE_ADDRESS_MEM_MASK;
		wr32(reg, (v & (uint32_t)addr_mask) | b->flags);
	}
}

static bool pci_bar_find(struct pci_bus *pci, uint64_t addr, uint32_t len, struct pci_dev **dev,
			 unsigned int *bar, uint64_t *off)
{
	for (unsigned int s = 1; s < PCI_MAX_SLOTS; s++) {
		struct pci_dev *d = pci->devs[s];

		for (unsigned int i = 0; d && i < PCI_STD_NUM_BARS; i++) {
			const struct pci_bar *b = &d->bars[i];

			if (!b->decoded || addr < b->addr || addr - b->addr >= b->size ||
			    len > b->size - (addr - b->addr))
				continue;
			*dev = d;
			*bar = i;
			*off = addr - b->addr;
			return true;
		}
	}
	return false;
}

static void window_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct pci_bus *pci = opaque;
	uint64_t addr = PCI_MMIO_BASE + offset, off = 0;
	struct pci_dev *d = NULL;
	unsigned int bar = 0;
	bool found;

	/* The lookup is locked; the access is not: devices are never removed while vCPUs run,
	 * and an access racing with a BAR move may land on either side, as on hardware. */
	pthread_mutex_lock(&pci->lock);
	found = pci_bar_find(pci, addr, len, &d, &bar, &off);
	pthread_mutex_unlock(&pci->lock);
	if (found) {
		pci_bar_access(d, bar, off, data, len, is_write);
		return;
	}
	if (!is_write)
		memset(data, 0xff, len);
	pr_debug("pci: %s of %u bytes at %#llx decodes to no BAR", is_write ? "write" : "read", len,
		 (unsigned long long)addr);
}

bool pci_bar_decoded(struct pci_dev *pdev, unsigned int bar, uint64_t *addr)
{
	bool dec = false;

	if (bar >= PCI_STD_NUM_BARS)
		return false;
	pthread_mutex_lock(&pdev->bus->lock);
	if (pdev->bars[bar].decoded) {
		dec = true;
		*addr = pdev->bars[bar].addr;
	}
	pthread_mutex_unlock(&pdev->bus->lock);
	return dec;
}

/* ---- configuration space ---------------------------------------------------------------- */

/* Caller holds the bus lock. */
static void cfg_read(struct pci_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	memcpy(data, d->cfg + off, len);
	if (off <= PCI_STATUS && off + len > PCI_STATUS) {
		pthread_mutex_lock(&d->irq_lock);
		if (d->intx_level)
			data[PCI_STATUS - off] |= PCI_STATUS_INTERRUPT;
		pthread_mutex_unlock(&d->irq_lock);
	}
	if (d->ops->cfg_read)
		d->ops->cfg_read(d->opaque, off, data, len);
}

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t n)
{
	return off < start + n && start < off + len;
}

/* Caller holds the bus lock. */
static void cfg_write(struct pci_dev *d, uint32_t off, const uint8_t *data, uint32_t len)
{
	const uint32_t bars_lo = PCI_BASE_ADDRESS_0, bars_len = 4 * PCI_STD_NUM_BARS;
	uint16_t old_cmd = rd16(d->cfg + PCI_COMMAND), cmd;
	bool msix_ctrl = d->msix_cap && overlaps(off, len, d->msix_cap + PCI_MSIX_FLAGS, 2);

	for (uint32_t i = 0; i < len; i++) {
		uint32_t o = off + i;

		if (o >= bars_lo && o < bars_lo + bars_len) {
			unsigned int r = (o - bars_lo) / 4, shift = (o % 4) * 8;
			uint32_t v = rd32(d->cfg + bars_lo + 4 * r);

			v = (v & ~(0xFFu << shift)) | (uint32_t)data[i] << shift;
			bar_reg_write(d, r, v);
			continue;
		}
		d->cfg[o] = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (data[i] & d->wmask[o]));
	}
	cmd = rd16(d->cfg + PCI_COMMAND);
	if (cmd != old_cmd || overlaps(off, len, bars_lo, bars_len))
		update_decode(d);
	if (((cmd ^ old_cmd) & PCI_COMMAND_INTX_DISABLE) || msix_ctrl) {
		uint16_t ctrl = d->msix_cap ? rd16(d->cfg + d->msix_cap + PCI_MSIX_FLAGS) : 0;
		bool en = ctrl & PCI_MSIX_FLAGS_ENABLE, fmask = ctrl & PCI_MSIX_FLAGS_MASKALL;

		pthread_mutex_lock(&d->irq_lock);
		d->intx_disabled = cmd & PCI_COMMAND_INTX_DISABLE;
		if (en != d->msix_enabled || fmask != d->msix_fmask) {
			d->msix_enabled = en;
			d->msix_fmask = fmask;
			for (unsigned int n = 0; n < d->msix_nr; n++)
				msix_sync(d, &d->vec[n]);
		}
		intx_update(d);
		pthread_mutex_unlock(&d->irq_lock);
	}
	if (d->ops->cfg_write)
		d->ops->cfg_write(d->opaque, off, data, len);
}

/*
 * Configuration mechanism #1: 0xCF8 latches a dword address (bit 31 enable, bus 23:16,
 * device 15:11, function 10:8, register 7:2, AMD extended register bits 27:24); 0xCFC-0xCFF
 * carry the data at any width. Anything that is not an existing function reads as all-ones.
 */
static void conf1_io(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	struct pci_bus *pci = opaque;
	struct pci_dev *d = NULL;
	uint32_t a, reg = 0;

	pthread_mutex_lock(&pci->lock);
	a = pci->conf_addr;
	if (off < 4) {
		/* Only a full dword write latches (Linux probes with a byte write to 0xCFB). */
		if (off + len > 4)
			goto bad;
		if (is_write && off == 0 && len == 4)
			memcpy(&pci->conf_addr, data, 4);
		else if (!is_write)
			memcpy(data, (uint8_t *)&pci->conf_addr + off, len);
		goto out;
	}
	if ((a & CONF1_ENABLE) && !((a >> 16) & 0xFF) && !((a >> 8) & 7))
		d = pci->devs[(a >> 11) & 0x1F];
	reg = (a & 0xFC) + (uint32_t)(off - 4) + (((a >> 24) & 0xF) << 8);
	if (!d || reg + len > PCI_CFG_SPACE_SIZE)
		goto bad;
	if (is_write)
		cfg_write(d, reg, data, len);
	else
		cfg_read(d, reg, data, len);
	goto out;
bad:
	if (!is_write)
		memset(data, 0xff, len);
out:
	pthread_mutex_unlock(&pci->lock);
}

/* ---- construction ----------------------------------------------------------------------- */

static void host_bar_access(void *opaque, unsigned int bar, uint64_t off, void *data, uint32_t len,
			    bool is_write)
{
	(void)opaque, (void)bar, (void)off;
	if (!is_write)
		memset(data, 0, len);
}

static const struct pci_dev_ops host_ops = {.bar_access = host_bar_access};

static struct pci_dev *dev_new(struct pci_bus *pci, unsigned int slot,
			       const struct pci_dev_info *info, const struct pci_dev_ops *ops,
			       void *opaque)
{
	struct pci_dev *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->bus = pci;
	d->slot = slot;
	d->ops = ops;
	d->opaque = opaque;
	d->intx = info->intx;
	d->cap_end = CAP_START;
	pthread_mutex_init(&d->irq_lock, NULL);
	wr16(d->cfg + PCI_VENDOR_ID, info->vendor);
	wr16(d->cfg + PCI_DEVICE_ID, info->device);
	wr32(d->cfg + PCI_CLASS_REVISION, info->class_code << 8 | info->revision);
	d->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	wr16(d->cfg + PCI_SUBSYSTEM_VENDOR_ID, info->subsys_vendor);
	wr16(d->cfg + PCI_SUBSYSTEM_ID, info->subsys_id);
	if (info->intx) {
		d->cfg[PCI_INTERRUPT_PIN] = 1;
		d->cfg[PCI_INTERRUPT_LINE] = (uint8_t)pci_intx_gsi(slot);
	}
	wr16(d->wmask + PCI_COMMAND, CMD_WRITABLE);
	d->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	d->wmask[PCI_LATENCY_TIMER] = 0xff;
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	return d;
}

static void dev_free(struct pci_bus *pci, struct pci_dev *d)
{
	const struct pci_irq_ops *ops = &pci->ops;

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
	pthread_mutex_destroy(&d->irq_lock);
	free(d);
}

int pci_bus_create(struct bus *pio, struct bus *mmio, const struct pci_irq_ops *ops,
		   struct pci_bus **out)
{
	static const struct pci_dev_info host = {
		.vendor = PCI_HOST_VENDOR,
		.device = PCI_HOST_DEVICE,
		.class_code = 0x060000, /* bridge, host bridge */
	};
	struct pci_bus *pci = calloc(1, sizeof(*pci));
	int ret = -ENOMEM;

	if (!pci)
		return -ENOMEM;
	pci->pio = pio;
	pci->mmio = mmio;
	pci->ops = *ops;
	pci->mmio_next = PCI_MMIO_BASE;
	pthread_mutex_init(&pci->lock, NULL);
	pthread_mutex_init(&pci->intx_lock, NULL);
	pci->devs[0] = dev_new(pci, 0, &host, &host_ops, NULL);
	if (!pci->devs[0])
		goto err_free;
	ret = bus_register(pio, PCI_CONF1_PORT, PCI_CONF1_LEN, conf1_io, pci, "pci-conf1");
	if (ret)
		goto err_free;
	ret = bus_register(mmio, PCI_MMIO_BASE, PCI_MMIO_SIZE, window_io, pci, "pci-mmio");
	if (ret)
		goto err_pio;
	*out = pci;
	return 0;

err_pio:
	bus_unregister(pio, PCI_CONF1_PORT);
err_free:
	if (pci->devs[0])
		dev_free(pci, pci->devs[0]);
	free(pci);
	return ret;
}

void pci_bus_destroy(struct pci_bus *pci)
{
	if (!pci)
		return;
	bus_unregister(pci->pio, PCI_CONF1_PORT);
	bus_unregister(pci->mmio, PCI_MMIO_BASE);
	for (unsigned int s = 0; s < PCI_MAX_SLOTS; s++)
		if (pci->devs[s])
			dev_free(pci, pci->devs[s]);
	pthread_mutex_destroy(&pci->lock);
	pthread_mutex_destroy(&pci->intx_lock);
	free(pci);
}

int pci_dev_add(struct pci_bus *pci, const struct pci_dev_info *info, const struct pci_dev_ops *ops,
		void *opaque, struct pci_dev **out)
{
	unsigned int s;
	int ret = -ENOSPC;

	if (!ops || !ops->bar_access)
		return -EINVAL;
	pthread_mutex_lock(&pci->lock);
	for (s = 1; s < PCI_MAX_SLOTS; s++) {
		if (pci->devs[s])
			continue;
		pci->devs[s] = dev_new(pci, s, info, ops, opaque);
		ret = pci->devs[s] ? 0 : -ENOMEM;
		if (!ret)
			*out = pci->devs[s];
		break;
	}
	pthread_mutex_unlock(&pci->lock);
	return ret;
}

void pci_dev_remove(struct pci_dev *pdev)
{
	struct pci_bus *pci;

	if (!pdev)
		return;
	pci = pdev->bus;
	pci_set_irq(pdev, 0);
	pthread_mutex_lock(&pci->lock);
	pci->devs[pdev->slot] = NULL;
	pthread_mutex_unlock(&pci->lock);
	dev_free(pci, pdev);
}

unsigned int pci_dev_slot(const struct pci_dev *pdev)
{
	return pdev->slot;
}

unsigned int pci_intx_routes(struct pci_bus *pci, struct pci_intx_route *out, unsigned int max)
{
	unsigned int n = 0;

	pthread_mutex_lock(&pci->lock);
	for (unsigned int s = 1; s < PCI_MAX_SLOTS; s++) {
		if (!pci->devs[s] || !pci->devs[s]->intx)
			continue;
		if (n < max)
			out[n] = (struct pci_intx_route){(uint8_t)s, 1, (uint8_t)pci_intx_gsi(s)};
		n++;
	}
	pthread_mutex_unlock(&pci->lock);
	return n;
}

int pci_bar_add(struct pci_dev *pdev, unsigned int bar, uint64_t size, unsigned int flags)
{
	struct pci_bus *pci = pdev->bus;
	bool is64 = flags & PCI_BAR_MEM64;
	uint64_t addr;
	int ret = 0;

	if (bar >= PCI_STD_NUM_BARS || (is64 && bar + 1 >= PCI_STD_NUM_BARS) || size < 16 ||
	    size > PCI_MMIO_SIZE || (size & (size - 1)))
		return -EINVAL;
	pthread_mutex_lock(&pci->lock);
	if (pdev->bars[bar].size || pdev->bars[bar].upper ||
	    (is64 && (pdev->bars[bar + 1].size || pdev->bars[bar + 1].upper))) {
		ret = -EINVAL;
		goto out;
	}
	addr = ALIGN_UP(pci->mmio_next, MAX(size, 4 * KiB));
	if (addr + size > PCI_MMIO_BASE + PCI_MMIO_SIZE) {
		ret = -ENOSPC;
		goto out;
	}
	pci->mmio_next = addr + size;
	pdev->bars[bar] = (struct pci_bar){
		.size = size,
		.is64 = is64,
		.flags = (is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : PCI_BASE_ADDRESS_MEM_TYPE_32) |
			 ((flags & PCI_BAR_PREFETCH) ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0),
	};
	if (is64)
		pdev->bars[bar + 1].upper = true;
	bar_reg_write(pdev, bar, (uint32_t)addr);
	if (is64)
		bar_reg_write(pdev, bar + 1, (uint32_t)(addr >> 32));
out:
	pthread_mutex_unlock(&pci->lock);
	return ret;
}

int pci_add_cap(struct pci_dev *pdev, const void *cap, unsigned int len)
{
	unsigned int off = ALIGN_UP(pdev->cap_end, 4u);

	if (len < 4)
		return -EINVAL;
	if (off + len > PCI_CFG_SPACE_SIZE)
		return -ENOSPC;
	pthread_mutex_lock(&pdev->bus->lock);
	memcpy(pdev->cfg + off, cap, len);
	pdev->cfg[off + PCI_CAP_LIST_NEXT] = 0;
	if (pdev->cap_last)
		pdev->cfg[pdev->cap_last + PCI_CAP_LIST_NEXT] = (uint8_t)off;
	else
		pdev->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	wr16(pdev->cfg + PCI_STATUS, rd16(pdev->cfg + PCI_STATUS) | PCI_STATUS_CAP_LIST);
	pdev->cap_last = off;
	pdev->cap_end = off + len;
	pthread_mutex_unlock(&pdev->bus->lock);
	return (int)off;
}

void pci_cfg_set_writable(struct pci_dev *pdev, uint32_t off, uint32_t len)
{
	for (uint32_t i = 0; i < len && off + i < PCI_CFG_SPACE_SIZE; i++)
		pdev->wmask[off + i] = 0xff;
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

int pci_ioeventfd(struct pci_dev *pdev, uint64_t addr, uint32_t len, int efd, bool assign)
{
	const struct pci_irq_ops *ops = &pdev->bus->ops;

	if (!ops->ioeventfd)
		return -ENOSYS;
	return ops->ioeventfd(ops->opaque, addr, len, efd, assign);
}
