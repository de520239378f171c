// SPDX-License-Identifier: GPL-2.0
/*
 * memfill: allocate guest memory, fill it with a known pattern, verify it by checksums, free it.
 * The memory tests (balloon, KSM, compressed tier) use it to make the guest own, share, or give
 * back pages, and to prove that no page content was lost or corrupted on the way.
 *
 * Every page's content is a pure function of (pattern, seed, generation, page index), and its
 * checksum is taken when it is written, so any page that later reads back differently (lost
 * write, wrong page faulted in, corruption) is a mismatch.
 *
 * Output: while holding, one line "memfill: ready ..." once the memory is filled and verified;
 * at the end exactly one line "memfill: result=ok|fail key=value ...". Exit status 0 on success,
 * 1 on any mismatch, 2 on usage or allocation failure.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 4096UL
#define WORDS	  (PAGE_SIZE / sizeof(uint64_t))
#define MAX_SHOWN 10

enum pattern { PAT_ZERO, PAT_DUP, PAT_TEXT, PAT_RANDOM };
static const char *const pattern_names[] = {"zero", "dup", "text", "random"};

static volatile sig_atomic_t stop;

struct fill {
	enum pattern pat;
	uint64_t seed;
	uint64_t gen;
	size_t pages;
	unsigned char *mem;
	uint64_t *sums;
	unsigned long mismatches;
	long first_bad;
};

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t hash_page(const void *page, uint64_t idx)
{
	const uint64_t *w = page;
	uint64_t h = 0x84222325cbf29ce4ULL ^ idx;

	for (size_t i = 0; i < WORDS; i++) {
		h ^= w[i] * 0x9e3779b97f4a7c15ULL;
		h = (h << 31 | h >> 33) * 0xff51afd7ed558ccdULL;
	}
	return h ^ (h >> 29);
}

static const char *const words[] = {
	"the",	    "memory", "balloon", "page",  "guest", "host",  "kernel",  "virtio",
	"queue",    "of",     "and",	 "to",	  "a",	   "in",    "is",      "that",
	"for",	    "it",     "with",	 "as",	  "was",   "on",    "be",      "at",
	"by",	    "this",   "had",	 "not",	  "are",   "but",   "from",    "or",
	"have",	    "an",     "they",	 "which", "one",   "you",   "were",    "her",
	"all",	    "she",    "there",	 "would", "their", "we",    "him",     "been",
	"has",	    "when",   "who",	 "will",  "more",  "no",    "if",      "out",
	"compress", "ratio",  "lz4",	 "zstd",  "store", "fault", "reclaim", "merge",
};

static void gen_text(unsigned char *p, uint64_t *s)
{
	size_t off = 0, n = 0;

	while (off < PAGE_SIZE) {
		uint64_t r = splitmix64(s);
		const char *w = words[r % (sizeof(words) / sizeof(words[0]))];
		size_t len = strlen(w);

		if (len > PAGE_SIZE - off)
			len = PAGE_SIZE - off;
		memcpy(p + off, w, len);
		off += len;
		if (off < PAGE_SIZE)
			p[off++] = (++n % 12 == 0) ? '\n' : ' ';
	}
}

/* The content of page idx in generation gen; deterministic so a rewrite can differ from the last.
 */
static void gen_page(const struct fill *f, size_t idx, unsigned char *p)
{
	uint64_t s = f->seed * 0xd1342543de82ef95ULL + f->gen * 0x2545f4914f6cdd1dULL;
	uint64_t *w = (uint64_t *)p;

	if (f->pat != PAT_DUP)
		s += idx * 0x9e3779b97f4a7c15ULL;
	switch (f->pat) {
	case PAT_ZERO:
		memset(p, 0, PAGE_SIZE);
		break;
	case PAT_DUP:
	case PAT_RANDOM:
		for (size_t i = 0; i < WORDS; i++)
			w[i] = splitmix64(&s);
		break;
	case PAT_TEXT:
		gen_text(p, &s);
		break;
	}
}

static void fill_all(struct fill *f)
{
	for (size_t i = 0; i < f->pages; i++) {
		unsigned char *p = f->mem + i * PAGE_SIZE;

		gen_page(f, i, p);
		f->sums[i] = hash_page(p, i);
	}
}

/* Returns the number of pages whose content no longer matches its checksum. */
static unsigned long verify_all(struct fill *f)
{
	unsigned long bad = 0;

	for (size_t i = 0; i < f->pages; i++) {
		uint64_t h = hash_page(f->mem + i * PAGE_SIZE, i);

		if (h == f->sums[i])
			continue;
		if (bad < MAX_SHOWN)
			fprintf(stderr,
				"memfill: mismatch page=%zu gen=%" PRIu64 " expected=%016" PRIx64
				" got=%016" PRIx64 "\n",
				i, f->gen, f->sums[i], h);
		if (f->first_bad < 0)
			f->first_bad = (long)i;
		bad++;
	}
	f->mismatches += bad;
	return bad;
}

static uint64_t sum_all(const struct fill *f)
{
	uint64_t s = 0;

	for (size_t i = 0; i < f->pages; i++)
		s += f->sums[i];
	return s;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void sleep_until(double deadline)
{
	while (!stop) {
		double left = deadline - now();
		struct timespec ts;

		if (left <= 0)
			return;
		if (left > 0.1)
			left = 0.1;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		nanosleep(&ts, NULL);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: memfill -m MIB [-p zero|dup|text|random] [-s SEED] [-t SECS | -w] [-i "
		"SECS] "
		"[-W]\n"
		"  -m MIB   memory to allocate and fill (MiB)\n"
		"  -p PAT   zero, dup (all pages identical), text (compressible), random "
		"(default)\n"
		"  -s SEED  pattern seed (default 1)\n"
		"  -t SECS  after filling, hold the memory SECS seconds (or until a signal)\n"
		"  -w       after filling, hold the memory until SIGTERM/SIGINT/SIGHUP/SIGUSR1\n"
		"  -i SECS  while holding, verify every SECS seconds (default: only at the end)\n"
		"  -W       while holding, rewrite every page (next generation) before each "
		"verify;\n"
		"           without -i the rewrite+verify passes run back to back\n");
	exit(2);
}

static double parse_num(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || v < 0) {
		fprintf(stderr, "memfill: bad %s '%s'\n", what, s);
		usage();
	}
	return v;
}

int main(int argc, char **argv)
{
	struct fill f = {.pat = PAT_RANDOM, .seed = 1, .first_bad = -1};
	double hold = 0, interval = -1, t0, fill_s, verify_s, held = 0;
	bool wait_signal = false, rewrite = false;
	unsigned long mib = 0, passes = 1;
	struct sigaction sa = {.sa_handler = on_signal};
	int opt;

	while ((opt = getopt(argc, argv, "m:p:s:t:wi:Wh")) != -1) {
		switch (opt) {
		case 'm':
			mib = (unsigned long)parse_num(optarg, "size");
			break;
		case 'p':
			for (f.pat = 0; f.pat <= PAT_RANDOM; f.pat++) {
				if (!strcmp(optarg, pattern_names[f.pat]))
					break;
			}
			if (f.pat > PAT_RANDOM) {
				fprintf(stderr, "memfill: unknown pattern '%s'\n", optarg);
				usage();
			}
			break;
		case 's':
			f.seed = strtoull(optarg, NULL, 0);
			break;
		case 't':
			hold = parse_num(optarg, "hold time");
			break;
		case 'w':
			wait_signal = true;
			break;
		case 'i':
			interval = parse_num(optarg, "interval");
			break;
		case 'W':
			rewrite = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || mib == 0)
		usage();
	if (rewrite && interval < 0)
		interval = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	f.pages = mib * (1024 * 1024 / PAGE_SIZE);
	f.sums = calloc(f.pages, sizeof(*f.sums));
	f.mem = mmap(NULL, f.pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!f.sums || f.mem == MAP_FAILED) {
		printf("memfill: result=fail reason=alloc mib=%lu error=%s\n", mib,
		       strerror(errno));
		return 2;
	}

	t0 = now();
	fill_all(&f);
	fill_s = now() - t0;
	t0 = now();
	verify_all(&f);
	verify_s = now() - t0;

	if ((hold > 0 || wait_signal) && !f.mismatches) {
		double start = now(), end = wait_signal ? 1e300 : start + hold;

		printf("memfill: ready mib=%lu pattern=%s seed=%" PRIu64 " pages=%zu\n", mib,
		       pattern_names[f.pat], f.seed, f.pages);
		fflush(stdout);
		while (!stop && now() < end) {
			double next = interval >= 0 ? now() + interval : end;

			sleep_until(next < end ? next : end);
			if (stop || interval < 0)
				break;
			if (rewrite) {
				f.gen++;
				fill_all(&f);
			}
			passes++;
			if (verify_all(&f))
				break;
		}
		held = now() - start;
		if (!f.mismatches) {
			passes++;
			verify_all(&f);
		}
	}

	printf("memfill: result=%s mib=%lu pattern=%s seed=%" PRIu64 " pages=%zu gen=%" PRIu64
	       " passes=%lu mismatches=%lu first_bad=%ld fill_ms=%.0f"
	       " verify_ms=%.0f held_s=%.1f sum=%016" PRIx64 "\n",
	       f.mismatches ? "fail" : "ok", mib, pattern_names[f.pat], f.seed, f.pages, f.gen,
	       passes, f.mismatches, f.first_bad, fill_s * 1e3, verify_s * 1e3, held, sum_all(&f));
	fflush(stdout);
	munmap(f.mem, f.pages * PAGE_SIZE);
	free(f.sums);
	return f.mismatches ? 1 : 0;
}
