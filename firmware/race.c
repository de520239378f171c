/*
 * race: keep writing and verifying a working area for a while, so host-side reclaim (balloon,
 * compressed tier, KSM) runs against a guest that writes all the time. Every page carries its
 * index and a generation; each pass checks a page still holds the previous generation before
 * writing the next one, so a lost or stale write shows up as a mismatch. Arguments:
 *   mib=N    working area (default 16)
 *   secs=N   how long to run (default 3)
 * Output ends with "race: PASS" (exit 0) or "FAIL: ..." (exit 1).
 */
#include "fw.h"

#define WORDS (FW_PAGE_SIZE / 8)

static uint64_t word(uint64_t page, uint64_t gen, unsigned int i)
{
	uint64_t x = (page << 20 ^ gen) * 0x9E3779B97F4A7C15ULL + i;

	return x ^ x >> 31;
}

static void fill(uint64_t *pg, uint64_t page, uint64_t gen)
{
	pg[0] = page;
	pg[1] = gen;
	for (unsigned int i = 2; i < WORDS; i++)
		pg[i] = word(page, gen, i);
}

/* Returns true when the page holds exactly generation @gen of page @page. */
static bool check(const uint64_t *pg, uint64_t page, uint64_t gen, unsigned int *bad_word)
{
	if (pg[0] != page || pg[1] != gen) {
		*bad_word = pg[0] != page ? 0 : 1;
		return false;
	}
	for (unsigned int i = 2; i < WORDS; i++) {
		if (pg[i] != word(page, gen, i)) {
			*bad_word = i;
			return false;
		}
	}
	return true;
}

int main(void)
{
	uint64_t mib = fw_arg_u64("mib", 16), secs = fw_arg_u64("secs", 3);
	uint64_t pages = mib * FW_MIB / FW_PAGE_SIZE, mismatches = 0, gen, t0, t1, next_report;
	uint64_t hz = fw_tsc_hz(), deadline;
	uint8_t *area;

	if (!pages)
		fw_fail("race: mib=0");
	area = fw_alloc(pages * FW_PAGE_SIZE, 2 * FW_MIB);
	printf("race: %llu MiB at 0x%llx for %llu s, tsc %llu MHz\n", (unsigned long long)mib,
	       (unsigned long long)(uintptr_t)area, (unsigned long long)secs,
	       (unsigned long long)(hz / 1000000));
	t0 = rdtsc();
	for (uint64_t p = 0; p < pages; p++)
		fill((uint64_t *)(area + p * FW_PAGE_SIZE), p, 0);
	deadline = fw_deadline(secs * 1000);
	next_report = fw_deadline(1000);
	for (gen = 1; !fw_expired(deadline) || gen == 1; gen++) {
		for (uint64_t p = 0; p < pages; p++) {
			uint64_t *pg = (uint64_t *)(area + p * FW_PAGE_SIZE);
			unsigned int w = 0;

			if (!check(pg, p, gen - 1, &w)) {
				if (mismatches++ < 8)
					printf("race: pass %llu page %llu (gpa 0x%llx) word %u: "
					       "0x%llx, page/gen words 0x%llx/0x%llx\n",
					       (unsigned long long)gen, (unsigned long long)p,
					       (unsigned long long)(uintptr_t)pg, w,
					       (unsigned long long)pg[w], (unsigned long long)pg[0],
					       (unsigned long long)pg[1]);
			}
			fill(pg, p, gen);
		}
		if (fw_expired(next_report)) {
			printf("race: pass %llu, %llu mismatches\n", (unsigned long long)gen,
			       (unsigned long long)mismatches);
			next_report = fw_deadline(1000);
		}
	}
	t1 = rdtsc();
	/* The last generation must still be intact. */
	for (uint64_t p = 0; p < pages; p++) {
		unsigned int w = 0;

		if (!check((uint64_t *)(area + p * FW_PAGE_SIZE), p, gen - 1, &w))
			mismatches++;
	}
	printf("race: %llu passes over %llu pages, %llu cycles/page, %llu mismatches\n",
	       (unsigned long long)(gen - 1), (unsigned long long)pages,
	       (unsigned long long)((t1 - t0) / ((gen - 1) * pages + pages)),
	       (unsigned long long)mismatches);
	if (mismatches)
		fw_fail("race: %llu mismatches", (unsigned long long)mismatches);
	printf("race: PASS\n");
	return 0;
}
