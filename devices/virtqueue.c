#include "virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include "../vmm/mem/guest_mem.h"
#include "../vmm/util.h"

/*
 * The guest writes its ring fields while we read them: every guest-owned field is read exactly
 * once with an atomic load (the ring layouts are naturally aligned, checked in vq_enable) and
 * only the local copy is used afterwards.
 */
static inline uint16_t load16(const void *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static inline void store16(void *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

static inline void store32(void *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

/* One snapshot of a descriptor; indirect tables need not be 8-byte aligned. */
static void read_desc(const void *p, uint64_t *addr, uint32_t *len, uint16_t *flags, uint16_t *next)
{
	uint64_t w[2];

	if (!((uintptr_t)p & 7)) {
		w[0] = __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
		w[1] = __atomic_load_n((const uint64_t *)p + 1, __ATOMIC_RELAXED);
	} else {
		const volatile uint8_t *s = p;
		uint8_t *d = (uint8_t *)w;
		unsigned int i;

		for (i = 0; i < sizeof(w); i++)
			d[i] = s[i];
	}
	/* struct vring_desc: le64 addr, le32 len, le16 flags, le16 next */
	*addr = le64toh(w[0]);
	w[1] = le64toh(w[1]);
	*len = (uint32_t)w[1];
	*flags = (uint16_t)(w[1] >> 32);
	*next = (uint16_t)(w[1] >> 48);
}

static uint64_t avail_bytes(uint16_t size)
{
	return sizeof(struct vring_avail) + 2ULL * size + 2; /* + used_event */
}

static uint64_t used_bytes(uint16_t size)
{
	return sizeof(struct vring_used) + 8ULL * size + 2; /* + avail_event */
}

static struct vring_avail *avail_ring(const struct virtqueue *vq)
{
	return gm_ptr(vq->gm, vq->avail_gpa, avail_bytes(vq->size));
}

static struct vring_used *used_ring(const struct virtqueue *vq)
{
	return gm_ptr(vq->gm, vq->used_gpa, used_bytes(vq->size));
}

int vq_enable(struct virtqueue *vq, struct guest_mem *gm, uint64_t features)
{
	uint16_t size = vq->size;

	vq->ready = false;
	if (!size || size > VQ_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	if (vq->desc_gpa % VRING_DESC_ALIGN_SIZE || vq->avail_gpa % VRING_AVAIL_ALIGN_SIZE ||
	    vq->used_gpa % VRING_USED_ALIGN_SIZE)
		return -EINVAL;
	if (!gm_ptr(gm, vq->desc_gpa, 16ULL * size) ||
	    !gm_ptr(gm, vq->avail_gpa, avail_bytes(size)) ||
	    !gm_ptr(gm, vq->used_gpa, used_bytes(size)))
		return -EFAULT;
	vq->gm = gm;
	vq->event_idx = features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_valid = false;
	vq->ready = true;
	return 0;
}

void vq_reset(struct virtqueue *vq)
{
	memset(vq, 0, sizeof(*vq));
	vq->msix_vector = VIRTIO_MSI_NO_VECTOR;
}

/* Tell the driver (event_idx) which avail index should make it kick us next. */
static void set_avail_event(struct virtqueue *vq, struct vring_used *used)
{
	store16(&used->ring[vq->size], vq->last_avail);
}

static int add_buf(const struct virtqueue *vq, struct vq_chain *c, uint64_t gpa, uint32_t len,
		   bool writable)
{
	unsigned int n = c->n_out + c->n_in;
	void *hva;

	if (n >= VQ_MAX_BUFS)
		return -EINVAL;
	hva = gm_ptr(vq->gm, gpa, len);
	if (!hva)
		return -EINVAL;
	if (writable) {
		if (__builtin_add_overflow(c->in_len, len, &c->in_len))
			return -EINVAL;
		c->n_in++;
	} else {
		/* §2.7.4.2: device-readable buffers must come before device-writable ones. */
		if (c->n_in || __builtin_add_overflow(c->out_len, len, &c->out_len))
			return -EINVAL;
		c->n_out++;
	}
	c->bufs[n] = (struct vq_buf){.gpa = gpa, .len = len, .hva = hva};
	return 0;
}

/*
 * Follow the chain from @head. The length bound (queue size, or the indirect table's entries)
 * is what catches loops; VQ_MAX_BUFS bounds the work per chain.
 */
static int walk_chain(const struct virtqueue *vq, struct vq_chain *c, uint16_t head)
{
	const uint8_t *table = gm_ptr(vq->gm, vq->desc_gpa, 16ULL * vq->size);
	uint32_t max = vq->size, count = 0, idx = head;
	bool indirect = false;
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
	int ret;

	for (;;) {
		if (++count > max)
			return -EINVAL;
		read_desc(table + 16ULL * idx, &addr, &len, &flags, &next);
		if (flags & VRING_DESC_F_INDIRECT) {
			/* §2.7.5.3: negotiated, no nesting, no NEXT; it may end a direct chain. */
			if (!vq->indirect || indirect || (flags & VRING_DESC_F_NEXT) || !len ||
			    len % 16)
				return -EINVAL;
			table = gm_ptr(vq->gm, addr, len);
			if (!table)
				return -EINVAL;
			indirect = true;
			max = len / 16;
			count = 0;
			idx = 0;
			continue;
		}
		ret = add_buf(vq, c, addr, len, flags & VRING_DESC_F_WRITE);
		if (ret)
			return ret;
		if (!(flags & VRING_DESC_F_NEXT))
			return 1;
		if (next >= max)
			return -EINVAL;
		idx = next;
	}
}

int vq_pop(struct virtqueue *vq, struct vq_chain *chain)
{
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, head;

	chain->head = VQ_HEAD_NONE;
	chain->n_out = chain->n_in = 0;
	chain->out_len = chain->in_len = 0;
	if (!vq->ready)
		return 0;
	avail = avail_ring(vq);
	used = used_ring(vq);
	if (!avail || !used)
		return -EIO;
	avail_idx = load16(&avail->idx);
	if (avail_idx == vq->last_avail) {
		if (!vq->event_idx)
			return 0;
		/*
		 * Publish avail_event, then look again: a driver that added a buffer before
		 * seeing the new avail_event would otherwise not kick and we would not see it.
		 */
		set_avail_event(vq, used);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = load16(&avail->idx);
		if (avail_idx == vq->last_avail)
			return 0;
	}
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return -EIO;
	/* Ring entries are valid only after the avail->idx that covers them is seen. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	head = load16(&avail->ring[vq->last_avail & (vq->size - 1)]);
	vq->last_avail++;
	vq->popped++;
	if (vq->event_idx)
		set_avail_event(vq, used);
	if (head >= vq->size)
		return -EINVAL;
	chain->head = head;
	return walk_chain(vq, chain, head);
}

void vq_get_state(const struct virtqueue *vq, struct vq_state *out)
{
	struct vring_avail *avail = vq->ready ? avail_ring(vq) : NULL;
	struct vring_used *used = vq->ready ? used_ring(vq) : NULL;

	*out = (struct vq_state){
		.ready = vq->ready,
		.size = vq->size,
		.last_avail = vq->last_avail,
		.used_idx = vq->used_idx,
		.popped = vq->popped,
		.notifications = vq->notifications,
	};
	if (avail) {
		out->avail_idx = load16(&avail->idx);
		out->used_event = load16(&avail->ring[vq->size]);
	}
	if (used)
		out->avail_event = load16(&used->ring[vq->size]);
}

int vq_push(struct virtqueue *vq, uint16_t head, uint32_t len)
{
	struct vring_used *used;
	struct vring_used_elem *e;

	if (!vq->ready || head >= vq->size)
		return -EINVAL;
	used = used_ring(vq);
	if (!used)
		return -EFAULT;
	e = &used->ring[vq->used_idx & (vq->size - 1)];
	store32(&e->id, head);
	store32(&e->len, len);
	vq->used_idx++;
	/* The element must be visible before the index that publishes it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	store16(&used->idx, vq->used_idx);
	return 0;
}

bool vq_should_notify(struct virtqueue *vq)
{
	struct vring_avail *avail;
	uint16_t old, new, event;
	bool valid;

	if (!vq->ready)
		return false;
	avail = avail_ring(vq);
	if (!avail)
		return false;
	/* Our used->idx store must be ordered before reading the driver's suppression fields. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx) {
		if (load16(&avail->flags) & VRING_AVAIL_F_NO_INTERRUPT)
			return false;
		vq->notifications++;
		return true;
	}
	old = vq->signalled_used;
	new = vq->used_idx;
	valid = vq->signalled_valid;
	event = load16(&avail->ring[vq->size]);
	vq->signalled_used = new;
	vq->signalled_valid = true;
	if (valid && !vring_need_event(event, new, old))
		return false;
	vq->notifications++;
	return true;
}

uint32_t vq_copy_from_chain(const struct vq_chain *chain, uint32_t off, void *dst, uint32_t len)
{
	uint32_t done = 0;
	unsigned int i;

	for (i = 0; i < chain->n_out && done < len; i++) {
		const struct vq_buf *b = &chain->bufs[i];
		uint32_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = MIN(b->len - off, len - done);
		memcpy((uint8_t *)dst + done, (const uint8_t *)b->hva + off, n);
		done += n;
		off = 0;
	}
	return done;
}

uint32_t vq_copy_to_chain(const struct vq_chain *chain, const void *src, uint32_t len)
{
	uint32_t done = 0;
	unsigned int i;

	for (i = chain->n_out; i < chain->n_out + chain->n_in && done < len; i++) {
		const struct vq_buf *b = &chain->bufs[i];
		uint32_t n = MIN(b->len, len - done);

		memcpy(b->hva, (const uint8_t *)src + done, n);
		done += n;
	}
	return done;
}

int vq_chain_iov(const struct vq_chain *chain, bool writable, uint32_t off, uint32_t len,
		 struct iovec *iov, unsigned int max)
{
	unsigned int i = writable ? chain->n_out : 0;
	unsigned int end = writable ? chain->n_out + chain->n_in : chain->n_out;
	uint32_t total = writable ? chain->in_len : chain->out_len;
	unsigned int n = 0;

	if (off > total || len > total - off)
		return -ERANGE;
	for (; i < end && len; i++) {
		const struct vq_buf *b = &chain->bufs[i];
		uint32_t piece;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		piece = MIN(b->len - off, len);
		if (n == max)
			return -E2BIG;
		iov[n].iov_base = (uint8_t *)b->hva + off;
		iov[n].iov_len = piece;
		n++;
		len -= piece;
		off = 0;
	}
	return (int)n;
}
