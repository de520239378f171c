/*
 * virtio-balloon snapshot state (virtio_dev_ops.save/load): the config (num_pages, actual), the
 * latest stats set and the held stats buffer, inflate/deflate buffers the kick budget stopped
 * half-way, the counters, and the per-page state of ballooned and reported pages as runs of
 * PFNs (re-applied with gm_discard on load, so the memory layer's map and counters agree).
 */
#include <errno.h>

#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>

#include "../vmm/mem/guest_mem.h"
#include "../vmm/state.h"
#include "../vmm/util.h"
#include "virtio_balloon_priv.h"

#define MAX_RUNS (1u << 24) /* bounds a hostile run count before it is checked page by page */

static void put_run(struct state_out *o, uint64_t pfn, uint64_t n, uint8_t st, uint32_t *runs)
{
	state_put_u64(o, pfn);
	state_put_u64(o, n);
	state_put_u8(o, st);
	(*runs)++;
}

/* Runs of BALLOONED / REPORTED pages, region by region (PFN = GPA >> 12). */
static void save_pages(struct guest_mem *gm, struct state_out *o)
{
	size_t at;
	uint32_t runs = 0;

	state_put_u32(o, 0); /* patched below */
	at = o->len - 4;
	if (!gm || !gm->state)
		return;
	pthread_mutex_lock(&gm->lock);
	for (unsigned int i = 0; i < gm->nr_regions; i++) {
		const struct gm_region *r = &gm->regions[i];
		uint64_t lo = MAX(r->first_pg, gm->balloon_lo);
		uint64_t end = MIN(r->first_pg + r->size / GM_PAGE_SIZE, gm->balloon_hi);
		uint64_t base = r->gpa / GM_PAGE_SIZE - r->first_pg, start = 0;
		uint8_t cur = GM_PAGE_RESIDENT;

		for (uint64_t idx = lo; idx < end; idx++) {
			uint8_t st = gm->state[idx];

			if (st != GM_PAGE_BALLOONED && st != GM_PAGE_REPORTED)
				st = GM_PAGE_RESIDENT;
			if (st == cur)
				continue;
			if (cur != GM_PAGE_RESIDENT)
				put_run(o, base + start, idx - start, cur, &runs);
			cur = st;
			start = idx;
		}
		if (cur != GM_PAGE_RESIDENT && end > start)
			put_run(o, base + start, end - start, cur, &runs);
	}
	pthread_mutex_unlock(&gm->lock);
	if (!state_out_error(o))
		for (int k = 0; k < 4; k++)
			o->data[at + k] = (uint8_t)(runs >> (8 * k));
}

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
	save_pages(dev->gm, o);
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

static int load_work(struct balloon *b, unsigned int i, struct state_in *in)
{
	struct pfn_work *w = &b->work[i];

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

static int load_pages(struct balloon *b, struct state_in *in)
{
	struct guest_mem *gm = b->vdev.gm;
	uint32_t runs = state_get_u32(in);
	uint64_t end = 0;

	if (runs > MAX_RUNS || (runs && !gm))
		return state_fail(in, "balloon: too many page runs");
	for (uint32_t i = 0; i < runs && !state_in_error(in); i++) {
		uint64_t pfn = state_get_u64(in), n = state_get_u64(in);
		uint8_t st = state_get_u8(in);

		if (state_in_error(in))
			break;
		if ((st != GM_PAGE_BALLOONED && st != GM_PAGE_REPORTED) || !pfn_ok(gm, pfn, n) ||
		    pfn < end)
			return state_fail(in, "balloon: bad page run");
		end = pfn + n;
		if (gm_discard(gm, pfn, n, st))
			return state_fail(in, "balloon: page run not discarded");
	}
	return state_in_error(in);
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
	if (state_in_error(in))
		return state_in_error(in);
	return load_pages(b, in);
}
