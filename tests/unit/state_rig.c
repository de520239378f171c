/* The device-state tests' small machine (state_rig.h). */
#include "state_rig.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "../../devices/pci.h"
#include "../../devices/virtio_balloon.h"
#include "../../devices/virtio_pci.h"
#include "../../devices/virtio_rng.h"

#define CC(f) offsetof(struct virtio_pci_common_cfg, f)

struct guest_mem rig_gm;
uint64_t rig_rng_rate = RNG_MAX_RATE;

static int f_line(void *o, uint32_t gsi, int level)
{
	((struct rig_fake *)o)->line[gsi] = level;
	return 0;
}

static int f_gsi(void *o)
{
	return ((struct rig_fake *)o)->next_gsi++;
}

static int f_route(void *o, uint32_t gsi, uint64_t addr, uint32_t data, bool en)
{
	struct rig_fake *f = o;

	cr_assert_lt(gsi, 64u);
	f->r_addr[gsi] = en ? addr : 0;
	f->r_data[gsi] = en ? data : 0;
	return 0;
}

static int f_irqfd(void *o, int efd, uint32_t gsi, bool assign)
{
	cr_assert_lt(gsi, 64u);
	((struct rig_fake *)o)->efd[gsi] = assign ? efd : -1;
	return 0;
}

static int f_ioeventfd(void *o, uint64_t addr, uint32_t len, int efd, bool assign)
{
	struct rig_fake *f = o;

	(void)len;
	for (int i = 0; i < 32; i++) {
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
	cr_assert_fail("ioeventfd at %#lx not matched", (unsigned long)addr);
	return -EINVAL;
}

void rig_up(struct rig *r, struct loop *loop)
{
	struct pci_irq_ops ops = {
		.opaque = &r->fk,
		.irq_line = f_line,
		.alloc_gsi = f_gsi,
		.set_msi_route = f_route,
		.irqfd = f_irqfd,
		.ioeventfd = f_ioeventfd,
	};
	struct rng_config rc = {.enabled = true, .rate_bytes_per_s = rig_rng_rate};
	struct balloon_config bc = {.enabled = true, .stats = true};

	memset(r, 0, sizeof(*r));
	memset(r->fk.efd, -1, sizeof(r->fk.efd));
	r->fk.next_gsi = RIG_GSI_BASE;
	r->loop = loop;
	bus_init(&r->pio, "pio");
	bus_init(&r->mmio, "mmio");
	cr_assert_eq(pci_bus_create(&r->pio, &r->mmio, &ops, &r->pci), 0);
	r->rng = rng_create(&rig_gm, &rc, loop);
	cr_assert_not_null(r->rng);
	cr_assert_eq(virtio_pci_attach(r->pci, rng_virtio_dev(r->rng), loop), 0);
	r->bal = balloon_create(&rig_gm, &bc);
	cr_assert_not_null(r->bal);
	cr_assert_eq(virtio_pci_attach(r->pci, balloon_virtio_dev(r->bal), loop), 0);
}

void rig_down(struct rig *r)
{
	virtio_pci_detach(rng_virtio_dev(r->rng));
	virtio_pci_detach(balloon_virtio_dev(r->bal));
	pci_bus_destroy(r->pci);
	rng_destroy(r->rng);
	balloon_destroy(r->bal);
}

struct virtio_dev *rig_vdev(struct rig *r, unsigned int slot)
{
	return slot == RIG_RNG ? rng_virtio_dev(r->rng) : balloon_virtio_dev(r->bal);
}

uint32_t rig_cfg_rd(struct rig *r, unsigned int slot, unsigned int reg, uint32_t len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc), v = 0;

	bus_access(&r->pio, 0xcf8, &a, 4, true);
	bus_access(&r->pio, 0xcfc + (reg & 3), &v, len, false);
	return v;
}

void rig_cfg_wr(struct rig *r, unsigned int slot, unsigned int reg, uint32_t v, uint32_t len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);

	bus_access(&r->pio, 0xcf8, &a, 4, true);
	bus_access(&r->pio, 0xcfc + (reg & 3), &v, len, true);
}

uint64_t rig_bar(struct rig *r, unsigned int slot)
{
	return ((uint64_t)rig_cfg_rd(r, slot, PCI_BASE_ADDRESS_1, 4) << 32) |
	       (rig_cfg_rd(r, slot, PCI_BASE_ADDRESS_0, 4) & ~0xfu);
}

uint64_t rig_rd(struct rig *r, unsigned int slot, uint64_t off, uint32_t len)
{
	uint64_t v = 0;

	cr_assert_eq(bus_access(&r->mmio, rig_bar(r, slot) + off, &v, len, false), 0);
	return v;
}

void rig_wr(struct rig *r, unsigned int slot, uint64_t off, uint64_t v, uint32_t len)
{
	cr_assert_eq(bus_access(&r->mmio, rig_bar(r, slot) + off, &v, len, true), 0);
}

static unsigned int find_msix(struct rig *r, unsigned int slot)
{
	unsigned int pos = rig_cfg_rd(r, slot, PCI_CAPABILITY_LIST, 1);

	for (int ttl = 48; ttl-- && pos >= 0x40; pos = rig_cfg_rd(r, slot, pos + 1, 1))
		if (rig_cfg_rd(r, slot, pos, 1) == PCI_CAP_ID_MSIX)
			return pos;
	cr_assert_fail("no MSI-X capability");
	return 0;
}

void rig_driver_up(struct rig *r, unsigned int slot, uint64_t features, unsigned int nq,
		   struct fake_vq *fq, uint64_t ring_base)
{
	struct virtio_dev *dev = rig_vdev(r, slot);
	uint64_t f = features | 1ULL << VIRTIO_F_VERSION_1;
	unsigned int msix = find_msix(r, slot);

	rig_cfg_wr(r, slot, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	rig_cfg_wr(r, slot, msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	for (unsigned int v = 0; v <= nq; v++) {
		uint64_t e = VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v;

		rig_wr(r, slot, e, 0xfee00000u, 4);
		rig_wr(r, slot, e + 8, 0x40 + 8 * slot + v, 4);
		rig_wr(r, slot, e + 12, 0, 4);
	}
	rig_wr(r, slot, CC(device_status), VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	rig_wr(r, slot, CC(device_status), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
	rig_wr(r, slot, CC(guest_feature_select), 0, 4);
	rig_wr(r, slot, CC(guest_feature), (uint32_t)f, 4);
	rig_wr(r, slot, CC(guest_feature_select), 1, 4);
	rig_wr(r, slot, CC(guest_feature), (uint32_t)(f >> 32), 4);
	rig_wr(r, slot, CC(device_status),
	       VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
	       1);
	for (unsigned int q = 0; q < nq; q++) {
		struct fake_vq *v = &fq[q];

		fake_vq_init(v, &rig_gm, &dev->vqs[q], RIG_QSIZE, ring_base + q * 0x4000);
		rig_wr(r, slot, CC(queue_select), q, 2);
		rig_wr(r, slot, CC(queue_size), RIG_QSIZE, 2);
		rig_wr(r, slot, CC(queue_desc_lo), v->desc, 8);
		rig_wr(r, slot, CC(queue_avail_lo), v->avail, 8);
		rig_wr(r, slot, CC(queue_used_lo), v->used, 8);
		rig_wr(r, slot, CC(queue_msix_vector), q, 2);
		rig_wr(r, slot, CC(queue_enable), 1, 2);
		cr_assert(dev->vqs[q].ready, "queue %u enabled", q);
	}
	rig_wr(r, slot, CC(msix_config), nq, 2);
	rig_wr(r, slot, CC(device_status),
	       VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
		       VIRTIO_CONFIG_S_DRIVER_OK,
	       1);
	cr_assert(dev->status & VIRTIO_CONFIG_S_DRIVER_OK);
}

void rig_kick(struct rig *r, unsigned int slot, unsigned int q)
{
	rig_wr(r, slot, VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, q, 2);
}

unsigned int rig_fired(struct rig *r, int gsi)
{
	uint64_t n = 0;

	if (r->fk.efd[gsi] < 0 || read(r->fk.efd[gsi], &n, sizeof(n)) != sizeof(n))
		return 0;
	return (unsigned int)n;
}

bool rig_ioev_at(struct rig *r, uint64_t addr)
{
	for (int i = 0; i < 32; i++)
		if (r->fk.ioev[i].on && r->fk.ioev[i].addr == addr)
			return true;
	return false;
}

void rig_save(struct rig *r, struct state_out *pci, struct state_out dev[2])
{
	state_out_init(pci);
	cr_assert_eq(pci_bus_save(r->pci, pci), 0);
	for (unsigned int i = 0; i < 2; i++) {
		state_out_init(&dev[i]);
		cr_assert_eq(virtio_pci_save(rig_vdev(r, i + 1), &dev[i]), 0);
	}
}

int rig_load_pci(struct rig *r, const struct state_out *o)
{
	struct state_in in;

	state_in_init(&in, o->data, o->len);
	return pci_bus_load(r->pci, &in);
}

int rig_load_dev(struct rig *r, unsigned int slot, const struct state_out *o)
{
	struct state_in in;

	state_in_init(&in, o->data, o->len);
	return virtio_pci_load(rig_vdev(r, slot), &in);
}
