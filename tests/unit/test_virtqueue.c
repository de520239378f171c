/* The split virtqueue walker (devices/virtqueue.h) against a fake driver and hostile rings. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "../../devices/virtqueue.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "fake_driver.h"

#define RAM	 (4 * MiB)
#define RING_GPA 0x10000
#define DATA_GPA 0x100000
#define TABLE	 0x80000

static struct guest_mem gm;
static struct virtqueue vq;
static struct fake_vq f;

#define F_EVENT_IDX (1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_INDIRECT  (1ULL << VIRTIO_RING_F_INDIRECT_DESC)

/* Tests that need another geometry call this again: it replaces the suite's setup. */
static void setup_size(uint16_t size, bool event_idx)
{
	gm_destroy(&gm);
	cr_assert_eq(gm_init(&gm, RAM, false), 0);
	vq_reset(&vq);
	fake_vq_init(&f, &gm, &vq, size, RING_GPA);
	cr_assert_eq(vq_enable(&vq, &gm, (event_idx ? F_EVENT_IDX : 0) | F_INDIRECT), 0);
}

static void setup(void)
{
	setup_size(16, false);
}

static void teardown(void)
{
	gm_destroy(&gm);
}

TestSuite(virtqueue, .init = setup, .fini = teardown);

static void expect_malformed(uint16_t head)
{
	struct vq_chain c;
	uint32_t id, len;

	cr_assert_eq(vq_pop(&vq, &c), -EINVAL);
	cr_assert_eq(c.head, head);
	/* The caller completes it with length 0 and the driver sees it. */
	if (head != VQ_HEAD_NONE) {
		cr_assert_eq(vq_push(&vq, c.head, 0), 0);
		cr_assert(fake_get_used(&f, &id, &len));
		cr_assert_eq(id, head);
		cr_assert_eq(len, 0);
	}
}

Test(virtqueue, enable_rejects_bad_sizes)
{
	static const uint16_t bad[] = {0, 3, 6, 100, 255, 0xffff, 0x8001};

	for (unsigned int i = 0; i < ARRAY_SIZE(bad); i++) {
		vq.size = bad[i];
		cr_assert_eq(vq_enable(&vq, &gm, F_INDIRECT), -EINVAL, "size %u", bad[i]);
		cr_assert_not(vq.ready);
	}
	vq.size = 1;
	cr_assert_eq(vq_enable(&vq, &gm, F_INDIRECT), 0);
}

Test(virtqueue, enable_max_size_and_ring_bounds)
{
	vq.size = 32768;
	vq.desc_gpa = 0;
	vq.avail_gpa = 0x80000;
	vq.used_gpa = 0x90000;
	cr_assert_eq(vq_enable(&vq, &gm, F_EVENT_IDX | F_INDIRECT), 0);
	/* The used ring (8 bytes per entry) would run past the end of RAM. */
	vq.used_gpa = RAM - 0x1000;
	cr_assert_eq(vq_enable(&vq, &gm, F_EVENT_IDX | F_INDIRECT), -EFAULT);
	cr_assert_not(vq.ready);
}

Test(virtqueue, enable_rejects_misaligned_rings)
{
	vq.desc_gpa = RING_GPA + 8;
	cr_assert_eq(vq_enable(&vq, &gm, F_INDIRECT), -EINVAL);
	vq.desc_gpa = RING_GPA;
	vq.avail_gpa++;
	cr_assert_eq(vq_enable(&vq, &gm, F_INDIRECT), -EINVAL);
	vq.avail_gpa--;
	vq.used_gpa += 2;
	cr_assert_eq(vq_enable(&vq, &gm, F_INDIRECT), -EINVAL);
}

Test(virtqueue, enable_rejects_rings_outside_ram)
{
	vq.desc_gpa = RAM;
	cr_assert_eq(vq_enable(&vq, &gm, F_INDIRECT), -EFAULT);
	vq.desc_gpa = UINT64_MAX & ~15ULL;
	cr_assert_eq(vq_enable(&vq, &gm, F_INDIRECT), -EFAULT);
}

Test(virtqueue, pop_empty_and_not_ready)
{
	struct vq_chain c;

	cr_assert_eq(vq_pop(&vq, &c), 0);
	vq_reset(&vq);
	cr_assert_eq(vq_pop(&vq, &c), 0);
	cr_assert_eq(vq_push(&vq, 0, 0), -EINVAL);
}

Test(virtqueue, pop_simple_chain_and_push)
{
	struct fake_buf b[] = {
		{DATA_GPA, 100, false},
		{DATA_GPA + 0x1000, 20, false},
		{DATA_GPA + 0x2000, 4096, true},
	};
	struct vq_chain c;
	uint16_t head = fake_add_chain(&f, b, 3);
	uint32_t id, len;

	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(c.head, head);
	cr_assert_eq(c.n_out, 2);
	cr_assert_eq(c.n_in, 1);
	cr_assert_eq(c.out_len, 120);
	cr_assert_eq(c.in_len, 4096);
	cr_assert_eq(c.bufs[1].gpa, DATA_GPA + 0x1000);
	cr_assert_eq(c.bufs[2].hva, gm_ptr(&gm, DATA_GPA + 0x2000, 1));
	cr_assert_eq(vq_pop(&vq, &c), 0);
	cr_assert_not(fake_get_used(&f, &id, &len));
	cr_assert_eq(vq_push(&vq, head, 77), 0);
	cr_assert(fake_get_used(&f, &id, &len));
	cr_assert_eq(id, head);
	cr_assert_eq(len, 77);
}

Test(virtqueue, buffer_outside_ram_is_malformed)
{
	struct fake_buf b[] = {{RAM - 8, 16, false}};

	fake_add_chain(&f, b, 1);
	expect_malformed(0);
}

Test(virtqueue, buffer_address_overflow_is_malformed)
{
	struct fake_buf b[] = {{DATA_GPA, 8, false}, {UINT64_MAX - 4, 0x100, true}};

	fake_add_chain(&f, b, 2);
	expect_malformed(0);
}

Test(virtqueue, readable_after_writable_is_malformed)
{
	struct fake_buf b[] = {{DATA_GPA, 8, true}, {DATA_GPA + 8, 8, false}};

	fake_add_chain(&f, b, 2);
	expect_malformed(0);
}

Test(virtqueue, loop_in_chain_is_detected)
{
	fake_set_desc(&f, 0, DATA_GPA, 8, VRING_DESC_F_NEXT, 1);
	fake_set_desc(&f, 1, DATA_GPA, 8, VRING_DESC_F_NEXT, 0);
	fake_publish(&f, 0);
	expect_malformed(0);
	/* A self loop too, and the queue keeps working afterwards. */
	fake_set_desc(&f, 5, DATA_GPA, 8, VRING_DESC_F_NEXT, 5);
	fake_publish(&f, 5);
	expect_malformed(5);
	fake_set_desc(&f, 6, DATA_GPA, 8, 0, 0);
	fake_publish(&f, 6);
	struct vq_chain c;
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(c.head, 6);
}

Test(virtqueue, next_out_of_range_is_malformed)
{
	fake_set_desc(&f, 2, DATA_GPA, 8, VRING_DESC_F_NEXT, 16);
	fake_publish(&f, 2);
	expect_malformed(2);
}

Test(virtqueue, head_out_of_range)
{
	fake_publish(&f, 16);
	expect_malformed(VQ_HEAD_NONE);
	cr_assert_eq(vq_push(&vq, VQ_HEAD_NONE, 0), -EINVAL);
	cr_assert_eq(fake_used_idx(&f), 0);
}

Test(virtqueue, chain_longer_than_max_bufs)
{
	struct fake_buf b[VQ_MAX_BUFS + 1];
	struct vq_chain c;

	setup_size(2 * VQ_MAX_BUFS, false); /* room for both chains */
	for (unsigned int i = 0; i <= VQ_MAX_BUFS; i++)
		b[i] = (struct fake_buf){DATA_GPA + i, 1, false};
	fake_add_chain(&f, b, VQ_MAX_BUFS);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(c.n_out, VQ_MAX_BUFS);
	fake_add_chain(&f, b, VQ_MAX_BUFS + 1);
	cr_assert_eq(vq_pop(&vq, &c), -EINVAL);
	cr_assert_eq(c.head, VQ_MAX_BUFS);
}

Test(virtqueue, chain_longer_than_queue)
{
	struct fake_buf b[17];
	struct vq_chain c;

	for (unsigned int i = 0; i < 17; i++)
		b[i] = (struct fake_buf){DATA_GPA, 1, false};
	fake_add_chain(&f, b, 16);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(c.n_out, 16);
	/* 17 descriptors cannot exist in a 16-entry table: the walk wraps into a loop. */
	for (unsigned int i = 0; i < 16; i++)
		fake_set_desc(&f, i, DATA_GPA, 1, VRING_DESC_F_NEXT, (i + 1) % 16);
	fake_publish(&f, 0);
	cr_assert_eq(vq_pop(&vq, &c), -EINVAL);
}

Test(virtqueue, avail_idx_too_far_ahead_is_eio)
{
	struct vq_chain c;

	fake_set_avail_idx(&f, 17);
	cr_assert_eq(vq_pop(&vq, &c), -EIO);
	cr_assert_eq(vq.last_avail, 0);
	fake_set_avail_idx(&f, 0xfff0);
	cr_assert_eq(vq_pop(&vq, &c), -EIO);
}

Test(virtqueue, indirect_table)
{
	struct fake_buf b[] = {
		{DATA_GPA, 10, false},
		{DATA_GPA + 0x100, 30, true},
		{DATA_GPA + 0x200, 50, true},
	};
	struct vq_chain c;
	uint16_t head = fake_add_indirect(&f, TABLE, b, 3);

	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(c.head, head);
	cr_assert_eq(c.n_out, 1);
	cr_assert_eq(c.n_in, 2);
	cr_assert_eq(c.in_len, 80);
	cr_assert_eq(c.bufs[2].gpa, DATA_GPA + 0x200);
}

Test(virtqueue, indirect_without_the_feature_is_malformed)
{
	struct fake_buf b[] = {{DATA_GPA, 10, false}};
	struct vq_chain c;

	gm_destroy(&gm);
	cr_assert_eq(gm_init(&gm, RAM, false), 0);
	vq_reset(&vq);
	fake_vq_init(&f, &gm, &vq, 16, RING_GPA);
	cr_assert_eq(vq_enable(&vq, &gm, F_EVENT_IDX), 0);
	fake_add_indirect(&f, TABLE, b, 1);
	/* §2.7.5.3.1: the driver must not use INDIRECT unless VIRTIO_F_INDIRECT_DESC was
	 * negotiated. */
	cr_assert_eq(vq_pop(&vq, &c), -EINVAL);
}

Test(virtqueue, unaligned_indirect_table)
{
	struct fake_buf b[] = {{DATA_GPA, 10, false}, {DATA_GPA + 0x100, 30, true}};
	struct vq_chain c;

	fake_add_indirect(&f, TABLE + 4, b, 2);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(c.n_out + c.n_in, 2);
	cr_assert_eq(c.bufs[1].len, 30);
}

Test(virtqueue, direct_descriptors_then_indirect)
{
	struct fake_buf b[] = {{DATA_GPA + 0x100, 30, true}};
	struct vq_chain c;

	fake_add_indirect(&f, TABLE, b, 1); /* head 0 is the INDIRECT descriptor */
	fake_set_desc(&f, 3, DATA_GPA, 10, VRING_DESC_F_NEXT, 0);
	fake_publish(&f, 3);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(c.head, 3);
	cr_assert_eq(c.n_out, 1);
	cr_assert_eq(c.n_in, 1);
}

Test(virtqueue, indirect_with_next_is_malformed)
{
	fake_set_desc(&f, 0, TABLE, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	fake_set_desc(&f, 1, DATA_GPA, 8, 0, 0);
	fake_publish(&f, 0);
	expect_malformed(0);
}

Test(virtqueue, nested_indirect_is_malformed)
{
	struct fake_buf b[] = {{TABLE + 0x100, 16, false}};
	struct vq_chain c;

	fake_add_indirect(&f, TABLE, b, 1);
	/* Turn the table's only entry into another indirect descriptor. */
	uint16_t flags = htole16(VRING_DESC_F_INDIRECT);
	gm_write(&gm, TABLE + 12, &flags, 2);
	cr_assert_eq(vq_pop(&vq, &c), -EINVAL);
	cr_assert_eq(c.head, 0);
}

Test(virtqueue, indirect_table_length_checks)
{
	fake_set_desc(&f, 0, TABLE, 24, VRING_DESC_F_INDIRECT, 0); /* not a multiple of 16 */
	fake_publish(&f, 0);
	expect_malformed(0);
	fake_set_desc(&f, 1, TABLE, 0, VRING_DESC_F_INDIRECT, 0);
	fake_publish(&f, 1);
	expect_malformed(1);
	fake_set_desc(&f, 2, RAM - 16, 32, VRING_DESC_F_INDIRECT, 0); /* runs out of RAM */
	fake_publish(&f, 2);
	expect_malformed(2);
}

Test(virtqueue, indirect_loop_and_next_bound)
{
	struct fake_buf b[] = {{DATA_GPA, 1, false}, {DATA_GPA, 1, false}};
	uint16_t next = htole16(0);

	fake_add_indirect(&f, TABLE, b, 2);
	gm_write(&gm, TABLE + 16 + 12, &(uint16_t){htole16(VRING_DESC_F_NEXT)}, 2);
	gm_write(&gm, TABLE + 16 + 14, &next, 2); /* entry 1 -> entry 0: a loop */
	expect_malformed(0);
	fake_add_indirect(&f, TABLE + 0x100, b, 2);
	next = htole16(2); /* beyond the 2-entry table */
	gm_write(&gm, TABLE + 0x100 + 14, &next, 2);
	expect_malformed(1);
}

Test(virtqueue, used_and_avail_indices_wrap)
{
	struct fake_buf b[] = {{DATA_GPA, 4, false}};
	struct vq_chain c;
	uint32_t id, len;

	for (unsigned int i = 0; i < 70000; i++) {
		uint16_t head = fake_add_chain(&f, b, 1);

		cr_assert_eq(vq_pop(&vq, &c), 1);
		cr_assert_eq(c.head, head);
		cr_assert_eq(vq_push(&vq, c.head, i & 0xff), 0);
		cr_assert(fake_get_used(&f, &id, &len));
		cr_assert_eq(len, i & 0xff);
	}
	cr_assert_eq(fake_used_idx(&f), (uint16_t)70000);
}

Test(virtqueue, no_interrupt_flag_without_event_idx)
{
	struct fake_buf b[] = {{DATA_GPA, 4, false}};
	struct vq_chain c;

	fake_add_chain(&f, b, 1);
	vq_pop(&vq, &c);
	vq_push(&vq, c.head, 0);
	cr_assert(vq_should_notify(&vq));
	fake_set_avail_flags(&f, VRING_AVAIL_F_NO_INTERRUPT);
	cr_assert_not(vq_should_notify(&vq));
}

Test(virtqueue, event_idx_suppression)
{
	struct fake_buf b[] = {{DATA_GPA, 4, false}};
	struct vq_chain c;
	unsigned int notified = 0;

	setup_size(16, true);
	/* The driver wants an interrupt only once used->idx passes 3 (used_event = 3). */
	fake_set_used_event(&f, 3);
	for (unsigned int i = 0; i < 6; i++) {
		fake_add_chain(&f, b, 1);
		cr_assert_eq(vq_pop(&vq, &c), 1);
		cr_assert_eq(fake_avail_event(&f), i + 1); /* published after every pop */
		cr_assert_eq(vq_push(&vq, c.head, 0), 0);
		if (vq_should_notify(&vq)) {
			notified++;
			cr_assert(i == 0 || i == 3, "notified at used idx %u", i + 1);
		}
	}
	/* The first push always notifies (no previous signal); then only the crossing of 3. */
	cr_assert_eq(notified, 2);
	/* Flags are ignored with event_idx. */
	fake_set_avail_flags(&f, VRING_AVAIL_F_NO_INTERRUPT);
	fake_set_used_event(&f, 6);
	fake_add_chain(&f, b, 1);
	vq_pop(&vq, &c);
	vq_push(&vq, c.head, 0);
	cr_assert(vq_should_notify(&vq));
}

Test(virtqueue, event_idx_empty_pop_publishes_avail_event)
{
	struct vq_chain c;

	setup_size(8, true);
	cr_assert_eq(vq_pop(&vq, &c), 0);
	cr_assert_eq(fake_avail_event(&f), 0);
	vq.last_avail = 5; /* as if five chains had been consumed */
	fake_set_avail_idx(&f, 5);
	cr_assert_eq(vq_pop(&vq, &c), 0);
	cr_assert_eq(fake_avail_event(&f), 5);
}

Test(virtqueue, copy_helpers_cross_buffers)
{
	struct fake_buf b[] = {
		{DATA_GPA, 4, false},
		{DATA_GPA + 0x100, 6, false},
		{DATA_GPA + 0x200, 3, true},
		{DATA_GPA + 0x300, 3, true},
	};
	struct vq_chain c;
	char out[16] = {0};

	gm_write(&gm, DATA_GPA, "abcd", 4);
	gm_write(&gm, DATA_GPA + 0x100, "efghij", 6);
	fake_add_chain(&f, b, 4);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(vq_copy_from_chain(&c, 2, out, 16), 8);
	cr_assert_str_eq(out, "cdefghij");
	cr_assert_eq(vq_copy_from_chain(&c, 20, out, 16), 0);
	cr_assert_eq(vq_copy_to_chain(&c, "0123456789", 10), 6);
	memset(out, 0, sizeof(out));
	gm_read(&gm, DATA_GPA + 0x200, out, 3);
	gm_read(&gm, DATA_GPA + 0x300, out + 3, 3);
	cr_assert_str_eq(out, "012345");
}

Test(virtqueue, buffers_in_high_ram)
{
	struct fake_buf b[] = {{GM_HIGH_BASE + 0x1000, 64, true}};
	struct fake_buf bad[] = {{GM_LOW_RAM_MAX - 0x10, 0x20, true}};
	struct vq_chain c;

	gm_destroy(&gm);
	cr_assert_eq(gm_init(&gm, 4 * GiB, false), 0);
	vq_reset(&vq);
	fake_vq_init(&f, &gm, &vq, 16, RING_GPA);
	cr_assert_eq(vq_enable(&vq, &gm, F_INDIRECT), 0);
	fake_add_chain(&f, b, 1);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(c.bufs[0].hva, gm.base + GM_LOW_RAM_MAX + 0x1000);
	fake_add_chain(&f, bad, 1); /* straddles the MMIO hole */
	cr_assert_eq(vq_pop(&vq, &c), -EINVAL);
}

Test(virtqueue, state_snapshot_counts_pops_and_notifications)
{
	struct fake_buf b = {DATA_GPA, 64, false};
	struct vq_state st;
	struct vq_chain c;
	uint16_t head;

	setup_size(16, true);
	head = fake_add_chain(&f, &b, 1);
	fake_add_chain(&f, &b, 1);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(vq_push(&vq, head, 0), 0);
	cr_assert(vq_should_notify(&vq), "the first used buffer is always signalled");
	vq_get_state(&vq, &st);
	cr_assert(st.ready);
	cr_assert_eq(st.size, 16);
	cr_assert_eq(st.avail_idx, 2, "read from the driver's ring");
	cr_assert_eq(st.last_avail, 1);
	cr_assert_eq(st.used_idx, 1);
	cr_assert_eq(st.avail_event, 1, "published after the pop");
	cr_assert_eq(st.popped, 1);
	cr_assert_eq(st.notifications, 1);
}

/* vq_chain_iov: byte sub-ranges of either direction, split across buffers, bounded. */
Test(virtqueue, chain_iov_ranges)
{
	struct fake_buf b[] = {
		{DATA_GPA, 16, false},
		{DATA_GPA + 0x1000, 0, false}, /* empty pieces are skipped */
		{DATA_GPA + 0x2000, 1000, false},
		{DATA_GPA + 0x3000, 512, true},
		{DATA_GPA + 0x4000, 513, true},
	};
	struct iovec iov[4];
	struct vq_chain c;

	fake_add_chain(&f, b, 5);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	/* Readable bytes after a 16-byte header: only the second non-empty buffer. */
	cr_assert_eq(vq_chain_iov(&c, false, 16, 1000, iov, 4), 1);
	cr_assert_eq(iov[0].iov_base, gm_ptr(&gm, DATA_GPA + 0x2000, 1));
	cr_assert_eq(iov[0].iov_len, 1000);
	/* A range straddling two buffers. */
	cr_assert_eq(vq_chain_iov(&c, false, 10, 10, iov, 4), 2);
	cr_assert_eq(iov[0].iov_base, gm_ptr(&gm, DATA_GPA + 10, 1));
	cr_assert_eq(iov[0].iov_len, 6);
	cr_assert_eq(iov[1].iov_len, 4);
	/* Writable: all but the last byte, then the last byte alone (a status byte). */
	cr_assert_eq(vq_chain_iov(&c, true, 0, 1024, iov, 4), 2);
	cr_assert_eq(iov[1].iov_base, gm_ptr(&gm, DATA_GPA + 0x4000, 1));
	cr_assert_eq(iov[1].iov_len, 512);
	cr_assert_eq(vq_chain_iov(&c, true, 1024, 1, iov, 4), 1);
	cr_assert_eq(iov[0].iov_base, gm_ptr(&gm, DATA_GPA + 0x4000 + 512, 1));
	cr_assert_eq(vq_chain_iov(&c, true, 0, 0, iov, 4), 0);
}

Test(virtqueue, chain_iov_refuses_past_end_and_too_many)
{
	struct fake_buf b[] = {
		{DATA_GPA, 100, true},
		{DATA_GPA + 0x1000, 100, true},
	};
	struct iovec iov[2];
	struct vq_chain c;

	fake_add_chain(&f, b, 2);
	cr_assert_eq(vq_pop(&vq, &c), 1);
	cr_assert_eq(vq_chain_iov(&c, true, 0, 201, iov, 2), -ERANGE);
	cr_assert_eq(vq_chain_iov(&c, true, 201, 0, iov, 2), -ERANGE);
	cr_assert_eq(vq_chain_iov(&c, true, 0xffffff00u, 0x200, iov, 2), -ERANGE);
	cr_assert_eq(vq_chain_iov(&c, false, 0, 1, iov, 2), -ERANGE); /* no readable bytes */
	cr_assert_eq(vq_chain_iov(&c, true, 0, 200, iov, 1), -E2BIG);
	cr_assert_eq(vq_chain_iov(&c, true, 0, 200, iov, 2), 2);
}
