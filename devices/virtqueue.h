/*
 * Split virtqueue (virtio 1.2 §2.7): the one validated walker of descriptor chains.
 * Devices never read struct vring_desc themselves (style.md rule 2).
 * Ring layouts come from <linux/virtio_ring.h>.
 */
#ifndef DEVICES_VIRTQUEUE_H
#define DEVICES_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct guest_mem;

#define VQ_MAX_SIZE  32768  /* virtio 1.2 §2.7: Queue Size max */
#define VQ_MAX_BUFS  256    /* buffers one popped chain may hold (longer chains are malformed) */
#define VQ_HEAD_NONE 0xffff /* chain->head after vq_pop() found no valid head index */

struct virtqueue {
	uint16_t size;	      /* entries; power of two, 1..VQ_MAX_SIZE; 0 = not configured */
	bool ready;	      /* enabled by the driver and validated */
	uint16_t msix_vector; /* VIRTIO_MSI_NO_VECTOR when none (owned by the transport) */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail;	 /* next avail ring slot to consume */
	uint16_t used_idx;	 /* our copy of used->idx */
	uint16_t signalled_used; /* used_idx at the last interrupt (event_idx) */
	bool signalled_valid;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	struct guest_mem *gm;
	uint64_t popped;	/* chains taken off the avail ring */
	uint64_t notifications; /* vq_should_notify() answers "yes" */
};

/* A queue's state as both sides see it (diagnostics: control socket memory.stats). */
struct vq_state {
	bool ready;
	uint16_t size;
	uint16_t last_avail, used_idx;	/* the device's indices */
	uint16_t avail_idx, used_event; /* read from the driver's avail ring (0 when unreadable) */
	uint16_t avail_event;		/* what the device last published */
	uint64_t popped, notifications;
};

/* One buffer of a chain: a validated guest range and its host address. */
struct vq_buf {
	uint64_t gpa;
	uint32_t len; /* bytes */
	void *hva;    /* gm_ptr(gpa, len): valid for len bytes */
};

/* A popped chain: device-readable buffers first, then device-writable ones (§2.7.4.2). */
struct vq_chain {
	uint16_t head;	  /* descriptor index to return in the used ring */
	uint16_t n_out;	  /* device-readable buffers: bufs[0 .. n_out) */
	uint16_t n_in;	  /* device-writable buffers: bufs[n_out .. n_out + n_in) */
	uint32_t out_len; /* total readable bytes */
	uint32_t in_len;  /* total writable bytes */
	struct vq_buf bufs[VQ_MAX_BUFS];
};

/**
 * vq_enable() - validate and enable a queue the driver configured: size a power of two
 * <= VQ_MAX_SIZE and the three rings (alignment per §2.7 and entirely inside guest RAM).
 * @vq: queue with size and ring GPAs set; @gm: guest RAM; @features: the negotiated feature bits
 * (VIRTIO_RING_F_EVENT_IDX and VIRTIO_RING_F_INDIRECT_DESC matter here; without the latter an
 * indirect descriptor makes a chain malformed, §2.7.5.3.1).
 * Returns 0, or -EINVAL (bad size or alignment) / -EFAULT (ring outside RAM); queue stays off.
 */
int vq_enable(struct virtqueue *vq, struct guest_mem *gm, uint64_t features);

/**
 * vq_get_state() - snapshot @vq into *@out; the driver's indices are read through the bounded
 * accessor. Caller holds the device lock.
 */
void vq_get_state(const struct virtqueue *vq, struct vq_state *out);

/** vq_reset() - forget all state; the queue is unconfigured (size 0, not ready). */
void vq_reset(struct virtqueue *vq);

/**
 * vq_pop() - take the next available chain.
 * Reads avail->idx, then (after a read barrier) the ring slot; follows next/indirect links with
 * every index < size, a chain no longer than the queue size (or indirect table), no nested
 * indirect, every buffer inside guest RAM, and no readable buffer after a writable one.
 * Returns 1 with *@chain filled; 0 when the ring is empty; -EINVAL for a malformed chain,
 * in which case chain->head is still set (when the head index itself was valid, else it is
 * VQ_HEAD_NONE) and the caller must complete it with length 0 (style rule 5) and count the
 * error; -EIO when avail->idx is more than size ahead (a broken driver: the caller stops
 * processing the queue).
 */
int vq_pop(struct virtqueue *vq, struct vq_chain *chain);

/**
 * vq_push() - add @head with @len written bytes to the used ring and publish used->idx after a
 * write barrier. Returns 0, -EFAULT when the used ring is not in guest RAM, or -EINVAL when the
 * queue is not ready or @head >= size (e.g. VQ_HEAD_NONE).
 */
int vq_push(struct virtqueue *vq, uint16_t head, uint32_t len);

/**
 * vq_should_notify() - after pushes: does the driver want an interrupt? Honours
 * VRING_AVAIL_F_NO_INTERRUPT, or used_event with VIRTIO_RING_F_EVENT_IDX (§2.7.10). Full barrier
 * before reading the driver's fields.
 */
bool vq_should_notify(struct virtqueue *vq);

/**
 * vq_copy_from_chain() - gather up to @len bytes of the chain's readable buffers into @dst,
 * starting @off bytes in. Returns the number of bytes copied.
 */
uint32_t vq_copy_from_chain(const struct vq_chain *chain, uint32_t off, void *dst, uint32_t len);

/**
 * vq_copy_to_chain() - scatter @len bytes of @src into the chain's writable buffers.
 * Returns bytes copied (less than @len when the buffers are smaller).
 */
uint32_t vq_copy_to_chain(const struct vq_chain *chain, const void *src, uint32_t len);

/**
 * vq_chain_iov() - host iovecs for bytes [@off, @off + @len) of the chain's device-readable
 * (@writable false) or device-writable (@writable true) buffers, for vectored host I/O straight
 * into or out of guest RAM (virtio-blk's io_uring readv/writev). Every entry lies inside one
 * buffer vq_pop() validated (gm_ptr), so no other range check is needed; zero-length pieces are
 * skipped. @iov: room for @max entries (caller-owned; the pointers stay valid as long as guest
 * RAM is mapped).
 * Returns the number of entries filled (0 when @len is 0), -ERANGE when the range runs past
 * the buffers' total, or -E2BIG when it needs more than @max entries.
 */
int vq_chain_iov(const struct vq_chain *chain, bool writable, uint32_t off, uint32_t len,
		 struct iovec *iov, unsigned int max);

#endif
