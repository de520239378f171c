/*
 * madvise_bench: the raw kernel primitive behind balloon discard, measured in a plain process.
 * Maps MIB MiB of private anonymous memory, writes every 4 KiB page (so each is resident, as
 * guest RAM is before the guest gives it back), then times madvise(MADV_DONTNEED) over the
 * whole mapping in CHUNK-KiB calls, front to back. Repeated REPS times on a fresh mapping.
 *
 *   madvise_bench --mib N [--chunk-kib K]... [--reps R]
 *
 * One line per chunk size, figures from the fastest repetition (and the median); thp_kib is how
 * much of the mapping transparent huge pages backed when it was discarded (as for guest RAM, the
 * host's THP policy decides):
 *   madvise mib=N chunk_kib=K calls=C ms=F median_ms=F gib_per_s=F ms_per_gib=F thp_kib=N
 * --chunk-kib 0 means one call over the whole mapping (the default).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE	  4096UL
#define MAX_CHUNK 16
#define MAX_REPS  64

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* AnonHugePages of this process (KiB), or 0 when unknown. */
static unsigned long thp_kib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	unsigned long v = 0;
	char line[256];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %lu kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One repetition: map, touch, time the discard. Returns the discard time in ms, < 0 on error. */
static double one_rep(size_t bytes, size_t chunk, unsigned long *calls, unsigned long *thp)
{
	uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double t0, t1;

	if (p == MAP_FAILED) {
		perror("madvise_bench: mmap");
		return -1;
	}
	for (size_t off = 0; off < bytes; off += PAGE)
		p[off] = (uint8_t)(off >> 12 | 1);
	*thp = thp_kib();
	*calls = 0;
	t0 = now_ms();
	for (size_t off = 0; off < bytes; off += chunk) {
		size_t n = bytes - off < chunk ? bytes - off : chunk;

		if (madvise(p + off, n, MADV_DONTNEED)) {
			perror("madvise_bench: madvise");
			munmap(p, bytes);
			return -1;
		}
		(*calls)++;
	}
	t1 = now_ms();
	munmap(p, bytes);
	return t1 - t0;
}

int main(int argc, char **argv)
{
	unsigned long mib = 0, reps = 3, chunks_kib[MAX_CHUNK];
	unsigned int nchunks = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mib"))
			mib = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--reps"))
			reps = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--chunk-kib") && nchunks < MAX_CHUNK)
			chunks_kib[nchunks++] = strtoul(argv[i + 1], NULL, 10);
		else
			goto usage;
	}
	if (!mib || !reps || reps > MAX_REPS || (argc - 1) % 2)
		goto usage;
	if (!nchunks)
		chunks_kib[nchunks++] = 0;

	for (unsigned int c = 0; c < nchunks; c++) {
		size_t bytes = (size_t)mib << 20;
		size_t chunk = chunks_kib[c] ? (size_t)chunks_kib[c] << 10 : bytes;
		double ms[MAX_REPS];
		unsigned long calls = 0, thp = 0;

		if (chunk % PAGE) {
			fprintf(stderr,
				"madvise_bench: chunk %lu KiB is not a whole number of pages\n",
				chunks_kib[c]);
			return 2;
		}
		for (unsigned long r = 0; r < reps; r++) {
			ms[r] = one_rep(bytes, chunk, &calls, &thp);
			if (ms[r] < 0)
				return 1;
		}
		qsort(ms, reps, sizeof(ms[0]), cmp_double);
		printf("madvise mib=%lu chunk_kib=%lu calls=%lu ms=%.3f median_ms=%.3f "
		       "gib_per_s=%.3f "
		       "ms_per_gib=%.3f thp_kib=%lu\n",
		       mib, (unsigned long)(chunk >> 10), calls, ms[0], ms[reps / 2],
		       (double)mib / 1024 / (ms[0] / 1e3), ms[0] * 1024 / (double)mib, thp);
		fflush(stdout);
	}
	return 0;
usage:
	fprintf(stderr, "usage: madvise_bench --mib N [--chunk-kib K]... [--reps R]\n");
	return 2;
}
