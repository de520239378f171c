// SPDX-License-Identifier: GPL-2.0
/*
 * memhash: a CPU- and memory-bound workload that times itself (bench/slowdown). It allocates an
 * array (fresh anonymous memory, so the first pass faults every page in), then makes repeated
 * passes over it: each pass reads every 64-bit word, mixes it into a running hash and writes back
 * a value derived from the hash, so every pass both reads and dirties the whole array and the
 * result depends on every word (nothing can be skipped or reordered away).
 *
 * Usage: memhash [--mib N] [--passes P]   (defaults: 200 MiB, 4 passes)
 * Output: one line "memhash: mib=N passes=P elapsed_ms=T first_pass_ms=F hash=H", T and F from
 * CLOCK_MONOTONIC around the whole run (allocation included) and around the first pass.
 * Exit status 0, 2 on usage or allocation failure.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t pass(uint64_t *a, size_t words, uint64_t h, uint64_t gen)
{
	for (size_t i = 0; i < words; i++) {
		h ^= a[i] + gen;
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
		a[i] = h ^ i;
	}
	return h;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"mib", required_argument, NULL, 'm'},
		{"passes", required_argument, NULL, 'p'},
		{0},
	};
	unsigned long mib = 200, passes = 4;
	double t0, t1, t_first = 0;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t words;
	uint64_t *a;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'm':
			mib = strtoul(optarg, &end, 10);
			if (*end || !mib || mib > 65536)
				goto usage;
			break;
		case 'p':
			passes = strtoul(optarg, &end, 10);
			if (*end || !passes || passes > 100000)
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	words = mib * (1UL << 20) / sizeof(uint64_t);

	t0 = now_ms();
	a = mmap(NULL, words * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED) {
		perror("memhash: mmap");
		return 2;
	}
	for (unsigned long p = 0; p < passes; p++) {
		h = pass(a, words, h, p);
		if (p == 0)
			t_first = now_ms() - t0;
	}
	t1 = now_ms();
	printf("memhash: mib=%lu passes=%lu elapsed_ms=%.0f first_pass_ms=%.0f hash=%016" PRIx64
	       "\n",
	       mib, passes, t1 - t0, t_first, h);
	munmap(a, words * sizeof(uint64_t));
	return 0;
usage:
	fprintf(stderr, "usage: memhash [--mib N] [--passes P]\n");
	return 2;
}
