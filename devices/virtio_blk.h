/*
 * virtio-blk (virtio 1.2 §5.2) on io_uring: a raw image file (or block device) as a guest disk.
 *
 * One io_uring per virtqueue with the image registered as its one fixed file; the ring's
 * completions signal an eventfd watched by the event loop. A kick pops at most one queue's worth
 * of chains, prepares their SQEs and submits them with one io_uring_enter; completions write the
 * status byte, fill the used ring and interrupt the driver once per batch. No request blocks a
 * vCPU or the loop (the kernel runs blocking work, fdatasync and fallocate, in its io-wq).
 *
 * Requests (§5.2.6): IN, OUT, FLUSH (fdatasync), GET_ID (the serial), DISCARD (fallocate
 * PUNCH_HOLE|KEEP_SIZE: the image stays sparse), WRITE_ZEROES (ZERO_RANGE, or PUNCH_HOLE with
 * the unmap flag). Every request is parsed from a chain the walker validated: a 16-byte
 * readable header first, a 1-byte writable status last, data in between in the direction the
 * type needs, whole 512-byte sectors inside the capacity. A write to a read-only disk, a sector
 * range outside the disk, a malformed chain -> VIRTIO_BLK_S_IOERR; an unknown type ->
 * VIRTIO_BLK_S_UNSUPP; a host I/O error fails that request only.
 */
#ifndef DEVICES_VIRTIO_BLK_H
#define DEVICES_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_blk.h>

struct guest_mem;
struct loop;
struct virtio_dev;
struct blk;

#define BLK_SECTOR_SIZE		512	   /* virtio sectors, whatever blk_size says (§5.2.4) */
#define BLK_SEG_MAX		254	   /* data segments: VQ_MAX_BUFS less header and status */
#define BLK_SIZE_MAX		(1u << 20) /* largest data segment, bytes */
#define BLK_MAX_DISCARD_SEG	8	   /* segments of one DISCARD / WRITE_ZEROES request */
#define BLK_MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB per segment */
#define BLK_QUEUE_SIZE		256

enum blk_cache {
	BLK_CACHE_WRITEBACK, /* the host page cache; FLUSH is fdatasync */
	BLK_CACHE_NONE,	     /* O_DIRECT: refused where the file system cannot do it */
};

/* One --disk. */
struct blk_config {
	const char *path; /* raw image (regular file) or block device */
	bool ro;	  /* open O_RDONLY and offer VIRTIO_BLK_F_RO */
	enum blk_cache cache;
	char serial[VIRTIO_BLK_ID_BYTES + 1]; /* GET_ID answer, NUL padded; may be empty */
	unsigned int nr_queues;		      /* 1..VIRTIO_MAX_QUEUES (MQ: one per vCPU) */
};

struct blk_counters {
	uint64_t capacity; /* 512-byte sectors */
	uint64_t reads, writes, flushes, discards, write_zeroes, get_ids;
	uint64_t bytes_read, bytes_written;
	uint64_t unsupported; /* requests answered UNSUPP */
	uint64_t rejected;    /* guest errors answered IOERR: malformed, out of range, ro write */
	uint64_t io_errors;   /* host I/O errors (IOERR for that request only) */
	uint64_t err_count;   /* all guest-caused errors (dev->err_count) */
	uint64_t submits;     /* io_uring_enter calls made to submit */
	uint64_t inflight;    /* requests in flight now */
	uint64_t features;    /* negotiated */
};

/**
 * blk_create() - open @cfg->path and build the device (not yet attached to a transport).
 * @gm: guest RAM; @loop: where each queue's completion eventfd is watched (the caller runs it,
 * or drives it with loop_dispatch() in tests); @cfg is copied.
 * The image is opened O_RDWR (O_RDONLY with ro), O_DIRECT with BLK_CACHE_NONE (probed with one
 * aligned read: ramfs, tmpfs before Linux 6.6 and others refuse it); when O_DIRECT needs more
 * than 512-byte alignment (statx STATX_DIOALIGN, e.g. a 4 KiB-sector disk) that becomes the
 * offered blk_size, so the guest aligns its I/O to it. The size, rounded down to whole sectors,
 * is the capacity. On failure one line naming the image and the reason is printed.
 * Returns 0 with *@out set, or -errno: -ENOENT/-EACCES (open), -EINVAL (O_DIRECT refused, size
 * below one sector, not a file or block device, bad nr_queues), -ENOMEM, or io_uring's errors.
 */
int blk_create(struct guest_mem *gm, struct loop *loop, const struct blk_config *cfg,
	       struct blk **out);

/**
 * blk_destroy() - wait for requests in flight (at most ~1 s), release the rings, eventfds and
 * the image. Call after the transport is detached. NULL is a no-op.
 */
void blk_destroy(struct blk *b);

/**
 * blk_quiesce() - before a snapshot is saved (issue 14): submit what is prepared, wait (at most
 * DRAIN_TIMEOUT_MS, 5 s) for every io_uring request in flight and complete each into the used
 * ring with its status, interrupting the driver as usual, so no request is in flight when the
 * state is written. Chains not yet popped stay in the avail ring (picked up after a restore).
 * Call with the vCPUs paused, from the loop thread. Returns 0, or -ETIMEDOUT when requests are
 * still in flight (the snapshot must not be taken).
 */
int blk_quiesce(struct blk *b);

/** blk_virtio_dev() - the embedded virtio device, for the transport. */
struct virtio_dev *blk_virtio_dev(struct blk *b);

/** blk_get_counters() - consistent snapshot of the request counters (takes the device lock). */
void blk_get_counters(struct blk *b, struct blk_counters *out);

#endif
