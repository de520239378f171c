#include "wsclock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int wsc_init(struct wsclock *c, uint64_t nr_pages)
{
	memset(c, 0, sizeof(*c));
	c->flags = calloc(nr_pages ? nr_pages : 1, 1);
	if (!c->flags)
		return -ENOMEM;
	c->nr_pages = nr_pages;
	return 0;
}

void wsc_destroy(struct wsclock *c)
{
	free(c->flags);
	memset(c, 0, sizeof(*c));
}

void wsc_ref(struct wsclock *c, uint64_t idx)
{
	if (idx >= c->nr_pages)
		return;
	__atomic_or_fetch(&c->flags[idx], WSC_REF, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->refs_fed, 1, __ATOMIC_RELAXED);
}

void wsc_ref_bitmap(struct wsclock *c, uint64_t first, const uint64_t *bits, uint64_t nbits)
{
	for (uint64_t w = 0; w < (nbits + 63) / 64; w++) {
		uint64_t v = bits[w];

		while (v) {
			uint64_t i = w * 64 + (uint64_t)__builtin_ctzll(v);

			v &= v - 1;
			if (i < nbits)
				wsc_ref(c, first + i);
		}
	}
}

void wsc_set_incompressible(struct wsclock *c, uint64_t idx, bool incomp)
{
	if (idx >= c->nr_pages)
		return;
	if (incomp)
		__atomic_or_fetch(&c->flags[idx], WSC_INCOMP, __ATOMIC_RELAXED);
	else
		__atomic_and_fetch(&c->flags[idx], (uint8_t)~WSC_INCOMP, __ATOMIC_RELAXED);
}

enum wsc_verdict wsc_visit(struct wsclock *c, uint64_t idx, unsigned int pass, enum wsc_idle idle)
{
	uint8_t f, keep;
	bool ref;

	if (idx >= c->nr_pages)
		return WSC_KEEP_HOT;
	/* Take the referenced bit atomically: the feeds set it from other threads. */
	f = __atomic_fetch_and(&c->flags[idx], (uint8_t) ~(WSC_REF | WSC_IDLE_ARMED),
			       __ATOMIC_RELAXED);
	ref = f & WSC_REF;
	if ((f & WSC_IDLE_ARMED) && idle == WSC_IDLE_ACCESSED)
		ref = true;
	keep = idle != WSC_IDLE_UNKNOWN ? WSC_IDLE_ARMED : 0;
	if (keep)
		__atomic_or_fetch(&c->flags[idx], keep, __ATOMIC_RELAXED);
	if ((f & WSC_INCOMP) && (c->revolutions + 1) % WSC_RETRY_REV)
		return WSC_KEEP_INCOMP;
	if (ref && pass < 2) {
		c->second_chances++;
		return WSC_KEEP_HOT;
	}
	return WSC_EVICT;
}

uint64_t wsc_next_chunk(struct wsclock *c, uint64_t *first, bool *wrapped)
{
	uint64_t n;

	*wrapped = false;
	if (!c->nr_pages) {
		*first = 0;
		return 0;
	}
	if (c->hand >= c->nr_pages)
		c->hand = 0;
	*first = c->hand;
	n = c->nr_pages - c->hand;
	if (n > WSC_CHUNK - c->hand % WSC_CHUNK)
		n = WSC_CHUNK - c->hand % WSC_CHUNK;
	c->hand += n;
	if (c->hand >= c->nr_pages) {
		c->hand = 0;
		c->revolutions++;
		*wrapped = true;
	}
	return n;
}
