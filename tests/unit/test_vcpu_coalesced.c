/*
 * The coalesced write ring (vcpu_drain_coalesced(), vmm/vcpu_exit.h) on a synthetic ring page:
 * queued port writes are performed oldest first before the exit that follows them, the ring's
 * first index moves up to last, and indices outside the ring or oversized entries are never
 * followed.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../devices/bus.h"
#include "../../vmm/util.h"
#include "../../vmm/vcpu_exit.h"

#define PAGE 4096
#define RING_MAX \
	((PAGE - sizeof(struct kvm_coalesced_mmio_ring)) / sizeof(struct kvm_coalesced_mmio))
#define ADDR_PORT 0xcf8

static struct {
	struct bus pio, mmio;
	struct kvm_coalesced_mmio_ring *ring;
	pthread_mutex_t lock;
	struct vcpu_exit_ctx ctx;
	uint32_t latch;	     /* the last dword written to ADDR_PORT */
	unsigned int writes; /* writes seen by the device */
	uint32_t read_latch; /* the latch when the data port was read */
	uint8_t run[3 * PAGE] __attribute__((aligned(8)));
} t;

/* A CONFIG_ADDRESS latch at ADDR_PORT and a data port at ADDR_PORT + 4 that reads it back. */
static void conf_io(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	(void)opaque;
	if (is_write) {
		t.writes++;
		if (off == 0 && len == 4)
			memcpy(&t.latch, data, 4);
		return;
	}
	t.read_latch = t.latch;
	memcpy(data, &t.latch, MIN(len, 4u));
}

static void no_stop(void *opaque, int status, const char *reason)
{
	(void)opaque, (void)status, (void)reason;
}

static void setup(void)
{
	memset(&t, 0, sizeof(t));
	bus_init(&t.pio, "pio");
	bus_init(&t.mmio, "mmio");
	cr_assert_eq(bus_register(&t.pio, ADDR_PORT, 8, conf_io, NULL, "conf"), 0);
	t.ring = calloc(1, PAGE);
	pthread_mutex_init(&t.lock, NULL);
	t.ctx = (struct vcpu_exit_ctx){.pio = &t.pio,
				       .mmio = &t.mmio,
				       .run_size = sizeof(t.run),
				       .stop = no_stop,
				       .ring = t.ring,
				       .ring_max = RING_MAX,
				       .ring_lock = &t.lock};
}

static void teardown(void)
{
	free(t.ring);
}

TestSuite(vcpu_coalesced, .init = setup, .fini = teardown);

/* As KVM queues a write: fill the entry at last, then move last. */
static void queue(uint64_t port, uint32_t len, uint32_t value)
{
	struct kvm_coalesced_mmio *e = &t.ring->coalesced_mmio[t.ring->last];

	*e = (struct kvm_coalesced_mmio){.phys_addr = port, .len = len, .pio = 1};
	memcpy(e->data, &value, 4);
	t.ring->last = (t.ring->last + 1) % RING_MAX;
}

static uint32_t read_data_port(void)
{
	struct kvm_run *run = (struct kvm_run *)t.run;
	uint32_t v;

	run->exit_reason = KVM_EXIT_IO;
	run->io = (typeof(run->io)){.direction = KVM_EXIT_IO_IN,
				    .size = 4,
				    .port = ADDR_PORT + 4,
				    .count = 1,
				    .data_offset = PAGE};
	cr_assert_eq(vcpu_handle_exit(&t.ctx, run), VCPU_CONTINUE);
	memcpy(&v, t.run + PAGE, 4);
	return v;
}

/* The data port read (an exit) sees the address written just before it without an exit. */
Test(vcpu_coalesced, queued_address_write_is_done_before_the_next_exit)
{
	queue(ADDR_PORT, 4, 0x80000800);
	queue(ADDR_PORT, 4, 0x80001000);
	cr_assert_eq(t.writes, 0);
	cr_assert_eq(read_data_port(), 0x80001000);
	cr_assert_eq(t.read_latch, 0x80001000, "the data access came before the queued writes");
	cr_assert_eq(t.writes, 2);
	cr_assert_eq(t.ring->first, 2);
	cr_assert_eq(t.ring->first, t.ring->last);
	/* Nothing queued: nothing replayed again. */
	read_data_port();
	cr_assert_eq(t.writes, 2);
}

/* The ring wraps: entries from the end of the page, then from its start, in order. */
Test(vcpu_coalesced, ring_wraps_around)
{
	t.ring->first = t.ring->last = RING_MAX - 1;
	queue(ADDR_PORT, 4, 0x80000100);
	queue(ADDR_PORT, 4, 0x80000200);
	cr_assert_eq(t.ring->last, 1);
	vcpu_drain_coalesced(&t.ctx);
	cr_assert_eq(t.writes, 2);
	cr_assert_eq(t.latch, 0x80000200);
	cr_assert_eq(t.ring->first, 1);
}

/* Indices outside the ring are not followed; oversized entries are skipped, the rest done. */
Test(vcpu_coalesced, bad_indices_and_lengths_are_not_followed)
{
	t.ring->first = RING_MAX + 5;
	t.ring->last = 0;
	vcpu_drain_coalesced(&t.ctx);
	cr_assert_eq(t.writes, 0);
	cr_assert_eq(t.ring->first, RING_MAX + 5, "a bad index is left alone");

	t.ring->first = t.ring->last = 0;
	queue(ADDR_PORT, 4, 0x80000300);
	t.ring->coalesced_mmio[0].len = 64; /* larger than data[8] */
	queue(ADDR_PORT, 4, 0x80000400);
	vcpu_drain_coalesced(&t.ctx);
	cr_assert_eq(t.writes, 1);
	cr_assert_eq(t.latch, 0x80000400);
	cr_assert_eq(t.ring->first, 2);

	t.ring->last = RING_MAX; /* last out of range: nothing done */
	vcpu_drain_coalesced(&t.ctx);
	cr_assert_eq(t.writes, 1);
}

/* Without a ring the drain does nothing (KVM without KVM_CAP_COALESCED_PIO). */
Test(vcpu_coalesced, no_ring_no_op)
{
	t.ctx.ring = NULL;
	queue(ADDR_PORT, 4, 0x80000500);
	cr_assert_eq(read_data_port(), 0);
	cr_assert_eq(t.writes, 0);
}
