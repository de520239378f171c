/*
 * libFuzzer target for the split-virtqueue walker: random ring contents (and ring placement) in a
 * small guest RAM, then a vq_pop/vq_push loop as a device would run it.
 * Input: 8-byte header (queue size exponent, flags, ring offsets), then the guest RAM image.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "../../devices/virtqueue.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"

#define RAM    (1 * MiB)
#define WINDOW (64 * KiB) /* the part of RAM the input fills */

static struct guest_mem gm;

static void check_chain(const struct vq_chain *c)
{
	uint32_t out = 0, in = 0;

	if (c->n_out + c->n_in > VQ_MAX_BUFS)
		__builtin_trap();
	for (unsigned int i = 0; i < (unsigned int)(c->n_out + c->n_in); i++) {
		const struct vq_buf *b = &c->bufs[i];

		if (gm_ptr(&gm, b->gpa, b->len) != b->hva)
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

	if (!gm.base && gm_init(&gm, RAM, false))
		__builtin_trap();
	if (size < 8)
		return 0;
	memcpy(off, data + 2, sizeof(off));
	memset(gm.base, 0, WINDOW);
	memset(gm.base + RAM - WINDOW, 0, WINDOW);
	memcpy(gm.base, data + 8, MIN(size - 8, WINDOW));

	vq_reset(&vq);
	vq.size = (uint16_t)(1u << (data[0] % 16));
	if (data[0] & 0x80)
		vq.size = data[0] | (uint16_t)data[1] << 8; /* arbitrary, mostly invalid */
	vq.desc_gpa = (uint64_t)off[0] * 16 % WINDOW;
	vq.avail_gpa = (uint64_t)off[1] * 2 % WINDOW;
	vq.used_gpa = (uint64_t)off[2] * 4 % WINDOW;
	if (data[1] & 0x40)
		vq.used_gpa += RAM - WINDOW; /* sometimes at the very end of RAM */
	if (vq_enable(&vq, &gm,
		      (data[1] & 1 ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0) |
			      (data[1] & 0x20 ? 0 : 1ULL << VIRTIO_RING_F_INDIRECT_DESC)))
		return 0;
	for (i = 0; i < 512; i++) {
		int ret = vq_pop(&vq, &c);

		if (ret == 0 || ret == -EIO)
			break;
		if (ret == 1) {
			check_chain(&c);
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
	return 0;
}
