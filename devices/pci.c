#include "pci.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../vmm/util.h"
#include "bus.h"
#include "pci_priv.h"

unsigned int pci_intx_gsi(unsigned int slot)
{
	return PCI_INTX_GSI_BASE + (slot - 1) % 8;
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
	if (pci_msix_bar_access(pdev, bar, off, data, len, is_write))
		return;
	pdev->ops->bar_access(pdev->opaque, bar, off, data, len, is_write);
}

/* Caller holds the bus lock: recompute where each BAR decodes and tell the device. */
void pci_update_decode(struct pci_dev *d)
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
void pci_bar_reg_write(struct pci_dev *d, unsigned int i, uint32_t v)
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
			pci_bar_reg_write(d, r, v);
			continue;
		}
		d->cfg[o] = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (data[i] & d->wmask[o]));
	}
	cmd = rd16(d->cfg + PCI_COMMAND);
	if (cmd != old_cmd || overlaps(off, len, bars_lo, bars_len))
		pci_update_decode(d);
	if (((cmd ^ old_cmd) & PCI_COMMAND_INTX_DISABLE) || msix_ctrl) {
		uint16_t ctrl = d->msix_cap ? rd16(d->cfg + d->msix_cap + PCI_MSIX_FLAGS) : 0;
		bool en = ctrl & PCI_MSIX_FLAGS_ENABLE, fmask = ctrl & PCI_MSIX_FLAGS_MASKALL;

		pci_irq_control(d, cmd & PCI_COMMAND_INTX_DISABLE, en, fmask);
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
	(void)pci;
	pci_msix_free(d);
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
	pci_bar_reg_write(pdev, bar, (uint32_t)addr);
	if (is64)
		pci_bar_reg_write(pdev, bar + 1, (uint32_t)(addr >> 32));
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

int pci_ioeventfd(struct pci_dev *pdev, uint64_t addr, uint32_t len, int efd, bool assign)
{
	const struct pci_irq_ops *ops = &pdev->bus->ops;

	if (!ops->ioeventfd)
		return -ENOSYS;
	return ops->ioeventfd(ops->opaque, addr, len, efd, assign);
}
