/* PCI configuration mechanism #1 on bus 0. */
#include "pci.h"

#define CONF_ADDR 0xCF8
#define CONF_DATA 0xCFC

static void select_reg(const struct pci_func *f, uint8_t off)
{
	outl(CONF_ADDR, 0x80000000u | (uint32_t)f->dev << 11 | (uint32_t)f->fn << 8 | (off & 0xfc));
}

uint8_t pci_read8(const struct pci_func *f, uint8_t off)
{
	select_reg(f, off);
	return inb(CONF_DATA + (off & 3));
}

uint16_t pci_read16(const struct pci_func *f, uint8_t off)
{
	select_reg(f, off);
	return inw(CONF_DATA + (off & 2));
}

uint32_t pci_read32(const struct pci_func *f, uint8_t off)
{
	select_reg(f, off);
	return inl(CONF_DATA);
}

void pci_write16(const struct pci_func *f, uint8_t off, uint16_t v)
{
	select_reg(f, off);
	outw(CONF_DATA + (off & 2), v);
}

void pci_write32(const struct pci_func *f, uint8_t off, uint32_t v)
{
	select_reg(f, off);
	outl(CONF_DATA, v);
}

/* Calls @fn for each present function; stops when it returns true. */
static bool scan(bool (*fn)(const struct pci_func *f, void *opaque), void *opaque)
{
	for (uint8_t dev = 0; dev < 32; dev++) {
		for (uint8_t func = 0; func < 8; func++) {
			struct pci_func f = {.dev = dev, .fn = func};
			uint32_t id = pci_read32(&f, PCI_VENDOR_ID);

			if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) {
				if (func == 0)
					break;
				continue;
			}
			f.vendor = id & 0xffff;
			f.device = id >> 16;
			if (fn(&f, opaque))
				return true;
			if (func == 0 && !(pci_read8(&f, PCI_HEADER_TYPE) & 0x80))
				break; /* single-function device */
		}
	}
	return false;
}

struct find_req {
	uint16_t vendor, device;
	unsigned int index;
	struct pci_func *out;
};

static bool match(const struct pci_func *f, void *opaque)
{
	struct find_req *r = opaque;

	if (f->vendor != r->vendor || f->device != r->device)
		return false;
	if (r->index--)
		return false;
	*r->out = *f;
	return true;
}

bool pci_find(uint16_t vendor, uint16_t device, unsigned int index, struct pci_func *out)
{
	struct find_req r = {vendor, device, index, out};

	return scan(match, &r);
}

static bool show(const struct pci_func *f, void *opaque)
{
	(void)opaque;
	printf("pci 00:%02x.%x %04x:%04x class %06x\n", f->dev, f->fn, f->vendor, f->device,
	       pci_read32(f, PCI_CLASS_REVISION) >> 8);
	return false;
}

void pci_list(void)
{
	scan(show, NULL);
}

bool pci_bar(const struct pci_func *f, unsigned int bar, uint64_t *addr, uint64_t *size)
{
	uint8_t off = PCI_BASE_ADDRESS_0 + 4 * bar;
	uint16_t cmd = pci_read16(f, PCI_COMMAND);
	uint32_t lo = pci_read32(f, off), hi = 0, mlo, mhi = 0xffffffff;
	bool is64 = (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;

	if (bar > 5 || (lo & PCI_BASE_ADDRESS_SPACE_IO) || (is64 && bar == 5))
		return false;
	if (is64)
		hi = pci_read32(f, off + 4);
	/* Size probe with decoding off so the all-ones address is never live (PCI 3.0 §6.2.5.1). */
	pci_write16(f, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
	pci_write32(f, off, 0xffffffff);
	mlo = pci_read32(f, off);
	pci_write32(f, off, lo);
	if (is64) {
		pci_write32(f, off + 4, 0xffffffff);
		mhi = pci_read32(f, off + 4);
		pci_write32(f, off + 4, hi);
	}
	pci_write16(f, PCI_COMMAND, cmd);
	*addr = ((uint64_t)hi << 32) | (lo & PCI_BASE_ADDRESS_MEM_MASK);
	*size = ~(((uint64_t)mhi << 32) | (mlo & PCI_BASE_ADDRESS_MEM_MASK)) + 1;
	if (!is64)
		*size &= 0xffffffffULL;
	return *addr != 0;
}

void pci_enable(const struct pci_func *f)
{
	uint16_t cmd = pci_read16(f, PCI_COMMAND);

	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	cmd &= ~PCI_COMMAND_INTX_DISABLE;
	pci_write16(f, PCI_COMMAND, cmd);
}

uint8_t pci_next_cap(const struct pci_func *f, uint8_t id, uint8_t after)
{
	uint8_t pos;

	if (!(pci_read16(f, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	pos = after ? pci_read8(f, after + PCI_CAP_LIST_NEXT) : pci_read8(f, PCI_CAPABILITY_LIST);
	for (unsigned int n = 0; n < 48 && pos >= 0x40; n++) {
		pos &= 0xfc;
		if (pci_read8(f, pos + PCI_CAP_LIST_ID) == id)
			return pos;
		pos = pci_read8(f, pos + PCI_CAP_LIST_NEXT);
	}
	return 0;
}
