/* virtio 1.2 PCI modern transport (§4.1) against a tiny dummy device. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../devices/bus.h"
#include "../../devices/pci.h"
#include "../../devices/virtio.h"
#include "../../devices/virtio_pci.h"
#include "../../vmm/loop.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"

#define CC(f) offsetof(struct virtio_pci_common_cfg, f)

/* ---- the dummy device: 2 queues of up to 256, 12 bytes of config ------------------------ */

struct dummy {
	struct virtio_dev vdev;
	uint8_t cfg[12];
	int notifies[2];
	int again[2]; /* notifications still to end "at the budget" (notify_again) */
	int activates, resets, activate_ret;
};

static uint64_t d_features(struct virtio_dev *d)
{
	(void)d;
	return 1ULL << 0 | 1ULL << VIRTIO_RING_F_EVENT_IDX;
}

static void d_cfg_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	cr_assert_leq(off + len, 12u);
	memcpy(data, ((struct dummy *)d)->cfg + off, len);
}

static void d_cfg_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
	cr_assert_leq(off + len, 12u);
	memcpy(((struct dummy *)d)->cfg + off, data, len);
}

static int d_activate(struct virtio_dev *d)
{
	struct dummy *dd = (struct dummy *)d;

	dd->activates++;
	return dd->activate_ret;
}

static void d_notify(struct virtio_dev *d, uint16_t q)
{
	struct dummy *dd = (struct dummy *)d;

	/* Must be called without the device lock: taking it here would deadlock otherwise. */
	cr_assert_eq(pthread_mutex_trylock(&d->lock), 0);
	__atomic_add_fetch(&dd->notifies[q], 1, __ATOMIC_SEQ_CST);
	if (dd->again[q] > 0) {
		dd->again[q]--;
		d->transport->notify_again(d, q);
	}
	pthread_mutex_unlock(&d->lock);
}

static void d_reset(struct virtio_dev *d)
{
	((struct dummy *)d)->resets++;
}

static const struct virtio_dev_ops d_ops = {
	.name = "dummy",
	.device_id = VIRTIO_ID_RNG,
	.max_queues = 2,
	.max_queue_size = 256,
	.config_size = 12,
	.get_features = d_features,
	.config_read = d_cfg_read,
	.config_write = d_cfg_write,
	.activate = d_activate,
	.queue_notify = d_notify,
	.reset = d_reset,
};

/* ---- fake backend ----------------------------------------------------------------------- */

struct fake {
	int line[24];
	int next_gsi;
	int irqfd_efd[64];
	struct {
		uint64_t addr;
		int efd;
		bool on;
	} ioev[16];
};

static struct fake fk;

static int f_line(void *o, uint32_t gsi, int level)
{
	((struct fake *)o)->line[gsi] = level;
	return 0;
}

static int f_gsi(void *o)
{
	return ((struct fake *)o)->next_gsi++;
}

static int f_route(void *o, uint32_t gsi, uint64_t addr, uint32_t data, bool en)
{
	(void)o, (void)gsi, (void)addr, (void)data, (void)en;
	return 0;
}

static int f_irqfd(void *o, int efd, uint32_t gsi, bool assign)
{
	((struct fake *)o)->irqfd_efd[gsi] = assign ? efd : -1;
	return 0;
}

static int f_ioeventfd(void *o, uint64_t addr, uint32_t len, int efd, bool assign)
{
	struct fake *f = o;

	cr_assert_eq(len, 0);
	for (int i = 0; i < 16; i++) {
		if (assign && !f->ioev[i].on) {
			f->ioev[i].addr = addr;
			f->ioev[i].efd = efd;
			f->ioev[i].on = true;
			return 0;
		}
		if (!assign && f->ioev[i].on && f->ioev[i].addr == addr && f->ioev[i].efd == efd) {
			f->ioev[i].on = false;
			return 0;
		}
	}
	cr_assert_fail("ioeventfd %s at %#lx not matched", assign ? "assign" : "deassign",
		       (unsigned long)addr);
	return -EINVAL;
}

static int ioev_count(void)
{
	int n = 0;

	for (int i = 0; i < 16; i++)
		n += fk.ioev[i].on;
	return n;
}

static bool ioev_at(uint64_t addr)
{
	for (int i = 0; i < 16; i++)
		if (fk.ioev[i].on && fk.ioev[i].addr == addr)
			return true;
	return false;
}

static const struct pci_irq_ops f_ops = {
	.opaque = &fk,
	.irq_line = f_line,
	.alloc_gsi = f_gsi,
	.set_msi_route = f_route,
	.irqfd = f_irqfd,
	.ioeventfd = f_ioeventfd,
};

/* ---- fixture ---------------------------------------------------------------------------- */

static struct guest_mem gm;
static struct bus pio, mmio;
static struct pci_bus *pci;
static struct dummy dm;
static struct virtio_dev *dev = &dm.vdev;
static uint64_t bar;
static unsigned int slot;

static uint32_t cfg_rd(unsigned int reg, uint32_t len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc), v = 0;

	bus_access(&pio, 0xcf8, &a, 4, true);
	bus_access(&pio, 0xcfc + (reg & 3), &v, len, false);
	return v;
}

static void cfg_wr(unsigned int reg, uint32_t v, uint32_t len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);

	bus_access(&pio, 0xcf8, &a, 4, true);
	bus_access(&pio, 0xcfc + (reg & 3), &v, len, true);
}

static uint64_t rd(uint64_t off, uint32_t len)
{
	uint64_t v = 0;

	cr_assert_eq(bus_access(&mmio, bar + off, &v, len, false), 0);
	return v;
}

static void wr(uint64_t off, uint64_t v, uint32_t len)
{
	cr_assert_eq(bus_access(&mmio, bar + off, &v, len, true), 0);
}

static unsigned int find_cap(uint8_t id, unsigned int from)
{
	unsigned int pos = from ? cfg_rd(from + 1, 1) : cfg_rd(PCI_CAPABILITY_LIST, 1);

	for (int ttl = 48; ttl-- && pos >= 0x40; pos = cfg_rd(pos + 1, 1))
		if (cfg_rd(pos, 1) == id)
			return pos;
	return 0;
}

/* Linux's virtio_pci_find_capability(). */
static unsigned int find_vcap(uint8_t type)
{
	for (unsigned int pos = find_cap(PCI_CAP_ID_VNDR, 0); pos;
	     pos = find_cap(PCI_CAP_ID_VNDR, pos))
		if (cfg_rd(pos + offsetof(struct virtio_pci_cap, cfg_type), 1) == type)
			return pos;
	return 0;
}

static void attach(struct loop *loop)
{
	virtio_dev_init(dev, &d_ops, &gm);
	cr_assert_eq(virtio_pci_attach(pci, dev, loop), 0);
	slot = pci_dev_slot(virtio_pci_dev(dev));
	bar = ((uint64_t)cfg_rd(PCI_BASE_ADDRESS_1, 4) << 32) |
	      (cfg_rd(PCI_BASE_ADDRESS_0, 4) & ~0xfu);
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
}

static void setup_common(void)
{
	memset(&fk, 0, sizeof(fk));
	memset(fk.irqfd_efd, -1, sizeof(fk.irqfd_efd));
	fk.next_gsi = 24;
	memset(&gm, 0, sizeof(gm));
	cr_assert_eq(gm_init(&gm, 16 * MiB, false), 0);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	cr_assert_eq(pci_bus_create(&pio, &mmio, &f_ops, &pci), 0);
	memset(&dm, 0, sizeof(dm));
}

static void setup(void)
{
	setup_common();
	attach(NULL);
}

static void teardown(void)
{
	virtio_pci_detach(dev);
	cr_assert_eq(ioev_count(), 0, "ioeventfds leaked");
	pci_bus_destroy(pci);
	gm_destroy(&gm);
}

/* Driver steps (Linux vp_modern_*). */
static void set_status(uint8_t s)
{
	wr(CC(device_status), s, 1);
}

static uint8_t status(void)
{
	return (uint8_t)rd(CC(device_status), 1);
}

static void negotiate(uint64_t features)
{
	set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE);
	set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(CC(guest_feature_select), 0, 4);
	wr(CC(guest_feature), (uint32_t)features, 4);
	wr(CC(guest_feature_select), 1, 4);
	wr(CC(guest_feature), (uint32_t)(features >> 32), 4);
	set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		   VIRTIO_CONFIG_S_FEATURES_OK);
}

#define RINGS 0x10000ULL
static void setup_queue(uint16_t q, uint16_t size, uint64_t base)
{
	wr(CC(queue_select), q, 2);
	wr(CC(queue_size), size, 2);
	wr(CC(queue_desc_lo), (uint32_t)base, 4);
	wr(CC(queue_desc_hi), (uint32_t)(base >> 32), 4);
	wr(CC(queue_avail_lo), (uint32_t)(base + 0x1000), 4);
	wr(CC(queue_avail_hi), (uint32_t)((base + 0x1000) >> 32), 4);
	wr(CC(queue_used_lo), (uint32_t)(base + 0x2000), 4);
	wr(CC(queue_used_hi), (uint32_t)((base + 0x2000) >> 32), 4);
	wr(CC(queue_enable), 1, 2);
}

static const uint8_t ALL_OK = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
#define V1 (1ULL << VIRTIO_F_VERSION_1)

TestSuite(virtio_pci, .init = setup, .fini = teardown);

Test(virtio_pci, identity_and_capabilities)
{
	unsigned int common = find_vcap(VIRTIO_PCI_CAP_COMMON_CFG);
	unsigned int notify = find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG);
	unsigned int isr = find_vcap(VIRTIO_PCI_CAP_ISR_CFG);
	unsigned int device = find_vcap(VIRTIO_PCI_CAP_DEVICE_CFG);
	unsigned int win = find_vcap(VIRTIO_PCI_CAP_PCI_CFG);
	unsigned int msix = find_cap(PCI_CAP_ID_MSIX, 0);

	cr_assert_eq(cfg_rd(PCI_VENDOR_ID, 2), 0x1af4);
	cr_assert_eq(cfg_rd(PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
	cr_assert_eq(cfg_rd(PCI_REVISION_ID, 1), 1);
	cr_assert_eq(cfg_rd(PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	cr_assert_eq(cfg_rd(PCI_CLASS_REVISION, 4) >> 8, 0xff0000);
	cr_assert_eq(cfg_rd(PCI_BASE_ADDRESS_0, 4) & 0xf, PCI_BASE_ADDRESS_MEM_TYPE_64);
	cr_assert(common && notify && isr && device && win && msix);

#define CAP(pos, f) cfg_rd((pos) + offsetof(struct virtio_pci_cap, f), 4)
	cr_assert_eq(CAP(common, offset), VIRTIO_PCI_COMMON_OFF);
	cr_assert_geq(CAP(common, length), sizeof(struct virtio_pci_common_cfg));
	cr_assert_eq(CAP(notify, offset), VIRTIO_PCI_NOTIFY_OFF);
	cr_assert_eq(CAP(notify, length), 2 * 4);
	cr_assert_eq(
		cfg_rd(notify + offsetof(struct virtio_pci_notify_cap, notify_off_multiplier), 4),
		4);
	cr_assert_eq(CAP(isr, offset), VIRTIO_PCI_ISR_OFF);
	cr_assert_eq(CAP(isr, length), 1);
	cr_assert_eq(CAP(device, offset), VIRTIO_PCI_DEVICE_OFF);
	cr_assert_eq(CAP(device, length), 12);
	cr_assert_eq(cfg_rd(common + offsetof(struct virtio_pci_cap, bar), 1), 0);
	cr_assert_eq(cfg_rd(msix + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, 2, "3 vectors");
	cr_assert_eq(cfg_rd(msix + PCI_MSIX_TABLE, 4), VIRTIO_PCI_MSIX_TABLE_OFF);
	cr_assert_eq(cfg_rd(msix + PCI_MSIX_PBA, 4), VIRTIO_PCI_MSIX_PBA_OFF);
	/* Vendor capabilities are read-only. */
	cfg_wr(common + offsetof(struct virtio_pci_cap, offset), 0x1234, 4);
	cr_assert_eq(CAP(common, offset), VIRTIO_PCI_COMMON_OFF);
#undef CAP
	cr_assert_eq(rd(CC(num_queues), 2), 2);
}

Test(virtio_pci, feature_negotiation)
{
	wr(CC(device_feature_select), 0, 4);
	cr_assert_eq(rd(CC(device_feature), 4), 1u | 1u << VIRTIO_RING_F_EVENT_IDX);
	wr(CC(device_feature_select), 1, 4);
	cr_assert_eq(rd(CC(device_feature), 4), 1u, "VERSION_1 always offered");
	wr(CC(device_feature_select), 2, 4);
	cr_assert_eq(rd(CC(device_feature), 4), 0);

	negotiate(V1 | 1);
	cr_assert(status() & VIRTIO_CONFIG_S_FEATURES_OK);
	cr_assert_eq(dev->driver_features, V1 | 1);
	wr(CC(guest_feature_select), 0, 4);
	cr_assert_eq(rd(CC(guest_feature), 4), 1);
	/* Frozen after FEATURES_OK. */
	wr(CC(guest_feature), 0, 4);
	cr_assert_eq(dev->driver_features, V1 | 1);
}

Test(virtio_pci, features_ok_refused_without_version_1)
{
	negotiate(1);
	cr_assert_not(status() & VIRTIO_CONFIG_S_FEATURES_OK);
	cr_assert(status() & VIRTIO_CONFIG_S_DRIVER);
}

Test(virtio_pci, features_ok_refused_with_unoffered_bits)
{
	negotiate(V1 | 1ULL << 5);
	cr_assert_not(status() & VIRTIO_CONFIG_S_FEATURES_OK);
}

Test(virtio_pci, driver_ok_activates_or_needs_reset)
{
	negotiate(V1);
	set_status(ALL_OK);
	cr_assert_eq(dm.activates, 1);
	cr_assert_eq(status(), ALL_OK);

	set_status(0);
	dm.activate_ret = -EINVAL;
	negotiate(V1);
	set_status(ALL_OK);
	cr_assert(status() & VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_assert_eq(dev->config_generation, 1, "config change raised");

	/* DRIVER_OK without FEATURES_OK never reaches the device. */
	set_status(0);
	dm.activates = 0;
	set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		   VIRTIO_CONFIG_S_DRIVER_OK);
	cr_assert_eq(dm.activates, 0);
	cr_assert(status() & VIRTIO_CONFIG_S_NEEDS_RESET);
}

Test(virtio_pci, status_bits_cannot_be_cleared_except_by_reset)
{
	negotiate(V1);
	set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE);
	cr_assert(status() & VIRTIO_CONFIG_S_FEATURES_OK);
	cr_assert_geq(dev->err_count, 1);
}

Test(virtio_pci, reset_clears_queues_and_features)
{
	negotiate(V1 | 1);
	setup_queue(0, 128, RINGS);
	wr(CC(queue_msix_vector), 1, 2);
	wr(CC(msix_config), 0, 2);
	cr_assert_eq(rd(CC(queue_enable), 2), 1);
	set_status(ALL_OK);

	set_status(0);
	cr_assert_eq(status(), 0);
	cr_assert_eq(dm.resets, 1);
	cr_assert_eq(dev->driver_features, 0);
	wr(CC(queue_select), 0, 2);
	cr_assert_eq(rd(CC(queue_enable), 2), 0);
	cr_assert_eq(rd(CC(queue_size), 2), 256, "size back to the maximum");
	cr_assert_eq(rd(CC(queue_desc_lo), 4), 0);
	cr_assert_eq(rd(CC(queue_msix_vector), 2), VIRTIO_MSI_NO_VECTOR);
	cr_assert_eq(rd(CC(msix_config), 2), VIRTIO_MSI_NO_VECTOR);
	cr_assert_not(dev->vqs[0].ready);
	wr(CC(device_feature_select), 1, 4);
	cr_assert_eq(rd(CC(device_feature), 4), 1u, "offer intact after reset");
}

Test(virtio_pci, queue_size_rules)
{
	wr(CC(queue_select), 1, 2);
	cr_assert_eq(rd(CC(queue_size), 2), 256);
	wr(CC(queue_size), 64, 2);
	cr_assert_eq(rd(CC(queue_size), 2), 64);
	wr(CC(queue_size), 100, 2);
	cr_assert_eq(rd(CC(queue_size), 2), 64, "not a power of two");
	wr(CC(queue_size), 512, 2);
	cr_assert_eq(rd(CC(queue_size), 2), 64, "larger than offered");
	wr(CC(queue_size), 0, 2);
	cr_assert_eq(rd(CC(queue_size), 2), 64);
	wr(CC(queue_size), 256, 2);
	cr_assert_eq(rd(CC(queue_size), 2), 256, "back up to the maximum is fine");
	setup_queue(1, 32, RINGS);
	cr_assert_eq(rd(CC(queue_enable), 2), 1);
	cr_assert_eq(dev->vqs[1].size, 32);
	wr(CC(queue_size), 16, 2);
	cr_assert_eq(rd(CC(queue_size), 2), 32, "frozen while enabled");
	wr(CC(queue_desc_lo), 0x5000, 4);
	cr_assert_eq(rd(CC(queue_desc_lo), 4), (uint32_t)RINGS, "addresses frozen too");
	cr_assert_geq(dev->err_count, 4);
	/* A queue that does not exist reads as size 0 and ignores writes. */
	wr(CC(queue_select), 7, 2);
	cr_assert_eq(rd(CC(queue_size), 2), 0);
	wr(CC(queue_enable), 1, 2);
	cr_assert_eq(rd(CC(queue_enable), 2), 0);
}

Test(virtio_pci, queue_enable_rejects_rings_outside_ram)
{
	uint64_t errs = dev->err_count;

	setup_queue(0, 256, 16 * MiB - 0x1000); /* used ring past the end of RAM */
	cr_assert_eq(rd(CC(queue_enable), 2), 0);
	cr_assert_not(dev->vqs[0].ready);
	cr_assert_eq(dev->err_count, errs + 1);
	setup_queue(0, 256, 0xfffffffffffff000ULL); /* wraps */
	cr_assert_eq(rd(CC(queue_enable), 2), 0);
	setup_queue(0, 256, RINGS + 1); /* misaligned descriptor table */
	cr_assert_eq(rd(CC(queue_enable), 2), 0);
	setup_queue(0, 256, RINGS);
	cr_assert_eq(rd(CC(queue_enable), 2), 1);
	cr_assert_eq(dev->vqs[0].desc_gpa, RINGS);
	cr_assert_eq(dev->vqs[0].used_gpa, RINGS + 0x2000);
	cr_assert(dev->vqs[0].event_idx == false, "EVENT_IDX not negotiated");
}

Test(virtio_pci, queue_fields_any_width)
{
	wr(CC(queue_select), 1, 2);
	wr(CC(queue_desc_lo), 0x1122334455667788ULL, 8);
	cr_assert_eq(rd(CC(queue_desc_lo), 8), 0x1122334455667788ULL);
	wr(CC(queue_desc_lo) + 1, 0xab, 1);
	cr_assert_eq(rd(CC(queue_desc_lo), 4), 0x5566ab88u);
	cr_assert_eq(rd(CC(queue_notify_off), 2), 1);
	cr_assert_eq(rd(VIRTIO_PCI_COMMON_Q_NDATA, 2), 1);
	cr_assert_eq(rd(VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
	/* Read-only fields stay. */
	wr(CC(num_queues), 9, 2);
	cr_assert_eq(rd(CC(num_queues), 2), 2);
	wr(CC(queue_notify_off), 9, 2);
	cr_assert_eq(rd(CC(queue_notify_off), 2), 1);
}

Test(virtio_pci, msix_vector_out_of_range_reads_no_vector)
{
	wr(CC(msix_config), 2, 2);
	cr_assert_eq(rd(CC(msix_config), 2), 2);
	wr(CC(msix_config), 3, 2);
	cr_assert_eq(rd(CC(msix_config), 2), VIRTIO_MSI_NO_VECTOR);
	wr(CC(queue_select), 0, 2);
	wr(CC(queue_msix_vector), 1, 2);
	cr_assert_eq(rd(CC(queue_msix_vector), 2), 1);
	wr(CC(queue_msix_vector), 0x7ff, 2);
	cr_assert_eq(rd(CC(queue_msix_vector), 2), VIRTIO_MSI_NO_VECTOR);
}

Test(virtio_pci, intx_isr_read_to_clear)
{
	unsigned int gsi = pci_intx_gsi(slot);

	pthread_mutex_lock(&dev->lock);
	dev->transport->signal_used(dev, 0);
	pthread_mutex_unlock(&dev->lock);
	cr_assert_eq(fk.line[gsi], 1);
	cr_assert_eq(rd(VIRTIO_PCI_ISR_OFF, 1), 1);
	cr_assert_eq(fk.line[gsi], 0, "ISR read deasserts");
	cr_assert_eq(rd(VIRTIO_PCI_ISR_OFF, 1), 0, "and clears");

	pthread_mutex_lock(&dev->lock);
	dev->transport->signal_config(dev);
	pthread_mutex_unlock(&dev->lock);
	cr_assert_eq(rd(CC(config_generation), 1), 1);
	cr_assert_eq(fk.line[gsi], 1);
	cr_assert_eq(rd(VIRTIO_PCI_ISR_OFF, 4), VIRTIO_PCI_ISR_CONFIG);
	cr_assert_eq(fk.line[gsi], 0);
	wr(VIRTIO_PCI_ISR_OFF, 0xff, 1);
	cr_assert_eq(rd(VIRTIO_PCI_ISR_OFF, 1), 0, "ISR is read-only");
}

static uint64_t fired(int gsi)
{
	uint64_t v = 0;

	if (read(fk.irqfd_efd[gsi], &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

Test(virtio_pci, msix_used_and_config_vectors)
{
	unsigned int msix = find_cap(PCI_CAP_ID_MSIX, 0);
	uint64_t tbl = VIRTIO_PCI_MSIX_TABLE_OFF;

	cfg_wr(msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	for (int v = 0; v < 3; v++) {
		wr(tbl + 16 * v, 0xfee00000u, 4);
		wr(tbl + 16 * v + 8, 0x4040 + v, 4);
		wr(tbl + 16 * v + 12, 0, 4);
	}
	wr(CC(msix_config), 0, 2);
	wr(CC(queue_select), 0, 2);
	wr(CC(queue_msix_vector), 1, 2);
	wr(CC(queue_select), 1, 2);
	wr(CC(queue_msix_vector), VIRTIO_MSI_NO_VECTOR, 2);

	pthread_mutex_lock(&dev->lock);
	dev->transport->signal_used(dev, 0);
	dev->transport->signal_used(dev, 1); /* NO_VECTOR with MSI-X on: no interrupt */
	dev->transport->signal_config(dev);
	pthread_mutex_unlock(&dev->lock);
	cr_assert_eq(fired(24 + 1), 1);
	cr_assert_eq(fired(24 + 0), 1);
	cr_assert_eq(fired(24 + 2), 0);
	cr_assert_eq(rd(VIRTIO_PCI_ISR_OFF, 1), 0, "no ISR bits with MSI-X");
	cr_assert_eq(fk.line[pci_intx_gsi(slot)], 0);

	/* A masked vector pends in the PBA and fires on unmask. */
	wr(tbl + 16 + 12, 1, 4);
	pthread_mutex_lock(&dev->lock);
	dev->transport->signal_used(dev, 0);
	pthread_mutex_unlock(&dev->lock);
	cr_assert_eq(fired(25), 0);
	cr_assert_eq(rd(VIRTIO_PCI_MSIX_PBA_OFF, 8), 2);
	wr(tbl + 16 + 12, 0, 4);
	cr_assert_eq(fired(25), 1);
}

Test(virtio_pci, device_config_bounds)
{
	memcpy(dm.cfg, "0123456789AB", 12);
	cr_assert_eq(rd(VIRTIO_PCI_DEVICE_OFF + 8, 4), 0x42413938u);
	cr_assert_eq(rd(VIRTIO_PCI_DEVICE_OFF, 8), 0x3736353433323130ULL);
	cr_assert_eq(rd(VIRTIO_PCI_DEVICE_OFF + 10, 4), 0, "straddles the end");
	cr_assert_eq(rd(VIRTIO_PCI_DEVICE_OFF + 12, 1), 0);
	cr_assert_eq(rd(VIRTIO_PCI_DEVICE_OFF + 0xffc, 4), 0);
	wr(VIRTIO_PCI_DEVICE_OFF + 4, 0x7a7a7a7a, 4);
	cr_assert_eq(memcmp(dm.cfg, "0123zzzz89AB", 12), 0);
	wr(VIRTIO_PCI_DEVICE_OFF + 10, 0xffffffff, 4);
	wr(VIRTIO_PCI_DEVICE_OFF + 100, 0xffffffff, 4);
	cr_assert_eq(memcmp(dm.cfg, "0123zzzz89AB", 12), 0, "out-of-bounds writes ignored");
	/* Unused parts of the BAR. */
	cr_assert_eq(rd(0x7ff8, 8), 0);
	cr_assert_eq(rd(VIRTIO_PCI_COMMON_CFG_SIZE + 4, 4), 0);
}

Test(virtio_pci, early_kicks_are_counted_and_replayed)
{
	negotiate(V1);
	setup_queue(0, 64, RINGS);
	wr(VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	wr(VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	cr_assert_eq(dm.notifies[0], 0, "not before DRIVER_OK");
	cr_assert_eq(dev->early_kicks, 2);
	set_status(ALL_OK);
	cr_assert_eq(dm.notifies[0], 1, "replayed once after activation");
	wr(VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	cr_assert_eq(dm.notifies[0], 2);
	/* Queue 1 never enabled: a kick is an error, not a notification. */
	wr(VIRTIO_PCI_NOTIFY_OFF + 4, 1, 4);
	cr_assert_eq(dm.notifies[1], 0);
	cr_assert_geq(dev->err_count, 1);
}

/* Without a loop (unit tests, fuzzing) a budget's notify_again is replayed right away. */
Test(virtio_pci, notify_again_without_a_loop_is_replayed_in_turn)
{
	negotiate(V1);
	setup_queue(0, 64, RINGS);
	set_status(ALL_OK);
	dm.again[0] = 2;
	wr(VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	cr_assert_eq(dm.notifies[0], 3, "the kick and the two notifications asked for");
	wr(VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	cr_assert_eq(dm.notifies[0], 4);
}

Test(virtio_pci, pci_cfg_window)
{
	unsigned int w = find_vcap(VIRTIO_PCI_CAP_PCI_CFG);
	unsigned int data = w + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);

	cfg_wr(w + offsetof(struct virtio_pci_cap, bar), 0, 1);
	cfg_wr(w + offsetof(struct virtio_pci_cap, offset), CC(num_queues), 4);
	cfg_wr(w + offsetof(struct virtio_pci_cap, length), 2, 4);
	cr_assert_eq(cfg_rd(data, 4) & 0xffff, 2);
	/* Write device_status through the window. */
	cfg_wr(w + offsetof(struct virtio_pci_cap, offset), CC(device_status), 4);
	cfg_wr(w + offsetof(struct virtio_pci_cap, length), 1, 4);
	cfg_wr(data, VIRTIO_CONFIG_S_ACKNOWLEDGE, 4);
	cr_assert_eq(status(), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* Misaligned windows are refused. */
	cfg_wr(w + offsetof(struct virtio_pci_cap, offset), CC(num_queues) + 1, 4);
	cfg_wr(w + offsetof(struct virtio_pci_cap, length), 2, 4);
	cr_assert_eq(cfg_rd(data, 4), 0);
}

Test(virtio_pci, bad_ops_are_rejected)
{
	static struct dummy other;
	struct virtio_dev_ops bad = d_ops;

	bad.max_queues = VIRTIO_MAX_QUEUES + 1;
	virtio_dev_init(&other.vdev, &bad, &gm);
	cr_assert_eq(virtio_pci_attach(pci, &other.vdev, NULL), -EINVAL);
	bad = d_ops;
	bad.max_queue_size = 100;
	virtio_dev_init(&other.vdev, &bad, &gm);
	cr_assert_eq(virtio_pci_attach(pci, &other.vdev, NULL), -EINVAL);
	cr_assert_null(virtio_pci_dev(&other.vdev));
}

/* ---- the real event loop and ioeventfd registration ------------------------------------- */

static struct loop *lp;
static pthread_t lp_thread;

static void *run_loop(void *arg)
{
	loop_run(arg);
	return NULL;
}

static void setup_loop(void)
{
	setup_common();
	lp = loop_create();
	cr_assert_not_null(lp);
	attach(lp);
	cr_assert_eq(pthread_create(&lp_thread, NULL, run_loop, lp), 0);
}

static void teardown_loop(void)
{
	loop_stop(lp);
	pthread_join(lp_thread, NULL);
	teardown();
	loop_destroy(lp);
}

static bool wait_notifies(int q, int n)
{
	for (int i = 0; i < 2000; i++) {
		if (__atomic_load_n(&dm.notifies[q], __ATOMIC_SEQ_CST) >= n)
			return true;
		usleep(1000);
	}
	return false;
}

TestSuite(virtio_pci_loop, .init = setup_loop, .fini = teardown_loop);

Test(virtio_pci_loop, ioeventfds_follow_the_bar)
{
	uint64_t moved = bar + 0x100000;

	cr_assert_eq(ioev_count(), 2);
	cr_assert(ioev_at(bar + VIRTIO_PCI_NOTIFY_OFF));
	cr_assert(ioev_at(bar + VIRTIO_PCI_NOTIFY_OFF + 4));
	cfg_wr(PCI_COMMAND, 0, 2);
	cr_assert_eq(ioev_count(), 0, "memory decoding off: no ioeventfds");
	cfg_wr(PCI_BASE_ADDRESS_0, (uint32_t)moved, 4);
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(ioev_count(), 2);
	cr_assert(ioev_at(moved + VIRTIO_PCI_NOTIFY_OFF + 4));
	bar = moved;

	negotiate(V1);
	setup_queue(1, 64, RINGS);
	set_status(ALL_OK);
	/* What KVM does on a guest write to the notify address. */
	for (int i = 0; i < 16; i++) {
		if (fk.ioev[i].on && fk.ioev[i].addr == moved + VIRTIO_PCI_NOTIFY_OFF + 4) {
			uint64_t one = 1;

			cr_assert_eq(write(fk.ioev[i].efd, &one, 8), 8);
		}
	}
	cr_assert(wait_notifies(1, 1), "loop thread delivered the kick");
	/* A plain MMIO write (no ioeventfd matched) takes the same path. */
	wr(VIRTIO_PCI_NOTIFY_OFF + 4, 1, 2);
	cr_assert(wait_notifies(1, 2));
	cr_assert_eq(dm.notifies[0], 0);
}

Test(virtio_pci_loop, early_kick_is_replayed)
{
	negotiate(V1);
	setup_queue(0, 64, RINGS);
	wr(VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	for (int i = 0; i < 2000 && !__atomic_load_n(&dev->early_kicks, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	cr_assert_eq(dev->early_kicks, 1);
	set_status(ALL_OK);
	cr_assert(wait_notifies(0, 1));
}

/* A device at its kick budget asks for another notification: the loop delivers it later. */
Test(virtio_pci_loop, notify_again_is_delivered_on_later_loop_turns)
{
	negotiate(V1);
	setup_queue(1, 64, RINGS);
	set_status(ALL_OK);
	dm.again[1] = 3;
	wr(VIRTIO_PCI_NOTIFY_OFF + 4, 1, 2);
	cr_assert(wait_notifies(1, 4), "one kick, three re-notifications: %d", dm.notifies[1]);
	usleep(20000);
	cr_assert_eq(dm.notifies[1], 4, "no more than the device asked for");
	cr_assert_eq(dm.notifies[0], 0);
}
