/* Guest RAM: layout, the bounds-checked accessor, discard and the state map (vmm/mem/guest_mem.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"

Test(guest_mem, init_rejects_bad_sizes)
{
	struct guest_mem gm = {0};

	cr_assert_eq(gm_init(&gm, 0, false), -EINVAL);
	cr_assert_eq(gm_init(&gm, 512 * KiB, false), -EINVAL);
	cr_assert_eq(gm_init(&gm, MiB + 100, false), -EINVAL);
	gm_destroy(&gm); /* safe on a failed init */
}

Test(guest_mem, low_only_layout)
{
	struct guest_mem gm = {0};

	cr_assert_eq(gm_init(&gm, 64 * MiB, GM_MERGE), 0);
	cr_assert_eq(gm.nr_regions, 1);
	cr_assert_eq(gm.nr_pages, 64 * MiB / GM_PAGE_SIZE);
	cr_assert_eq(gm.regions[0].gpa, 0);
	cr_assert_eq(gm.regions[0].size, 64 * MiB);
	gm_destroy(&gm);
	cr_assert_null(gm.base);
}

/* The VmFlags line of the mapping that starts at @base, from /proc/self/smaps. */
static void vm_flags(const void *base, char *out, size_t n)
{
	char line[512], want[32];
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	cr_assert_not_null(f);
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)base);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' ') && line[0] != 'V')
			in = !strncmp(line, want, strlen(want));
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(out, n, "%s", line);
			break;
		}
	}
	fclose(f);
	cr_assert(out[0], "no smaps entry at %p", base);
}

Test(guest_mem, mapping_is_2m_aligned_and_huge_pages_follow_the_flag)
{
	struct guest_mem gm = {0};
	char flags[512];

	cr_assert_eq(gm_init(&gm, 64 * MiB + 4 * KiB, 0), 0);
	cr_assert_eq((uintptr_t)gm.base % (2 * MiB), 0, "base %p", (void *)gm.base);
	vm_flags(gm.base, flags, sizeof(flags));
	cr_assert_not(gm.hugepages);
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
		cr_assert(strstr(flags, " nh"), "MADV_NOHUGEPAGE by default: %s", flags);
	gm.base[64 * MiB] = 1; /* the last page is mapped, nothing after it is */
	gm_destroy(&gm);

	cr_assert_eq(gm_init(&gm, 64 * MiB, GM_HUGEPAGES), 0);
	cr_assert_eq((uintptr_t)gm.base % (2 * MiB), 0);
	vm_flags(gm.base, flags, sizeof(flags));
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0) {
		cr_assert(gm.hugepages);
		cr_assert(strstr(flags, " hg"), "MADV_HUGEPAGE: %s", flags);
	}
	gm_destroy(&gm);
}

Test(guest_mem, split_layout_above_3g)
{
	struct guest_mem gm = {0};
	uint64_t idx;

	cr_assert_eq(gm_init(&gm, 5 * GiB, false), 0);
	cr_assert_eq(gm.nr_regions, 2);
	cr_assert_eq(gm.regions[0].size, GM_LOW_RAM_MAX);
	cr_assert_eq(gm.regions[1].gpa, GM_HIGH_BASE);
	cr_assert_eq(gm.regions[1].size, 2 * GiB);
	cr_assert_eq(gm.regions[1].first_pg, GM_LOW_RAM_MAX / GM_PAGE_SIZE);
	/* The MMIO hole is not RAM. */
	cr_assert_null(gm_ptr(&gm, GM_LOW_RAM_MAX, 1));
	cr_assert_null(gm_ptr(&gm, GM_HIGH_BASE - 1, 1));
	cr_assert_eq(gm_ptr(&gm, GM_HIGH_BASE, 1), gm.base + GM_LOW_RAM_MAX);
	/* A range crossing the hole lies in no single region. */
	cr_assert_null(gm_ptr(&gm, GM_LOW_RAM_MAX - 8, 16));
	cr_assert_eq(gm_page_index(&gm, GM_HIGH_BASE + 3 * GM_PAGE_SIZE + 5, &idx), 0);
	cr_assert_eq(idx, GM_LOW_RAM_MAX / GM_PAGE_SIZE + 3);
	cr_assert_eq(gm_page_index(&gm, GM_LOW_RAM_MAX, &idx), -EFAULT);
	cr_assert_null(gm_ptr(&gm, GM_HIGH_BASE + 2 * GiB, 1));
	gm_destroy(&gm);
}

Test(guest_mem, ptr_checks_both_ends_and_overflow)
{
	struct guest_mem gm = {0};

	cr_assert_eq(gm_init(&gm, 16 * MiB, false), 0);
	cr_assert_eq(gm_ptr(&gm, 0, 16 * MiB), gm.base);
	cr_assert_not_null(gm_ptr(&gm, 16 * MiB, 0)); /* empty range at the end */
	cr_assert_null(gm_ptr(&gm, 16 * MiB, 1));
	cr_assert_null(gm_ptr(&gm, 16 * MiB - 1, 2));
	cr_assert_null(gm_ptr(&gm, 16 * MiB + 1, 0));
	cr_assert_null(gm_ptr(&gm, UINT64_MAX - 1, 4)); /* wraps to a small end */
	cr_assert_null(gm_ptr(&gm, 8, UINT64_MAX));
	gm_destroy(&gm);
}

Test(guest_mem, read_write_fault_outside)
{
	struct guest_mem gm = {0};
	char buf[8] = "abcdefg", out[8] = {0};

	cr_assert_eq(gm_init(&gm, 2 * MiB, false), 0);
	cr_assert_eq(gm_write(&gm, 100, buf, 8), 0);
	cr_assert_eq(gm_read(&gm, 100, out, 8), 0);
	cr_assert_str_eq(out, "abcdefg");
	cr_assert_eq(gm_write(&gm, 2 * MiB - 4, buf, 8), -EFAULT);
	cr_assert_eq(gm_read(&gm, 2 * MiB - 4, out, 8), -EFAULT);
	gm_destroy(&gm);
}

Test(guest_mem, discard_zeroes_and_counts)
{
	struct guest_mem gm = {0};
	uint8_t *p;

	cr_assert_eq(gm_init(&gm, 8 * MiB, false), 0);
	p = gm_ptr(&gm, 0x10000, 4 * GM_PAGE_SIZE);
	memset(p, 0xaa, 4 * GM_PAGE_SIZE);
	cr_assert_eq(gm_discard(&gm, 0x10, 4, GM_PAGE_BALLOONED), 0);
	cr_assert_eq(gm.discard_calls, 1);
	cr_assert_eq(gm.nr_ballooned, 4);
	for (unsigned int i = 0; i < 4 * GM_PAGE_SIZE; i++)
		cr_assert_eq(p[i], 0);
	for (unsigned int i = 0x10; i < 0x14; i++)
		cr_assert_eq(gm.state[i], GM_PAGE_BALLOONED);
	cr_assert_eq(gm.state[0x14], GM_PAGE_RESIDENT);
	gm_destroy(&gm);
}

Test(guest_mem, state_transitions_keep_counters)
{
	struct guest_mem gm = {0};

	cr_assert_eq(gm_init(&gm, 8 * MiB, false), 0);
	cr_assert_eq(gm_discard(&gm, 0x100, 8, GM_PAGE_BALLOONED), 0);
	cr_assert_eq(gm_discard(&gm, 0x100, 8, GM_PAGE_BALLOONED), 0); /* twice: no double count */
	cr_assert_eq(gm.nr_ballooned, 8);
	cr_assert_eq(gm_discard(&gm, 0x104, 8, GM_PAGE_REPORTED), 0); /* half overlaps */
	cr_assert_eq(gm.nr_ballooned, 4);
	cr_assert_eq(gm.nr_reported, 8);
	cr_assert_eq(gm_clear_discarded(&gm, 0x100, 6), 0);
	cr_assert_eq(gm.nr_ballooned, 0);
	cr_assert_eq(gm.nr_reported, 6);
	cr_assert_eq(gm_clear_discarded(&gm, 0x100, 6), 0); /* clearing twice is harmless */
	cr_assert_eq(gm.nr_reported, 6);
	cr_assert_eq(gm.discard_calls, 3);
	/* Compressed pages belong to the compressed tier: deflate leaves them alone. */
	gm.state[0x200] = GM_PAGE_COMPRESSED;
	cr_assert_eq(gm_clear_discarded(&gm, 0x200, 1), 0);
	cr_assert_eq(gm.state[0x200], GM_PAGE_COMPRESSED);
	gm_destroy(&gm);
}

Test(guest_mem, discard_rejects_ranges_outside_ram)
{
	struct guest_mem gm = {0};
	uint64_t last = 8 * MiB / GM_PAGE_SIZE - 1;

	cr_assert_eq(gm_init(&gm, 8 * MiB, false), 0);
	cr_assert_eq(gm_discard(&gm, last, 2, GM_PAGE_BALLOONED), -EFAULT);
	cr_assert_eq(gm_discard(&gm, UINT64_MAX - 1, 4, GM_PAGE_BALLOONED), -EFAULT);
	cr_assert_eq(gm_discard(&gm, UINT64_MAX >> 4, 1, GM_PAGE_BALLOONED), -EFAULT);
	cr_assert_eq(gm_clear_discarded(&gm, last + 1, 1), -EFAULT);
	cr_assert_eq(gm_discard(&gm, 0, 1, GM_PAGE_RESIDENT), -EINVAL);
	cr_assert_eq(gm.discard_calls, 0);
	cr_assert_eq(gm.nr_ballooned, 0);
	cr_assert_eq(gm_discard(&gm, last, 1, GM_PAGE_BALLOONED), 0);
	cr_assert_eq(gm_discard(&gm, 3, 0, GM_PAGE_BALLOONED), 0); /* empty: nothing to do */
	cr_assert_eq(gm.discard_calls, 1);
	gm_destroy(&gm);
}

Test(guest_mem, discard_across_the_mmio_hole_is_refused)
{
	struct guest_mem gm = {0};
	uint64_t hole = GM_LOW_RAM_MAX >> GM_PAGE_SHIFT, high = GM_HIGH_BASE >> GM_PAGE_SHIFT;

	cr_assert_eq(gm_init(&gm, 4 * GiB, false), 0);
	/* A PFN range from low RAM into high RAM covers the hole: not all RAM, nothing done. */
	cr_assert_eq(gm_discard(&gm, hole - 1, high - hole + 2, GM_PAGE_BALLOONED), -EFAULT);
	cr_assert_eq(gm.discard_calls, 0);
	/* Each side on its own works, one madvise per region range. */
	cr_assert_eq(gm_discard(&gm, hole - 2, 2, GM_PAGE_BALLOONED), 0);
	cr_assert_eq(gm_discard(&gm, high, 2, GM_PAGE_BALLOONED), 0);
	cr_assert_eq(gm.discard_calls, 2);
	cr_assert_eq(gm.nr_ballooned, 4);
	cr_assert_eq(gm.state[gm.regions[1].first_pg], GM_PAGE_BALLOONED);
	gm_destroy(&gm);
}

Test(guest_mem, resident_bytes_drop_after_discard)
{
	struct guest_mem gm = {0};
	uint64_t before, touched, after;

	cr_assert_eq(gm_init(&gm, 32 * MiB, false), 0);
	before = gm_resident_bytes(&gm);
	memset(gm_ptr(&gm, 0, 16 * MiB), 0x5a, 16 * MiB);
	touched = gm_resident_bytes(&gm);
	cr_assert_geq(touched, before + 16 * MiB);
	cr_assert_eq(gm_discard(&gm, 0, 16 * MiB / GM_PAGE_SIZE, GM_PAGE_BALLOONED), 0);
	after = gm_resident_bytes(&gm);
	cr_assert_leq(after, touched - 16 * MiB);
	gm_destroy(&gm);
}

/*
 * Issue 12 item 9: a guest resetting the balloon again and again must not hold gm->lock for a
 * scan of all guest RAM each time. 64 GiB of (never touched) RAM: 16 Mi state-map entries.
 */
Test(guest_mem, clear_all_is_bounded_by_what_was_ballooned)
{
	struct guest_mem gm = {0};
	struct gm_clear_stats st;
	uint64_t last;

	cr_assert_eq(gm_init(&gm, 64 * GiB, false), 0);
	last = gm.nr_pages - 1;
	/* Nothing ballooned: nothing to scan. */
	gm_clear_discarded_all(&gm, &st);
	cr_assert_eq(st.scanned_pages, 0, "scanned %llu pages with nothing ballooned",
		     (unsigned long long)st.scanned_pages);
	/* A few pages close together: the scan covers their range only. */
	cr_assert_eq(gm_discard(&gm, 0x1000, 1, GM_PAGE_BALLOONED), 0);
	cr_assert_eq(gm_discard(&gm, 0x1040, 4, GM_PAGE_REPORTED), 0);
	gm_clear_discarded_all(&gm, &st);
	cr_assert_eq(gm.nr_ballooned + gm.nr_reported, 0);
	cr_assert_eq(gm.state[0x1000], GM_PAGE_RESIDENT);
	cr_assert_eq(gm.state[0x1043], GM_PAGE_RESIDENT);
	cr_assert_leq(st.scanned_pages, 0x44, "scanned %llu pages for a 0x44-page range",
		      (unsigned long long)st.scanned_pages);
	/* Reset again (the hostile loop): nothing left, nothing scanned. */
	for (int i = 0; i < 1000; i++) {
		gm_clear_discarded_all(&gm, &st);
		cr_assert_eq(st.scanned_pages, 0);
	}
	/* Pages at both ends: the whole map, but never more than a chunk under one hold. */
	cr_assert_eq(gm_discard(&gm, 0, 1, GM_PAGE_BALLOONED), 0);
	gm.state[5] = GM_PAGE_COMPRESSED;
	cr_assert_eq(gm_discard(&gm,
				(GM_HIGH_BASE >> GM_PAGE_SHIFT) + last - gm.regions[1].first_pg, 1,
				GM_PAGE_BALLOONED),
		     0);
	gm_clear_discarded_all(&gm, &st);
	cr_assert_eq(gm.nr_ballooned, 0);
	cr_assert_eq(gm.state[last], GM_PAGE_RESIDENT);
	cr_assert_eq(gm.state[5], GM_PAGE_COMPRESSED, "compressed pages stay");
	cr_assert_leq(st.max_hold_pages, GM_CLEAR_CHUNK_PAGES, "%llu pages under one hold",
		      (unsigned long long)st.max_hold_pages);
	cr_assert_geq(st.lock_holds, gm.nr_pages / GM_CLEAR_CHUNK_PAGES);
	cr_assert_eq(st.scanned_pages, gm.nr_pages);
	gm_destroy(&gm);
}
