/*
 * The tables every boot path writes (vmm/boot/e820.c, mptable.c, setup.c) on ordinary memory, no
 * KVM: the e820 map for RAM below and above the PCI hole, the MP 1.4 table (Intel MultiProcessor
 * Specification 1.4, §4) with its checksums, and the limits that must refuse rather than overrun.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../vmm/boot/boot.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

static void check_sorted_disjoint(const struct e820_range *m, unsigned int n)
{
	for (unsigned int i = 1; i < n; i++)
		cr_assert_geq(m[i].addr, m[i - 1].addr + m[i - 1].size, "entry %u overlaps", i);
}

Test(boot_tables, e820_low_ram_only)
{
	struct guest_mem gm = {0};
	struct e820_range m[BOOT_MAX_E820];
	unsigned int n;

	cr_assert_eq(gm_init(&gm, 64 * MiB, 0), 0);
	n = boot_e820(&gm, m);
	cr_assert_eq(n, 5);
	check_sorted_disjoint(m, n);
	cr_assert_eq(m[0].addr, 0);
	cr_assert_eq(m[0].size, BOOT_EBDA_GPA);
	cr_assert_eq(m[0].type, BOOT_E820_RAM);
	cr_assert_eq(m[1].type, BOOT_E820_RESERVED);
	cr_assert_eq(m[1].addr + m[1].size, BOOT_HIMEM_GPA);
	cr_assert_eq(m[2].addr, BOOT_HIMEM_GPA);
	cr_assert_eq(m[2].addr + m[2].size, 64 * MiB);
	cr_assert_eq(m[3].addr, BOOT_PCI_MMIO_BASE);
	cr_assert_eq(m[3].size, BOOT_PCI_MMIO_SIZE);
	cr_assert_eq(m[4].addr + m[4].size, GM_HIGH_BASE);
	gm_destroy(&gm);
}

Test(boot_tables, e820_ram_above_4g)
{
	struct guest_mem gm = {0};
	struct e820_range m[BOOT_MAX_E820];
	unsigned int n;
	uint64_t ram = 0;

	/* MAP_NORESERVE: 4 GiB of address space, nothing touched. */
	cr_assert_eq(gm_init(&gm, 4 * GiB, 0), 0);
	n = boot_e820(&gm, m);
	cr_assert_eq(n, 6);
	check_sorted_disjoint(m, n);
	cr_assert_eq(m[2].addr + m[2].size, GM_LOW_RAM_MAX);
	cr_assert_eq(m[5].addr, GM_HIGH_BASE);
	cr_assert_eq(m[5].type, BOOT_E820_RAM);
	for (unsigned int i = 0; i < n; i++)
		if (m[i].type == BOOT_E820_RAM)
			ram += m[i].size;
	/* All guest RAM but the EBDA/BIOS hole below 1 MiB is usable. */
	cr_assert_eq(ram, 4 * GiB - (BOOT_HIMEM_GPA - BOOT_EBDA_GPA));
	gm_destroy(&gm);
}

/* Layouts of the MP 1.4 floating pointer (§4.1) and table header (§4.2), read by offset. */
#define MPF_PHYSPTR 4
#define MPC_LENGTH  4
#define MPC_COUNT   34
#define MPC_ENTRIES 44

Test(boot_tables, mptable_describes_cpus_ioapic_and_pci_routes)
{
	const struct mp_pci_irq pci[] = {{.slot = 1, .pin = 1, .irq = 16},
					 {.slot = 2, .pin = 2, .irq = 17}};
	struct guest_mem gm = {0};
	uint8_t *mpf, *mpc, *p;
	uint32_t phys;
	uint16_t len, count;
	unsigned int cpus = 0, ioapics = 0, pci_routes = 0;

	cr_assert_eq(gm_init(&gm, 64 * MiB, 0), 0);
	cr_assert_eq(boot_mptable(&gm, 3, pci, 2), 0);
	mpf = gm_ptr(&gm, BOOT_EBDA_GPA, 16);
	cr_assert_eq(memcmp(mpf, "_MP_", 4), 0);
	cr_assert_eq(sum(mpf, 16), 0, "floating pointer checksum");
	memcpy(&phys, mpf + MPF_PHYSPTR, 4);
	mpc = gm_ptr(&gm, phys, MPC_ENTRIES);
	cr_assert_eq(memcmp(mpc, "PCMP", 4), 0);
	memcpy(&len, mpc + MPC_LENGTH, 2);
	memcpy(&count, mpc + MPC_COUNT, 2);
	cr_assert_not_null(gm_ptr(&gm, phys, len));
	cr_assert_eq(sum(mpc, len), 0, "table checksum");
	cr_assert_eq(count, 3 + 2 + 1 + 16 + 2 + 2);
	p = mpc + MPC_ENTRIES;
	for (unsigned int i = 0; i < count; i++) {
		switch (p[0]) {
		case 0: /* processor: 20 bytes, APIC ID = index, the first is the BSP */
			cr_assert_eq(p[1], cpus);
			cr_assert_eq(p[3], cpus == 0 ? 3 : 1);
			cpus++;
			p += 20;
			break;
		case 2: /* IOAPIC, ID after the CPUs */
			cr_assert_eq(p[1], 3);
			ioapics++;
			p += 8;
			break;
		case 3: /* interrupt source; PCI ones on bus 0: slot << 2 | (pin - 1) */
			if (p[4] == 0) {
				cr_assert_eq(p[5],
					     pci[pci_routes].slot << 2 | (pci[pci_routes].pin - 1));
				cr_assert_eq(p[7], pci[pci_routes].irq);
				pci_routes++;
			}
			p += 8;
			break;
		default: /* bus, local interrupt source */
			p += 8;
			break;
		}
	}
	cr_assert_eq(p, mpc + len, "entries fill the table exactly");
	cr_assert_eq(cpus, 3);
	cr_assert_eq(ioapics, 1);
	cr_assert_eq(pci_routes, 2);
	gm_destroy(&gm);
}

Test(boot_tables, mptable_refuses_what_does_not_fit)
{
	struct guest_mem gm = {0};
	struct mp_pci_irq one = {1, 1, 16};

	cr_assert_eq(gm_init(&gm, 64 * MiB, 0), 0);
	cr_assert_eq(boot_mptable(&gm, 254, NULL, 0), 0);
	cr_assert_eq(boot_mptable(&gm, 255, NULL, 0), -ENOSPC, "APIC IDs run out");
	/* Checked before any route is read: @pci points at one entry only. */
	cr_assert_eq(boot_mptable(&gm, 1, &one, 100000), -ENOSPC);
	cr_assert_eq(boot_mptable(&gm, 1, &one, UINT32_MAX), -ENOSPC);
	gm_destroy(&gm);
}

Test(boot_tables, gdt_and_page_tables)
{
	struct guest_mem gm = {0};
	struct boot_entry e = {.mode = BOOT_LONG64};
	uint64_t *gdt, *pd;

	cr_assert_eq(gm_init(&gm, 64 * MiB, 0), 0);
	cr_assert_eq(boot_gdt(&gm, &e), 0);
	cr_assert_eq(boot_identity_map(&gm, &e, 0), 0);
	gdt = gm_ptr(&gm, e.gdt_gpa, e.gdt_limit + 1);
	cr_assert_not_null(gdt);
	cr_assert(gdt[2] & (1ULL << 53), "0x10 is a 64-bit code segment");
	cr_assert_eq((gdt[5] >> 40) & 0xf, 0xb, "0x28 is a busy 64-bit TSS");
	pd = gm_ptr(&gm, BOOT_PML4_GPA + 2 * GM_PAGE_SIZE, 4 * GM_PAGE_SIZE);
	for (unsigned int i = 0; i < 2048; i++)
		cr_assert_eq(pd[i], ((uint64_t)i << 21) | 0x83, "PD entry %u", i);
	gm_destroy(&gm);
}
