/* virtio-balloon inflate and deflate buffers (virtio 1.2 §5.5.6.1), see virtio_balloon_priv.h. */
#include <endian.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../vmm/mem/guest_mem.h"
#include "../vmm/util.h"
#include "virtio_balloon_priv.h"

void balloon_guest_err(struct balloon *b, const char *what, uint64_t arg)
{
	b->vdev.err_count++;
	pr_err_ratelimited("virtio-balloon: %s (0x%" PRIx64 ")", what, arg);
}

/* --- inflate / deflate (§5.5.6.1) --------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* One memory-layer call per run of consecutive PFNs (style rule 6). */
static void apply_range(struct balloon *b, bool inflate, uint64_t pfn, uint64_t n)
{
	int ret;

	if (inflate) {
		ret = gm_discard(b->vdev.gm, pfn, n, GM_PAGE_BALLOONED);
		b->discard_ranges++;
		if (!ret)
			b->inflated_pages += n;
	} else {
		ret = gm_clear_discarded(b->vdev.gm, pfn, n);
		if (!ret)
			b->deflated_pages += n;
	}
	if (ret)
		pr_err_ratelimited("virtio-balloon: %s of pfn 0x%" PRIx64 "+%" PRIu64 ": %s",
				   inflate ? "discard" : "reclaim", pfn, n, strerror(-ret));
}

/* Validate, copy and sort the chain's PFNs into @w. Returns false for a malformed buffer. */
bool balloon_start_pfns(struct balloon *b, const struct vq_chain *c, bool inflate,
			struct pfn_work *w)
{
	uint32_t raw[PFNS_PER_BUF];
	unsigned int i, n;

	if (c->n_in || c->out_len % sizeof(uint32_t) || c->out_len > sizeof(raw)) {
		balloon_guest_err(b, "malformed inflate/deflate buffer, length", c->out_len);
		return false;
	}
	n = vq_copy_from_chain(c, 0, raw, c->out_len) / sizeof(uint32_t);
	w->k = w->next = 0;
	w->inflate = inflate;
	w->head = c->head;
	for (i = 0; i < n; i++) {
		uint64_t pfn = le32toh(raw[i]);

		if (!gm_ptr(b->vdev.gm, pfn << GM_PAGE_SHIFT, GM_PAGE_SIZE)) {
			balloon_guest_err(b, "PFN outside guest RAM", pfn);
			continue;
		}
		w->pfns[w->k++] = pfn;
	}
	qsort(w->pfns, w->k, sizeof(w->pfns[0]), cmp_u64);
	return true;
}

/*
 * Apply @w's remaining runs; true when all are done. Stops early (false) between two runs once
 * the notification's time budget ran out, having applied at least one.
 */
bool balloon_run_pfns(struct balloon *b, struct pfn_work *w, const struct virtio_budget *budget)
{
	while (w->next < w->k) {
		uint64_t first = w->pfns[w->next], last = first;

		/* Extend the run over duplicates and consecutive PFNs. */
		for (w->next++; w->next < w->k && w->pfns[w->next] <= last + 1; w->next++)
			last = w->pfns[w->next];
		apply_range(b, w->inflate, first, last - first + 1);
		if (w->next < w->k && virtio_budget_expired(&b->vdev, budget))
			return false;
	}
	return true;
}
