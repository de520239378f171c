/*
 * The compressed tier's page-selection policy: a WSClock-style clock over the guest's page-state
 * map (design.md "Guest memory and host reclamation", step 4). Pure: no threads and no host
 * calls, so tests drive it directly; the tier (memtier.c) feeds it and acts on its answers.
 *
 * Each page has a byte of clock flags. "Referenced" comes from three feeds: refaults (a page the
 * tier had evicted was touched again), KVM dirty logging (pages the guest wrote) and idle-page
 * tracking (pages accessed since the hand last passed, where the host has
 * /sys/kernel/mm/page_idle). The hand sweeps in 2 MiB chunks; a referenced page gets a second
 * chance (its bit is cleared), an unreferenced one is a victim. A reclaim that cannot reach its
 * target in one revolution goes on ignoring references from the third revolution on (the target is
 * the contract), and pages that failed to compress are skipped except on every eighth revolution.
 */
#ifndef VMM_MEM_WSCLOCK_H
#define VMM_MEM_WSCLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define WSC_REF	       0x01 /* referenced since the hand last passed */
#define WSC_IDLE_ARMED 0x02 /* the idle bit was set when the hand last passed */
#define WSC_INCOMP     0x04 /* did not compress below 3/4 at the last try */
#define WSC_CHUNK      512u /* pages per step of the hand (2 MiB) */
#define WSC_RETRY_REV  8u   /* incompressible pages are retried every this many revolutions */

/* What the hand decides for a page (wsc_visit()). */
enum wsc_verdict {
	WSC_KEEP_HOT,	 /* referenced: second chance */
	WSC_KEEP_INCOMP, /* failed to compress recently: not retried this revolution */
	WSC_EVICT,	 /* cold: compress and drop it */
};

/* What idle-page tracking says of a page at this visit. */
enum wsc_idle { WSC_IDLE_UNKNOWN = -1, WSC_IDLE_ACCESSED = 0, WSC_IDLE_IDLE = 1 };

struct wsclock {
	uint64_t nr_pages;
	uint8_t *flags;		 /* nr_pages bytes of WSC_* */
	uint64_t hand;		 /* next page the hand visits */
	uint64_t revolutions;	 /* completed since creation */
	uint64_t refs_fed;	 /* wsc_ref() calls, all feeds */
	uint64_t second_chances; /* victims spared because referenced */
};

/** wsc_init() - a clock over @nr_pages pages, hand at 0. Returns 0 or -ENOMEM. */
int wsc_init(struct wsclock *c, uint64_t nr_pages);

/** wsc_destroy() - free @c's flags; safe on a zeroed clock. */
void wsc_destroy(struct wsclock *c);

/** wsc_ref() - mark page @idx referenced (refault, dirty log). Thread-safe (atomic OR). */
void wsc_ref(struct wsclock *c, uint64_t idx);

/**
 * wsc_ref_bitmap() - mark referenced every page whose bit is set in @bits (little-endian 64-bit
 * words, KVM_GET_DIRTY_LOG layout), bit i standing for page @first + i, @nbits bits.
 * Thread-safe.
 */
void wsc_ref_bitmap(struct wsclock *c, uint64_t first, const uint64_t *bits, uint64_t nbits);

/** wsc_set_incompressible() - remember that page @idx did (or did not) compress. */
void wsc_set_incompressible(struct wsclock *c, uint64_t idx, bool incomp);

/**
 * wsc_visit() - the hand passes page @idx during revolution @pass of the current reclaim (0 for
 * the first). @idle: what idle-page tracking says (WSC_IDLE_UNKNOWN without it); it only counts
 * when the page was armed at the previous visit, and the page is armed again now.
 * Clears the page's referenced bit. Returns the verdict.
 */
enum wsc_verdict wsc_visit(struct wsclock *c, uint64_t idx, unsigned int pass, enum wsc_idle idle);

/**
 * wsc_next_chunk() - the chunk the hand is at: sets *@first and returns the number of pages
 * (at most WSC_CHUNK), and advances the hand past it. *@wrapped is set when this completed a
 * revolution (the hand went back to page 0).
 */
uint64_t wsc_next_chunk(struct wsclock *c, uint64_t *first, bool *wrapped);

#endif
