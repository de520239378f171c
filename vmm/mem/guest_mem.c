#include "guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../util.h"

/* An anonymous mapping of @size bytes starting on a 2 MiB boundary, or MAP_FAILED. */
static void *map_aligned(uint64_t size)
{
	const uint64_t align = 2 * MiB;
	uint8_t *raw, *p;

	raw = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return MAP_FAILED;
	p = (uint8_t *)ALIGN_UP((uintptr_t)raw, align);
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	if (raw + align > p)
		munmap(p + size, (size_t)(raw + align - p));
	return p;
}

int gm_init(struct guest_mem *gm, uint64_t size, unsigned int flags)
{
	uint64_t low;
	void *p;
	int ret;

	if (size < MiB || size % GM_PAGE_SIZE || size > (1ULL << 46))
		return -EINVAL;
	memset(gm, 0, sizeof(*gm));
	gm->state = calloc(size / GM_PAGE_SIZE, 1);
	if (!gm->state)
		return -ENOMEM;
	p = map_aligned(size);
	if (p == MAP_FAILED) {
		ret = -ENOMEM;
		goto err_state;
	}
	/* A fork (e.g. a helper process) must not copy or share guest RAM. */
	if (madvise(p, size, MADV_DONTFORK)) {
		ret = -errno;
		pr_err("guest memory: MADV_DONTFORK: %s", strerror(errno));
		goto err_map;
	}
	/* A VMM crash must never write guest memory into a core dump (issue 12, sandbox). */
	if (madvise(p, size, MADV_DONTDUMP))
		pr_warn("guest memory: MADV_DONTDUMP: %s", strerror(errno));
	if (flags & GM_HUGEPAGES) {
		if (madvise(p, size, MADV_HUGEPAGE))
			pr_warn("guest memory: MADV_HUGEPAGE: %s (no transparent huge pages, "
				"continuing)",
				strerror(errno));
		else
			gm->hugepages = true;
	} else {
		madvise(p, size, MADV_NOHUGEPAGE); /* fails only without THP: nothing to turn off */
	}
	if (flags & GM_MERGE) {
		if (madvise(p, size, MADV_MERGEABLE))
			pr_warn("guest memory: MADV_MERGEABLE: %s (KSM unavailable, continuing)",
				strerror(errno));
		else
			gm->mergeable = true;
	}
	gm->base = p;
	gm->size = size;
	gm->nr_pages = size / GM_PAGE_SIZE;
	low = MIN(size, GM_LOW_RAM_MAX);
	gm->regions[0] = (struct gm_region){.gpa = 0, .size = low, .hva = gm->base, .first_pg = 0};
	gm->nr_regions = 1;
	if (size > low) {
		gm->regions[1] = (struct gm_region){.gpa = GM_HIGH_BASE,
						    .size = size - low,
						    .hva = gm->base + low,
						    .first_pg = low / GM_PAGE_SIZE};
		gm->nr_regions = 2;
	}
	/* Opened now: the threads that measure (loop, reclaim worker) may not open files later. */
	gm->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	pthread_mutex_init(&gm->lock, NULL);
	return 0;

err_map:
	munmap(p, size);
err_state:
	free(gm->state);
	gm->state = NULL;
	return ret;
}

void gm_destroy(struct guest_mem *gm)
{
	if (gm->base) {
		if (gm->pagemap_fd >= 0)
			close(gm->pagemap_fd);
		munmap(gm->base, gm->size);
		pthread_mutex_destroy(&gm->lock);
	}
	free(gm->state);
	memset(gm, 0, sizeof(*gm));
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	uint64_t end;
	unsigned int i;

	if (__builtin_add_overflow(gpa, len, &end))
		return NULL;
	for (i = 0; i < gm->nr_regions; i++) {
		const struct gm_region *r = &gm->regions[i];

		if (gpa >= r->gpa && end <= r->gpa + r->size)
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

int gm_read(const struct guest_mem *gm, uint64_t gpa, void *buf, uint64_t len)
{
	void *p = gm_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(buf, p, len);
	return 0;
}

int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *buf, uint64_t len)
{
	void *p = gm_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, buf, len);
	return 0;
}

int gm_page_index(const struct guest_mem *gm, uint64_t gpa, uint64_t *idx)
{
	unsigned int i;

	for (i = 0; i < gm->nr_regions; i++) {
		const struct gm_region *r = &gm->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			*idx = r->first_pg + ((gpa - r->gpa) >> GM_PAGE_SHIFT);
			return 0;
		}
	}
	return -EFAULT;
}

/*
 * The part of [pfn, pfn + nr) inside region @r: sets *first (state-map index) and returns the
 * number of pages (0 when disjoint).
 */
static uint64_t region_overlap(const struct gm_region *r, uint64_t pfn, uint64_t nr,
			       uint64_t *first)
{
	uint64_t rstart = r->gpa >> GM_PAGE_SHIFT, rend = rstart + (r->size >> GM_PAGE_SHIFT);
	uint64_t s = MAX(pfn, rstart), e = MIN(pfn + nr, rend);

	*first = 0;
	if (s >= e)
		return 0;
	*first = r->first_pg + (s - rstart);
	return e - s;
}

/* Every page of [pfn, pfn + nr) must be RAM; the caller has ruled out overflow. */
static bool range_is_ram(const struct guest_mem *gm, uint64_t pfn, uint64_t nr)
{
	uint64_t covered = 0, first;
	unsigned int i;

	for (i = 0; i < gm->nr_regions; i++)
		covered += region_overlap(&gm->regions[i], pfn, nr, &first);
	return covered == nr;
}

static int check_range(const struct guest_mem *gm, uint64_t pfn, uint64_t nr)
{
	uint64_t end;

	if (!nr)
		return 0;
	if (pfn > (UINT64_MAX >> GM_PAGE_SHIFT) || __builtin_add_overflow(pfn, nr, &end) ||
	    end > (UINT64_MAX >> GM_PAGE_SHIFT) || !range_is_ram(gm, pfn, nr))
		return -EFAULT;
	return 0;
}

/* Move pages [idx, idx + nr) of the state map to @to, keeping the counters right. Lock held. */
static void set_state(struct guest_mem *gm, uint64_t idx, uint64_t nr, enum gm_page_state to)
{
	uint64_t i;

	if (to == GM_PAGE_BALLOONED || to == GM_PAGE_REPORTED) {
		if (gm->balloon_lo >= gm->balloon_hi) {
			gm->balloon_lo = idx;
			gm->balloon_hi = idx + nr;
		}
		gm->balloon_lo = MIN(gm->balloon_lo, idx);
		gm->balloon_hi = MAX(gm->balloon_hi, idx + nr);
	}
	for (i = idx; i < idx + nr; i++) {
		uint8_t from = gm->state[i];

		if (from == to)
			continue;
		if (from == GM_PAGE_BALLOONED)
			gm->nr_ballooned--;
		else if (from == GM_PAGE_REPORTED)
			gm->nr_reported--;
		if (to == GM_PAGE_BALLOONED)
			gm->nr_ballooned++;
		else if (to == GM_PAGE_REPORTED)
			gm->nr_reported++;
		gm->state[i] = to;
	}
}

void gm_set_state_locked(struct guest_mem *gm, uint64_t idx, enum gm_page_state state)
{
	if (idx < gm->nr_pages)
		set_state(gm, idx, 1, state);
}

int gm_discard(struct guest_mem *gm, uint64_t pfn, uint64_t nr_pages, enum gm_page_state state)
{
	unsigned int i;
	int ret = 0;

	if (state != GM_PAGE_BALLOONED && state != GM_PAGE_REPORTED)
		return -EINVAL;
	ret = check_range(gm, pfn, nr_pages);
	if (ret || !nr_pages)
		return ret;
	/* madvise and the state update under one lock: whoever takes it next sees them agree. */
	pthread_mutex_lock(&gm->lock);
	for (i = 0; i < gm->nr_regions; i++) {
		const struct gm_region *r = &gm->regions[i];
		uint64_t first, n = region_overlap(r, pfn, nr_pages, &first);
		uint8_t *hva;

		if (!n)
			continue;
		hva = gm->base + first * GM_PAGE_SIZE;
		if (gm->discard_hook)
			gm->discard_hook(gm->discard_opaque, first, n);
		gm->discard_calls++;
		if (madvise(hva, n * GM_PAGE_SIZE, MADV_DONTNEED)) {
			ret = -errno;
			break;
		}
		set_state(gm, first, n, state);
	}
	pthread_mutex_unlock(&gm->lock);
	return ret;
}

void gm_set_discard_hook(struct guest_mem *gm, void (*fn)(void *opaque, uint64_t idx, uint64_t nr),
			 void *opaque)
{
	gm->discard_hook = fn;
	gm->discard_opaque = opaque;
}

int gm_clear_discarded(struct guest_mem *gm, uint64_t pfn, uint64_t nr_pages)
{
	unsigned int i;
	int ret;

	ret = check_range(gm, pfn, nr_pages);
	if (ret || !nr_pages)
		return ret;
	pthread_mutex_lock(&gm->lock);
	for (i = 0; i < gm->nr_regions; i++) {
		uint64_t first, n = region_overlap(&gm->regions[i], pfn, nr_pages, &first);
		uint64_t j;

		/* Compressed pages belong to the compressed tier; only balloon states clear. */
		for (j = first; j < first + n; j++)
			if (gm->state[j] == GM_PAGE_BALLOONED || gm->state[j] == GM_PAGE_REPORTED)
				set_state(gm, j, 1, GM_PAGE_RESIDENT);
	}
	pthread_mutex_unlock(&gm->lock);
	return 0;
}

void gm_clear_discarded_all(struct guest_mem *gm, struct gm_clear_stats *st)
{
	struct gm_clear_stats dummy = {0};
	uint64_t j, end;

	st = st ? st : &dummy;
	*st = (struct gm_clear_stats){0};
	if (!gm->state)
		return;
	pthread_mutex_lock(&gm->lock);
	st->lock_holds++;
	j = gm->balloon_lo;
	for (;;) {
		/* Pages move out of these states elsewhere too (the compressed tier takes reported
		 * pages), so the counters, not the range, say when we are done. */
		if (!gm->nr_ballooned && !gm->nr_reported) {
			gm->balloon_lo = gm->balloon_hi = 0;
			break;
		}
		end = MIN(gm->balloon_hi, gm->nr_pages);
		if (j >= end)
			break;
		end = MIN(end, j + GM_CLEAR_CHUNK_PAGES);
		st->scanned_pages += end - j;
		st->max_hold_pages = MAX(st->max_hold_pages, end - j);
		for (; j < end; j++)
			if (gm->state[j] == GM_PAGE_BALLOONED || gm->state[j] == GM_PAGE_REPORTED)
				set_state(gm, j, 1, GM_PAGE_RESIDENT);
		/* Let the vCPUs' faults and the compressed tier in between chunks. */
		pthread_mutex_unlock(&gm->lock);
		pthread_mutex_lock(&gm->lock);
		st->lock_holds++;
	}
	pthread_mutex_unlock(&gm->lock);
}

/* pagemap bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT   (1ULL << 63)
#define PM_EXCLUSIVE (1ULL << 56)

/* Present, exclusively mapped pages per /proc/self/pagemap; -1 when it cannot be read. */
static int64_t pagemap_resident_pages(const struct guest_mem *gm)
{
	const uint64_t chunk = 64 * 1024; /* entries per read: 512 KiB */
	uint64_t *pm, pages = 0;
	int fd = gm->pagemap_fd;

	if (fd < 0)
		return -1;
	pm = malloc(chunk * sizeof(*pm));
	for (uint64_t i = 0; pm && i < gm->nr_pages; i += chunk) {
		uint64_t n = MIN(chunk, gm->nr_pages - i);
		off_t off = (off_t)((uintptr_t)(gm->base + i * GM_PAGE_SIZE) / GM_PAGE_SIZE * 8);

		if (pread(fd, pm, n * 8, off) != (ssize_t)(n * 8)) {
			free(pm);
			pm = NULL;
			break;
		}
		for (uint64_t j = 0; j < n; j++)
			pages += (pm[j] & (PM_PRESENT | PM_EXCLUSIVE)) ==
				 (PM_PRESENT | PM_EXCLUSIVE);
	}
	if (!pm)
		return -1;
	free(pm);
	return (int64_t)pages;
}

/* Every present page of the mapping (mincore), shared ones included. */
static uint64_t mincore_bytes(const struct guest_mem *gm)
{
	long psz = sysconf(_SC_PAGESIZE);
	const uint64_t chunk_pages = 64 * 1024;
	uint64_t off = 0, pages = 0, hp;
	unsigned char *vec;

	if (!gm->base || psz <= 0)
		return 0;
	vec = malloc(chunk_pages);
	if (!vec)
		return 0;
	while (off < gm->size) {
		uint64_t len = MIN(gm->size - off, chunk_pages * (uint64_t)psz);
		uint64_t n = (len + psz - 1) / psz;

		if (mincore(gm->base + off, len, vec)) {
			free(vec);
			return 0;
		}
		for (hp = 0; hp < n; hp++)
			pages += vec[hp] & 1;
		off += len;
	}
	free(vec);
	return pages * (uint64_t)psz;
}

uint64_t gm_resident_bytes(const struct guest_mem *gm)
{
	int64_t pm_pages = gm->base && sysconf(_SC_PAGESIZE) == (long)GM_PAGE_SIZE
				   ? pagemap_resident_pages(gm)
				   : -1;

	if (pm_pages >= 0)
		return (uint64_t)pm_pages * GM_PAGE_SIZE;
	return mincore_bytes(gm);
}
