/*
 * virtio-balloon snapshot state (virtio_dev_ops.save/load): the config (num_pages, actual), the
 * latest stats set and the held stats buffer, inflate/deflate buffers the kick budget stopped
 * half-way, and the counters. The per-page state (which pages are ballooned) is the memory
 * layer's, saved and restored with the memory file (vmm/snapshot/memory.c: its state map, loaded
 * before the devices); reported pages are not kept there, the guest reuses them unannounced.
 */
#include <errno.h>

#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <string.h>

#include "../vmm/mem/guest_mem.h"
#include "../vmm/state.h"
#include "../vmm/util.h"
#include "virtio_balloon_priv.h"

int balloon_save(struct virtio_dev *dev, struct state_out *o)
{
	struct balloon *b = to_balloon(dev);
	uint16_t valid = 0;

	state_put_u32(o, b->num_pages);
	state_put_u32(o, b->actual);
	state_put_u64(o, b->stats.seq);
	for (unsigned int t = 0; t < BALLOON_NR_STAT_TAGS; t++)
		valid |= (uint16_t)(b->stats.valid[t] << t);
	state_put_u16(o, valid);
	for (unsigned int t = 0; t < BALLOON_NR_STAT_TAGS; t++)
		state_put_u64(o, b->stats.val[t]);
	state_put_bool(o, b->stats_held);
	state_put_u16(o, b->stats_head);
	for (unsigned int i = 0; i < 2; i++) {
		const struct pfn_work *w = &b->work[i];

		state_put_bool(o, w->active);
		if (!w->active)
			continue;
		state_put_u16(o, w->head);
		state_put_u16(o, (uint16_t)w->next);
		state_put_u16(o, (uint16_t)w->k);
		for (unsigned int k = 0; k < w->k; k++)
			state_put_u64(o, w->pfns[k]);
	}
	state_put_u64(o, b->inflated_pages);
	state_put_u64(o, b->deflated_pages);
	state_put_u64(o, b->reported_bytes);
	state_put_u64(o, b->discard_ranges);
	return state_out_error(o);
}

/* A chain head the device holds on transport queue @qidx: the queue must be ready. */
static bool head_ok(const struct virtio_dev *dev, int qidx, uint16_t head)
{
	return qidx >= 0 && qidx < VIRTIO_MAX_QUEUES && dev->vqs[qidx].ready &&
	       head < dev->vqs[qidx].size;
}

static bool pfn_ok(struct guest_mem *gm, uint64_t pfn, uint64_t n)
{
	return n && pfn < (1ULL << 40) && n <= gm->nr_pages &&
	       gm_ptr(gm, pfn << GM_PAGE_SHIFT, n << GM_PAGE_SHIFT);
}

/* Parse into a copy and commit it only when valid: a refused state leaves no half-loaded work
 * behind (a later save would read w->k PFNs past the array). */
static int load_work_into(struct balloon *b, unsigned int i, struct state_in *in,
			  struct pfn_work *w)
{

	w->active = state_get_bool(in);
	if (!w->active)
		return state_in_error(in);
	w->inflate = i == BQ_INFLATE;
	w->head = state_get_u16(in);
	w->next = state_get_u16(in);
	w->k = state_get_u16(in);
	if (state_in_error(in))
		return state_in_error(in);
	if (w->k > PFNS_PER_BUF || w->next > w->k)
		return state_fail(in, "balloon: bad inflate/deflate progress");
	if (!head_ok(&b->vdev, (int)i, w->head))
		return state_fail(in, "balloon: held inflate/deflate buffer not on a ready queue");
	for (unsigned int k = 0; k < w->k; k++) {
		w->pfns[k] = state_get_u64(in);
		if (!state_in_error(in) &&
		    (!pfn_ok(b->vdev.gm, w->pfns[k], 1) || (k && w->pfns[k] < w->pfns[k - 1])))
			return state_fail(in, "balloon: held PFN outside RAM or unsorted");
	}
	return state_in_error(in);
}

static int load_work(struct balloon *b, unsigned int i, struct state_in *in)
{
	struct pfn_work w; /* 2 KiB */
	int ret;

	memset(&w, 0, sizeof(w));
	ret = load_work_into(b, i, in, &w);
	if (ret) {
		b->work[i].active = false;
		b->work[i].k = b->work[i].next = 0;
		return ret;
	}
	b->work[i] = w;
	return 0;
}

int balloon_load(struct virtio_dev *dev, struct state_in *in)
{
	struct balloon *b = to_balloon(dev);
	uint32_t num_pages = state_get_u32(in), actual = state_get_u32(in);
	uint16_t valid;

	b->stats.seq = state_get_u64(in);
	valid = state_get_u16(in);
	for (unsigned int t = 0; t < BALLOON_NR_STAT_TAGS; t++) {
		b->stats.valid[t] = valid & (1u << t);
		b->stats.val[t] = state_get_u64(in);
	}
	b->stats.received_ns = b->stats.seq ? now_ns() : 0; /* its age is not carried over */
	b->stats_held = state_get_bool(in);
	b->stats_head = state_get_u16(in);
	if (state_in_error(in))
		return state_in_error(in);
	if (dev->gm && num_pages > dev->gm->nr_pages)
		return state_fail(in, "balloon: num_pages above guest RAM");
	if (b->stats_held && !head_ok(dev, balloon_queue_index(dev, BQ_STATS), b->stats_head))
		return state_fail(in, "balloon: held stats buffer not on a ready stats queue");
	b->num_pages = num_pages;
	b->actual = actual;
	for (unsigned int i = 0; i < 2; i++)
		if (load_work(b, i, in))
			return state_in_error(in);
	b->inflated_pages = state_get_u64(in);
	b->deflated_pages = state_get_u64(in);
	b->reported_bytes = state_get_u64(in);
	b->discard_ranges = state_get_u64(in);
	return state_in_error(in);
}
