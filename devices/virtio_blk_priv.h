/*
 * virtio-blk internals shared by virtio_blk.c (requests, queues, virtio_dev_ops) and
 * virtio_blk_setup.c (the image, the rings, create/destroy). Not a public interface.
 */
#ifndef DEVICES_VIRTIO_BLK_PRIV_H
#define DEVICES_VIRTIO_BLK_PRIV_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio.h"
#include "virtio_blk.h"

struct state_in;
struct state_out;

#define QUEUED		 (-1) /* request handed to io_uring; its completion finishes it */
#define HDR_SIZE	 sizeof(struct virtio_blk_outhdr)
#define SEG_SIZE	 sizeof(struct virtio_blk_discard_write_zeroes)
#define RING_SQ		 512		/* >= BLK_QUEUE_SIZE requests of one SQE each */
#define RING_CQ		 2048		/* >= every SQE that can be in flight */
#define MAX_PER_ROUND	 BLK_QUEUE_SIZE /* chains popped per kick / completion round */
#define DRAIN_TIMEOUT_MS 5000
#define CONFIG_SIZE	 offsetof(struct virtio_blk_config, max_secure_erase_sectors)

struct blk_req {
	bool busy;	   /* popped, not yet completed */
	bool stale;	   /* abandoned by a reset whose drain timed out: never reaches the guest */
	uint16_t head;	   /* descriptor index for the used ring */
	uint16_t pending;  /* SQEs in flight */
	uint8_t result;	   /* VIRTIO_BLK_S_* so far */
	uint32_t type;	   /* VIRTIO_BLK_T_* */
	uint8_t *status;   /* the chain's last writable byte */
	uint32_t used_len; /* bytes written into the chain on success */
	uint32_t expect;   /* bytes an IN/OUT must transfer */
	struct iovec iov[BLK_SEG_MAX];
};

struct blk_queue {
	struct blk *blk;
	uint16_t idx;
	struct io_uring ring;
	bool ring_ok;
	int efd; /* the ring's completion eventfd */
	bool watched;
	unsigned int inflight_sqes, queued; /* queued: prepared, not yet submitted */
	bool more;			    /* stopped before the avail ring was empty */
	bool dirty;			    /* used entries not yet signalled */
	struct blk_req reqs[BLK_QUEUE_SIZE];
};

struct blk {
	struct virtio_dev vdev;	   /* first: the transport's handle */
	struct virtio_dev_ops ops; /* per disk: max_queues is its queue count */
	struct blk_config cfg;
	struct loop *loop;
	int fd;
	uint64_t capacity; /* sectors */
	uint32_t blk_size; /* config blk_size: 512, or O_DIRECT's alignment when larger */
	struct blk_counters c;
	struct blk_queue *q[VIRTIO_MAX_QUEUES];
};

/* The ops every disk starts from; blk_create() copies it and sets max_queues. */
extern const struct virtio_dev_ops blk_ops;

/* Loop callback of a queue's completion eventfd (@opaque: the struct blk_queue). */
void blk_on_completion(void *opaque, int fd, uint32_t events);

/*
 * blk_drain() - wait (at most DRAIN_TIMEOUT_MS) for every SQE of @q in flight; their results
 * never reach the guest. Caller holds dev->lock or is the only user (teardown).
 */
void blk_drain(struct blk_queue *q);

/* Snapshot hooks (virtio_dev_ops.save/load, virtio_blk_state.c); dev->lock held. */
int blk_save(struct virtio_dev *dev, struct state_out *o);
int blk_load(struct virtio_dev *dev, struct state_in *in);

#endif
