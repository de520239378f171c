/*
 * PCI internals shared by devices/pci.c (bus, configuration space, BARs) and devices/pci_irq.c
 * (INTx and MSI-X). Nothing else includes this header: devices use devices/pci.h.
 */
#ifndef DEVICES_PCI_PRIV_H
#define DEVICES_PCI_PRIV_H

#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pci.h"

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

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}

static inline bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t n)
{
	return off < start + n && start < off + len;
}

/*
 * pci_irq_control() - COMMAND.INTX_DISABLE (@intx_disabled) and the MSI-X Message Control bits
 * (@msix_enable, @msix_fmask) as the guest just wrote them: update the INTx line and deliver
 * what became deliverable. Caller holds the bus lock (not the device's interrupt lock).
 */
void pci_irq_control(struct pci_dev *d, bool intx_disabled, bool msix_enable, bool msix_fmask);

/*
 * pci_msix_bar_access() - if [@off, @off + @len) of BAR @bar is the MSI-X table or PBA, perform
 * the access and return true; else return false (the device's BAR handler takes it).
 */
bool pci_msix_bar_access(struct pci_dev *d, unsigned int bar, uint64_t off, void *data,
			 uint32_t len, bool is_write);

/* pci_msix_free() - release the MSI-X vectors' irqfds, routes and table. */
void pci_msix_free(struct pci_dev *d);

/* pci_update_decode() - recompute where each BAR of @d decodes (COMMAND.MEMORY and the BAR
 * registers) and tell the device through ops->bar_remap. Caller holds the bus lock. */
void pci_update_decode(struct pci_dev *d);

/* pci_bar_reg_write() - BAR register @i of @d takes @v as a guest write would (only address bits
 * above the BAR's size are writable). Caller holds the bus lock. */
void pci_bar_reg_write(struct pci_dev *d, unsigned int i, uint32_t v);

/* pci_msix_route() - point vector @v's GSI at MSI message (@addr, @data) unless it already is
 * (vm_set_msi_route through the backend). Needs v->efd >= 0. Caller holds d->irq_lock.
 * Returns 0 or -errno from the backend. */
int pci_msix_route(struct pci_dev *d, struct msix_vec *v, uint64_t addr, uint32_t data);

#endif
