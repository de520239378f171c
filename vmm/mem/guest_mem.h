/*
 * Guest RAM: the host mapping, the one bounds-checked accessor, discard and the per-page state map.
 *
 * Layout (GPA): RAM from 0 up to min(size, GM_LOW_RAM_MAX); the rest from 4 GiB up. The gap
 * [GM_LOW_RAM_MAX, 4 GiB) holds the PCI MMIO window, the IOAPIC and the LAPIC. Both regions live
 * in one private anonymous host mapping (KSM merges only private anonymous memory).
 * Pages are 4 KiB (GM_PAGE_SIZE) everywhere in this API, whatever the host page size.
 */
#ifndef VMM_MEM_GUEST_MEM_H
#define VMM_MEM_GUEST_MEM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GM_PAGE_SHIFT  12
#define GM_PAGE_SIZE   (1ULL << GM_PAGE_SHIFT)
#define GM_LOW_RAM_MAX 0xC0000000ULL /* 3 GiB: RAM below the 32-bit MMIO hole */
#define GM_HIGH_BASE   0x100000000ULL

/* Where a guest page lives; the single source of truth (design.md, "Guest memory"). */
enum gm_page_state {
	GM_PAGE_RESIDENT = 0, /* normal: backed by (possibly not yet faulted) anonymous memory */
	GM_PAGE_BALLOONED,    /* handed to the host by balloon inflate; discarded */
	GM_PAGE_REPORTED,     /* free page reported by the guest; discarded */
	GM_PAGE_COMPRESSED,   /* held by the compressed tier */
};

struct gm_region {
	uint64_t gpa;	   /* first guest-physical address */
	uint64_t size;	   /* bytes */
	uint8_t *hva;	   /* host address of gpa */
	uint64_t first_pg; /* index of this region's first page in the state map */
};

struct guest_mem {
	struct gm_region regions[2];
	unsigned int nr_regions;
	uint8_t *base;	      /* the one host mapping, base of region 0 */
	uint64_t size;	      /* total RAM bytes (all regions) */
	uint64_t nr_pages;    /* size / GM_PAGE_SIZE */
	uint8_t *state;	      /* nr_pages entries of enum gm_page_state */
	pthread_mutex_t lock; /* protects state[] and the counters below */
	uint64_t nr_ballooned, nr_reported;
	/* State-map range [balloon_lo, balloon_hi) that may hold ballooned or reported pages;
	 * empty (lo >= hi) once gm_clear_discarded_all() found none. */
	uint64_t balloon_lo, balloon_hi;
	uint64_t discard_calls; /* madvise calls made by gm_discard */
	bool mergeable;		/* MADV_MERGEABLE applied */
	bool hugepages;		/* MADV_HUGEPAGE applied */
	int pagemap_fd; /* /proc/self/pagemap, opened by gm_init() (before any sandbox); -1: none */
	/* gm_set_discard_hook(): called by gm_discard(), lock held; NULL when none. */
	void (*discard_hook)(void *opaque, uint64_t idx, uint64_t nr_pages);
	void *discard_opaque;
};

#define GM_MERGE     (1u << 0) /* MADV_MERGEABLE: KSM may merge guest pages */
#define GM_HUGEPAGES (1u << 1) /* MADV_HUGEPAGE: transparent huge pages back guest RAM */

/**
 * gm_init() - map @size bytes of guest RAM (MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,
 * MADV_DONTFORK), 2 MiB-aligned so host huge pages line up with guest-physical 2 MiB frames, and
 * split it into the regions above.
 * @gm: caller-owned, zeroed struct; @size: bytes, a multiple of GM_PAGE_SIZE, at least 1 MiB;
 * @flags: GM_MERGE (a kernel without KSM only gets a warning) and GM_HUGEPAGES. Without
 * GM_HUGEPAGES the mapping gets MADV_NOHUGEPAGE: with THP a 4 KiB balloon or reclaim discard
 * only splits a huge page, and the host gets the memory back when the split finally happens.
 * Returns 0, -EINVAL for a bad size, -ENOMEM when the mapping fails.
 */
int gm_init(struct guest_mem *gm, uint64_t size, unsigned int flags);

/** gm_destroy() - unmap guest RAM and free the state map. Safe on a zeroed or failed @gm. */
void gm_destroy(struct guest_mem *gm);

/**
 * gm_ptr() - the bounds-checked accessor: host pointer for guest range [@gpa, @gpa + @len).
 * Both ends are checked with overflow checks; the range must lie inside one RAM region.
 * @len: bytes, may be 0 (then @gpa must still be inside or at the end of a region).
 * Returns the host pointer, or NULL when any byte is outside guest RAM (caller reports a device
 * error; never fatal). Thread-safe (the layout never changes after gm_init).
 */
void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/**
 * gm_read()/gm_write() - copy @len bytes between guest RAM at @gpa and @buf.
 * Return 0, or -EFAULT when the range is not entirely guest RAM (nothing is copied then).
 */
int gm_read(const struct guest_mem *gm, uint64_t gpa, void *buf, uint64_t len);
int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *buf, uint64_t len);

/**
 * gm_page_index() - state-map index of the 4 KiB page holding @gpa.
 * Returns 0 and sets *@idx, or -EFAULT when @gpa is not guest RAM.
 */
int gm_page_index(const struct guest_mem *gm, uint64_t gpa, uint64_t *idx);

/**
 * gm_discard() - give the host back guest pages [@pfn, @pfn + @nr_pages) (4 KiB PFNs, GPA >> 12)
 * with one MADV_DONTNEED per contiguous host range, and set their state to @state
 * (GM_PAGE_BALLOONED or GM_PAGE_REPORTED). The guest reads zeros if it touches them again.
 * Returns 0, or -EFAULT when any page of the range is outside guest RAM (nothing discarded),
 * or -errno from madvise.
 */
int gm_discard(struct guest_mem *gm, uint64_t pfn, uint64_t nr_pages, enum gm_page_state state);

/**
 * gm_set_discard_hook() - have gm_discard() call @fn(@opaque, idx, nr) for each state-map range
 * [idx, idx + nr) it is about to discard, with gm->lock held and before the madvise, so the
 * compressed tier drops its stored copies of those pages (a discarded page reads back as zeros).
 * @fn must not touch guest RAM or take gm->lock. NULL @fn removes the hook. Call before other
 * threads use @gm, or with gm->lock held.
 */
void gm_set_discard_hook(struct guest_mem *gm, void (*fn)(void *opaque, uint64_t idx, uint64_t nr),
			 void *opaque);

/**
 * gm_clear_discarded() - mark [@pfn, @pfn + @nr_pages) resident again (balloon deflate).
 * No host call is needed: the next guest touch faults in a zero page.
 * Returns 0 or -EFAULT as gm_discard().
 */
int gm_clear_discarded(struct guest_mem *gm, uint64_t pfn, uint64_t nr_pages);

/* What one gm_clear_discarded_all() call did (tests, diagnostics). */
struct gm_clear_stats {
	uint64_t scanned_pages;	 /* state-map entries looked at */
	uint64_t lock_holds;	 /* times gm->lock was taken */
	uint64_t max_hold_pages; /* most entries looked at under one hold */
};

#define GM_CLEAR_CHUNK_PAGES 16384 /* state-map entries per gm->lock hold (64 MiB of RAM) */

/**
 * gm_clear_discarded_all() - mark every ballooned or reported page resident again (the balloon
 * device's reset: the driver is gone, its pages are its own again; virtio 1.2 §5.5.6). Compressed
 * pages stay. The cost is bounded: nothing at all when no page is ballooned or reported, else
 * only the state-map range that ever held such pages since they were last all cleared, at most
 * GM_CLEAR_CHUNK_PAGES entries per gm->lock hold (the lock is dropped between chunks), and it
 * stops as soon as the counters reach zero. Pages ballooned concurrently behind the scan stay.
 * @st: filled with what the call did, may be NULL.
 */
void gm_clear_discarded_all(struct guest_mem *gm, struct gm_clear_stats *st);

/**
 * gm_set_state_locked() - move page @idx (state-map index, < nr_pages) to @state, keeping
 * nr_ballooned and nr_reported right. For the compressed tier, which moves pages into and out of
 * GM_PAGE_COMPRESSED; gm_discard() and gm_clear_discarded() are the balloon's. gm->lock held.
 */
void gm_set_state_locked(struct guest_mem *gm, uint64_t idx, enum gm_page_state state);

/**
 * gm_resident_bytes() - bytes of guest RAM this VM holds in host memory now: 4 KiB pages present
 * and mapped only here (/proc/self/pagemap "present" and "exclusively mapped",
 * Documentation/admin-guide/mm/pagemap.rst). The shared zero page (untouched RAM the guest read)
 * and KSM-merged pages (one copy shared with other pages) do not count: they cost this VM
 * nothing of its own, and the compressed tier leaves them alone. Without pagemap: mincore over
 * the mapping (every present page). Only pread/mincore: callable under any thread's seccomp
 * filter. Returns bytes, or 0 on failure.
 */
uint64_t gm_resident_bytes(const struct guest_mem *gm);

#endif
