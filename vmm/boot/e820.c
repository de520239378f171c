#include <asm/bootparam.h>

#include "../mem/guest_mem.h"
#include "../util.h"
#include "boot.h"

#define LAPIC_IOAPIC_BASE 0xfec00000ULL

unsigned int boot_e820(const struct guest_mem *gm, struct e820_range *out)
{
	uint64_t low_end = gm->regions[0].gpa + gm->regions[0].size;
	unsigned int n = 0;

	out[n++] = (struct e820_range){0, BOOT_EBDA_GPA, BOOT_E820_RAM};
	out[n++] = (struct e820_range){BOOT_EBDA_GPA, BOOT_HIMEM_GPA - BOOT_EBDA_GPA,
				       BOOT_E820_RESERVED};
	if (low_end > BOOT_HIMEM_GPA)
		out[n++] = (struct e820_range){BOOT_HIMEM_GPA, low_end - BOOT_HIMEM_GPA,
					       BOOT_E820_RAM};
	/* The PCI MMIO window (BARs live here) and the IOAPIC/LAPIC pages. */
	out[n++] = (struct e820_range){BOOT_PCI_MMIO_BASE, BOOT_PCI_MMIO_SIZE, BOOT_E820_RESERVED};
	out[n++] = (struct e820_range){LAPIC_IOAPIC_BASE, GM_HIGH_BASE - LAPIC_IOAPIC_BASE,
				       BOOT_E820_RESERVED};
	if (gm->nr_regions > 1)
		out[n++] =
			(struct e820_range){gm->regions[1].gpa, gm->regions[1].size, BOOT_E820_RAM};
	return n;
}
