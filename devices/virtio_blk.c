#include "virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "../vmm/loop.h"
#include "../vmm/mem/guest_mem.h"
#include "../vmm/util.h"
#include "virtio.h"
#include "virtio_blk_priv.h"

static struct blk *to_blk(struct virtio_dev *dev)
{
	return (struct blk *)dev; /* vdev is the first member */
}

static void guest_err(struct blk *b, const char *what, uint64_t arg)
{
	b->vdev.err_count++;
	pr_err_ratelimited("virtio-blk %s: %s (%" PRIu64 ")", b->cfg.path, what, arg);
}

/* A guest error that fails its request: IOERR, counted. */
static int reject(struct blk *b, const char *what, uint64_t arg)
{
	b->c.rejected++;
	guest_err(b, what, arg);
	return VIRTIO_BLK_S_IOERR;
}

static bool in_range(const struct blk *b, uint64_t sector, uint64_t nr)
{
	return sector <= b->capacity && nr <= b->capacity - sector;
}

/* --- completion ---------------------------------------------------------------------------- */

static void push(struct blk_queue *q, uint16_t head, uint32_t len)
{
	int ret = vq_push(&q->blk->vdev.vqs[q->idx], head, len);

	if (ret)
		guest_err(q->blk, "cannot complete a request, head", head);
	q->dirty = true;
}

/* One interrupt per batch of used entries, when the driver's suppression asks for it. */
static void signal_used(struct blk_queue *q)
{
	struct virtio_dev *dev = &q->blk->vdev;

	if (!q->dirty)
		return;
	q->dirty = false;
	if (!vq_should_notify(&dev->vqs[q->idx]))
		return;
	dev->used_signals++;
	if (dev->transport && dev->transport->signal_used)
		dev->transport->signal_used(dev, q->idx);
}

static void finish(struct blk_queue *q, struct blk_req *r, int status)
{
	r->busy = false;
	*r->status = (uint8_t)status; /* published by vq_push's release barrier */
	push(q, r->head, status == VIRTIO_BLK_S_OK ? r->used_len : 1);
}

static void io_done(struct blk_queue *q, struct blk_req *r, int res)
{
	struct blk *b = q->blk;

	q->inflight_sqes--;
	if (res < 0 || (r->expect && (uint32_t)res != r->expect)) {
		if (r->result == VIRTIO_BLK_S_OK) {
			b->c.io_errors++;
			pr_err_ratelimited("virtio-blk %s: host I/O error on a type %u request: %s",
					   b->cfg.path, r->type,
					   res < 0 ? strerror(-res) : "short transfer");
		}
		r->result = VIRTIO_BLK_S_IOERR;
	}
	if (--r->pending)
		return;
	if (r->stale) {
		r->busy = r->stale = false;
		return;
	}
	if (r->result == VIRTIO_BLK_S_OK && r->type == VIRTIO_BLK_T_IN)
		b->c.bytes_read += r->expect;
	else if (r->result == VIRTIO_BLK_S_OK && r->type == VIRTIO_BLK_T_OUT)
		b->c.bytes_written += r->expect;
	finish(q, r, r->result);
}

static void reap(struct blk_queue *q)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&q->ring, head, cqe)
	{
		io_done(q, io_uring_cqe_get_data(cqe), cqe->res);
		n++;
	}
	io_uring_cq_advance(&q->ring, n);
}

/* --- requests (§5.2.6) ----------------------------------------------------------------------- */

static int queue_sqe(struct blk_queue *q, struct blk_req *r, struct io_uring_sqe *sqe)
{
	sqe->flags |= IOSQE_FIXED_FILE; /* index 0: the image */
	io_uring_sqe_set_data(sqe, r);
	r->pending++;
	q->inflight_sqes++;
	q->queued++;
	return QUEUED;
}

static int do_rw(struct blk_queue *q, struct blk_req *r, const struct vq_chain *c, uint64_t sector)
{
	struct blk *b = q->blk;
	bool write = r->type == VIRTIO_BLK_T_OUT;
	uint32_t len = write ? c->out_len - HDR_SIZE : c->in_len - 1;
	struct io_uring_sqe *sqe;
	int n;

	if (write ? c->in_len != 1 : c->out_len != HDR_SIZE)
		return reject(b, "data buffers in the wrong direction, head", r->head);
	if (write && b->cfg.ro)
		return reject(b, "write to a read-only disk, sector", sector);
	if (len % BLK_SECTOR_SIZE)
		return reject(b, "data is not a whole number of sectors, bytes", len);
	if (!in_range(b, sector, len / BLK_SECTOR_SIZE))
		return reject(b, "sectors outside the disk, sector", sector);
	n = vq_chain_iov(c, !write, write ? HDR_SIZE : 0, len, r->iov, BLK_SEG_MAX);
	if (n < 0)
		return reject(b, "more data segments than seg_max, head", r->head);
	for (int i = 0; i < n; i++)
		if (r->iov[i].iov_len > BLK_SIZE_MAX)
			return reject(b, "data segment above size_max, bytes", r->iov[i].iov_len);
	r->used_len = write ? 1 : len + 1;
	if (!n)
		return VIRTIO_BLK_S_OK;
	r->expect = len;
	sqe = io_uring_get_sqe(&q->ring);
	if (write)
		io_uring_prep_writev(sqe, 0, r->iov, n, sector * BLK_SECTOR_SIZE);
	else
		io_uring_prep_readv(sqe, 0, r->iov, n, sector * BLK_SECTOR_SIZE);
	return queue_sqe(q, r, sqe);
}

static int do_flush(struct blk_queue *q, struct blk_req *r, const struct vq_chain *c)
{
	struct io_uring_sqe *sqe;

	if (c->out_len != HDR_SIZE || c->in_len != 1)
		return reject(q->blk, "flush with data buffers, head", r->head);
	if (q->blk->cfg.ro)
		return VIRTIO_BLK_S_OK; /* nothing was written */
	sqe = io_uring_get_sqe(&q->ring);
	io_uring_prep_fsync(sqe, 0, IORING_FSYNC_DATASYNC);
	return queue_sqe(q, r, sqe);
}

static int do_get_id(struct blk_queue *q, struct blk_req *r, const struct vq_chain *c)
{
	char id[VIRTIO_BLK_ID_BYTES] = {0};

	/* §5.2.6.1: the driver provides a 20-byte buffer; a shorter serial is NUL padded. */
	if (c->out_len != HDR_SIZE || c->in_len - 1 < VIRTIO_BLK_ID_BYTES)
		return reject(q->blk, "GET_ID buffer shorter than 20 bytes, head", r->head);
	memcpy(id, q->blk->cfg.serial, strnlen(q->blk->cfg.serial, sizeof(id)));
	vq_copy_to_chain(c, id, sizeof(id));
	r->used_len = VIRTIO_BLK_ID_BYTES + 1;
	return VIRTIO_BLK_S_OK;
}

/* DISCARD and WRITE_ZEROES: segments of struct virtio_blk_discard_write_zeroes (§5.2.6). */
static int do_ranges(struct blk_queue *q, struct blk_req *r, const struct vq_chain *c)
{
	struct virtio_blk_discard_write_zeroes seg[BLK_MAX_DISCARD_SEG];
	struct blk *b = q->blk;
	bool wz = r->type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint32_t plen = c->out_len - HDR_SIZE, nseg = plen / SEG_SIZE, i;

	if (c->in_len != 1 || !plen || plen % SEG_SIZE)
		return reject(b, "malformed discard/write-zeroes segments, bytes", plen);
	if (nseg > BLK_MAX_DISCARD_SEG)
		return reject(b, "more discard/write-zeroes segments than offered", nseg);
	if (b->cfg.ro)
		return reject(b, "discard/write-zeroes on a read-only disk, head", r->head);
	vq_copy_from_chain(c, HDR_SIZE, seg, plen);
	for (i = 0; i < nseg; i++) {
		uint64_t sector = le64toh(seg[i].sector);
		uint32_t nr = le32toh(seg[i].num_sectors), flags = le32toh(seg[i].flags);

		/* §5.2.6.2: unmap on a discard, or any reserved bit, is UNSUPP. */
		if (flags & ~(wz ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0u)) {
			b->c.unsupported++;
			return VIRTIO_BLK_S_UNSUPP;
		}
		if (nr > BLK_MAX_DISCARD_SECTORS || !in_range(b, sector, nr))
			return reject(b, "discard/write-zeroes outside the disk, sector", sector);
	}
	for (i = 0; i < nseg; i++) {
		uint32_t nr = le32toh(seg[i].num_sectors), flags = le32toh(seg[i].flags);
		int mode = FALLOC_FL_KEEP_SIZE;
		struct io_uring_sqe *sqe;

		if (!nr)
			continue;
		/* Holes read as zeros: the image stays sparse (the disk's balloon). */
		if (!wz || (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
			mode |= FALLOC_FL_PUNCH_HOLE;
		else
			mode |= FALLOC_FL_ZERO_RANGE;
		sqe = io_uring_get_sqe(&q->ring);
		io_uring_prep_fallocate(sqe, 0, mode, le64toh(seg[i].sector) * BLK_SECTOR_SIZE,
					(off_t)nr * BLK_SECTOR_SIZE);
		queue_sqe(q, r, sqe);
	}
	return r->pending ? QUEUED : VIRTIO_BLK_S_OK;
}

static int dispatch(struct blk_queue *q, struct blk_req *r, const struct vq_chain *c,
		    uint64_t sector)
{
	struct blk *b = q->blk;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		b->c.reads++;
		return do_rw(q, r, c, sector);
	case VIRTIO_BLK_T_OUT:
		b->c.writes++;
		return do_rw(q, r, c, sector);
	case VIRTIO_BLK_T_FLUSH:
		b->c.flushes++;
		return do_flush(q, r, c);
	case VIRTIO_BLK_T_GET_ID:
		b->c.get_ids++;
		return do_get_id(q, r, c);
	case VIRTIO_BLK_T_DISCARD:
		b->c.discards++;
		if (!virtio_has_feature(&b->vdev, VIRTIO_BLK_F_DISCARD))
			break;
		return do_ranges(q, r, c);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		b->c.write_zeroes++;
		if (!virtio_has_feature(&b->vdev, VIRTIO_BLK_F_WRITE_ZEROES))
			break;
		return do_ranges(q, r, c);
	}
	b->c.unsupported++;
	return VIRTIO_BLK_S_UNSUPP;
}

static void start_request(struct blk_queue *q, const struct vq_chain *c)
{
	struct blk *b = q->blk;
	struct virtio_blk_outhdr hdr;
	struct blk_req *r = &q->reqs[c->head]; /* head < queue size <= BLK_QUEUE_SIZE */
	struct iovec st;
	int ret;

	if (r->busy) {
		/* The driver republished a head still in flight: it is not completed twice. */
		guest_err(b, "request head already in flight", c->head);
		return;
	}
	if (!c->in_len || vq_chain_iov(c, true, c->in_len - 1, 1, &st, 1) != 1) {
		guest_err(b, "request without a writable status byte, head", c->head);
		push(q, c->head, 0);
		return;
	}
	r->busy = true;
	r->head = c->head;
	r->pending = 0;
	r->result = VIRTIO_BLK_S_OK;
	r->status = st.iov_base;
	r->used_len = 1;
	r->expect = 0;
	if (c->out_len < HDR_SIZE) {
		r->type = UINT32_MAX;
		ret = reject(b, "request header shorter than 16 bytes", c->out_len);
	} else {
		vq_copy_from_chain(c, 0, &hdr, sizeof(hdr));
		r->type = le32toh(hdr.type);
		ret = dispatch(q, r, c, le64toh(hdr.sector));
	}
	if (ret != QUEUED)
		finish(q, r, ret);
}

/* --- queue processing ---------------------------------------------------------------------- */

static bool queue_active(const struct blk *b, uint16_t qidx)
{
	const struct virtio_dev *dev = &b->vdev;
	unsigned int n = virtio_has_feature(dev, VIRTIO_BLK_F_MQ) ? b->cfg.nr_queues : 1;

	return qidx < n && b->q[qidx] && dev->vqs[qidx].ready &&
	       (dev->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* Come back on the next loop round (work left over, bounded per round). */
static void rearm(struct blk_queue *q)
{
	uint64_t one = 1;

	q->more = true;
	if (write(q->efd, &one, sizeof(one)) < 0)
		pr_err_ratelimited("virtio-blk: eventfd write: %s", strerror(errno));
}

/* Pop, prepare and submit with one io_uring_enter; dev->lock held. */
static void process_queue(struct blk_queue *q)
{
	struct blk *b = q->blk;
	struct virtqueue *vq = &b->vdev.vqs[q->idx];
	unsigned int n;
	struct vq_chain c;
	int ret;

	q->more = false;
	for (n = 0; n < MAX_PER_ROUND; n++) {
		/* Room for the largest request; completions resume us otherwise. */
		if (io_uring_sq_space_left(&q->ring) < BLK_MAX_DISCARD_SEG ||
		    q->inflight_sqes + BLK_MAX_DISCARD_SEG > RING_CQ) {
			q->more = true;
			break;
		}
		ret = vq_pop(vq, &c);
		if (!ret)
			break;
		if (ret == -EIO) {
			guest_err(b, "avail->idx runs more than a queue ahead, queue", q->idx);
			virtio_needs_reset(&b->vdev);
			break;
		}
		if (ret < 0) {
			b->c.rejected++;
			guest_err(b, "malformed descriptor chain, head", c.head);
			if (c.head != VQ_HEAD_NONE)
				push(q, c.head, 0);
			continue;
		}
		start_request(q, &c);
	}
	if (q->queued) {
		ret = io_uring_submit(&q->ring);
		b->c.submits++;
		if (ret > 0)
			q->queued -= MIN((unsigned int)ret, q->queued);
		if (ret < 0)
			pr_err_ratelimited("virtio-blk %s: io_uring_submit: %s", b->cfg.path,
					   strerror(-ret));
		if (q->queued)
			rearm(q);
	}
	if (n == MAX_PER_ROUND)
		rearm(q);
}

void blk_on_completion(void *opaque, int fd, uint32_t events)
{
	struct blk_queue *q = opaque;
	struct virtio_dev *dev = &q->blk->vdev;
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_err_ratelimited("virtio-blk: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&dev->lock);
	reap(q);
	if ((q->more || q->queued) && queue_active(q->blk, q->idx))
		process_queue(q);
	signal_used(q);
	pthread_mutex_unlock(&dev->lock);
}

/* Wait for every SQE in flight; their results never reach the guest (reset, teardown). */
void blk_drain(struct blk_queue *q)
{
	uint64_t deadline = now_ns() + DRAIN_TIMEOUT_MS * 1000000ULL;

	if (q->queued)
		io_uring_submit(&q->ring);
	q->queued = 0;
	while (q->inflight_sqes && now_ns() < deadline) {
		struct __kernel_timespec ts = {.tv_nsec = 100 * 1000000};
		struct io_uring_cqe *cqe;
		struct blk_req *r;

		if (io_uring_wait_cqe_timeout(&q->ring, &cqe, &ts))
			continue;
		r = io_uring_cqe_get_data(cqe);
		q->inflight_sqes--;
		if (!--r->pending)
			r->busy = r->stale = false;
		io_uring_cqe_seen(&q->ring, cqe);
	}
	for (unsigned int i = 0; i < BLK_QUEUE_SIZE; i++) {
		if (q->reqs[i].pending)
			q->reqs[i].stale = true;
		else
			q->reqs[i].busy = false;
	}
	if (q->inflight_sqes)
		pr_err("virtio-blk %s: %u requests still in flight after %d ms", q->blk->cfg.path,
		       q->inflight_sqes, DRAIN_TIMEOUT_MS);
	q->more = q->dirty = false;
}

/* Every request of @q in flight completed into the used ring (caller holds dev->lock). */
static int quiesce_queue(struct blk_queue *q, uint64_t deadline)
{
	if (q->queued) {
		int ret = io_uring_submit(&q->ring);

		if (ret > 0)
			q->queued -= MIN((unsigned int)ret, q->queued);
	}
	while (q->inflight_sqes && now_ns() < deadline) {
		struct __kernel_timespec ts = {.tv_nsec = 100 * 1000000};
		struct io_uring_cqe *cqe;

		if (!io_uring_wait_cqe_timeout(&q->ring, &cqe, &ts))
			reap(q);
	}
	reap(q);
	signal_used(q);
	return q->inflight_sqes || q->queued ? -ETIMEDOUT : 0;
}

int blk_quiesce(struct blk *b)
{
	uint64_t deadline = now_ns() + DRAIN_TIMEOUT_MS * 1000000ULL;
	int ret = 0;

	pthread_mutex_lock(&b->vdev.lock);
	for (unsigned int i = 0; i < b->cfg.nr_queues; i++)
		if (b->q[i] && quiesce_queue(b->q[i], deadline))
			ret = -ETIMEDOUT;
	pthread_mutex_unlock(&b->vdev.lock);
	if (ret)
		pr_err("virtio-blk %s: requests still in flight after %d ms", b->cfg.path,
		       DRAIN_TIMEOUT_MS);
	return ret;
}

/* --- virtio_dev_ops ------------------------------------------------------------------------ */

static uint64_t blk_get_features(struct virtio_dev *dev)
{
	struct blk *b = to_blk(dev);
	uint64_t f = (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
		     (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		     (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
		     (1ULL << VIRTIO_BLK_F_MQ);

	if (b->cfg.ro)
		f |= 1ULL << VIRTIO_BLK_F_RO;
	else
		f |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

static void blk_config_read(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len)
{
	struct blk *b = to_blk(dev);
	struct virtio_blk_config cfg = {
		.capacity = htole64(b->capacity),
		.size_max = htole32(BLK_SIZE_MAX),
		.seg_max = htole32(BLK_SEG_MAX),
		.blk_size = htole32(b->blk_size),
		.num_queues = htole16(b->cfg.nr_queues),
		.max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS),
		.max_discard_seg = htole32(BLK_MAX_DISCARD_SEG),
		.discard_sector_alignment = htole32(1),
		.max_write_zeroes_sectors = htole32(BLK_MAX_DISCARD_SECTORS),
		.max_write_zeroes_seg = htole32(BLK_MAX_DISCARD_SEG),
		.write_zeroes_may_unmap = 1,
	};

	if (off > CONFIG_SIZE || len > CONFIG_SIZE - off) {
		memset(data, 0, len);
		return;
	}
	memcpy(data, (uint8_t *)&cfg + off, len);
}

/* Every field is read-only (CONFIG_WCE is not offered). */
static void blk_config_write(struct virtio_dev *dev, uint32_t off, const void *data, uint32_t len)
{
	(void)data;
	(void)len;
	guest_err(to_blk(dev), "write to read-only virtio-blk config, offset", off);
}

static int blk_activate(struct virtio_dev *dev)
{
	struct blk *b = to_blk(dev);

	for (uint16_t i = 0; i < b->cfg.nr_queues; i++) {
		if (queue_active(b, i)) {
			process_queue(b->q[i]);
			signal_used(b->q[i]);
		}
	}
	return 0;
}

static void blk_queue_notify(struct virtio_dev *dev, uint16_t qidx)
{
	struct blk *b = to_blk(dev);

	pthread_mutex_lock(&dev->lock);
	if (!(dev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		dev->early_kicks++; /* picked up by activate */
	} else if (!queue_active(b, qidx)) {
		guest_err(b, "notify of a queue that does not exist or is not enabled", qidx);
	} else {
		process_queue(b->q[qidx]);
		signal_used(b->q[qidx]);
	}
	pthread_mutex_unlock(&dev->lock);
}

static void blk_reset(struct virtio_dev *dev)
{
	struct blk *b = to_blk(dev);

	/* The driver may reuse its buffers after reset: nothing may still write into them. */
	for (unsigned int i = 0; i < b->cfg.nr_queues; i++)
		if (b->q[i])
			blk_drain(b->q[i]);
}

const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.max_queues = 1,
	.max_queue_size = BLK_QUEUE_SIZE,
	.config_size = CONFIG_SIZE,
	.get_features = blk_get_features,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.activate = blk_activate,
	.queue_notify = blk_queue_notify,
	.reset = blk_reset,
	.save = blk_save,
	.load = blk_load,
};
