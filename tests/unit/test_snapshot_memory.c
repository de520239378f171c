/* The snapshot memory file (vmm/snapshot/memory.h): sparse, complete, restorable both ways. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../vmm/snapshot/memory.h"
#include "../../vmm/util.h"

#define RAM (64 * MiB)

static struct guest_mem gm;
static char path[64];

static void setup(void)
{
	cr_assert_eq(gm_init(&gm, RAM, 0), 0);
	snprintf(path, sizeof(path), "/tmp/test_snapmem_%d", getpid());
}

static void teardown(void)
{
	gm_destroy(&gm);
	memset(&gm, 0, sizeof(gm));
	unlink(path);
}

static void fill(uint64_t gpa, uint64_t len, unsigned int seed)
{
	uint8_t *p = gm_ptr(&gm, gpa, len);

	for (uint64_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7 + i / 4096);
}

TestSuite(snap_memory, .init = setup, .fini = teardown);

Test(snap_memory, writes_every_data_page_and_only_those)
{
	struct snap_mem_stats st;
	struct guest_mem back = {0};
	int fd = -1;
	char why[256];

	fill(0x1000, 8 * MiB, 1);		    /* data */
	memset(gm_ptr(&gm, 16 * MiB, MiB), 0, MiB); /* touched, zero: a hole */
	fill(40 * MiB, 4096, 3);		    /* one page */
	fill(48 * MiB, 2 * MiB, 4);
	cr_assert_eq(gm_discard(&gm, (48 * MiB + MiB) >> 12, 16, GM_PAGE_BALLOONED), 0);
	cr_assert_eq(snap_memory_save(&gm, -1, path, &st), 0);
	cr_assert_eq(st.data_pages, 2048 + 1 + 512 - 16, "data pages %llu",
		     (unsigned long long)st.data_pages);
	cr_assert_eq(st.discarded_pages, 16);
	cr_assert_eq(st.apparent_bytes, RAM);
	cr_assert_leq(st.allocated_bytes, (2048 + 1 + 512 - 16 + 64) * 4096ULL);

	/* Mapped back privately, it reads the same; ballooned pages read zero. */
	cr_assert_eq(gm_init(&back, RAM, 0), 0);
	cr_assert_eq(snap_memory_map(&back, path, SNAP_MEM_PRIVATE, &fd, why, sizeof(why)), 0, "%s",
		     why);
	cr_assert(fd >= 0);
	cr_assert_eq(memcmp(gm_ptr(&back, 0x1000, 8 * MiB), gm_ptr(&gm, 0x1000, 8 * MiB), 8 * MiB),
		     0);
	cr_assert_eq(memcmp(gm_ptr(&back, 40 * MiB, 4096), gm_ptr(&gm, 40 * MiB, 4096), 4096), 0);
	cr_assert_eq(*(uint8_t *)gm_ptr(&back, 48 * MiB + MiB, 1), 0);
	/* Copy-on-write: a write stays in this mapping, not in the file. */
	*(uint8_t *)gm_ptr(&back, 0x1000, 1) ^= 0xff;
	close(fd);
	gm_destroy(&back);
	memset(&back, 0, sizeof(back));
	cr_assert_eq(gm_init(&back, RAM, 0), 0);
	cr_assert_eq(snap_memory_map(&back, path, SNAP_MEM_COPY, &fd, why, sizeof(why)), 0, "%s",
		     why);
	cr_assert_eq(fd, -1);
	cr_assert_eq(memcmp(gm_ptr(&back, 0, RAM - 4096), gm_ptr(&gm, 0, RAM - 4096), 40 * MiB), 0);
	gm_destroy(&back);
}

Test(snap_memory, a_second_snapshot_of_a_restored_guest_keeps_the_file_pages)
{
	struct snap_mem_stats st;
	struct guest_mem back = {0};
	char path2[80], why[256];
	int fd;

	fill(0, 4 * MiB, 9);
	cr_assert_eq(snap_memory_save(&gm, -1, path, NULL), 0);
	cr_assert_eq(gm_init(&back, RAM, 0), 0);
	cr_assert_eq(snap_memory_map(&back, path, SNAP_MEM_PRIVATE, &fd, why, sizeof(why)), 0);
	/* Nothing of the file is mapped in this process yet: still every page is data. */
	snprintf(path2, sizeof(path2), "%s.2", path);
	cr_assert_eq(snap_memory_save(&back, fd, path2, &st), 0);
	cr_assert_eq(st.data_pages, 1024);
	close(fd);
	unlink(path2);
	gm_destroy(&back);
}

/* Free page reporting gives pages back, then the guest reuses them silently (bug: a reported
 * page was written as a hole, and the restored guest lost its data). */
Test(snap_memory, a_reported_page_the_guest_reused_is_written)
{
	struct snap_mem_stats st;

	cr_assert_eq(gm_discard(&gm, 256, 256, GM_PAGE_REPORTED), 0);
	fill(256 * 4096, 256 * 4096, 5); /* reused without a word to the host */
	cr_assert_eq(snap_memory_save(&gm, -1, path, &st), 0);
	cr_assert_eq(st.data_pages, 256);
}

Test(snap_memory, state_map_round_trip_and_hostile_ranges)
{
	struct state_out o;
	struct state_in in;
	uint8_t bad[8 + 4 + 4 + 17];

	cr_assert_eq(gm_discard(&gm, 100, 10, GM_PAGE_BALLOONED), 0);
	cr_assert_eq(gm_discard(&gm, 200, 5, GM_PAGE_REPORTED), 0);
	state_out_init(&o);
	snap_memory_state_save(&gm, &o);
	cr_assert_eq(gm_clear_discarded(&gm, 100, 10), 0);
	state_in_init(&in, o.data, o.len);
	cr_assert_eq(snap_memory_state_load(&gm, &in), 0);
	cr_assert_eq(gm.nr_ballooned, 10);
	/* A range past the end of RAM is refused. */
	memcpy(bad, o.data, 16);
	bad[12] = 1, bad[13] = bad[14] = bad[15] = 0;
	for (int i = 0; i < 8; i++)
		bad[16 + i] = (uint8_t)((gm.nr_pages - 2) >> (8 * i));
	memset(bad + 24, 0, 8);
	bad[24] = 5;
	bad[32] = GM_PAGE_BALLOONED;
	state_in_init(&in, bad, sizeof(bad));
	cr_assert_eq(snap_memory_state_load(&gm, &in), -EINVAL);
	state_out_free(&o);
}
