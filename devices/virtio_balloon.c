#include "virtio_balloon.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "../vmm/mem/guest_mem.h"
#include "../vmm/util.h"
#include "virtio.h"
#include "virtio_balloon_priv.h"

/* --- events: delivered by a small thread so no device lock is ever held around the sink ---- */

static void *event_thread(void *arg)
{
	struct balloon_events *ev = arg;
	char data[128];

	pthread_mutex_lock(&ev->lock);
	while (!ev->stop) {
		bool change = ev->change, stats = ev->stats;
		uint64_t actual = ev->actual, target = ev->target, seq = ev->seq;
		balloon_event_fn fn = ev->fn;
		void *opaque = ev->opaque;

		if (!change && !stats) {
			pthread_cond_wait(&ev->cond, &ev->lock);
			continue;
		}
		ev->change = ev->stats = false;
		ev->busy = true;
		pthread_mutex_unlock(&ev->lock);
		if (fn && change) {
			snprintf(data, sizeof(data),
				 "{\"actual_mib\":%" PRIu64 ",\"target_mib\":%" PRIu64 "}",
				 (uint64_t)(actual * GM_PAGE_SIZE / MiB),
				 (uint64_t)(target * GM_PAGE_SIZE / MiB));
			fn(opaque, "balloon.change", data);
		}
		if (fn && stats) {
			snprintf(data, sizeof(data), "{\"seq\":%" PRIu64 "}", seq);
			fn(opaque, "balloon.stats", data);
		}
		pthread_mutex_lock(&ev->lock);
		ev->busy = false;
		pthread_cond_broadcast(&ev->idle);
	}
	pthread_mutex_unlock(&ev->lock);
	return NULL;
}

/* Queue an event; safe under dev->lock (ev.lock is innermost and the sink runs unlocked). */
static void post_change(struct balloon *b)
{
	pthread_mutex_lock(&b->ev.lock);
	if (b->ev.fn) {
		b->ev.change = true;
		b->ev.actual = b->actual;
		b->ev.target = b->num_pages;
		pthread_cond_signal(&b->ev.cond);
	}
	pthread_mutex_unlock(&b->ev.lock);
}

static void post_stats(struct balloon *b)
{
	pthread_mutex_lock(&b->ev.lock);
	if (b->ev.fn) {
		b->ev.stats = true;
		b->ev.seq = b->stats.seq;
		pthread_cond_signal(&b->ev.cond);
	}
	pthread_mutex_unlock(&b->ev.lock);
}

/* --- queue index mapping ------------------------------------------------------------------ */

static bool queue_exists(const struct virtio_dev *dev, enum bq q)
{
	switch (q) {
	case BQ_STATS:
		return virtio_has_feature(dev, VIRTIO_BALLOON_F_STATS_VQ);
	case BQ_FREE_PAGE:
		return virtio_has_feature(dev, VIRTIO_BALLOON_F_FREE_PAGE_HINT);
	case BQ_REPORTING:
		return virtio_has_feature(dev, VIRTIO_BALLOON_F_REPORTING);
	default:
		return true;
	}
}

/* Linux find_vqs() skips queues whose feature is off: transport indices count only the rest. */
static int queue_role(const struct virtio_dev *dev, uint16_t qidx)
{
	unsigned int q, idx = 0;

	for (q = 0; q < BQ_NR; q++) {
		if (!queue_exists(dev, q))
			continue;
		if (idx++ == qidx)
			return q;
	}
	return -1;
}

int balloon_queue_index(const struct virtio_dev *dev, enum bq role)
{
	unsigned int q, idx = 0;

	for (q = 0; q < role; q++)
		idx += queue_exists(dev, q);
	return queue_exists(dev, role) ? (int)idx : -1;
}

static void complete(struct balloon *b, uint16_t qidx, uint16_t head)
{
	int ret;

	if (head == VQ_HEAD_NONE)
		return;
	ret = virtio_complete(&b->vdev, qidx, head, 0);
	if (ret)
		balloon_guest_err(b, "cannot complete a buffer", (uint64_t)-ret);
}

/* --- stats (§5.5.6.3) --------------------------------------------------------------------- */

static void handle_stats(struct balloon *b, uint16_t qidx, const struct vq_chain *c)
{
	uint8_t ent[STAT_SIZE];
	unsigned int i, n;

	if (c->n_in) {
		balloon_guest_err(b, "device-writable stats buffer, head", c->head);
		complete(b, qidx, c->head);
		return;
	}
	if (b->stats_held) {
		/* The driver keeps exactly one buffer queued; give the old one back. */
		balloon_guest_err(b, "second stats buffer, head", c->head);
		complete(b, qidx, b->stats_head);
	}
	if (c->out_len % STAT_SIZE)
		balloon_guest_err(b, "stats buffer length not a multiple of 10", c->out_len);
	n = MIN(c->out_len / STAT_SIZE, MAX_STATS_PARSED);
	memset(b->stats.valid, 0, sizeof(b->stats.valid));
	for (i = 0; i < n; i++) {
		uint16_t tag;
		uint64_t val;

		vq_copy_from_chain(c, i * STAT_SIZE, ent, sizeof(ent));
		memcpy(&tag, ent, sizeof(tag));
		memcpy(&val, ent + sizeof(tag), sizeof(val));
		tag = le16toh(tag);
		if (tag >= BALLOON_NR_STAT_TAGS)
			continue; /* newer guests may send tags we do not know: not an error */
		b->stats.valid[tag] = true;
		b->stats.val[tag] = le64toh(val);
	}
	b->stats.seq++;
	b->stats.received_ns = now_ns();
	b->stats_held = true;
	b->stats_head = c->head;
	post_stats(b);
}

/* --- free page reporting (§5.5.6.5) ------------------------------------------------------- */

struct range {
	uint64_t start, end; /* GPA, page aligned */
};

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Each device-writable buffer is one free range (Linux page_reporting's scatterlist). */
static void handle_report(struct balloon *b, const struct vq_chain *c)
{
	struct range r[VQ_MAX_BUFS];
	unsigned int i, n = 0;

	if (c->n_out || !c->n_in) {
		balloon_guest_err(b, "reporting buffer is not device-writable, head", c->head);
		return;
	}
	for (i = 0; i < c->n_in; i++) {
		const struct vq_buf *buf = &c->bufs[i];
		uint64_t s = ALIGN_UP(buf->gpa, GM_PAGE_SIZE);
		uint64_t e = ALIGN_DOWN(buf->gpa + buf->len, GM_PAGE_SIZE);

		/* vq_pop proved [gpa, gpa + len) is RAM; only whole 4 KiB pages are dropped. */
		if (e > s && s >= buf->gpa)
			r[n++] = (struct range){s, e};
	}
	qsort(r, n, sizeof(r[0]), cmp_range);
	for (i = 0; i < n;) {
		uint64_t s = r[i].start, e = r[i].end;
		int ret;

		for (i++; i < n && r[i].start <= e; i++)
			e = MAX(e, r[i].end);
		ret = gm_discard(b->vdev.gm, s >> GM_PAGE_SHIFT, (e - s) >> GM_PAGE_SHIFT,
				 GM_PAGE_REPORTED);
		b->discard_ranges++;
		if (ret)
			balloon_guest_err(b, "reported range not discarded, gpa", s);
		else
			b->reported_bytes += e - s;
	}
}

/* --- queue processing --------------------------------------------------------------------- */

/*
 * Process queue @qidx, at most one notification's budget (devices/virtio.h): at the budget the
 * transport notifies the queue again on the next loop turn. Before DRIVER_OK (@early) buffers are
 * completed without acting on them: the host does not give memory away on the word of a driver that
 * has not finished setup. The stats buffer is the exception: Linux primes it during probe and
 * expects it to be held.
 */
static void process_queue(struct balloon *b, uint16_t qidx, int role, bool early)
{
	struct virtqueue *vq = &b->vdev.vqs[qidx];
	struct pfn_work *w = role == BQ_INFLATE || role == BQ_DEFLATE ? &b->work[role] : NULL;
	struct virtio_budget budget;
	struct vq_chain c;
	int ret;

	virtio_budget_begin(&b->vdev, &budget);
	if (w && w->active) {
		/* A buffer the budget stopped half-way: finish it first. */
		if (!balloon_run_pfns(b, w, &budget)) {
			virtio_budget_yield(&b->vdev, qidx);
			return;
		}
		w->active = false;
		complete(b, qidx, w->head);
		if (!virtio_budget_spend(&b->vdev, &budget, qidx))
			return;
	}
	for (;;) {
		ret = vq_pop(vq, &c);
		if (!ret)
			return;
		if (ret == -EIO) {
			/* The ring is no longer trustworthy: stop the device until a reset. */
			balloon_guest_err(b, "avail->idx runs more than a queue ahead, queue",
					  qidx);
			virtio_needs_reset(&b->vdev);
			return;
		}
		if (ret < 0) {
			balloon_guest_err(b, "malformed descriptor chain, head", c.head);
			complete(b, qidx, c.head);
		} else if (role == BQ_STATS) {
			handle_stats(b, qidx, &c);
		} else {
			if (early) {
				/* completed without acting on it */
			} else if (w) {
				if (balloon_start_pfns(b, &c, role == BQ_INFLATE, w) &&
				    !balloon_run_pfns(b, w, &budget)) {
					w->active = true; /* completed once the rest is applied */
					virtio_budget_yield(&b->vdev, qidx);
					return;
				}
			} else if (role == BQ_REPORTING) {
				handle_report(b, &c);
			} else {
				balloon_guest_err(b, "buffer on the free page hint queue, head",
						  c.head);
			}
			complete(b, qidx, c.head);
		}
		/* Bounded work per notification: the rest waits for the next loop turn. */
		if (!virtio_budget_spend(&b->vdev, &budget, qidx))
			return;
	}
}

/* --- virtio_dev_ops ----------------------------------------------------------------------- */

static uint64_t balloon_get_features(struct virtio_dev *dev)
{
	struct balloon *b = to_balloon(dev);
	uint64_t f = (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);

	if (b->cfg.stats)
		f |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
	if (b->cfg.deflate_on_oom)
		f |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (b->cfg.free_page_reporting)
		f |= 1ULL << VIRTIO_BALLOON_F_REPORTING;
	return f;
}

static void balloon_config_read(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len)
{
	struct balloon *b = to_balloon(dev);
	struct virtio_balloon_config cfg = {
		.num_pages = htole32(b->num_pages),
		.actual = htole32(b->actual),
	};

	if (off > sizeof(cfg) || len > sizeof(cfg) - off) {
		memset(data, 0, len);
		return;
	}
	memcpy(data, (uint8_t *)&cfg + off, len);
}

/* §5.5.4: `actual` is the only field the driver may write; Linux writes it as one le32. */
static void balloon_config_write(struct virtio_dev *dev, uint32_t off, const void *data,
				 uint32_t len)
{
	const uint32_t a_off = offsetof(struct virtio_balloon_config, actual);
	struct balloon *b = to_balloon(dev);
	uint32_t actual_le = htole32(b->actual), i;
	bool stray = false;

	for (i = 0; i < len; i++) {
		uint64_t at = (uint64_t)off + i;

		if (at >= a_off && at < a_off + sizeof(actual_le))
			((uint8_t *)&actual_le)[at - a_off] = ((const uint8_t *)data)[i];
		else
			stray = true;
	}
	if (stray)
		balloon_guest_err(b, "write to read-only balloon config, offset", off);
	if (le32toh(actual_le) != b->actual) {
		b->actual = le32toh(actual_le);
		post_change(b);
	}
}

static int balloon_activate(struct virtio_dev *dev)
{
	struct balloon *b = to_balloon(dev);
	uint16_t q;

	/* Pick up what was queued before DRIVER_OK (the primed stats buffer, early kicks). */
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		int role = queue_role(dev, q);

		if (role >= 0 && dev->vqs[q].ready)
			process_queue(b, q, role, false);
	}
	return 0;
}

static void balloon_queue_notify(struct virtio_dev *dev, uint16_t qidx)
{
	struct balloon *b = to_balloon(dev);
	int role;

	pthread_mutex_lock(&dev->lock);
	role = qidx < VIRTIO_MAX_QUEUES ? queue_role(dev, qidx) : -1;
	if (!(dev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		dev->early_kicks++;
		pr_debug("virtio-balloon: queue %u notified before DRIVER_OK", qidx);
		if (role >= 0 && dev->vqs[qidx].ready)
			process_queue(b, qidx, role, true);
	} else if (role < 0 || !dev->vqs[qidx].ready) {
		balloon_guest_err(b, "notify of a queue that does not exist or is not enabled",
				  qidx);
	} else {
		process_queue(b, qidx, role, false);
	}
	pthread_mutex_unlock(&dev->lock);
}

static void balloon_reset(struct virtio_dev *dev)
{
	struct balloon *b = to_balloon(dev);

	b->stats_held = false;
	b->work[0].active = b->work[1].active = false; /* their queues are gone */
	/* The driver is gone: pages it had ballooned or reported are its own again. */
	if (dev->gm)
		gm_clear_discarded_all(dev->gm, NULL);
	if (b->actual) {
		b->actual = 0;
		post_change(b);
	}
}

static const struct virtio_dev_ops balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.max_queues = BQ_NR,
	.max_queue_size = 256,
	.config_size = sizeof(struct virtio_balloon_config),
	.get_features = balloon_get_features,
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.activate = balloon_activate,
	.queue_notify = balloon_queue_notify,
	.notify_on_vcpu = true, /* the driver waits on each buffer: no loop-thread wakeup */
	.reset = balloon_reset,
	.save = balloon_save,
	.load = balloon_load,
};

/* --- public API --------------------------------------------------------------------------- */

struct balloon *balloon_create(struct guest_mem *gm, const struct balloon_config *cfg)
{
	struct balloon *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->cfg = *cfg;
	virtio_dev_init(&b->vdev, &balloon_ops, gm);
	pthread_mutex_init(&b->ev.lock, NULL);
	pthread_cond_init(&b->ev.cond, NULL);
	pthread_cond_init(&b->ev.idle, NULL);
	return b;
}

void balloon_destroy(struct balloon *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->ev.lock);
	b->ev.stop = true;
	pthread_cond_signal(&b->ev.cond);
	pthread_mutex_unlock(&b->ev.lock);
	if (b->ev.running)
		pthread_join(b->ev.thread, NULL);
	pthread_cond_destroy(&b->ev.cond);
	pthread_cond_destroy(&b->ev.idle);
	pthread_mutex_destroy(&b->ev.lock);
	pthread_mutex_destroy(&b->vdev.lock);
	free(b);
}

struct virtio_dev *balloon_virtio_dev(struct balloon *b)
{
	return &b->vdev;
}

void balloon_quiesce(struct balloon *b)
{
	struct balloon_events *ev = &b->ev;

	pthread_mutex_lock(&ev->lock);
	while (ev->busy || (ev->running && !ev->stop && (ev->change || ev->stats)))
		pthread_cond_wait(&ev->idle, &ev->lock);
	pthread_mutex_unlock(&ev->lock);
}

void balloon_set_event_sink(struct balloon *b, balloon_event_fn fn, void *opaque)
{
	pthread_mutex_lock(&b->ev.lock);
	b->ev.fn = fn;
	b->ev.opaque = opaque;
	if (fn && !b->ev.running) {
		if (vmm_thread_create_role(&b->ev.thread, VMM_THREAD_EVENTS, event_thread, &b->ev))
			pr_err("virtio-balloon: cannot start the event thread; events are lost");
		else
			b->ev.running = true;
	}
	pthread_mutex_unlock(&b->ev.lock);
}

int balloon_set_target(struct balloon *b, uint64_t num_pages)
{
	struct virtio_dev *dev = &b->vdev;

	if (num_pages > UINT32_MAX || (dev->gm && num_pages > dev->gm->nr_pages))
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	b->num_pages = num_pages;
	if ((dev->status & VIRTIO_CONFIG_S_DRIVER_OK) && dev->transport &&
	    dev->transport->signal_config)
		dev->transport->signal_config(dev);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

void balloon_get_counters(struct balloon *b, struct balloon_counters *out)
{
	pthread_mutex_lock(&b->vdev.lock);
	*out = (struct balloon_counters){
		.target_pages = b->num_pages,
		.actual_pages = b->actual,
		.inflated_pages = b->inflated_pages,
		.deflated_pages = b->deflated_pages,
		.reported_bytes = b->reported_bytes,
		.discard_ranges = b->discard_ranges,
		.err_count = b->vdev.err_count,
		.features = b->vdev.driver_features,
	};
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (!b->vdev.vqs[i].size)
			continue;
		vq_get_state(&b->vdev.vqs[i], &out->queues[i]);
		out->nr_queues = i + 1;
	}
	pthread_mutex_unlock(&b->vdev.lock);
}

int balloon_request_stats(struct balloon *b)
{
	struct virtio_dev *dev = &b->vdev;
	int ret = 0, qidx;

	pthread_mutex_lock(&dev->lock);
	qidx = balloon_queue_index(dev, BQ_STATS);
	if (qidx < 0) {
		ret = -ENOTSUP;
	} else if (!b->stats_held) {
		ret = -EAGAIN;
	} else {
		b->stats_held = false;
		complete(b, qidx, b->stats_head);
	}
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

void balloon_get_stats(struct balloon *b, struct balloon_stats *out)
{
	pthread_mutex_lock(&b->vdev.lock);
	*out = b->stats;
	pthread_mutex_unlock(&b->vdev.lock);
}

void balloon_stats_tick(struct balloon *b)
{
	if (b->cfg.stats_period_s)
		balloon_request_stats(b);
}
