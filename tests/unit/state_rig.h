/*
 * A small machine for the device-state tests (test_device_state.c, test_device_state_hostile.c):
 * a PCI bus on its own port and MMIO buses with a recording interrupt backend, virtio-rng in
 * slot 1 and virtio-balloon (stats on) in slot 2, both on one shared guest RAM, driven through
 * configuration space and BAR 0 as Linux's virtio-pci driver does. A restore is a second rig
 * on the same RAM (the RAM is the snapshot's memory).
 */
#ifndef TESTS_UNIT_STATE_RIG_H
#define TESTS_UNIT_STATE_RIG_H

#include <stdbool.h>
#include <stdint.h>

#include "../../devices/bus.h"
#include "../../devices/virtio.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/state.h"
#include "../../vmm/util.h"
#include "fake_driver.h"

#define RIG_RAM	     (16 * MiB)
#define RIG_RNG	     1 /* slots */
#define RIG_BALLOON  2
#define RIG_GSI_BASE 24
#define RIG_QSIZE    64

struct rig_fake {
	int line[24];
	int next_gsi;
	int efd[64];	     /* irqfd eventfd per GSI */
	uint64_t r_addr[64]; /* MSI route per GSI (0: none) */
	uint32_t r_data[64];
	struct {
		uint64_t addr;
		int efd;
		bool on;
	} ioev[32];
};

struct rig {
	struct rig_fake fk;
	struct bus pio, mmio;
	struct pci_bus *pci;
	struct rng *rng;
	struct balloon *bal;
	struct loop *loop;
};

extern struct guest_mem rig_gm;
extern uint64_t rig_rng_rate; /* the rng's rate limit, bytes/s (bucket: one second) */

/** rig_up() - the bus and both devices (@loop may be NULL: synchronous notifications). */
void rig_up(struct rig *r, struct loop *loop);

/** rig_down() - detach and free everything rig_up() made. */
void rig_down(struct rig *r);

/** rig_vdev() - the virtio device in @slot. */
struct virtio_dev *rig_vdev(struct rig *r, unsigned int slot);

uint32_t rig_cfg_rd(struct rig *r, unsigned int slot, unsigned int reg, uint32_t len);
void rig_cfg_wr(struct rig *r, unsigned int slot, unsigned int reg, uint32_t v, uint32_t len);
/** rig_bar() - BAR 0's address as the configuration space says. */
uint64_t rig_bar(struct rig *r, unsigned int slot);
uint64_t rig_rd(struct rig *r, unsigned int slot, uint64_t off, uint32_t len);
void rig_wr(struct rig *r, unsigned int slot, uint64_t off, uint64_t v, uint32_t len);

/**
 * rig_driver_up() - the driver's probe of @slot: decoding on, MSI-X on with vector v ->
 * (0xfee00000, 0x40 + 8 * slot + v), features V1 | @features, queue q (of @nq) of RIG_QSIZE
 * entries laid out by the fake driver in @fq[q] at @ring_base + q * 0x4000 with vector q, config
 * vector @nq, DRIVER_OK.
 */
void rig_driver_up(struct rig *r, unsigned int slot, uint64_t features, unsigned int nq,
		   struct fake_vq *fq, uint64_t ring_base);

/** rig_kick() - the driver notifies queue @q of @slot (a BAR write). */
void rig_kick(struct rig *r, unsigned int slot, unsigned int q);

/** rig_fired() - interrupts delivered through GSI @gsi's irqfd since the last call. */
unsigned int rig_fired(struct rig *r, int gsi);

/** rig_ioev_at() - an ioeventfd is assigned at @addr. */
bool rig_ioev_at(struct rig *r, uint64_t addr);

/** rig_save() - pci_bus_save() into @pci, virtio_pci_save() of both devices into @dev[]. */
void rig_save(struct rig *r, struct state_out *pci, struct state_out dev[2]);

/** rig_load() - load a state_out's bytes with @fn; returns its result. */
int rig_load_pci(struct rig *r, const struct state_out *o);
int rig_load_dev(struct rig *r, unsigned int slot, const struct state_out *o);

#endif
