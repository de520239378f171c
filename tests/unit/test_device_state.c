/*
 * Device state for snapshots (issue 14): state saved from devices a driver brought up and used
 * is loaded into fresh devices of the same configuration, which then behave as the originals
 * would have: queues keep working with their indices, MSI-X vectors fire with the routes
 * re-pushed, BARs decode where the guest put them with their ioeventfds, the balloon keeps its
 * target, actual value and held stats buffer (and leaves the restored page map alone), the
 * 16550 its registers.
 * Hostile states are in test_device_state_hostile.c.
 */
#include <criterion/criterion.h>
#include <linux/pci_regs.h>
#include <linux/serial_reg.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "../../devices/pci.h"
#include "../../devices/serial.h"
#include "../../devices/virtio_balloon.h"
#include "../../devices/virtio_pci.h"
#include "../../devices/virtio_rng.h"
#include "../../vmm/loop.h"
#include "state_rig.h"

#define CC(f)	 offsetof(struct virtio_pci_common_cfg, f)
#define RINGS	 0x100000ULL
#define BRINGS	 0x200000ULL
#define BUFS	 0x400000ULL
#define RNG_GSI0 RIG_GSI_BASE	    /* rng: vectors 0 (queue) and 1 (config) */
#define BAL_GSI0 (RIG_GSI_BASE + 2) /* balloon: 6 vectors after the rng's 2 */

static struct rig a, b;
static struct state_out spci, sdev[2];

static void setup(void)
{
	memset(&rig_gm, 0, sizeof(rig_gm));
	cr_assert_eq(gm_init(&rig_gm, RIG_RAM, false), 0);
}

static void teardown(void)
{
	state_out_free(&spci);
	state_out_free(&sdev[0]);
	state_out_free(&sdev[1]);
	gm_destroy(&rig_gm);
}

TestSuite(device_state, .init = setup, .fini = teardown);

/* One 64-byte device-writable rng request, kicked; returns its head. */
static uint16_t rng_request(struct rig *r, struct fake_vq *q, uint64_t gpa)
{
	struct fake_buf buf = {gpa, 64, true};
	uint16_t head = fake_add_chain(q, &buf, 1);

	rig_kick(r, RIG_RNG, 0);
	return head;
}

static void expect_used(struct fake_vq *q, uint16_t head, uint32_t len)
{
	uint32_t id, l;

	cr_assert(fake_get_used(q, &id, &l), "a used entry");
	cr_assert_eq(id, head);
	cr_assert_eq(l, len);
}

/* Move the fake driver's view over to the restored device (the rings are the same RAM). */
static void driver_follows(struct fake_vq *q, struct virtio_dev *dev, unsigned int qidx)
{
	q->vq = &dev->vqs[qidx];
}

Test(device_state, rng_queue_and_msix_keep_working_after_restore)
{
	struct fake_vq q[1];
	uint8_t zero[64] = {0};

	rig_up(&a, NULL);
	rig_driver_up(&a, RIG_RNG, 0, 1, q, RINGS);
	expect_used(q, rng_request(&a, q, BUFS), 64);
	cr_assert_neq(memcmp(gm_ptr(&rig_gm, BUFS, 64), zero, 64), 0, "random bytes");
	cr_assert_eq(rig_fired(&a, RNG_GSI0), 1, "queue vector 0 fired");
	cr_assert_eq(a.fk.r_data[RNG_GSI0], 0x40u + 8 * RIG_RNG);
	rig_save(&a, &spci, sdev);
	rig_down(&a);

	rig_up(&b, NULL);
	cr_assert_eq(b.fk.r_addr[RNG_GSI0], 0, "fresh: no route");
	cr_assert_eq(rig_load_pci(&b, &spci), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &sdev[0]), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_BALLOON, &sdev[1]), 0);
	cr_assert_eq(b.fk.r_addr[RNG_GSI0], 0xfee00000u, "the route is pushed again");
	cr_assert_eq(b.fk.r_data[RNG_GSI0], 0x40u + 8 * RIG_RNG);
	virtio_pci_restart_queues(rig_vdev(&b, RIG_RNG));
	cr_assert_eq(rig_fired(&b, RNG_GSI0), 0, "nothing was pending");

	/* The registers read back as the driver left them. */
	cr_assert_eq(rig_rd(&b, RIG_RNG, CC(device_status), 1),
		     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	cr_assert_eq(rig_rd(&b, RIG_RNG, CC(msix_config), 2), 1);
	rig_wr(&b, RIG_RNG, CC(queue_select), 0, 2);
	cr_assert_eq(rig_rd(&b, RIG_RNG, CC(queue_enable), 2), 1);
	cr_assert_eq(rig_rd(&b, RIG_RNG, CC(queue_desc_lo), 8), q[0].desc);

	/* A request posted after the restore completes, as the second entry, and interrupts. */
	driver_follows(q, rig_vdev(&b, RIG_RNG), 0);
	memset(gm_ptr(&rig_gm, BUFS + 64, 64), 0, 64);
	expect_used(q, rng_request(&b, q, BUFS + 64), 64);
	cr_assert_eq(fake_used_idx(q), 2, "used->idx continues from the snapshot");
	cr_assert_neq(memcmp(gm_ptr(&rig_gm, BUFS + 64, 64), zero, 64), 0);
	cr_assert_eq(rig_fired(&b, RNG_GSI0), 1, "the loaded MSI-X vector fired");
	rig_down(&b);
}

/* A request waiting for the rate limiter is walked again from the ring and served later. */
Test(device_state, rng_request_waiting_for_tokens_is_served_after_restore, .timeout = 20)
{
	struct fake_vq q[1];
	uint16_t waiting;
	uint32_t id, len;

	rig_rng_rate = 64; /* 64 bytes a second, a 64-byte bucket */
	rig_up(&a, NULL);
	rig_driver_up(&a, RIG_RNG, 0, 1, q, RINGS);
	expect_used(q, rng_request(&a, q, BUFS), 64); /* empties the bucket */
	waiting = rng_request(&a, q, BUFS + 64);
	cr_assert_not(fake_get_used(q, &id, &len), "the second request waits");
	rig_save(&a, &spci, sdev);
	rig_down(&a);

	rig_up(&b, NULL);
	cr_assert_eq(rig_load_pci(&b, &spci), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &sdev[0]), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_BALLOON, &sdev[1]), 0);
	driver_follows(q, rig_vdev(&b, RIG_RNG), 0);
	virtio_pci_restart_queues(rig_vdev(&b, RIG_RNG));
	for (int i = 0; i < 30 && !fake_get_used(q, &id, &len); i++) {
		usleep(100 * 1000); /* no loop here: the next notification retries */
		rig_kick(&b, RIG_RNG, 0);
	}
	cr_assert_eq(id, waiting, "the request that waited in the snapshot is served");
	cr_assert_eq(len, 64);
	cr_assert_eq(fake_used_idx(q), 2);
	rig_down(&b);
}

Test(device_state, moved_bar_decodes_with_ioeventfds_after_restore)
{
	struct loop *lp = loop_create();
	uint64_t moved;
	struct fake_vq q[1];

	cr_assert_not_null(lp);
	rig_up(&a, lp);
	moved = rig_bar(&a, RIG_RNG) + 0x100000;
	rig_cfg_wr(&a, RIG_RNG, PCI_BASE_ADDRESS_0, (uint32_t)moved, 4);
	rig_driver_up(&a, RIG_RNG, 0, 1, q, RINGS);
	cr_assert(rig_ioev_at(&a, moved + VIRTIO_PCI_NOTIFY_OFF));
	rig_save(&a, &spci, sdev);
	rig_down(&a);

	rig_up(&b, lp);
	cr_assert_neq(rig_bar(&b, RIG_RNG), moved);
	cr_assert_eq(rig_load_pci(&b, &spci), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &sdev[0]), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_BALLOON, &sdev[1]), 0);
	cr_assert_eq(rig_bar(&b, RIG_RNG), moved, "BAR register restored");
	cr_assert(rig_ioev_at(&b, moved + VIRTIO_PCI_NOTIFY_OFF), "ioeventfd at the moved BAR");
	cr_assert_eq(rig_rd(&b, RIG_RNG, CC(num_queues), 2), 1, "BAR decodes at the moved address");

	/* A request posted while restoring is served once the loop runs the restart kick. */
	driver_follows(q, rig_vdev(&b, RIG_RNG), 0);
	{
		struct fake_buf buf = {BUFS, 64, true};
		uint32_t id, len;
		uint16_t head = fake_add_chain(q, &buf, 1);

		virtio_pci_restart_queues(rig_vdev(&b, RIG_RNG));
		for (int i = 0; i < 50 && !fake_used_idx(q); i++)
			loop_dispatch(lp, 10);
		cr_assert(fake_get_used(q, &id, &len));
		cr_assert_eq(id, head);
	}
	rig_down(&b);
	loop_destroy(lp);
}

static void bal_cfg_wr_actual(struct rig *r, uint32_t pages)
{
	rig_wr(r, RIG_BALLOON,
	       VIRTIO_PCI_DEVICE_OFF + offsetof(struct virtio_balloon_config, actual), pages, 4);
}

Test(device_state, balloon_target_actual_stats_and_pages_survive)
{
	struct fake_vq q[3]; /* inflate, deflate, stats */
	uint32_t pfns[3] = {0x300, 0x301, 0x305};
	struct fake_buf buf = {BUFS, sizeof(pfns), false}, sbuf = {BUFS + 0x1000, 20, false};
	struct balloon_counters c;
	uint16_t stats_head;
	uint32_t id, len;

	rig_up(&a, NULL);
	rig_driver_up(&a, RIG_BALLOON, 1ULL << VIRTIO_BALLOON_F_STATS_VQ, 3, q, BRINGS);
	cr_assert_eq(balloon_set_target(a.bal, 100), 0);
	bal_cfg_wr_actual(&a, 3);
	memcpy(gm_ptr(&rig_gm, BUFS, sizeof(pfns)), pfns, sizeof(pfns));
	fake_add_chain(&q[0], &buf, 1);
	rig_kick(&a, RIG_BALLOON, 0);
	cr_assert(fake_get_used(&q[0], &id, &len));
	stats_head = fake_add_chain(&q[2], &sbuf, 1);
	rig_kick(&a, RIG_BALLOON, 2);
	cr_assert(!fake_get_used(&q[2], &id, &len), "the stats buffer is held");
	cr_assert_eq(rig_gm.state[0x301], GM_PAGE_BALLOONED);
	balloon_quiesce(a.bal);
	rig_save(&a, &spci, sdev);
	rig_down(&a);
	/* A fresh process whose memory layer restored the page state map (memory.c) before the
	 * devices: the balloon's load must leave it alone (its reset hook would clear it). */
	gm_clear_discarded_all(&rig_gm, NULL);
	cr_assert_eq(gm_discard(&rig_gm, 0x300, 2, GM_PAGE_BALLOONED), 0);
	cr_assert_eq(gm_discard(&rig_gm, 0x305, 1, GM_PAGE_BALLOONED), 0);

	rig_up(&b, NULL);
	cr_assert_eq(rig_load_pci(&b, &spci), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_RNG, &sdev[0]), 0);
	cr_assert_eq(rig_load_dev(&b, RIG_BALLOON, &sdev[1]), 0);
	balloon_get_counters(b.bal, &c);
	cr_assert_eq(c.target_pages, 100);
	cr_assert_eq(c.actual_pages, 3);
	cr_assert_eq(c.inflated_pages, 3);
	cr_assert_eq(rig_rd(&b, RIG_BALLOON, VIRTIO_PCI_DEVICE_OFF, 4), 100, "num_pages");
	cr_assert_eq(rig_gm.state[0x300], GM_PAGE_BALLOONED);
	cr_assert_eq(rig_gm.state[0x301], GM_PAGE_BALLOONED);
	cr_assert_eq(rig_gm.state[0x302], GM_PAGE_RESIDENT);
	cr_assert_eq(rig_gm.state[0x305], GM_PAGE_BALLOONED);
	cr_assert_eq(rig_gm.nr_ballooned, 3, "the restored page state map is untouched");

	/* The held stats buffer is the one handed back on the next request. */
	for (int i = 0; i < 3; i++)
		driver_follows(&q[i], rig_vdev(&b, RIG_BALLOON), i);
	cr_assert_eq(balloon_request_stats(b.bal), 0);
	cr_assert(fake_get_used(&q[2], &id, &len));
	cr_assert_eq(id, stats_head);
	cr_assert_eq(rig_fired(&b, BAL_GSI0 + 2), 1, "stats queue vector 2 fired");
	/* And a deflate after the restore gives the pages back. */
	memcpy(gm_ptr(&rig_gm, BUFS, 4), &pfns[0], 4);
	buf.len = 4;
	fake_add_chain(&q[1], &buf, 1);
	rig_kick(&b, RIG_BALLOON, 1);
	cr_assert(fake_get_used(&q[1], &id, &len));
	cr_assert_eq(rig_gm.state[0x300], GM_PAGE_RESIDENT);
	rig_down(&b);
}

/* ---- 16550 ------------------------------------------------------------------------------ */

static int irq_level[2];

static void set_irq(void *opaque, int level)
{
	*(int *)opaque = level;
}

static struct serial *uart(struct bus *pio, int *level)
{
	struct serial_ops ops = {.set_irq = set_irq, .opaque = level};
	struct serial_config cfg = {.out_fd = -1, .in_fd = -1};

	bus_init(pio, "pio");
	return serial_create(pio, NULL, &ops, &cfg);
}

static uint8_t io_rd(struct bus *pio, unsigned int reg)
{
	uint8_t v = 0;

	bus_access(pio, SERIAL_COM1_PORT + reg, &v, 1, false);
	return v;
}

static void io_wr(struct bus *pio, unsigned int reg, uint8_t v)
{
	bus_access(pio, SERIAL_COM1_PORT + reg, &v, 1, true);
}

Test(device_state, serial_registers_fifo_and_irq_survive)
{
	struct bus pa, pb;
	struct serial *sa = uart(&pa, &irq_level[0]), *sb;
	struct state_out o;
	struct state_in in;

	cr_assert_not_null(sa);
	io_wr(&pa, UART_LCR, UART_LCR_DLAB);
	io_wr(&pa, UART_DLL, 0x0c);
	io_wr(&pa, UART_DLM, 0x01);
	io_wr(&pa, UART_LCR, UART_LCR_WLEN8);
	io_wr(&pa, UART_MCR, UART_MCR_OUT2 | UART_MCR_DTR);
	io_wr(&pa, UART_SCR, 0x5a);
	io_wr(&pa, UART_IER, UART_IER_RDI);
	serial_send_sysrq(sa, 'e'); /* two received bytes, a BREAK: an interrupt is pending */
	cr_assert_eq(irq_level[0], 1);
	state_out_init(&o);
	cr_assert_eq(serial_save(sa, &o), 0);
	serial_destroy(sa);

	sb = uart(&pb, &irq_level[1]);
	cr_assert_not_null(sb);
	cr_assert_eq(irq_level[1], 0);
	state_in_init(&in, o.data, o.len);
	cr_assert_eq(serial_load(sb, &in), 0);
	cr_assert_eq(irq_level[1], 1, "the interrupt line is driven to its saved level");
	cr_assert_eq(io_rd(&pb, UART_LCR), UART_LCR_WLEN8);
	cr_assert_eq(io_rd(&pb, UART_MCR), UART_MCR_OUT2 | UART_MCR_DTR);
	cr_assert_eq(io_rd(&pb, UART_SCR), 0x5a);
	cr_assert_eq(io_rd(&pb, UART_IER), UART_IER_RDI);
	cr_assert_eq(io_rd(&pb, UART_IIR) & 0x0f, UART_IIR_RDI);
	cr_assert(io_rd(&pb, UART_LSR) & UART_LSR_BI);
	cr_assert_eq(io_rd(&pb, UART_RX), 0, "the BREAK's NUL");
	cr_assert_eq(io_rd(&pb, UART_RX), 'e', "buffered input is not lost");
	cr_assert_eq(io_rd(&pb, UART_LSR) & UART_LSR_DR, 0);
	cr_assert_eq(irq_level[1], 0);
	io_wr(&pb, UART_LCR, UART_LCR_DLAB | UART_LCR_WLEN8);
	cr_assert_eq(io_rd(&pb, UART_DLL), 0x0c, "divisor latch");
	cr_assert_eq(io_rd(&pb, UART_DLM), 0x01);
	serial_destroy(sb);
	state_out_free(&o);
}
