/*
 * The host statistics readers of vmm/mem/host_stats.c on synthetic kernel text: ksm_stat, and
 * smaps from a handful of VMAs to thousands (issue 12 item 6).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/mem/host_stats.h"
#include "../../vmm/util.h"

Test(host_stats, ksm_stat_text)
{
	struct ksm_stats k = {0};

	cr_assert_eq(ksm_parse_stat("ksm_rmap_items 12\nksm_zero_pages 3\n"
				    "ksm_merging_pages 9\nksm_process_profit -4096\n"
				    "ksm_mergeable yes\n",
				    &k),
		     0);
	cr_assert(k.have_ksm_stat);
	cr_assert_eq(k.rmap_items, 12);
	cr_assert_eq(k.zero_pages, 3);
	cr_assert_eq(k.merging_pages, 9);
	cr_assert_eq(k.process_profit, -4096);
	memset(&k, 0, sizeof(k));
	cr_assert_eq(ksm_parse_stat("", &k), -EINVAL);
	cr_assert_eq(ksm_parse_stat("garbage\n\n  \nfoo bar\n", &k), -EINVAL);
	cr_assert_not(k.have_ksm_stat);
}

Test(host_stats, smaps_text)
{
	static const char text[] =
		"55d000000000-55d000001000 r--p 00000000 08:01 123 /usr/bin/vmm\n"
		"Rss:                   4 kB\n"
		"KSM:                 100 kB\n"
		"7f0000000000-7f0040000000 rw-p 00000000 00:00 0 \n"
		"Size:            1048576 kB\n"
		"Rss:               65536 kB\n"
		"AnonHugePages:         0 kB\n"
		"KSM:                8192 kB\n"
		"Swap:                 12 kB\n"
		"VmFlags: rd wr mr mw me ac sd mg\n"
		"7f0040000000-7f0040001000 rw-p 00000000 00:00 0 \n"
		"Rss:                   4 kB\n";
	struct ksm_stats k = {0};

	cr_assert_eq(smaps_parse(text, 0x7f0000000000ULL, 0x7f0040000000ULL, &k), 0);
	cr_assert(k.have_smaps);
	cr_assert_eq(k.smaps_rss_bytes, 65536 * KiB);
	cr_assert_eq(k.smaps_ksm_bytes, 8192 * KiB);
	cr_assert_eq(k.smaps_swap_bytes, 12 * KiB);
	cr_assert_eq(smaps_parse(text, 0x1000, 0x2000, &k), -ENOENT);
	cr_assert_not(k.have_smaps);
}

/* --- /proc/self/smaps at thousands of VMAs (issue 12 item 6) ---------------------------------- */

/* One VMA as the kernel prints it: header, 22 kB fields, VmFlags. */
static void smaps_vma(FILE *f, uint64_t lo, uint64_t hi, const char *name, unsigned int rss_kb,
		      unsigned int ksm_kb, unsigned int swap_kb)
{
	static const char *const fields[] = {
		"Size",		 "KernelPageSize", "MMUPageSize",     "Rss",
		"Pss",		 "Pss_Dirty",	   "Shared_Clean",    "Shared_Dirty",
		"Private_Clean", "Private_Dirty",  "Referenced",      "Anonymous",
		"KSM",		 "LazyFree",	   "AnonHugePages",   "ShmemPmdMapped",
		"FilePmdMapped", "Shared_Hugetlb", "Private_Hugetlb", "Swap",
		"SwapPss",	 "Locked"};

	fprintf(f, "%012llx-%012llx rw-p 00000000 00:00 0                          %s\n",
		(unsigned long long)lo, (unsigned long long)hi, name);
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		unsigned int v = !strcmp(fields[i], "Rss")	 ? rss_kb
				 : !strcmp(fields[i], "KSM")	 ? ksm_kb
				 : !strcmp(fields[i], "Swap")	 ? swap_kb
				 : !strcmp(fields[i], "SwapPss") ? swap_kb + 1000
								 : (unsigned int)i * 7;

		fprintf(f, "%s:%*s%8u kB\n", fields[i], (int)(16 - strlen(fields[i])), "", v);
	}
	fprintf(f, "THPeligible:    0\nProtectionKey:         0\nVmFlags: rd wr mr mw me ac sd\n");
}

#define GUEST_LO   0x7f0000000000ULL
#define GUEST_VMAS 64

/*
 * @n VMAs with the guest mapping [GUEST_LO, +GUEST_VMAS MiB) split in GUEST_VMAS VMAs in the
 * middle (madvise splits it), then a VMA whose path is longer than any read buffer.
 */
static FILE *synthetic_smaps(unsigned int n)
{
	FILE *f = tmpfile();
	char *longname = malloc(200000);

	cr_assert_not_null(f);
	memset(longname, 'x', 199999);
	longname[199999] = '\0';
	for (unsigned int i = 0; i < n; i++) {
		uint64_t lo = 0x550000000000ULL + (uint64_t)i * 0x10000;

		if (i == n / 2) {
			for (unsigned int g = 0; g < GUEST_VMAS; g++)
				smaps_vma(f, GUEST_LO + g * MiB, GUEST_LO + (g + 1) * MiB, "",
					  1024 - g, g, 2 * g);
			/* Right after the guest: its fields must not count as the guest's. */
			smaps_vma(f, GUEST_LO + GUEST_VMAS * MiB,
				  GUEST_LO + GUEST_VMAS * MiB + 0x1000, longname, 4, 4, 4);
		}
		smaps_vma(f, lo, lo + 0x10000, i % 3 ? "/usr/lib/libc.so.6" : "", 60, 0, 8);
	}
	free(longname);
	fflush(f);
	rewind(f);
	return f;
}

static void expect_guest_sums(const struct ksm_stats *k)
{
	uint64_t rss = 0, ksm = 0, swap = 0;

	for (unsigned int g = 0; g < GUEST_VMAS; g++) {
		rss += (1024 - g) * KiB;
		ksm += g * KiB;
		swap += 2 * g * KiB;
	}
	cr_assert(k->have_smaps);
	cr_assert_eq(k->smaps_rss_bytes, rss);
	cr_assert_eq(k->smaps_ksm_bytes, ksm);
	cr_assert_eq(k->smaps_swap_bytes, swap);
}

Test(host_stats, smaps_thousands_of_vmas_from_a_file)
{
	FILE *f = synthetic_smaps(10000); /* ~12 MB, past any whole-file buffer */
	struct ksm_stats k = {0};

	cr_assert_eq(smaps_read(fileno(f), GUEST_LO, GUEST_LO + GUEST_VMAS * MiB, &k), 0);
	expect_guest_sums(&k);
	/* One guest VMA only, from the middle. */
	rewind(f);
	cr_assert_eq(smaps_read(fileno(f), GUEST_LO + 10 * MiB, GUEST_LO + 11 * MiB, &k), 0);
	cr_assert_eq(k.smaps_rss_bytes, (1024 - 10) * KiB);
	rewind(f);
	cr_assert_eq(smaps_read(fileno(f), 0x1000, 0x2000, &k), -ENOENT);
	cr_assert_not(k.have_smaps);
	fclose(f);
}

Test(host_stats, smaps_thousands_of_vmas_as_text)
{
	FILE *f = synthetic_smaps(3500);
	struct ksm_stats k = {0};
	long size;
	char *text;

	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	text = malloc((size_t)size + 1);
	cr_assert_eq(fread(text, 1, (size_t)size, f), (size_t)size);
	text[size] = '\0';
	cr_assert_eq(smaps_parse(text, GUEST_LO, GUEST_LO + GUEST_VMAS * MiB, &k), 0);
	expect_guest_sums(&k);
	free(text);
	fclose(f);
}
