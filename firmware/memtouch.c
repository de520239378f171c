/*
 * memtouch: fill guest memory with patterns the host treats differently (zero pages, duplicate
 * pages for KSM, compressible text, incompressible random data), verify them, print checksums
 * and fill/verify rates. Arguments:
 *   mib=N      memory to touch (default 32; 0 = all free RAM)
 *   passes=N   verify passes after the fill (default 2)
 *   hold=S     then keep verifying for S seconds (lets the host reclaim/compress meanwhile)
 *   seed=N     pattern seed (default 1)
 * Output ends with "memtouch: PASS" (exit 0) or "FAIL: ..." (exit 1).
 */
#include "fw.h"

enum kind { K_ZERO, K_DUP, K_TEXT, K_RANDOM, NR_KINDS };

static const char *const kind_name[NR_KINDS] = {"zero", "dup", "text", "random"};

static const char *const words[] = {
	"the ",	       "balloon ", "guest ",   "memory ", "page ",   "host ", "virtio ",
	"queue ",      "reclaim ", "kernel ",  "of ",	  "and ",    "to ",   "a ",
	"compressed ", "tier ",	   "returns ", "every ",  "buffer ", "used ", "ring.\n",
};

static uint64_t seed;

/* The expected content of page @idx of kind @k. */
static void gen_page(enum kind k, uint64_t idx, uint64_t *page)
{
	uint64_t st = (seed + 1) * 0x9E3779B97F4A7C15ULL ^ (idx + 1) * 0xD6E8FEB86659FD93ULL;
	char *c = (char *)page;
	unsigned int n = 0;

	switch (k) {
	case K_ZERO:
		memset(page, 0, FW_PAGE_SIZE);
		break;
	case K_DUP: /* the same bytes in every page: KSM merges them */
		st = (seed + 1) * 0x9E3779B97F4A7C15ULL;
		for (unsigned int i = 0; i < FW_PAGE_SIZE / 8; i++)
			page[i] = fw_rand(&st);
		break;
	case K_TEXT: /* English-like words: compresses about 4:1 */
		while (n < FW_PAGE_SIZE) {
			const char *w = words[fw_rand(&st) % FW_ARRAY_SIZE(words)];

			while (*w && n < FW_PAGE_SIZE)
				c[n++] = *w++;
		}
		break;
	case K_RANDOM:
		for (unsigned int i = 0; i < FW_PAGE_SIZE / 8; i++)
			page[i] = fw_rand(&st);
		break;
	default:
		break;
	}
}

struct part {
	uint8_t *base;
	uint64_t pages;
	uint64_t fill_cycles, checksum;
};

static uint64_t checksum(const struct part *p)
{
	return fw_hash64(p->base, p->pages * FW_PAGE_SIZE, 0);
}

/* Returns the number of pages that differ from what gen_page() says; prints the first few. */
static uint64_t verify(enum kind k, const struct part *p, uint64_t *scratch, uint64_t *bad_total)
{
	uint64_t bad = 0;

	for (uint64_t i = 0; i < p->pages; i++) {
		const uint64_t *pg = (const uint64_t *)(p->base + i * FW_PAGE_SIZE);

		gen_page(k, i, scratch);
		if (!memcmp(pg, scratch, FW_PAGE_SIZE))
			continue;
		if (bad++ < 4) {
			unsigned int w = 0;

			while (pg[w] == scratch[w])
				w++;
			printf("memtouch: %s page %llu (gpa 0x%llx) word %u: 0x%llx, expected "
			       "0x%llx\n",
			       kind_name[k], (unsigned long long)i,
			       (unsigned long long)(uintptr_t)pg, w, (unsigned long long)pg[w],
			       (unsigned long long)scratch[w]);
		}
	}
	*bad_total += bad;
	return bad;
}

static uint64_t verify_all(struct part *parts, uint64_t *scratch, const char *what)
{
	uint64_t bad = 0, t0 = rdtsc(), pages = 0;

	for (int k = 0; k < NR_KINDS; k++) {
		uint64_t sum;

		verify(k, &parts[k], scratch, &bad);
		sum = checksum(&parts[k]);
		if (sum != parts[k].checksum) {
			printf("memtouch: %s: %s checksum 0x%llx, after fill 0x%llx\n", what,
			       kind_name[k], (unsigned long long)sum,
			       (unsigned long long)parts[k].checksum);
			bad++;
		}
		pages += parts[k].pages;
	}
	printf("memtouch: %s: %llu bad pages, %llu cycles/page\n", what, (unsigned long long)bad,
	       (unsigned long long)((rdtsc() - t0) / (pages ? pages : 1)));
	return bad;
}

int main(void)
{
	uint64_t mib = fw_arg_u64("mib", 32), passes = fw_arg_u64("passes", 2);
	uint64_t hold = fw_arg_u64("hold", 0), bytes, per_kind, bad = 0;
	uint64_t *scratch = fw_alloc(FW_PAGE_SIZE, FW_PAGE_SIZE);
	struct part parts[NR_KINDS];
	uint8_t *base;
	uint64_t hz = fw_tsc_hz();

	seed = fw_arg_u64("seed", 1);
	bytes = mib ? mib * FW_MIB : (fw_mem_left() > FW_MIB ? fw_mem_left() - FW_MIB : 0);
	per_kind = bytes / NR_KINDS / FW_PAGE_SIZE;
	if (!per_kind)
		fw_fail("memtouch: nothing to touch (mib=%llu, %llu bytes free)",
			(unsigned long long)mib, (unsigned long long)fw_mem_left());
	base = fw_alloc(per_kind * NR_KINDS * FW_PAGE_SIZE, 2 * FW_MIB);
	printf("memtouch: ram %llu MiB, touching %llu MiB at 0x%llx, tsc %llu MHz\n",
	       (unsigned long long)(fw_ram_bytes / FW_MIB),
	       (unsigned long long)(per_kind * NR_KINDS * FW_PAGE_SIZE / FW_MIB),
	       (unsigned long long)(uintptr_t)base, (unsigned long long)(hz / 1000000));

	for (int k = 0; k < NR_KINDS; k++) {
		struct part *p = &parts[k];
		uint64_t t0;

		p->base = base + k * per_kind * FW_PAGE_SIZE;
		p->pages = per_kind;
		t0 = rdtsc();
		for (uint64_t i = 0; i < per_kind; i++)
			gen_page(k, i, (uint64_t *)(p->base + i * FW_PAGE_SIZE));
		p->fill_cycles = rdtsc() - t0;
		p->checksum = checksum(p);
		printf("memtouch: fill %-6s %6llu pages  %8llu cycles/page  %6llu MB/s  checksum "
		       "0x%016llx\n",
		       kind_name[k], (unsigned long long)p->pages,
		       (unsigned long long)(p->fill_cycles / p->pages),
		       (unsigned long long)(fw_cycles_to_us(p->fill_cycles)
						    ? p->pages * FW_PAGE_SIZE /
							      fw_cycles_to_us(p->fill_cycles)
						    : 0),
		       (unsigned long long)p->checksum);
	}
	for (uint64_t i = 0; i < passes; i++) {
		char what[32];

		snprintf(what, sizeof(what), "verify %llu", (unsigned long long)i + 1);
		bad += verify_all(parts, scratch, what);
	}
	if (hold) {
		uint64_t deadline = fw_deadline(hold * 1000), n = 0;

		while (!fw_expired(deadline) && !bad) {
			char what[32];

			snprintf(what, sizeof(what), "hold %llu", (unsigned long long)++n);
			bad += verify_all(parts, scratch, what);
		}
	}
	if (bad)
		fw_fail("memtouch: %llu bad pages", (unsigned long long)bad);
	printf("memtouch: PASS\n");
	return 0;
}
