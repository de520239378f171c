/* Guest RAM in a snapshot: the sparse memory file and the page state map (memory.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util.h"
#include "memory.h"

#define PG	     GM_PAGE_SIZE
#define BATCH	     512 /* pages per pagemap read (2 MiB) */
#define PM_PRESENT   (1ULL << 63)
#define PM_SWAPPED   (1ULL << 62)
#define RUN_MAX	     (1ULL << 20) /* bytes per pwrite */
#define STATE_RANGES 0x52414e47u  /* "RANG" */

/* Next data extent of a backing file at or after a position (SEEK_DATA/SEEK_HOLE). */
struct extent_cursor {
	int fd;
	off_t data, hole; /* [data, hole) is data; data == -1: none left */
};

static bool backing_has_data(struct extent_cursor *c, off_t off)
{
	if (c->fd < 0)
		return false;
	if (c->data >= 0 && off >= c->hole) {
		c->data = lseek(c->fd, off, SEEK_DATA);
		c->hole = c->data < 0 ? 0 : lseek(c->fd, c->data, SEEK_HOLE);
	}
	return c->data >= 0 && off >= c->data && off < c->hole;
}

static bool all_zero(const uint8_t *p)
{
	static const uint8_t zero[PG];

	return memcmp(p, zero, PG) == 0;
}

static int write_all(int fd, const uint8_t *p, uint64_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, MIN(n, RUN_MAX), off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (uint64_t)w;
		off += w;
	}
	return 0;
}

int snap_memory_save(struct guest_mem *gm, int backing_fd, const char *path,
		     struct snap_mem_stats *st)
{
	struct snap_mem_stats s = {0};
	struct extent_cursor cur = {.fd = backing_fd, .data = 0, .hole = 0};
	uint64_t pm[BATCH], run_start = 0, run_len = 0;
	struct stat sb;
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		pr_err("snapshot: %s: %s", path, strerror(-ret));
		return ret;
	}
	if (ftruncate(fd, (off_t)gm->size) < 0) {
		ret = -errno;
		goto out;
	}
	for (uint64_t first = 0; first < gm->nr_pages && !ret; first += BATCH) {
		uint64_t n = MIN((uint64_t)BATCH, gm->nr_pages - first);
		uint8_t states[BATCH];

		if (gm->pagemap_fd < 0 ||
		    pread(gm->pagemap_fd, pm, n * 8,
			  (off_t)((uintptr_t)(gm->base + first * PG) / PG * 8)) != (ssize_t)(n * 8))
			for (uint64_t i = 0; i < n; i++)
				pm[i] = PM_PRESENT; /* unknown: look at every page */
		pthread_mutex_lock(&gm->lock);
		memcpy(states, gm->state + first, n);
		pthread_mutex_unlock(&gm->lock);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t idx = first + i;
			const uint8_t *hva = gm->base + idx * PG;
			bool data;

			/*
			 * Only a ballooned page is surely empty: the guest may not touch it until
			 * deflate. A reported page went back to the guest's free lists, and the
			 * guest reuses it without telling the host, so its state says nothing
			 * about its content: it is looked at like any other page.
			 */
			if (states[i] == GM_PAGE_BALLOONED) {
				s.discarded_pages++;
				data = false;
			} else if (states[i] == GM_PAGE_COMPRESSED) {
				/* Reading it faults it back in through the tier's userfaultfd. */
				s.compressed_pages++;
				data = !all_zero(hva);
			} else if (!(pm[i] & (PM_PRESENT | PM_SWAPPED)) &&
				   !backing_has_data(&cur, (off_t)(idx * PG))) {
				s.absent_pages++;
				data = false;
			} else {
				data = !all_zero(hva);
				if (!data)
					s.zero_pages++;
			}
			if (data) {
				s.data_pages++;
				if (run_len && run_start + run_len == idx &&
				    run_len * PG < RUN_MAX) {
					run_len++;
					continue;
				}
			}
			if (run_len)
				ret = write_all(fd, gm->base + run_start * PG, run_len * PG,
						(off_t)(run_start * PG));
			run_len = 0;
			if (data) {
				run_start = idx;
				run_len = 1;
			}
			if (ret)
				break;
		}
	}
	if (!ret && run_len)
		ret = write_all(fd, gm->base + run_start * PG, run_len * PG,
				(off_t)(run_start * PG));
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (!ret && fstat(fd, &sb) == 0) {
		s.apparent_bytes = (uint64_t)sb.st_size;
		s.allocated_bytes = (uint64_t)sb.st_blocks * 512;
	}
out:
	if (ret)
		pr_err("snapshot: writing %s: %s", path, strerror(-ret));
	close(fd);
	if (st)
		*st = s;
	return ret;
}

void snap_memory_state_save(struct guest_mem *gm, struct state_out *o)
{
	struct state_out ranges;
	uint32_t nr = 0;

	state_out_init(&ranges);
	pthread_mutex_lock(&gm->lock);
	for (uint64_t i = 0; i < gm->nr_pages;) {
		uint8_t s = gm->state[i];
		uint64_t j = i + 1;

		/* Reported pages are not kept (see snap_memory_save): resident after a restore. */
		if (s != GM_PAGE_BALLOONED) {
			i++;
			continue;
		}
		while (j < gm->nr_pages && gm->state[j] == s)
			j++;
		state_put_u64(&ranges, i);
		state_put_u64(&ranges, j - i);
		state_put_u8(&ranges, s);
		nr++;
		i = j;
	}
	pthread_mutex_unlock(&gm->lock);
	state_put_u64(o, gm->size);
	state_put_u32(o, STATE_RANGES);
	state_put_u32(o, nr);
	state_put(o, ranges.data, ranges.len);
	if (ranges.err)
		o->err = o->err ? o->err : ranges.err;
	state_out_free(&ranges);
}

int snap_memory_state_load(struct guest_mem *gm, struct state_in *in)
{
	uint32_t nr;

	if (state_get_u64(in) != gm->size)
		return state_fail(in, "RAM size");
	if (state_get_u32(in) != STATE_RANGES)
		return state_fail(in, "state map tag");
	nr = state_get_u32(in);
	if (nr > gm->nr_pages)
		return state_fail(in, "state range count");
	pthread_mutex_lock(&gm->lock);
	for (uint32_t k = 0; k < nr && !in->err; k++) {
		uint64_t idx = state_get_u64(in), n = state_get_u64(in);
		uint8_t s = state_get_u8(in);

		if (in->err || s != GM_PAGE_BALLOONED || n == 0 || idx >= gm->nr_pages ||
		    n > gm->nr_pages - idx) {
			state_fail(in, "state range");
			break;
		}
		for (uint64_t i = idx; i < idx + n; i++)
			gm_set_state_locked(gm, i, s);
	}
	pthread_mutex_unlock(&gm->lock);
	return state_in_end(in);
}

static int copy_extents(struct guest_mem *gm, int fd)
{
	off_t off = 0;

	for (;;) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		while (data < hole) {
			ssize_t r = pread(fd, gm->base + data,
					  (size_t)MIN((uint64_t)(hole - data), RUN_MAX), data);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return r < 0 ? -errno : -EIO;
			data += r;
		}
		off = hole;
	}
}

int snap_memory_map(struct guest_mem *gm, const char *path, enum snap_mem_mode mode, int *fd_out,
		    char *why, size_t why_len)
{
	struct stat st;
	int fd, ret = 0;

	*fd_out = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, why_len, "%s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != gm->size) {
		snprintf(why, why_len, "%s: not a memory file of %llu bytes (this snapshot's RAM)",
			 path, (unsigned long long)gm->size);
		close(fd);
		return -EINVAL;
	}
	if (mode == SNAP_MEM_COPY) {
		ret = copy_extents(gm, fd);
		if (ret)
			snprintf(why, why_len, "reading %s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	if (mmap(gm->base, gm->size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, 0) == MAP_FAILED) {
		ret = -errno;
		snprintf(why, why_len, "mapping %s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	/* The same advice gm_init() gave the anonymous mapping it replaced. */
	madvise(gm->base, gm->size, MADV_DONTFORK);
	madvise(gm->base, gm->size, MADV_NOHUGEPAGE);
	if (gm->mergeable && madvise(gm->base, gm->size, MADV_MERGEABLE) < 0)
		pr_warn("restore: MADV_MERGEABLE on the memory file mapping: %s", strerror(errno));
	*fd_out = fd;
	return 0;
}
