/*
 * Hostile device states (issue 14): a snapshot file is untrusted input. Truncated payloads,
 * leftover bytes, a ready queue with rings outside RAM or a size that is not a power of two, a
 * ready queue without a size, MSI-X vectors outside the table, booleans that are not 0/1,
 * foreign PCI functions, reserved register bits: each load fails with -EINVAL, nothing crashes
 * (run under ASan by the fuzz target too), and the device still loads a good state afterwards.
 *
 * Byte offsets below follow the layouts of virtio_pci_save() (transport: 20 bytes, 28 per queue,
 * 13 of PCI_CFG window), virtio_dev_save() (20 bytes, 54 per queue, 32 of counters) and
 * pci_bus_save(); each patch first checks the byte it replaces holds the expected value.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/serial_reg.h>
#include <linux/virtio_balloon.h>
#include <string.h>

#include "../../devices/pci.h"
#include "../../devices/serial.h"
#include "../../devices/virtio_balloon.h"
#include "../../devices/virtio_pci.h"
#include "../../devices/virtio_rng.h"
#include "state_rig.h"

#define RINGS	0x100000ULL
#define BRINGS	0x200000ULL
#define BUFS	0x400000ULL
#define T_RNG	(20 + 28 * 1 + 13) /* rng transport state bytes */
#define C_RNG	(T_RNG + 20)	   /* rng queue 0 in the common part */
#define D_RNG	(C_RNG + 54 + 32)  /* rng device part */
#define T_BAL	(20 + 28 * 5 + 13)
#define D_BAL	(T_BAL + 20 + 54 * 5 + 32)
#define PCI_FN1 (4 + 1 + 1 + 256 + 2)	/* slot 1: its slot byte */
#define PCI_V0	(PCI_FN1 + 1 + 256 + 2) /* slot 1: MSI-X vector 0 */

static struct rig a, b;
static struct state_out spci, sdev[2];
static struct fake_vq q[3];

static void setup(void)
{
	memset(&rig_gm, 0, sizeof(rig_gm));
	cr_assert_eq(gm_init(&rig_gm, RIG_RAM, false), 0);
	rig_up(&a, NULL);
	rig_driver_up(&a, RIG_RNG, 0, 1, q, RINGS);
	{
		struct fake_buf buf = {BUFS, 64, true};
		uint32_t id, len;

		fake_add_chain(&q[0], &buf, 1);
		rig_kick(&a, RIG_RNG, 0);
		cr_assert(fake_get_used(&q[0], &id, &len));
	}
	rig_save(&a, &spci, sdev);
	rig_up(&b, NULL);
}

static void teardown(void)
{
	rig_down(&a);
	rig_down(&b);
	state_out_free(&spci);
	state_out_free(&sdev[0]);
	state_out_free(&sdev[1]);
	gm_destroy(&rig_gm);
}

TestSuite(device_state_hostile, .init = setup, .fini = teardown);

static struct state_out copy(const struct state_out *o)
{
	struct state_out c;

	state_out_init(&c);
	state_put(&c, o->data, o->len);
	cr_assert_eq(state_out_error(&c), 0);
	return c;
}

static void patch(struct state_out *o, size_t off, const void *old, const void *new, size_t n)
{
	cr_assert_leq(off + n, o->len);
	cr_assert_eq(memcmp(o->data + off, old, n), 0, "layout: unexpected bytes at %zu", off);
	memcpy(o->data + off, new, n);
}

static void patch16(struct state_out *o, size_t off, uint16_t old, uint16_t v)
{
	patch(o, off, &old, &v, 2); /* little-endian host, as the state */
}

/* The good state still loads and the queue serves a request: nothing was left broken. */
static void good_state_still_works(void)
{
	struct fake_buf buf = {BUFS + 0x1000, 64, true};
	uint32_t id, len;
	uint16_t head;

	cr_assert_eq(rig_load_pci(&b, &spci), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &sdev[0]), 0);
	q[0].vq = &rig_vdev(&b, RIG_RNG)->vqs[0];
	head = fake_add_chain(&q[0], &buf, 1);
	rig_kick(&b, RIG_RNG, 0);
	cr_assert(fake_get_used(&q[0], &id, &len));
	cr_assert_eq(id, head);
	cr_assert_eq(len, 64);
}

static int load_dev_bytes(unsigned int slot, const void *p, size_t n)
{
	struct state_in in;

	state_in_init(&in, p, n);
	return virtio_pci_load(rig_vdev(&b, slot), &in);
}

Test(device_state_hostile, every_truncation_and_leftover_bytes_are_rejected)
{
	struct state_out c;
	struct state_in in;

	for (size_t n = 0; n < sdev[0].len; n++)
		cr_assert_eq(load_dev_bytes(RIG_RNG, sdev[0].data, n), -EINVAL, "%zu bytes", n);
	for (size_t n = 0; n < spci.len; n++) {
		state_in_init(&in, spci.data, n);
		cr_assert_eq(pci_bus_load(b.pci, &in), -EINVAL, "%zu bytes", n);
	}
	c = copy(&sdev[0]);
	state_put_u8(&c, 0);
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &c), -EINVAL, "one byte left over");
	state_out_free(&c);
	c = copy(&spci);
	state_put_u8(&c, 0);
	cr_assert_eq(rig_load_pci(&b, &c), -EINVAL);
	state_out_free(&c);
	good_state_still_works();
}

/* Save @a's rng with queue 0 changed by @fn, expect the load to fail. */
static void reject_queue(void (*fn)(struct virtqueue *vq), const char *what)
{
	struct virtio_dev *dev = rig_vdev(&a, RIG_RNG);
	struct virtqueue keep = dev->vqs[0];
	struct state_out o;

	fn(&dev->vqs[0]);
	state_out_init(&o);
	cr_assert_eq(virtio_pci_save(dev, &o), 0);
	dev->vqs[0] = keep;
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &o), -EINVAL, "%s", what);
	cr_assert_not(rig_vdev(&b, RIG_RNG)->vqs[0].ready, "%s: queue left off", what);
	state_out_free(&o);
}

static void desc_outside(struct virtqueue *vq)
{
	vq->desc_gpa = RIG_RAM;
}

static void used_past_end(struct virtqueue *vq)
{
	vq->used_gpa = RIG_RAM - 8;
}

static void avail_in_hole(struct virtqueue *vq)
{
	vq->avail_gpa = 0xFFFFFFFFFFFFF000ULL;
}

static void misaligned(struct virtqueue *vq)
{
	vq->used_gpa += 2;
}

static void size_48(struct virtqueue *vq)
{
	vq->size = 48;
}

static void size_0(struct virtqueue *vq)
{
	vq->size = 0;
}

static void size_above_max(struct virtqueue *vq)
{
	vq->size = 128; /* the rng offers 64 */
}

Test(device_state_hostile, ready_queue_with_bad_rings_or_size_is_rejected)
{
	reject_queue(desc_outside, "descriptor table outside RAM");
	reject_queue(used_past_end, "used ring running past the end of RAM");
	reject_queue(avail_in_hole, "avail ring at the top of the address space");
	reject_queue(misaligned, "misaligned used ring");
	reject_queue(size_48, "size not a power of two");
	reject_queue(size_0, "ready without a size");
	reject_queue(size_above_max, "size above the device's maximum");
	good_state_still_works();
}

Test(device_state_hostile, msix_vectors_outside_the_table_are_rejected)
{
	struct state_out c = copy(&sdev[0]);

	/* The rng has 2 vectors: msix_config 1 is fine, 0 too, 2 is not. */
	patch16(&c, 10, 1, 0);
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &c), 0, "offset check: a valid vector loads");
	patch16(&c, 10, 0, 2);
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &c), -EINVAL);
	patch16(&c, 10, 2, 1);
	patch16(&c, 20 + 2, 0, 0x7ff); /* queue 0's vector */
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &c), -EINVAL);
	state_out_free(&c);
	good_state_still_works();
}

Test(device_state_hostile, bad_bools_reserved_bits_and_foreign_values_are_rejected)
{
	struct state_out c = copy(&sdev[0]);
	uint8_t one = 1, two = 2, isr4 = 4, zero = 0;
	uint64_t rate = RNG_MAX_RATE, other = 12345, huge = UINT64_MAX;

	patch(&c, C_RNG + 2, &one, &two, 1); /* queue 0 ready = 2 */
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &c), -EINVAL, "bool 2");
	patch(&c, C_RNG + 2, &two, &one, 1);
	patch(&c, 12, &zero, &isr4, 1); /* ISR bit 2 */
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &c), -EINVAL, "ISR reserved bit");
	patch(&c, 12, &isr4, &zero, 1);
	patch(&c, D_RNG, &rate, &other, 8);
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &c), -EINVAL, "another rate limit");
	patch(&c, D_RNG, &other, &rate, 8);
	memcpy(c.data + D_RNG + 16, &huge, 8); /* tokens above the bucket */
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &c), -EINVAL, "tokens above burst");
	state_out_free(&c);

	/* Accepted features that were not offered, with FEATURES_OK set. */
	c = copy(&sdev[0]);
	c.data[T_RNG + 8 + 5] |= 0x80;
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &c), -EINVAL, "unoffered feature");
	state_out_free(&c);
	/* Another device's state in this slot (the balloon's, offered features differ). */
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &sdev[1]), -EINVAL);
	good_state_still_works();
}

Test(device_state_hostile, foreign_pci_functions_and_msix_entries_are_rejected)
{
	struct state_out c = copy(&spci);
	uint8_t slot1 = 1, slot5 = 5, n3 = 3, n2 = 2, v = 4, w = 5, b1 = 1, zero = 0;
	uint32_t route = 0xfee00000u, bad = 0x12345678;

	patch(&c, 4, &n3, &n2, 1);
	cr_assert_eq(rig_load_pci(&b, &c), -EINVAL, "a function fewer");
	patch(&c, 4, &n2, &n3, 1);
	patch(&c, PCI_FN1, &slot1, &slot5, 1);
	cr_assert_eq(rig_load_pci(&b, &c), -EINVAL, "another slot");
	patch(&c, PCI_FN1, &slot5, &slot1, 1);
	patch(&c, PCI_FN1 + 1 + PCI_VENDOR_ID, &(uint8_t){0xf4}, &(uint8_t){0xf5}, 1);
	cr_assert_eq(rig_load_pci(&b, &c), -EINVAL, "another vendor");
	patch(&c, PCI_FN1 + 1 + PCI_VENDOR_ID, &(uint8_t){0xf5}, &(uint8_t){0xf4}, 1);
	patch(&c, PCI_FN1 + 1 + PCI_SUBSYSTEM_ID, &v, &w, 1);
	cr_assert_eq(rig_load_pci(&b, &c), -EINVAL, "another subsystem id");
	patch(&c, PCI_FN1 + 1 + PCI_SUBSYSTEM_ID, &w, &v, 1);
	patch(&c, PCI_V0 + 12 + 1, &zero, &b1, 1); /* vector control bit 8 */
	cr_assert_eq(rig_load_pci(&b, &c), -EINVAL, "vector control reserved bit");
	patch(&c, PCI_V0 + 12 + 1, &b1, &zero, 1);
	patch(&c, PCI_V0 + 16, &zero, &zero, 1); /* vector 0: not pending */
	patch(&c, PCI_V0 + 17, &b1, &b1, 1);	 /* routed (it fired) */
	patch(&c, PCI_V0 + 18, &route, &bad, 4);
	cr_assert_eq(rig_load_pci(&b, &c), -EINVAL, "route to a non-MSI address");
	patch(&c, PCI_V0 + 18, &bad, &route, 4);
	cr_assert_eq(rig_load_pci(&b, &c), 0, "all patches undone: loads");
	state_out_free(&c);
	good_state_still_works();
}

Test(device_state_hostile, balloon_target_above_ram_and_stray_stats_head_are_rejected)
{
	struct virtio_dev *dev = rig_vdev(&a, RIG_BALLOON);
	struct fake_vq bq[3];
	struct fake_buf sbuf = {BUFS + 0x2000, 20, false};
	struct state_out o, c;
	uint32_t np = 10, big = UINT32_MAX;
	uint16_t head;

	rig_driver_up(&a, RIG_BALLOON, 1ULL << VIRTIO_BALLOON_F_STATS_VQ, 3, bq, BRINGS);
	cr_assert_eq(balloon_set_target(a.bal, 10), 0);
	head = fake_add_chain(&bq[2], &sbuf, 1);
	rig_kick(&a, RIG_BALLOON, 2);
	state_out_init(&o);
	cr_assert_eq(virtio_pci_save(dev, &o), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_BALLOON, &o), 0, "the unpatched state loads");
	c = copy(&o);
	patch(&c, D_BAL, &np, &big, 4);
	cr_assert_eq(rig_load_dev(&b, RIG_BALLOON, &c), -EINVAL, "num_pages above RAM");
	state_out_free(&c);
	c = copy(&o);
	/* num_pages, actual, seq, valid mask, 16 values, then stats_held and its head. */
	cr_assert_eq(c.data[D_BAL + 4 + 4 + 8 + 2 + 128], 1, "stats buffer held");
	patch16(&c, D_BAL + 4 + 4 + 8 + 2 + 128 + 1, head, RIG_QSIZE);
	cr_assert_eq(rig_load_dev(&b, RIG_BALLOON, &c), -EINVAL, "held head beyond the queue");
	state_out_free(&c);
	state_out_free(&o);
}

static void nop_irq(void *opaque, int level)
{
	(void)opaque, (void)level;
}

Test(device_state_hostile, serial_reserved_bits_and_sizes_are_rejected)
{
	struct serial_ops ops = {.set_irq = nop_irq};
	struct serial_config cfg = {.out_fd = -1, .in_fd = -1};
	struct bus pio;
	struct serial *s;
	struct state_out o, c;
	struct state_in in;
	static const struct {
		size_t off;
		uint8_t v;
		const char *what;
	} bad[] = {
		{0, 0xf0, "IER reserved bits"},
		{2, 0xe0, "MCR reserved bits"},
		{3, UART_LSR_TEMT | UART_LSR_THRE | UART_LSR_DR, "LSR.DR without data"},
		{9, 2, "bool 2"},
		{12, 0x20, "FIFO above 4096 bytes"},
		{13, 0xff, "line above its size"},
	};

	bus_init(&pio, "pio");
	s = serial_create(&pio, NULL, &ops, &cfg);
	cr_assert_not_null(s);
	state_out_init(&o);
	cr_assert_eq(serial_save(s, &o), 0);
	cr_assert_eq(o.len, 14, "9 registers, 2 bools, FIFO count, line length");
	for (size_t n = 0; n < o.len; n++) {
		state_in_init(&in, o.data, n);
		cr_assert_eq(serial_load(s, &in), -EINVAL, "%zu bytes", n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = copy(&o);
		c.data[bad[i].off] = bad[i].v;
		state_in_init(&in, c.data, c.len);
		cr_assert_eq(serial_load(s, &in), -EINVAL, "%s", bad[i].what);
		state_out_free(&c);
	}
	state_in_init(&in, o.data, o.len);
	cr_assert_eq(serial_load(s, &in), 0);
	serial_destroy(s);
	state_out_free(&o);
}
