/*
 * memtier_bench: the compressed tier's figures that need no KVM, on this host.
 *  1. A page set like the e2e guest's (zero pages, English-like text, real binaries, random
 *     data, identical pages) is encoded page by page with lz4 and zstd exactly as the tier does
 *     (vmm/mem/compress_store.c): compression and decompression MB/s per core, the compression
 *     ratio of the stored pages, and the effective ratio of the whole set (same-filled pages
 *     cost nothing, incompressible ones stay whole). The set is written to a file so run.sh can
 *     put the lz4/zstd command-line tools' ratio on the same data next to it.
 *  2. Fault-in through userfaultfd in this process (vmm/mem/memtier.c on ordinary memory): the
 *     latency of a touch to an evicted page, p50/p99, next to the kernel's own first touch of an
 *     anonymous page and a refault after MADV_DONTNEED.
 * Usage: memtier_bench [--mib N] [--out FILE] [--bin FILE]...
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../../vmm/mem/compress_store.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/mem/memtier.h"
#include "../../vmm/util.h"

#define PG 4096u

enum kind { K_ZERO, K_TEXT, K_BIN, K_RANDOM, K_DUP, NR_KINDS };
static const char *const kind_name[NR_KINDS] = {"zero", "text", "binaries", "random", "dup"};
/* Shares of the set in 1/20: like the e2e guest (64 zero, 128 text, 48 bin, 48 random, 32 dup). */
static const unsigned int share[NR_KINDS] = {4, 8, 3, 3, 2};

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const char *const words[] = {
	"the",	"memory", "balloon", "page", "guest", "host",  "kernel", "virtio", "queue", "of",
	"and",	"to",	  "a",	     "in",   "is",    "that",  "for",	 "it",	   "with",  "as",
	"was",	"on",	  "be",	     "at",   "by",    "this",  "had",	 "not",	   "are",   "but",
	"from", "or",	  "have",    "an",   "they",  "which", "one",	 "you",	   "were",  "all",
};

static void text_page(uint8_t *p, uint64_t seed)
{
	size_t off = 0, n = 0;

	while (off < PG) {
		const char *w = words[rng(&seed) % (sizeof(words) / sizeof(words[0]))];
		size_t len = strlen(w);

		if (len > PG - off)
			len = PG - off;
		memcpy(p + off, w, len);
		off += len;
		if (off < PG)
			p[off++] = ++n % 12 ? ' ' : '\n';
	}
}

static double now_s(void)
{
	return now_ns() / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Binary pages: the given files back to back, repeated if short. */
static void bin_pages(uint8_t *dst, uint64_t pages, char **files, int nfiles)
{
	uint64_t have = 0;
	int f = 0;

	while (have < pages * PG && nfiles) {
		int fd = open(files[f % nfiles], O_RDONLY);
		ssize_t n;

		f++;
		if (fd < 0)
			continue;
		while (have < pages * PG && (n = read(fd, dst + have, pages * PG - have)) > 0)
			have += (uint64_t)n;
		close(fd);
		if (f > 1000)
			break;
	}
	memset(dst + have, 0, pages * PG - have);
}

static uint8_t *make_set(uint64_t pages, char **bins, int nbins, uint64_t *start)
{
	uint8_t *set = malloc(pages * PG);
	uint64_t at = 0, dupseed = 99;
	uint8_t dup[PG];

	for (unsigned int i = 0; i < PG / 8; i++)
		((uint64_t *)dup)[i] = rng(&dupseed);
	for (int k = 0; k < NR_KINDS; k++) {
		uint64_t n = k == NR_KINDS - 1 ? pages - at : pages * share[k] / 20;

		start[k] = at;
		if (k == K_BIN)
			bin_pages(set + at * PG, n, bins, nbins);
		for (uint64_t i = 0; i < n && k != K_BIN; i++) {
			uint8_t *p = set + (at + i) * PG;
			uint64_t s = (at + i) * 7919 + 1;

			if (k == K_ZERO)
				memset(p, 0, PG);
			else if (k == K_TEXT)
				text_page(p, s);
			else if (k == K_DUP)
				memcpy(p, dup, PG);
			else
				for (unsigned int w = 0; w < PG / 8; w++)
					((uint64_t *)p)[w] = rng(&s);
		}
		at += n;
	}
	start[NR_KINDS] = pages;
	return set;
}

struct codec_result {
	double comp_mbs, decomp_mbs, ratio, eff_ratio;
	uint64_t compressed, same, incomp, blob_bytes;
	double kind_ratio[NR_KINDS];
};

static void run_codec(enum cs_algo algo, int level, const uint8_t *set, uint64_t pages,
		      const uint64_t *start, struct codec_result *r)
{
	struct cs_entry *e = calloc(pages, sizeof(*e));
	uint64_t kind_in[NR_KINDS] = {0}, kind_out[NR_KINDS] = {0};
	uint8_t out[PG];
	struct cs_codec c;
	double t0, t1;
	int k = 0;

	memset(r, 0, sizeof(*r));
	if (cs_codec_init(&c, algo, level))
		die("codec init failed");
	t0 = cpu_s();
	for (uint64_t i = 0; i < pages; i++) {
		int res = cs_encode(&c, i, set + i * PG, &e[i]);

		if (res == CS_R_COMPRESSED) {
			r->compressed++;
			r->blob_bytes += e[i].len;
		} else if (res == CS_R_SAME) {
			r->same++;
		} else {
			r->incomp++;
		}
	}
	t1 = cpu_s();
	r->comp_mbs = pages * PG / 1e6 / (t1 - t0);
	t0 = cpu_s();
	for (uint64_t i = 0; i < pages; i++)
		if (e[i].kind != CS_EMPTY && cs_decode(&c, i, &e[i], out))
			die("page %lu does not decode", (unsigned long)i);
	t1 = cpu_s();
	r->decomp_mbs = (r->compressed + r->same) * PG / 1e6 / (t1 - t0);
	r->ratio = r->blob_bytes ? (double)r->compressed * PG / r->blob_bytes : 0;
	r->eff_ratio = (double)pages * PG / (r->blob_bytes + r->incomp * PG);
	for (uint64_t i = 0; i < pages; i++) {
		while (i >= start[k + 1])
			k++;
		kind_in[k] += PG;
		kind_out[k] += e[i].kind == CS_EMPTY ? PG : e[i].kind == CS_SAME ? 0 : e[i].len;
		cs_entry_free(&e[i]);
	}
	for (k = 0; k < NR_KINDS; k++)
		r->kind_ratio[k] = kind_out[k] ? (double)kind_in[k] / kind_out[k] : 0;
	cs_codec_free(&c);
	free(e);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void pct(uint64_t *v, uint64_t n, uint64_t *p50, uint64_t *p99)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	*p50 = n ? v[(n - 1) / 2] : 0;
	*p99 = n ? v[(n - 1) * 99 / 100] : 0;
}

/* Touch one byte of each page, timing each touch (ns). */
static void touch_all(volatile uint8_t *base, uint64_t pages, uint64_t *lat)
{
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t t0 = now_ns();

		(void)base[i * PG + 7];
		lat[i] = now_ns() - t0;
	}
}

static void fault_bench(const uint8_t *set, uint64_t pages, const uint64_t *start)
{
	uint64_t text = start[K_TEXT + 1] - start[K_TEXT], *lat = calloc(pages, 8), p50, p99;
	struct memtier_config cfg = {.algo = CS_ALGO_LZ4, .vm_fd = -1};
	struct memtier_result r;
	struct memtier_stats st;
	struct guest_mem gm;
	struct memtier *t;
	uint8_t *anon;
	int ret;

	/* Kernel baselines on plain anonymous memory. */
	anon = mmap(NULL, text * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (uint64_t i = 0; i < text; i++) {
		uint64_t t0 = now_ns();

		anon[i * PG] = 1;
		lat[i] = now_ns() - t0;
	}
	pct(lat, text, &p50, &p99);
	printf("fault-in  kernel first touch (write) of an anonymous page   p50 %6.2f us  p99 "
	       "%6.2f us\n",
	       p50 / 1e3, p99 / 1e3);
	madvise(anon, text * PG, MADV_DONTNEED);
	touch_all(anon, text, lat);
	pct(lat, text, &p50, &p99);
	printf("fault-in  kernel read of a dropped page (zero page)         p50 %6.2f us  p99 "
	       "%6.2f us\n",
	       p50 / 1e3, p99 / 1e3);
	munmap(anon, text * PG);

	if (gm_init(&gm, ALIGN_UP(pages * PG, 2 * MiB) + 2 * MiB, false))
		die("gm_init failed");
	ret = memtier_create(&gm, &cfg, &t);
	if (ret) {
		printf("fault-in  userfaultfd unavailable here (%s): skipped\n", strerror(-ret));
		gm_destroy(&gm);
		free(lat);
		return;
	}
	memcpy(gm.base, set, pages * PG);
	memtier_reclaim_sync(t, 0, 0, &r);
	touch_all(gm.base + start[K_TEXT] * PG, text, lat);
	pct(lat, text, &p50, &p99);
	printf("fault-in  compressed tier, lz4 text page (uffd, in-process) p50 %6.2f us  p99 "
	       "%6.2f us\n",
	       p50 / 1e3, p99 / 1e3);
	touch_all(gm.base, start[K_ZERO + 1], lat);
	pct(lat, start[K_ZERO + 1], &p50, &p99);
	printf("fault-in  compressed tier, zero page (UFFDIO_ZEROPAGE)      p50 %6.2f us  p99 "
	       "%6.2f us\n",
	       p50 / 1e3, p99 / 1e3);
	memtier_get_stats(t, &st);
	printf("fault-in  handler service time (memory.stats)               p50 %6.2f us  p99 "
	       "%6.2f us"
	       "  (%lu faults)\n",
	       st.fault_p50_ns / 1e3, st.fault_p99_ns / 1e3, (unsigned long)st.faults);
	printf("reclaim   %lu pages evicted in %.3f s wall, %.3f s CPU: %.0f MB/s\n",
	       (unsigned long)r.evicted_pages, r.elapsed_ns / 1e9, r.cpu_ns / 1e9,
	       r.elapsed_ns ? r.input_bytes / 1e6 / (r.elapsed_ns / 1e9) : 0);
	memtier_destroy(t);
	gm_destroy(&gm);
	free(lat);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum cs_algo algo;
		int level;
	} codecs[] = {
		{"lz4", CS_ALGO_LZ4, 1}, {"zstd:1", CS_ALGO_ZSTD, 1}, {"zstd:3", CS_ALGO_ZSTD, 3}};
	uint64_t mib = 80, pages, start[NR_KINDS + 1];
	const char *outfile = NULL;
	char *bins[64];
	int nbins = 0;
	uint8_t *set;
	double t0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			outfile = argv[++i];
		else if (!strcmp(argv[i], "--bin") && i + 1 < argc && nbins < 64)
			bins[nbins++] = argv[++i];
		else
			die("usage: memtier_bench [--mib N] [--out FILE] [--bin FILE]...");
	}
	pages = mib * MiB / PG;
	t0 = now_s();
	set = make_set(pages, bins, nbins, start);
	printf("page set  %lu MiB:", (unsigned long)mib);
	for (int k = 0; k < NR_KINDS; k++)
		printf(" %s %lu MiB%s", kind_name[k],
		       (unsigned long)((start[k + 1] - start[k]) * PG / MiB),
		       k < NR_KINDS - 1 ? "," : "");
	printf(" (built in %.1f s)\n", now_s() - t0);
	if (outfile) {
		FILE *f = fopen(outfile, "wb");

		if (!f || fwrite(set, PG, pages, f) != pages || fclose(f))
			die("writing %s: %s", outfile, strerror(errno));
	}
	printf("%-8s %12s %12s %8s %9s %22s   per kind (zero/text/bin/random/dup)\n", "algo",
	       "compress", "decompress", "ratio", "effective", "compressed/same/incomp");
	for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
		struct codec_result r;

		run_codec(codecs[i].algo, codecs[i].level, set, pages, start, &r);
		printf("%-8s %7.0f MB/s %7.0f MB/s %7.2fx %8.2fx %8lu/%lu/%lu   ", codecs[i].name,
		       r.comp_mbs, r.decomp_mbs, r.ratio, r.eff_ratio, (unsigned long)r.compressed,
		       (unsigned long)r.same, (unsigned long)r.incomp);
		for (int k = 0; k < NR_KINDS; k++) {
			if (r.kind_ratio[k])
				printf("%.2fx", r.kind_ratio[k]);
			else
				printf("inf");
			printf(k < NR_KINDS - 1 ? " " : "\n");
		}
	}
	printf("(MB/s per core: one thread, CPU time; ratio: page bytes / blob bytes over the "
	       "compressed pages; effective: the whole set / what the tier keeps, same-filled "
	       "pages "
	       "free, incompressible ones whole)\n");
	fault_bench(set, pages, start);
	free(set);
	return 0;
}
