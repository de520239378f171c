/*
 * libFuzzer target for every device state loader (issue 14): a snapshot file is untrusted. One
 * machine's worth of devices on a PCI bus (virtio-balloon with stats and reporting, virtio-rng,
 * virtio-blk on a temporary image, virtio-console with three ports) and a 16550, on the
 * two-region guest RAM of the other device targets. Each input is loaded into one device; a
 * state that loads must save again and load again from what was saved (every accepted state
 * is one the device can carry on from), then the device's queues are restarted and run on the
 * input's RAM image, as after a restore.
 *
 * Input: byte 0 selects the loader (serial, pci, balloon, rng, blk, vconsole; bit 7 the mode),
 * bytes 1-2 the payload length (little-endian, clipped), the payload, then the guest RAM image
 * (window at 0). Raw mode: the payload is the state. Mutation mode (bit 7): a driver first
 * brings the virtio devices up through configuration space and BAR 0 (features as offered but
 * masked by byte 1, every queue of 16 entries in the window, MSI-X on), the device's state is
 * saved, and the payload is a list of (u16 offset, u8 xor) edits applied to it before the load:
 * structurally valid states with a few hostile fields, which raw inputs rarely reach.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../devices/bus.h"
#include "../../devices/pci.h"
#include "../../devices/serial.h"
#include "../../devices/virtio_balloon.h"
#include "../../devices/virtio_blk.h"
#include "../../devices/virtio_console.h"
#include "../../devices/virtio_pci.h"
#include "../../devices/virtio_rng.h"
#include "../../vmm/loop.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/state.h"
#include "../../vmm/util.h"

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

/* Two regions: 3 GiB below the PCI hole (MAP_NORESERVE) and 4 MiB from 4 GiB (issue 12). */
#define RAM    (GM_LOW_RAM_MAX + 4 * MiB)
#define WINDOW (64 * KiB)
#define HDR    3

enum { L_SERIAL, L_PCI, L_BALLOON, L_RNG, L_BLK, L_VCONSOLE, L_NR };

static struct guest_mem gm;
static struct loop *loop;
static struct bus pio, mmio;
static struct pci_bus *pci;
static struct serial *uart;
static struct balloon *bal;
static struct rng *rng;
static struct blk *disk;
static struct vconsole *vc;
static char image[] = "/tmp/vmm-fuzz-state-XXXXXX";
static int next_gsi = 24;

static int f_ok(void)
{
	return 0;
}

static int f_line(void *o, uint32_t gsi, int level)
{
	(void)o, (void)gsi, (void)level;
	return f_ok();
}

static int f_gsi(void *o)
{
	(void)o;
	return next_gsi++;
}

static int f_route(void *o, uint32_t gsi, uint64_t addr, uint32_t data, bool en)
{
	(void)o, (void)data, (void)en;
	if (gsi >= (uint32_t)next_gsi || (en && ((uint32_t)addr & 0xfff00000u) != 0xfee00000u))
		__builtin_trap(); /* only validated messages reach the backend */
	return f_ok();
}

static int f_irqfd(void *o, int efd, uint32_t gsi, bool assign)
{
	(void)o, (void)efd, (void)gsi, (void)assign;
	return f_ok();
}

static int f_msi(void *o, uint64_t addr, uint32_t data)
{
	(void)o, (void)addr, (void)data;
	return f_ok();
}

static int f_ioeventfd(void *o, uint64_t addr, uint32_t len, int efd, bool assign)
{
	(void)o, (void)addr, (void)len, (void)efd, (void)assign;
	return f_ok();
}

static void nop_irq(void *opaque, int level)
{
	(void)opaque, (void)level;
}

static void cleanup(void)
{
	unlink(image);
}

static void init(void)
{
	const struct pci_irq_ops ops = {
		.irq_line = f_line,
		.alloc_gsi = f_gsi,
		.set_msi_route = f_route,
		.irqfd = f_irqfd,
		.signal_msi = f_msi,
		.ioeventfd = f_ioeventfd,
	};
	struct balloon_config bc = {.enabled = true, .stats = true, .free_page_reporting = true};
	struct rng_config rc = {.enabled = true, .rate_bytes_per_s = 4096};
	struct blk_config dc = {.path = image, .nr_queues = 2, .serial = "fuzz"};
	struct vconsole_config cc = {.nr_ports = 3,
				     .ports = {{"vmm.stdout", -1, -1, true},
					       {"vmm.stderr", -1, -1, false},
					       {"vmm.stdin", -1, -1, false}}};
	struct serial_ops so = {.set_irq = nop_irq};
	struct serial_config sc = {.out_fd = -1, .in_fd = -1};
	int fd;

	log_level = LOG_QUIET;
	if (gm_init(&gm, RAM, 0))
		__builtin_trap();
	loop = loop_create();
	fd = mkstemp(image);
	if (!loop || fd < 0 || ftruncate(fd, 1 * MiB))
		__builtin_trap();
	close(fd);
	atexit(cleanup);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	uart = serial_create(&pio, NULL, &so, &sc);
	bal = balloon_create(&gm, &bc);
	rng = rng_create(&gm, &rc, NULL);
	vc = vconsole_create(&gm, NULL, &cc);
	if (!uart || !bal || !rng || !vc || pci_bus_create(&pio, &mmio, &ops, &pci) ||
	    blk_create(&gm, loop, &dc, &disk) ||
	    virtio_pci_attach(pci, balloon_virtio_dev(bal), NULL) ||
	    virtio_pci_attach(pci, rng_virtio_dev(rng), NULL) ||
	    virtio_pci_attach(pci, blk_virtio_dev(disk), NULL) ||
	    virtio_pci_attach(pci, vconsole_virtio_dev(vc), NULL))
		__builtin_trap();
}

static int load(unsigned int which, const void *p, size_t n)
{
	struct state_in in;

	state_in_init(&in, p, n);
	switch (which) {
	case L_SERIAL:
		return serial_load(uart, &in);
	case L_PCI:
		return pci_bus_load(pci, &in);
	case L_BALLOON:
		return virtio_pci_load(balloon_virtio_dev(bal), &in);
	case L_RNG:
		return virtio_pci_load(rng_virtio_dev(rng), &in);
	case L_BLK:
		return virtio_pci_load(blk_virtio_dev(disk), &in);
	default:
		return virtio_pci_load(vconsole_virtio_dev(vc), &in);
	}
}

static int save(unsigned int which, struct state_out *o)
{
	switch (which) {
	case L_SERIAL:
		return serial_save(uart, o);
	case L_PCI:
		return pci_bus_save(pci, o);
	case L_BALLOON:
		return virtio_pci_save(balloon_virtio_dev(bal), o);
	case L_RNG:
		return virtio_pci_save(rng_virtio_dev(rng), o);
	case L_BLK:
		if (blk_quiesce(disk))
			__builtin_trap();
		return virtio_pci_save(blk_virtio_dev(disk), o);
	default:
		return virtio_pci_save(vconsole_virtio_dev(vc), o);
	}
}

static struct virtio_dev *vdev(unsigned int which)
{
	switch (which) {
	case L_BALLOON:
		return balloon_virtio_dev(bal);
	case L_RNG:
		return rng_virtio_dev(rng);
	case L_BLK:
		return blk_virtio_dev(disk);
	case L_VCONSOLE:
		return vconsole_virtio_dev(vc);
	default:
		return NULL;
	}
}

#define CC(f) offsetof(struct virtio_pci_common_cfg, f)

static uint32_t cfg_rd(unsigned int slot, unsigned int reg)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc), v = 0;

	bus_access(&pio, 0xcf8, &a, 4, true);
	bus_access(&pio, 0xcfc, &v, 4, false);
	return v;
}

static void cfg_wr(unsigned int slot, unsigned int reg, uint32_t v, uint32_t len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);

	bus_access(&pio, 0xcf8, &a, 4, true);
	bus_access(&pio, 0xcfc + (reg & 3), &v, len, true);
}

static void bar_wr(uint64_t bar, uint64_t off, uint64_t v, uint32_t len)
{
	bus_access(&mmio, bar + off, &v, len, true);
}

static uint64_t bar_rd(uint64_t bar, uint64_t off, uint32_t len)
{
	uint64_t v = 0;

	bus_access(&mmio, bar + off, &v, len, false);
	return v;
}

/* Linux's probe of the function in @slot, its accepted features masked by @mask. */
static void driver_up(unsigned int slot, uint8_t mask)
{
	uint64_t bar, f;
	unsigned int msix = 0, nq;

	cfg_wr(slot, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	bar = (uint64_t)cfg_rd(slot, PCI_BASE_ADDRESS_1) << 32 |
	      (cfg_rd(slot, PCI_BASE_ADDRESS_0) & ~0xfu);
	for (unsigned int pos = cfg_rd(slot, PCI_CAPABILITY_LIST) & 0xff, ttl = 48;
	     ttl-- && pos >= 0x40; pos = (cfg_rd(slot, pos) >> 8) & 0xff)
		if ((cfg_rd(slot, pos) & 0xff) == PCI_CAP_ID_MSIX)
			msix = pos;
	if (msix)
		cfg_wr(slot, msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	bar_wr(bar, CC(device_status), 0, 1);
	bar_wr(bar, CC(device_status), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
	bar_wr(bar, CC(device_feature_select), 0, 4);
	f = bar_rd(bar, CC(device_feature), 4) & ~(uint64_t)mask;
	bar_wr(bar, CC(device_feature_select), 1, 4);
	f |= bar_rd(bar, CC(device_feature), 4) << 32;
	bar_wr(bar, CC(guest_feature_select), 0, 4);
	bar_wr(bar, CC(guest_feature), (uint32_t)f, 4);
	bar_wr(bar, CC(guest_feature_select), 1, 4);
	bar_wr(bar, CC(guest_feature), (uint32_t)(f >> 32), 4);
	bar_wr(bar, CC(device_status), 0x0b, 1); /* ACKNOWLEDGE | DRIVER | FEATURES_OK */
	nq = (unsigned int)bar_rd(bar, CC(num_queues), 2);
	for (unsigned int q = 0; q < nq; q++) {
		uint64_t base = q * 0x1000ULL;

		bar_wr(bar, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * q, 0xfee00000u, 4);
		bar_wr(bar, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * q + 8, 0x40 + q, 4);
		bar_wr(bar, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * q + 12, 0, 4);
		bar_wr(bar, CC(queue_select), q, 2);
		bar_wr(bar, CC(queue_size), 16, 2);
		bar_wr(bar, CC(queue_desc_lo), base, 8);
		bar_wr(bar, CC(queue_avail_lo), base + 0x100, 8);
		bar_wr(bar, CC(queue_used_lo), base + 0x200, 8);
		bar_wr(bar, CC(queue_msix_vector), q, 2);
		bar_wr(bar, CC(queue_enable), 1, 2);
	}
	bar_wr(bar, CC(device_status), 0x0f, 1); /* and DRIVER_OK */
}

/* Mutation mode: the device's own state after a driver's probe, with the payload's edits. */
static int mutated_load(unsigned int which, const uint8_t *edits, size_t n, uint8_t mask)
{
	static const unsigned int slot[L_NR] = {0, 1, 1, 2, 3, 4}; /* pci: the balloon's */
	struct state_out o;
	int ret;

	if (which == L_SERIAL) {
		uint8_t v = mask;

		bus_access(&pio, SERIAL_COM1_PORT + 1, &v, 1, true); /* IER */
	} else {
		driver_up(slot[which], mask);
	}
	state_out_init(&o);
	if (save(which, &o))
		__builtin_trap();
	for (size_t i = 0; o.len && i + 3 <= n; i += 3)
		o.data[(edits[i] | edits[i + 1] << 8) % o.len] ^= edits[i + 2];
	ret = load(which, o.data, o.len);
	state_out_free(&o);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int which;
	size_t n;
	struct state_out o;

	if (!gm.base)
		init();
	if (size < HDR)
		return 0;
	which = (data[0] & 0x7f) % L_NR;
	n = MIN((size_t)(data[1] | data[2] << 8), size - HDR);
	madvise(gm.base + WINDOW, gm.size - WINDOW, MADV_DONTNEED);
	memset(gm.base, 0, WINDOW);
	memcpy(gm.base, data + HDR + n, MIN(size - HDR - n, WINDOW));
	memset(gm.state, 0, gm.nr_pages);
	gm.nr_ballooned = gm.nr_reported = 0;
	gm.balloon_lo = gm.balloon_hi = 0;

	if (data[0] & 0x80 ? mutated_load(which, data + HDR, n, data[1])
			   : load(which, data + HDR, n))
		return 0;
	/* Accepted: it saves, and what it saved loads again. */
	state_out_init(&o);
	if (save(which, &o) || load(which, o.data, o.len))
		__builtin_trap();
	state_out_free(&o);
	if (vdev(which))
		virtio_pci_restart_queues(vdev(which));
	if (which == L_BLK && blk_quiesce(disk))
		__builtin_trap();
	if (gm.nr_ballooned + gm.nr_reported > gm.nr_pages)
		__builtin_trap();
	return 0;
}
