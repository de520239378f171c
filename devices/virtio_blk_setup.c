/* virtio-blk setup: the image file, one io_uring and eventfd per queue, create/destroy. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>

#include "../vmm/loop.h"
#include "../vmm/util.h"
#include "virtio.h"
#include "virtio_blk.h"
#include "virtio_blk_priv.h"

static int refuse_direct(const struct blk *b)
{
	pr_err("disk %s: cache=none: the file system refuses O_DIRECT (ramfs, tmpfs before "
	       "Linux 6.6): use cache=writeback",
	       b->cfg.path);
	return -EINVAL;
}

/* O_DIRECT may open yet fail on the first read: probe one aligned block. */
static int probe_direct(const struct blk *b)
{
	void *buf;
	ssize_t n;

	if (posix_memalign(&buf, 4096, 4096))
		return -ENOMEM;
	n = pread(b->fd, buf, MIN(4096, ALIGN_DOWN(b->capacity * BLK_SECTOR_SIZE, 512)), 0);
	free(buf);
	if (n < 0 && errno == EINVAL)
		return refuse_direct(b);
	return 0;
}

static int open_image(struct blk *b)
{
	const struct blk_config *cfg = &b->cfg;
	int flags = (cfg->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	uint64_t bytes = 0;
	struct statx stx;
	struct stat st;
	int e;

	if (cfg->cache == BLK_CACHE_NONE)
		flags |= O_DIRECT;
	b->fd = open(cfg->path, flags);
	if (b->fd < 0) {
		e = errno;
		if (e == EINVAL && cfg->cache == BLK_CACHE_NONE)
			return refuse_direct(b);
		pr_err("disk %s: %s", cfg->path, strerror(e));
		return -e;
	}
	if (fstat(b->fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		pr_err("disk %s: not a regular file or a block device", cfg->path);
		return -EINVAL;
	}
	if (S_ISREG(st.st_mode))
		bytes = st.st_size;
	else if (ioctl(b->fd, BLKGETSIZE64, &bytes) < 0) {
		e = errno;
		pr_err("disk %s: BLKGETSIZE64: %s", cfg->path, strerror(e));
		return -e;
	}
	if (bytes < BLK_SECTOR_SIZE) {
		pr_err("disk %s: %" PRIu64 " bytes, smaller than one 512-byte sector", cfg->path,
		       bytes);
		return -EINVAL;
	}
	if (bytes % BLK_SECTOR_SIZE)
		pr_warn("disk %s: the last %" PRIu64 " bytes are not a whole sector: the guest "
			"does not see them",
			cfg->path, bytes % BLK_SECTOR_SIZE);
	b->capacity = bytes / BLK_SECTOR_SIZE;
	b->blk_size = BLK_SECTOR_SIZE;
	if (cfg->cache != BLK_CACHE_NONE)
		return 0;
	/* O_DIRECT may need more than 512-byte alignment (4 KiB-sector disks): the guest then
	 * sees that logical block size and aligns its I/O to it. */
	if (!statx(b->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		uint32_t a = MAX(stx.stx_dio_offset_align, stx.stx_dio_mem_align);

		if (a > BLK_SECTOR_SIZE && a <= 4096 && !(a & (a - 1)))
			b->blk_size = a;
	}
	return probe_direct(b);
}

static int create_queue(struct blk *b, uint16_t idx)
{
	struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE, .cq_entries = RING_CQ};
	struct blk_queue *q = calloc(1, sizeof(*q));
	int ret;

	if (!q)
		return -ENOMEM;
	b->q[idx] = q;
	q->blk = b;
	q->idx = idx;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		return -errno;
	ret = io_uring_queue_init_params(RING_SQ, &q->ring, &p);
	if (ret)
		return ret;
	q->ring_ok = true;
	ret = io_uring_register_files(&q->ring, &b->fd, 1);
	if (!ret)
		ret = io_uring_register_eventfd(&q->ring, q->efd);
	if (!ret && b->loop) {
		ret = loop_add_fd(b->loop, q->efd, EPOLLIN, blk_on_completion, q);
		q->watched = !ret;
	}
	return ret;
}

static void destroy_queue(struct blk *b, struct blk_queue *q)
{
	if (!q)
		return;
	if (q->watched)
		loop_del_fd(b->loop, q->efd);
	if (q->ring_ok) {
		blk_drain(q);
		io_uring_queue_exit(&q->ring);
	}
	if (q->efd >= 0)
		close(q->efd);
	free(q);
}

int blk_create(struct guest_mem *gm, struct loop *loop, const struct blk_config *cfg,
	       struct blk **out)
{
	struct blk *b;
	int ret;

	if (!cfg->path || !cfg->nr_queues || cfg->nr_queues > VIRTIO_MAX_QUEUES)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	b->cfg.serial[VIRTIO_BLK_ID_BYTES] = '\0';
	b->loop = loop;
	b->ops = blk_ops;
	b->ops.max_queues = cfg->nr_queues;
	virtio_dev_init(&b->vdev, &b->ops, gm);
	ret = open_image(b);
	for (uint16_t i = 0; !ret && i < cfg->nr_queues; i++) {
		ret = create_queue(b, i);
		if (ret)
			pr_err("disk %s: io_uring for queue %u: %s", cfg->path, i, strerror(-ret));
	}
	if (ret) {
		blk_destroy(b);
		return ret;
	}
	*out = b;
	return 0;
}

void blk_destroy(struct blk *b)
{
	if (!b)
		return;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		destroy_queue(b, b->q[i]);
	if (b->fd >= 0)
		close(b->fd);
	pthread_mutex_destroy(&b->vdev.lock);
	free(b);
}

struct virtio_dev *blk_virtio_dev(struct blk *b)
{
	return &b->vdev;
}

void blk_get_counters(struct blk *b, struct blk_counters *out)
{
	pthread_mutex_lock(&b->vdev.lock);
	*out = b->c;
	out->capacity = b->capacity;
	out->err_count = b->vdev.err_count;
	out->features = b->vdev.driver_features;
	out->inflight = 0;
	for (unsigned int i = 0; i < b->cfg.nr_queues; i++)
		for (unsigned int j = 0; b->q[i] && j < BLK_QUEUE_SIZE; j++)
			out->inflight += b->q[i]->reqs[j].busy;
	pthread_mutex_unlock(&b->vdev.lock);
}
