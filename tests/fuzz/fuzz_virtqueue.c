/*
 * libFuzzer target for the split-virtqueue walker: random ring contents (and ring placement) in a
 * small guest RAM, then a vq_pop/vq_push loop as a device would run it.
 * Input: 8-byte header (queue size exponent, flags, ring offsets), then the guest RAM image.
 * With flag 0x10 the guest has RAM above 4 GiB too (two regions, GM_LOW_RAM_MAX + 1 MiB mapped
 * MAP_NORESERVE): the rings then sit at 4 GiB or right below the 3 GiB hole (flag 0x08), where
 * descriptors point across the hole, into it, or past the end.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/virtio_ring.h>

#include "../../devices/virtqueue.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"

#define RAM    (1 * MiB)
#define WINDOW (64 * KiB) /* the part of RAM the input fills */

static struct guest_mem gm_small, gm_two;
#define RAM_TWO (GM_LOW_RAM_MAX + 1 * MiB)

static void check_chain(const struct guest_mem *g, const struct vq_chain *c)
{
	uint32_t out = 0, in = 0;

	if (c->n_out + c->n_in > VQ_MAX_BUFS)
		__builtin_trap();
	for (unsigned int i = 0; i < (unsigned int)(c->n_out + c->n_in); i++) {
		const struct vq_buf *b = &c->bufs[i];

		if (gm_ptr(g, b->gpa, b->len) != b->hva)
			__builtin_trap();
		if (i < c->n_out)
			out += b->len;
		else
			in += b->len;
	}
	if (out != c->out_len || in != c->in_len)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t scratch[4096];
	struct virtqueue vq;
	struct vq_chain c;
	uint16_t off[3];
	unsigned int i;

	struct guest_mem *g = &gm_small;
	uint64_t base = 0, end = RAM; /* GPA of the window, end of its region */
	uint8_t *win, *last;

	if (!gm_small.base && (gm_init(&gm_small, RAM, false) || gm_init(&gm_two, RAM_TWO, false)))
		__builtin_trap();
	if (size < 8)
		return 0;
	if (data[1] & 0x10) {
		g = &gm_two;
		base = data[1] & 0x08 ? GM_LOW_RAM_MAX - WINDOW : GM_HIGH_BASE;
		end = data[1] & 0x08 ? GM_LOW_RAM_MAX : GM_HIGH_BASE + 1 * MiB;
	}
	win = gm_ptr(g, base, WINDOW);
	last = gm_ptr(g, end - WINDOW, WINDOW);
	if (!win || !last)
		__builtin_trap();
	memcpy(off, data + 2, sizeof(off));
	memset(win, 0, WINDOW);
	memset(last, 0, WINDOW);
	memcpy(win, data + 8, MIN(size - 8, WINDOW));

	vq_reset(&vq);
	vq.size = (uint16_t)(1u << (data[0] % 16));
	if (data[0] & 0x80)
		vq.size = data[0] | (uint16_t)data[1] << 8; /* arbitrary, mostly invalid */
	vq.desc_gpa = base + (uint64_t)off[0] * 16 % WINDOW;
	vq.avail_gpa = base + (uint64_t)off[1] * 2 % WINDOW;
	vq.used_gpa = base + (uint64_t)off[2] * 4 % WINDOW;
	if (data[1] & 0x40)
		vq.used_gpa += end - WINDOW - base; /* sometimes at the very end of the region */
	if (vq_enable(&vq, g,
		      (data[1] & 1 ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0) |
			      (data[1] & 0x20 ? 0 : 1ULL << VIRTIO_RING_F_INDIRECT_DESC)))
		return 0;
	for (i = 0; i < 512; i++) {
		int ret = vq_pop(&vq, &c);

		if (ret == 0 || ret == -EIO)
			break;
		if (ret == 1) {
			check_chain(g, &c);
			vq_copy_from_chain(&c, data[1] & 0x1f, scratch, sizeof(scratch));
			if (data[1] & 2)
				vq_copy_to_chain(&c, scratch, MIN(c.in_len, sizeof(scratch)));
		} else if (ret != -EINVAL) {
			__builtin_trap();
		}
		if (c.head != VQ_HEAD_NONE && c.head >= vq.size)
			__builtin_trap();
		if (c.head != VQ_HEAD_NONE && vq_push(&vq, c.head, ret == 1 ? c.in_len : 0))
			__builtin_trap();
		vq_should_notify(&vq);
	}
	/* Chains may point anywhere in 3 GiB: give back what this input touched (bounded RSS). */
	if (g == &gm_two)
		madvise(gm_two.base, gm_two.size, MADV_DONTNEED);
	return 0;
}
