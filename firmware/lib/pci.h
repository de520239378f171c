/*
 * PCI configuration mechanism #1 (ports 0xCF8/0xCFC, PCI Local Bus 3.0 §3.2.2.3.2) on bus 0,
 * BAR decoding and capability lists. Layouts and register numbers come from <linux/pci_regs.h>.
 */
#ifndef FW_PCI_H
#define FW_PCI_H

#include <linux/pci_regs.h>

#include "fw.h"

/* A function on bus 0. */
struct pci_func {
	uint8_t dev, fn;
	uint16_t vendor, device;
};

uint8_t pci_read8(const struct pci_func *f, uint8_t off);
uint16_t pci_read16(const struct pci_func *f, uint8_t off);
uint32_t pci_read32(const struct pci_func *f, uint8_t off);
void pci_write16(const struct pci_func *f, uint8_t off, uint16_t v);
void pci_write32(const struct pci_func *f, uint8_t off, uint32_t v);

/**
 * pci_find() - the @index'th (0-based) function on bus 0 with @vendor:@device, scanning slots
 * 0-31 and, for multi-function devices, functions 0-7. Returns true and fills @out when found.
 */
bool pci_find(uint16_t vendor, uint16_t device, unsigned int index, struct pci_func *out);

/** pci_list() - print every function on bus 0 ("pci 00:DD.F VVVV:DDDD class CCCCCC"). */
void pci_list(void);

/**
 * pci_bar() - memory BAR @bar (0-5): its address (64-bit BARs combined) and size (probed by
 * writing all-ones with decoding off, then restored). Returns false for an I/O BAR, an
 * unassigned (zero) BAR, or a 64-bit BAR in register 5.
 */
bool pci_bar(const struct pci_func *f, unsigned int bar, uint64_t *addr, uint64_t *size);

/** pci_enable() - set COMMAND.MEMORY and COMMAND.MASTER (DMA) and clear INTX_DISABLE. */
void pci_enable(const struct pci_func *f);

/**
 * pci_next_cap() - the configuration offset of the next capability with id @id after offset
 * @after (0: from the start of the list). Returns 0 when there is none; a looping or malformed
 * list ends after 48 entries.
 */
uint8_t pci_next_cap(const struct pci_func *f, uint8_t id, uint8_t after);

#endif
