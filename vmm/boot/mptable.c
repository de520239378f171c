/*
 * Intel MultiProcessor Specification 1.4 tables, so Linux finds the vCPUs and the IOAPIC without
 * ACPI (CONFIG_X86_MPPARSE). No UAPI header describes these layouts, so they are declared here.
 */
#include <errno.h>
#include <string.h>

#include "../mem/guest_mem.h"
#include "../util.h"
#include "boot.h"

#define MP_IOAPIC_GPA 0xfec00000u
#define MP_LAPIC_GPA  0xfee00000u
#define MP_BUS_ISA    1
#define MP_BUS_PCI    0 /* Linux matches MP bus ids against PCI bus numbers */

struct mpf_intel {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;
	uint8_t length; /* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mpc_table {
	char signature[4]; /* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint32_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type, apicid, apicver, cpuflag;
	uint32_t cpufeature, featureflag, reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type, busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type, apicid, apicver, flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type, irqtype;
	uint16_t irqflag;
	uint8_t srcbus, srcbusirq, dstapic, dstirq;
} __attribute__((packed));

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_INT, MP_NMI, MP_SMI, MP_EXTINT };
#define MP_IRQ_PCI_FLAGS 0x0f /* active low, level triggered */

static uint8_t checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

int boot_mptable(struct guest_mem *gm, unsigned int nr_vcpus, const struct mp_pci_irq *pci,
		 unsigned int nr_pci)
{
	size_t room = BOOT_HIMEM_GPA - BOOT_EBDA_GPA;
	/* In size_t: a huge @nr_pci must not wrap to a small table (checked before @pci is read).
	 */
	size_t need = sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
		      (size_t)nr_vcpus * sizeof(struct mpc_cpu) + 2 * sizeof(struct mpc_bus) +
		      sizeof(struct mpc_ioapic) +
		      (16 + (size_t)nr_pci + 2) * sizeof(struct mpc_intsrc);
	uint8_t *base = gm_ptr(gm, BOOT_EBDA_GPA, room), *p;
	struct mpf_intel *mpf;
	struct mpc_table *mpc;
	uint8_t ioapic_id = (uint8_t)nr_vcpus;

	if (!base || need > room || nr_vcpus > 254)
		return -ENOSPC;
	memset(base, 0, need);
	mpf = (struct mpf_intel *)base;
	mpc = (struct mpc_table *)(mpf + 1);
	p = (uint8_t *)(mpc + 1);

	for (unsigned int i = 0; i < nr_vcpus; i++) {
		struct mpc_cpu *c = (struct mpc_cpu *)p;

		*c = (struct mpc_cpu){.type = MP_PROCESSOR,
				      .apicid = (uint8_t)i,
				      .apicver = 0x14,
				      .cpuflag = 1 | (i == 0 ? 2 : 0),
				      .cpufeature = 0x600,
				      .featureflag = 0x201};
		p += sizeof(*c);
	}
	*(struct mpc_bus *)p = (struct mpc_bus){MP_BUS, MP_BUS_PCI, "PCI   "};
	p += sizeof(struct mpc_bus);
	*(struct mpc_bus *)p = (struct mpc_bus){MP_BUS, MP_BUS_ISA, "ISA   "};
	p += sizeof(struct mpc_bus);
	*(struct mpc_ioapic *)p = (struct mpc_ioapic){MP_IOAPIC, ioapic_id, 0x11, 1, MP_IOAPIC_GPA};
	p += sizeof(struct mpc_ioapic);
	/* ISA IRQs map 1:1 onto IOAPIC pins, as KVM's default GSI routing does. */
	for (uint8_t irq = 0; irq < 16; irq++) {
		*(struct mpc_intsrc *)p =
			(struct mpc_intsrc){MP_INTSRC, MP_INT, 0, MP_BUS_ISA, irq, ioapic_id, irq};
		p += sizeof(struct mpc_intsrc);
	}
	for (unsigned int i = 0; i < nr_pci; i++) {
		*(struct mpc_intsrc *)p =
			(struct mpc_intsrc){MP_INTSRC,
					    MP_INT,
					    MP_IRQ_PCI_FLAGS,
					    MP_BUS_PCI,
					    (uint8_t)((pci[i].slot << 2) | ((pci[i].pin - 1) & 3)),
					    ioapic_id,
					    pci[i].irq};
		p += sizeof(struct mpc_intsrc);
	}
	*(struct mpc_intsrc *)p =
		(struct mpc_intsrc){MP_LINTSRC, MP_EXTINT, 0, MP_BUS_ISA, 0, 0xff, 0};
	p += sizeof(struct mpc_intsrc);
	*(struct mpc_intsrc *)p =
		(struct mpc_intsrc){MP_LINTSRC, MP_NMI, 0, MP_BUS_ISA, 0, 0xff, 1};
	p += sizeof(struct mpc_intsrc);

	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->spec = 4;
	memcpy(mpc->oem, "VMM     ", 8);
	memcpy(mpc->productid, "VMM MPTABLE ", 12);
	mpc->oemcount = (uint16_t)(nr_vcpus + 2 + 1 + 16 + nr_pci + 2);
	mpc->lapic = MP_LAPIC_GPA;
	mpc->checksum = checksum(mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(BOOT_EBDA_GPA + sizeof(*mpf));
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = checksum(mpf, sizeof(*mpf));
	return 0;
}
