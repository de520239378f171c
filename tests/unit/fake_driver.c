#include "fake_driver.h"

#include <endian.h>
#include <string.h>

#include <linux/virtio_ring.h>

static void *ptr(const struct fake_vq *f, uint64_t gpa, uint64_t len)
{
	void *p = gm_ptr(f->gm, gpa, len);

	if (!p)
		__builtin_trap(); /* a test bug, not a device bug */
	return p;
}

static void w16(const struct fake_vq *f, uint64_t gpa, uint16_t v)
{
	__atomic_store_n((uint16_t *)ptr(f, gpa, 2), htole16(v), __ATOMIC_RELEASE);
}

static uint16_t r16(const struct fake_vq *f, uint64_t gpa)
{
	return le16toh(__atomic_load_n((uint16_t *)ptr(f, gpa, 2), __ATOMIC_ACQUIRE));
}

uint64_t fake_vq_ring_bytes(uint16_t size)
{
	uint64_t d = 16ULL * size, a = 6 + 2ULL * size;

	return ((d + a + 3) & ~3ULL) + 6 + 8ULL * size;
}

void fake_vq_init(struct fake_vq *f, struct guest_mem *gm, struct virtqueue *vq, uint16_t size,
		  uint64_t base)
{
	memset(f, 0, sizeof(*f));
	f->gm = gm;
	f->vq = vq;
	f->size = size;
	f->desc = base;
	f->avail = base + 16ULL * size;
	f->used = (f->avail + 6 + 2ULL * size + 3) & ~3ULL;
	memset(ptr(f, base, fake_vq_ring_bytes(size)), 0, fake_vq_ring_bytes(size));
	vq->size = size;
	vq->desc_gpa = f->desc;
	vq->avail_gpa = f->avail;
	vq->used_gpa = f->used;
}

void fake_set_desc(struct fake_vq *f, uint16_t idx, uint64_t addr, uint32_t len, uint16_t flags,
		   uint16_t next)
{
	struct vring_desc d = {
		.addr = htole64(addr),
		.len = htole32(len),
		.flags = htole16(flags),
		.next = htole16(next),
	};

	memcpy(ptr(f, f->desc + 16ULL * idx, 16), &d, 16);
}

void fake_publish(struct fake_vq *f, uint16_t head)
{
	w16(f, f->avail + 4 + 2ULL * (f->avail_idx % f->size), head);
	f->avail_idx++;
	w16(f, f->avail + 2, f->avail_idx);
}

void fake_set_avail_idx(struct fake_vq *f, uint16_t idx)
{
	f->avail_idx = idx;
	w16(f, f->avail + 2, idx);
}

uint16_t fake_add_chain(struct fake_vq *f, const struct fake_buf *bufs, unsigned int n)
{
	uint16_t head = f->next_desc % f->size;
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint16_t idx = (head + i) % f->size, next = (head + i + 1) % f->size;
		uint16_t flags = (bufs[i].write ? VRING_DESC_F_WRITE : 0) |
				 (i + 1 < n ? VRING_DESC_F_NEXT : 0);

		fake_set_desc(f, idx, bufs[i].gpa, bufs[i].len, flags, i + 1 < n ? next : 0);
	}
	f->next_desc = (head + n) % f->size;
	fake_publish(f, head);
	return head;
}

uint16_t fake_add_indirect(struct fake_vq *f, uint64_t table_gpa, const struct fake_buf *bufs,
			   unsigned int n)
{
	uint16_t head = f->next_desc % f->size;
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct vring_desc d = {
			.addr = htole64(bufs[i].gpa),
			.len = htole32(bufs[i].len),
			.flags = htole16((bufs[i].write ? VRING_DESC_F_WRITE : 0) |
					 (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			.next = htole16(i + 1 < n ? i + 1 : 0),
		};

		memcpy(ptr(f, table_gpa + 16ULL * i, 16), &d, 16);
	}
	fake_set_desc(f, head, table_gpa, 16 * n, VRING_DESC_F_INDIRECT, 0);
	f->next_desc = (head + 1) % f->size;
	fake_publish(f, head);
	return head;
}

uint16_t fake_used_idx(const struct fake_vq *f)
{
	return r16(f, f->used + 2);
}

bool fake_get_used(struct fake_vq *f, uint32_t *id, uint32_t *len)
{
	struct vring_used_elem e;

	if (fake_used_idx(f) == f->last_used)
		return false;
	memcpy(&e, ptr(f, f->used + 4 + 8ULL * (f->last_used % f->size), 8), 8);
	f->last_used++;
	*id = le32toh(e.id);
	*len = le32toh(e.len);
	return true;
}

void fake_set_used_event(struct fake_vq *f, uint16_t v)
{
	w16(f, f->avail + 4 + 2ULL * f->size, v);
}

void fake_set_avail_flags(struct fake_vq *f, uint16_t flags)
{
	w16(f, f->avail, flags);
}

uint16_t fake_avail_event(const struct fake_vq *f)
{
	return r16(f, f->used + 4 + 8ULL * f->size);
}
