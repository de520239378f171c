/* PCI bus: configuration mechanism #1, host bridge, headers, BARs, capabilities, INTx, MSI-X. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <string.h>
#include <unistd.h>

#include "../../devices/bus.h"
#include "../../devices/pci.h"

/* ---- fake interrupt backend ------------------------------------------------------------- */

struct fake_irq {
	int line[24];
	int line_calls;
	int next_gsi;
	struct {
		bool set;
		uint64_t addr;
		uint32_t data;
	} route[64];
	int route_calls;
	int irqfd_efd[64]; /* by gsi, -1 when none */
	int direct_msi;
	struct {
		uint64_t addr;
		int efd;
	} ioev[16];
	int nr_ioev;
};

static int f_irq_line(void *o, uint32_t gsi, int level)
{
	struct fake_irq *f = o;

	cr_assert_lt(gsi, 24u);
	f->line[gsi] = level;
	f->line_calls++;
	return 0;
}

static int f_alloc_gsi(void *o)
{
	struct fake_irq *f = o;

	return f->next_gsi < 64 ? f->next_gsi++ : -ENOSPC;
}

static int f_route(void *o, uint32_t gsi, uint64_t addr, uint32_t data, bool enable)
{
	struct fake_irq *f = o;

	f->route[gsi].set = enable;
	f->route[gsi].addr = addr;
	f->route[gsi].data = data;
	f->route_calls++;
	return 0;
}

static int f_irqfd(void *o, int efd, uint32_t gsi, bool assign)
{
	struct fake_irq *f = o;

	f->irqfd_efd[gsi] = assign ? efd : -1;
	return 0;
}

static int f_signal_msi(void *o, uint64_t addr, uint32_t data)
{
	(void)addr, (void)data;
	((struct fake_irq *)o)->direct_msi++;
	return 0;
}

static struct fake_irq fake;
static struct bus pio, mmio;
static struct pci_bus *pci;
static const struct pci_irq_ops fake_ops = {
	.opaque = &fake,
	.irq_line = f_irq_line,
	.alloc_gsi = f_alloc_gsi,
	.set_msi_route = f_route,
	.irqfd = f_irqfd,
	.signal_msi = f_signal_msi,
};

/* How many times the eventfd behind @gsi fired since the last call. */
static uint64_t fired(int gsi)
{
	uint64_t v = 0;

	if (fake.irqfd_efd[gsi] < 0 || read(fake.irqfd_efd[gsi], &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* ---- a test device: BAR 0 32-bit 4 KiB, BAR 2 64-bit 16 KiB with MSI-X ------------------- */

struct tdev {
	struct pci_dev *pdev;
	int accesses;
	unsigned int last_bar;
	uint64_t last_off, last_val;
	bool last_write;
	int remaps;
	unsigned int remap_bar;
	uint64_t remap_old, remap_new;
};

static void t_bar(void *o, unsigned int bar, uint64_t off, void *data, uint32_t len, bool w)
{
	struct tdev *t = o;

	t->accesses++;
	t->last_bar = bar;
	t->last_off = off;
	t->last_write = w;
	if (w) {
		t->last_val = 0;
		memcpy(&t->last_val, data, len);
	} else {
		memset(data, 0xA5, len);
	}
}

static void t_remap(void *o, unsigned int bar, uint64_t old, uint64_t new)
{
	struct tdev *t = o;

	t->remaps++;
	t->remap_bar = bar;
	t->remap_old = old;
	t->remap_new = new;
}

static const struct pci_dev_ops t_ops = {.bar_access = t_bar, .bar_remap = t_remap};

#define T_TABLE 0x2000
#define T_PBA	0x3000
#define T_NVEC	4

static struct tdev td;

static void add_tdev(struct tdev *t, bool msix)
{
	struct pci_dev_info info = {
		.vendor = 0x1234,
		.device = 0x5678,
		.subsys_vendor = 0x1af4,
		.subsys_id = 7,
		.revision = 3,
		.class_code = 0xff0000,
		.intx = true,
	};

	memset(t, 0, sizeof(*t));
	cr_assert_eq(pci_dev_add(pci, &info, &t_ops, t, &t->pdev), 0);
	cr_assert_eq(pci_bar_add(t->pdev, 0, 0x1000, 0), 0);
	cr_assert_eq(pci_bar_add(t->pdev, 2, 0x4000, PCI_BAR_MEM64), 0);
	if (msix)
		cr_assert_eq(pci_msix_init(t->pdev, T_NVEC, 2, T_TABLE, T_PBA), 0);
}

static void setup(void)
{
	memset(&fake, 0, sizeof(fake));
	memset(fake.irqfd_efd, -1, sizeof(fake.irqfd_efd));
	fake.next_gsi = 24;
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	cr_assert_eq(pci_bus_create(&pio, &mmio, &fake_ops, &pci), 0);
	add_tdev(&td, true);
}

static void teardown(void)
{
	pci_bus_destroy(pci);
	pci = NULL;
}

/* ---- configuration-space helpers, exactly what a guest does with in/out ------------------ */

static void set_addr(unsigned int slot, unsigned int fn, unsigned int reg)
{
	uint32_t a = 0x80000000u | slot << 11 | fn << 8 | (reg & 0xfc);

	cr_assert_eq(bus_access(&pio, 0xcf8, &a, 4, true), 0);
}

static uint32_t cfg_rd(unsigned int slot, unsigned int reg, uint32_t len)
{
	uint32_t v = 0;

	set_addr(slot, 0, reg);
	cr_assert_eq(bus_access(&pio, 0xcfc + (reg & 3), &v, len, false), 0);
	return v;
}

static void cfg_wr(unsigned int slot, unsigned int reg, uint32_t v, uint32_t len)
{
	set_addr(slot, 0, reg);
	cr_assert_eq(bus_access(&pio, 0xcfc + (reg & 3), &v, len, true), 0);
}

static uint64_t mmio_rd(uint64_t addr, uint32_t len)
{
	uint64_t v = 0;

	cr_assert_eq(bus_access(&mmio, addr, &v, len, false), 0);
	return v;
}

static void mmio_wr(uint64_t addr, uint64_t v, uint32_t len)
{
	cr_assert_eq(bus_access(&mmio, addr, &v, len, true), 0);
}

static uint64_t bar_addr(unsigned int slot, unsigned int bar)
{
	uint32_t lo = cfg_rd(slot, PCI_BASE_ADDRESS_0 + 4 * bar, 4);
	uint64_t a = lo & ~0xfu;

	if ((lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64)
		a |= (uint64_t)cfg_rd(slot, PCI_BASE_ADDRESS_0 + 4 * bar + 4, 4) << 32;
	return a;
}

/* Linux's __pci_find_next_cap_ttl(). */
static unsigned int find_cap(unsigned int slot, uint8_t id)
{
	unsigned int ttl = 48, pos;

	if (!(cfg_rd(slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return 0;
	pos = cfg_rd(slot, PCI_CAPABILITY_LIST, 1);
	while (ttl--) {
		if (pos < 0x40)
			break;
		pos &= ~3u;
		if (cfg_rd(slot, pos, 1) == id)
			return pos;
		pos = cfg_rd(slot, pos + PCI_CAP_LIST_NEXT, 1);
	}
	return 0;
}

TestSuite(pci, .init = setup, .fini = teardown);

Test(pci, conf1_address_register)
{
	uint32_t a = 0x80000000u, v = 0;
	uint8_t b = 1;

	/* Linux's pci_check_type1(): byte write to 0xCFB, then the dword must read back. */
	cr_assert_eq(bus_access(&pio, 0xcfb, &b, 1, true), 0);
	cr_assert_eq(bus_access(&pio, 0xcf8, &a, 4, true), 0);
	cr_assert_eq(bus_access(&pio, 0xcf8, &v, 4, false), 0);
	cr_assert_eq(v, 0x80000000u);
	cr_assert_eq(bus_access(&pio, 0xcfb, &b, 1, true), 0);
	cr_assert_eq(bus_access(&pio, 0xcf8, &v, 4, false), 0);
	cr_assert_eq(v, 0x80000000u, "a byte write must not latch");
	v = 0;
	cr_assert_eq(bus_access(&pio, 0xcfa, &v, 2, false), 0);
	cr_assert_eq(v, 0x8000);
}

Test(pci, host_bridge_passes_linux_sanity_check)
{
	bool found = false;

	cr_assert_eq(cfg_rd(0, PCI_VENDOR_ID, 2), PCI_HOST_VENDOR);
	cr_assert_eq(cfg_rd(0, PCI_DEVICE_ID, 2), PCI_HOST_DEVICE);
	cr_assert_eq(cfg_rd(0, PCI_HEADER_TYPE, 1), 0);
	/* pci_sanity_check(): some devfn on bus 0 has class PCI_CLASS_BRIDGE_HOST (0x0600). */
	for (unsigned int devfn = 0; devfn < 0x100 && !found; devfn++) {
		uint16_t cls = 0;
		uint32_t a = 0x80000000u | devfn << 8 | (PCI_CLASS_DEVICE & 0xfc);

		bus_access(&pio, 0xcf8, &a, 4, true);
		bus_access(&pio, 0xcfc + (PCI_CLASS_DEVICE & 3), &cls, 2, false);
		found = cls == 0x0600;
	}
	cr_assert(found);
	cr_assert_eq(cfg_rd(0, PCI_CLASS_REVISION, 4) >> 8, 0x060000);
}

Test(pci, absent_functions_read_all_ones)
{
	uint32_t v = 0, a;

	cr_assert_eq(cfg_rd(5, PCI_VENDOR_ID, 4), 0xffffffffu);
	set_addr(1, 1, 0);
	bus_access(&pio, 0xcfc, &v, 4, false);
	cr_assert_eq(v, 0xffffffffu, "function 1");
	a = 0x80010000u | 1 << 11; /* bus 1 */
	bus_access(&pio, 0xcf8, &a, 4, true);
	bus_access(&pio, 0xcfc, &v, 4, false);
	cr_assert_eq(v, 0xffffffffu, "bus 1");
	a = 1 << 11; /* enable bit clear */
	bus_access(&pio, 0xcf8, &a, 4, true);
	bus_access(&pio, 0xcfc, &v, 4, false);
	cr_assert_eq(v, 0xffffffffu, "disabled");
	cr_assert_eq(cfg_rd(1, PCI_VENDOR_ID, 4), 0x56781234u);
}

Test(pci, header_fields_and_read_only_bits)
{
	cr_assert_eq(cfg_rd(1, PCI_REVISION_ID, 1), 3);
	cr_assert_eq(cfg_rd(1, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	cr_assert_eq(cfg_rd(1, PCI_SUBSYSTEM_ID, 2), 7);
	cr_assert_eq(cfg_rd(1, PCI_INTERRUPT_PIN, 1), 1);
	cr_assert_eq(cfg_rd(1, PCI_INTERRUPT_LINE, 1), pci_intx_gsi(1));

	cfg_wr(1, PCI_VENDOR_ID, 0xdeadbeef, 4);
	cr_assert_eq(cfg_rd(1, PCI_VENDOR_ID, 4), 0x56781234u);
	cfg_wr(1, PCI_CLASS_REVISION, 0, 4);
	cr_assert_eq(cfg_rd(1, PCI_CLASS_REVISION, 4), 0xff000003u);
	cfg_wr(1, PCI_INTERRUPT_LINE, 0xffff, 2);
	cr_assert_eq(cfg_rd(1, PCI_INTERRUPT_LINE, 1), 0xff, "line is scratch");
	cr_assert_eq(cfg_rd(1, PCI_INTERRUPT_PIN, 1), 1, "pin is read-only");
	cfg_wr(1, PCI_HEADER_TYPE, 0x80, 1);
	cr_assert_eq(cfg_rd(1, PCI_HEADER_TYPE, 1), 0);
	cfg_wr(1, PCI_COMMAND, 0xffff, 2);
	cr_assert_eq(cfg_rd(1, PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
							PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
							PCI_COMMAND_INTX_DISABLE);
	cfg_wr(1, PCI_STATUS, 0xffff, 2);
	cr_assert_eq(cfg_rd(1, PCI_STATUS, 2), PCI_STATUS_CAP_LIST);
	cfg_wr(1, PCI_ROM_ADDRESS, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, PCI_ROM_ADDRESS, 4), 0, "no expansion ROM");
	/* A capability is read-only. */
	cfg_wr(1, PCI_CAPABILITY_LIST, 0, 1);
	cr_assert_neq(cfg_rd(1, PCI_CAPABILITY_LIST, 1), 0);
}

Test(pci, bar_sizing)
{
	uint64_t a0 = bar_addr(1, 0), a2 = bar_addr(1, 2);

	cr_assert_eq(a0 % 0x1000, 0);
	cr_assert_eq(a2 % 0x4000, 0);
	cr_assert(a0 >= PCI_MMIO_BASE && a0 + 0x1000 <= PCI_MMIO_BASE + PCI_MMIO_SIZE);
	cr_assert(a2 >= PCI_MMIO_BASE && a2 + 0x4000 <= PCI_MMIO_BASE + PCI_MMIO_SIZE);
	cr_assert(a0 + 0x1000 <= a2 || a2 + 0x4000 <= a0, "BARs overlap");

	cfg_wr(1, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, PCI_BASE_ADDRESS_0, 4), 0xfffff000u);
	cfg_wr(1, PCI_BASE_ADDRESS_0, (uint32_t)a0, 4);
	cr_assert_eq(bar_addr(1, 0), a0);

	cfg_wr(1, PCI_BASE_ADDRESS_2, 0xffffffff, 4);
	cfg_wr(1, PCI_BASE_ADDRESS_3, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, PCI_BASE_ADDRESS_2, 4), 0xffffc000u | PCI_BASE_ADDRESS_MEM_TYPE_64);
	cr_assert_eq(cfg_rd(1, PCI_BASE_ADDRESS_3, 4), 0xffffffffu);

	/* Unimplemented BARs (1, 4, 5) size to 0. */
	cfg_wr(1, PCI_BASE_ADDRESS_1, 0xffffffff, 4);
	cfg_wr(1, PCI_BASE_ADDRESS_5, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, PCI_BASE_ADDRESS_1, 4), 0);
	cr_assert_eq(cfg_rd(1, PCI_BASE_ADDRESS_5, 4), 0);
	/* Byte writes merge into the register. */
	cfg_wr(1, PCI_BASE_ADDRESS_0, 0, 4);
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 3, 0xe1, 1);
	cr_assert_eq(cfg_rd(1, PCI_BASE_ADDRESS_0, 4), 0xe1000000u);
}

Test(pci, bar_decode_follows_command_and_moves)
{
	uint64_t a0 = bar_addr(1, 0), a2 = bar_addr(1, 2), na = a0 + 0x100000;

	cr_assert_eq(mmio_rd(a0 + 8, 4), 0xffffffffu, "decoding is off at reset");
	cr_assert_eq(td.accesses, 0);
	cfg_wr(1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(td.remaps, 2, "both BARs started decoding");
	cr_assert_eq(mmio_rd(a0 + 8, 4), 0xa5a5a5a5u);
	cr_assert_eq(td.last_bar, 0);
	cr_assert_eq(td.last_off, 8);
	mmio_wr(a2 + 0x10, 0x1122334455667788ULL, 8);
	cr_assert_eq(td.last_bar, 2);
	cr_assert_eq(td.last_off, 0x10);
	cr_assert(td.last_write);
	cr_assert_eq(td.last_val, 0x1122334455667788ULL);

	/* The guest moves BAR 0: the device hears about it and the old address is dead. */
	cfg_wr(1, PCI_BASE_ADDRESS_0, (uint32_t)na, 4);
	cr_assert_eq(td.remap_bar, 0);
	cr_assert_eq(td.remap_old, a0);
	cr_assert_eq(td.remap_new, na);
	td.accesses = 0;
	cr_assert_eq(mmio_rd(a0 + 8, 4), 0xffffffffu);
	cr_assert_eq(td.accesses, 0);
	cr_assert_eq(mmio_rd(na + 4, 2), 0xa5a5);
	cr_assert_eq(td.accesses, 1);
	uint64_t got;
	cr_assert(pci_bar_decoded(td.pdev, 0, &got));
	cr_assert_eq(got, na);

	cfg_wr(1, PCI_COMMAND, 0, 2);
	cr_assert_eq(td.remap_new, PCI_BAR_UNMAPPED);
	cr_assert_not(pci_bar_decoded(td.pdev, 0, &got));
}

Test(pci, capability_list_walk)
{
	unsigned int pos = find_cap(1, PCI_CAP_ID_MSIX);
	uint32_t table, pba;

	cr_assert_geq(pos, 0x40);
	cr_assert_eq(cfg_rd(1, pos + PCI_MSIX_FLAGS, 2), T_NVEC - 1);
	table = cfg_rd(1, pos + PCI_MSIX_TABLE, 4);
	pba = cfg_rd(1, pos + PCI_MSIX_PBA, 4);
	cr_assert_eq(table, T_TABLE | 2);
	cr_assert_eq(pba, T_PBA | 2);
	cr_assert_eq(find_cap(1, PCI_CAP_ID_VNDR), 0);
	cr_assert_eq(find_cap(0, PCI_CAP_ID_MSIX), 0, "host bridge has no capabilities");
}

Test(pci, cap_space_exhaustion)
{
	uint8_t cap[64] = {PCI_CAP_ID_VNDR};
	int ret = 0, n = 0;

	while ((ret = pci_add_cap(td.pdev, cap, sizeof(cap))) >= 0)
		n++;
	cr_assert_eq(ret, -ENOSPC);
	cr_assert_geq(n, 1);
	cr_assert_eq(pci_add_cap(td.pdev, cap, 2), -EINVAL);
}

Test(pci, bar_add_rejects_bad_requests)
{
	cr_assert_eq(pci_bar_add(td.pdev, 0, 0x1000, 0), -EINVAL, "taken");
	cr_assert_eq(pci_bar_add(td.pdev, 3, 0x1000, 0), -EINVAL, "upper half of BAR 2");
	cr_assert_eq(pci_bar_add(td.pdev, 4, 0x1800, 0), -EINVAL, "not a power of two");
	cr_assert_eq(pci_bar_add(td.pdev, 5, 0x1000, PCI_BAR_MEM64), -EINVAL, "no room for hi");
	cr_assert_eq(pci_bar_add(td.pdev, 4, PCI_MMIO_SIZE, 0), -ENOSPC);
	cr_assert_eq(pci_bar_add(td.pdev, 4, 0x1000, PCI_BAR_PREFETCH), 0);
	cr_assert_eq(cfg_rd(1, PCI_BASE_ADDRESS_4, 4) & 0xf, PCI_BASE_ADDRESS_MEM_PREFETCH);
}

/* ---- MSI-X ------------------------------------------------------------------------------ */

static unsigned int msix_pos;
static uint64_t tbl;

static void msix_on(uint16_t extra)
{
	msix_pos = find_cap(1, PCI_CAP_ID_MSIX);
	tbl = bar_addr(1, 2) + T_TABLE;
	cfg_wr(1, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	cfg_wr(1, msix_pos + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | extra, 2);
}

static void program(unsigned int vec, uint32_t data, bool masked)
{
	uint64_t e = tbl + vec * PCI_MSIX_ENTRY_SIZE;

	mmio_wr(e + PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee00000u, 4);
	mmio_wr(e + PCI_MSIX_ENTRY_UPPER_ADDR, 0, 4);
	mmio_wr(e + PCI_MSIX_ENTRY_DATA, data, 4);
	mmio_wr(e + PCI_MSIX_ENTRY_VECTOR_CTRL, masked, 4);
}

static int gsi_of(unsigned int vec)
{
	return 24 + (int)vec; /* the fake hands out GSIs in order */
}

Test(pci, msix_table_reset_state)
{
	msix_on(0);
	for (unsigned int v = 0; v < T_NVEC; v++)
		cr_assert_eq(mmio_rd(tbl + v * 16 + 12, 4), 1, "vectors start masked");
	cr_assert_eq(pci_msix_nr_vectors(td.pdev), T_NVEC);
	cr_assert_eq(td.accesses, 0, "table accesses never reach the device");
	mmio_wr(tbl + 12, 0xfffffffe, 4);
	cr_assert_eq(mmio_rd(tbl + 12, 4), 0, "only the mask bit is writable");
	/* 8-byte access to address lo+hi. */
	mmio_wr(tbl + 16, 0x00000001fee01000ULL, 8);
	cr_assert_eq(mmio_rd(tbl + 16, 8), 0x00000001fee01000ULL);
	cr_assert_eq(mmio_rd(tbl + T_NVEC * 16, 4), 0xa5a5a5a5u, "past the table: the device's");
	cr_assert_eq(td.accesses, 1);
}

Test(pci, msix_disabled_means_eagain)
{
	cr_assert_eq(pci_msix_signal(td.pdev, 0), -EAGAIN);
	msix_on(0);
	cr_assert_eq(pci_msix_signal(td.pdev, T_NVEC), -EINVAL);
}

Test(pci, msix_delivery_and_route_update)
{
	msix_on(0);
	program(1, 0x4041, false);
	cr_assert_eq(pci_msix_signal(td.pdev, 1), 0);
	cr_assert_eq(fired(gsi_of(1)), 1);
	cr_assert(fake.route[gsi_of(1)].set);
	cr_assert_eq(fake.route[gsi_of(1)].addr, 0xfee00000u);
	cr_assert_eq(fake.route[gsi_of(1)].data, 0x4041);

	/* Linux rewrites the message with the vector masked; the next signal uses the new one. */
	program(1, 0x4051, true);
	mmio_wr(tbl + 16 + 12, 0, 4);
	cr_assert_eq(pci_msix_signal(td.pdev, 1), 0);
	cr_assert_eq(fired(gsi_of(1)), 1);
	cr_assert_eq(fake.route[gsi_of(1)].data, 0x4051);
	int calls = fake.route_calls;
	cr_assert_eq(pci_msix_signal(td.pdev, 1), 0);
	cr_assert_eq(fake.route_calls, calls, "unchanged message: no routing update");
}

Test(pci, msix_masked_vector_pends_until_unmask)
{
	uint64_t pba = bar_addr(1, 2) + T_PBA;

	msix_on(0);
	program(2, 0x4042, true);
	cr_assert_eq(pci_msix_signal(td.pdev, 2), 0);
	cr_assert_eq(fired(gsi_of(2)), 0);
	cr_assert_eq(mmio_rd(pba, 8), 1u << 2);
	mmio_wr(pba, 0, 8);
	cr_assert_eq(mmio_rd(pba, 8), 1u << 2, "the PBA is read-only");
	mmio_wr(tbl + 2 * 16 + 12, 0, 4); /* unmask */
	cr_assert_eq(fired(gsi_of(2)), 1);
	cr_assert_eq(mmio_rd(pba, 8), 0);
}

Test(pci, msix_function_mask)
{
	uint64_t pba = bar_addr(1, 2) + T_PBA;

	msix_on(PCI_MSIX_FLAGS_MASKALL);
	program(0, 0x4040, false);
	program(3, 0x4043, false);
	cr_assert_eq(pci_msix_signal(td.pdev, 0), 0);
	cr_assert_eq(pci_msix_signal(td.pdev, 3), 0);
	cr_assert_eq(fired(gsi_of(0)) + fired(gsi_of(3)), 0);
	cr_assert_eq(mmio_rd(pba, 1), 0x9);
	cfg_wr(1, msix_pos + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	cr_assert_eq(fired(gsi_of(0)), 1);
	cr_assert_eq(fired(gsi_of(3)), 1);
	cr_assert_eq(mmio_rd(pba, 1), 0);
	/* Read-only message-control bits stay. */
	cr_assert_eq(cfg_rd(1, msix_pos + PCI_MSIX_FLAGS, 2), PCI_MSIX_FLAGS_ENABLE | (T_NVEC - 1));
}

Test(pci, msix_bad_address_is_counted_not_delivered)
{
	msix_on(0);
	mmio_wr(tbl + 12, 0, 4); /* unmask vector 0 with address 0 */
	cr_assert_eq(pci_msix_signal(td.pdev, 0), 0);
	cr_assert_eq(fired(gsi_of(0)), 0);
	cr_assert_eq(pci_dev_err_count(td.pdev), 1);
}

Test(pci, msix_falls_back_to_direct_injection)
{
	struct tdev t2;
	struct pci_irq_ops ops = fake_ops;

	pci_bus_destroy(pci);
	ops.irqfd = NULL;
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	cr_assert_eq(pci_bus_create(&pio, &mmio, &ops, &pci), 0);
	add_tdev(&t2, true);
	msix_on(0);
	program(0, 0x4040, false);
	cr_assert_eq(pci_msix_signal(t2.pdev, 0), 0);
	cr_assert_eq(fake.direct_msi, 1);
}

/* ---- INTx ------------------------------------------------------------------------------- */

Test(pci, intx_level_disable_and_status)
{
	unsigned int gsi = pci_intx_gsi(1);

	pci_set_irq(td.pdev, 1);
	cr_assert_eq(fake.line[gsi], 1);
	cr_assert(cfg_rd(1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	cfg_wr(1, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 2);
	cr_assert_eq(fake.line[gsi], 0, "INTX_DISABLE gates the pin");
	cr_assert(cfg_rd(1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "status still shows it");
	cfg_wr(1, PCI_COMMAND, 0, 2);
	cr_assert_eq(fake.line[gsi], 1);
	/* MSI-X enable takes the function off INTx. */
	cfg_wr(1, find_cap(1, PCI_CAP_ID_MSIX) + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	cr_assert_eq(fake.line[gsi], 0);
	cfg_wr(1, find_cap(1, PCI_CAP_ID_MSIX) + PCI_MSIX_FLAGS, 0, 2);
	cr_assert_eq(fake.line[gsi], 1);
	pci_set_irq(td.pdev, 0);
	cr_assert_eq(fake.line[gsi], 0);
	cr_assert_not(cfg_rd(1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
}

Test(pci, intx_shared_pin_is_wired_or)
{
	struct tdev more[8];
	unsigned int gsi = pci_intx_gsi(1);

	for (int i = 0; i < 8; i++)
		add_tdev(&more[i], false); /* slots 2..9 */
	cr_assert_eq(pci_dev_slot(more[7].pdev), 9);
	cr_assert_eq(pci_intx_gsi(9), gsi);
	pci_set_irq(td.pdev, 1);
	pci_set_irq(more[7].pdev, 1);
	pci_set_irq(td.pdev, 0);
	cr_assert_eq(fake.line[gsi], 1, "slot 9 still asserts the shared pin");
	pci_set_irq(more[7].pdev, 0);
	cr_assert_eq(fake.line[gsi], 0);
}

Test(pci, intx_routes_for_the_mp_table)
{
	struct pci_intx_route r[4];
	struct tdev t2;

	add_tdev(&t2, false);
	cr_assert_eq(pci_intx_routes(pci, r, 4), 2);
	cr_assert_eq(r[0].slot, 1);
	cr_assert_eq(r[0].pin, 1);
	cr_assert_eq(r[0].gsi, 16);
	cr_assert_eq(r[1].slot, 2);
	cr_assert_eq(r[1].gsi, 17);
	cr_assert_eq(pci_intx_routes(pci, r, 0), 2);
}

Test(pci, slots_run_out)
{
	static struct tdev many[30];
	struct pci_dev *p;
	struct pci_dev_info info = {.vendor = 1};

	for (int i = 0; i < 30; i++)
		cr_assert_eq(pci_dev_add(pci, &info, &t_ops, &many[i], &many[i].pdev), 0);
	cr_assert_eq(pci_dev_add(pci, &info, &t_ops, &many[0], &p), -ENOSPC);
	pci_dev_remove(many[3].pdev);
	cr_assert_eq(cfg_rd(5, PCI_VENDOR_ID, 4), 0xffffffffu);
	cr_assert_eq(pci_dev_add(pci, &info, &t_ops, &many[3], &p), 0);
	cr_assert_eq(pci_dev_slot(p), 5);
}

Test(pci, bus_ranges_are_registered_once)
{
	struct pci_bus *second;

	cr_assert_eq(pci_bus_create(&pio, &mmio, &fake_ops, &second), -EEXIST);
}
