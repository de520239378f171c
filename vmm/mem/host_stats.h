/*
 * Host statistics of this process's memory, for memory.stats: KSM (/proc/self/ksm_stat,
 * /sys/kernel/mm/ksm/) and the guest mapping's lines in /proc/self/smaps. Parsers of the
 * kernel's text (unit-testable on synthetic input) and the readers that open the files.
 * Documented in Documentation/admin-guide/mm/ksm.rst and filesystems/proc.rst of Linux.
 */
#ifndef VMM_MEM_HOST_STATS_H
#define VMM_MEM_HOST_STATS_H

#include <stdbool.h>
#include <stdint.h>

/* KSM figures: /proc/self/ksm_stat, /sys/kernel/mm/ksm/run, the guest mapping in smaps. */
struct ksm_stats {
	bool mergeable;		  /* MADV_MERGEABLE applied to guest RAM */
	int run;		  /* /sys/kernel/mm/ksm/run, -1 when unreadable */
	bool have_ksm_stat;	  /* /proc/self/ksm_stat was readable */
	uint64_t rmap_items;	  /* ksm_rmap_items */
	uint64_t merging_pages;	  /* ksm_merging_pages (host pages) */
	uint64_t zero_pages;	  /* ksm_zero_pages */
	int64_t process_profit;	  /* ksm_process_profit, bytes, may be negative */
	bool have_smaps;	  /* the guest mapping was found in /proc/self/smaps */
	uint64_t smaps_rss_bytes; /* Rss of the guest mapping */
	uint64_t smaps_ksm_bytes; /* KSM line of the guest mapping (0 when the kernel lacks it) */
	uint64_t smaps_swap_bytes;
	/* Host-wide, /sys/kernel/mm/ksm/ (-1 when unreadable). */
	int64_t pages_to_scan, sleep_millisecs, pages_shared, pages_sharing, full_scans;
};

/**
 * host_read_text() - read the whole /proc, /sys or cgroup file @path into a malloc'd
 * NUL-terminated buffer, which the caller frees. Returns NULL when it cannot be opened or read,
 * or is larger than 1 MiB.
 */
char *host_read_text(const char *path);

/**
 * ksm_parse_stat() - fill the ksm_stat fields of @out from the text of /proc/self/ksm_stat
 * ("ksm_rmap_items 12\n..."); unknown lines are ignored. Sets out->have_ksm_stat.
 * Returns 0, or -EINVAL when no known field was found.
 */
int ksm_parse_stat(const char *text, struct ksm_stats *out);

/**
 * smaps_parse() - sum Rss, KSM and Swap (kB lines) over the /proc/self/smaps entries that
 * overlap host addresses [@start, @end) into @out's smaps fields; sets out->have_smaps when one
 * did. @text: NUL-terminated. Linear in its length. Returns 0, or -ENOENT when no entry overlaps.
 */
int smaps_parse(const char *text, uint64_t start, uint64_t end, struct ksm_stats *out);

/**
 * smaps_read() - smaps_parse() over what @fd (an open /proc/self/smaps, at its start) reads
 * until EOF, 64 KiB at a time: linear, and no bound on the file's size (a VMM with thousands of
 * VMAs has a smaps of several MB). Lines longer than the buffer (long paths) are judged by their
 * start. Does not close @fd. Returns 0, -ENOENT (no entry overlaps), -ENOMEM or -errno of read().
 */
int smaps_read(int fd, uint64_t start, uint64_t end, struct ksm_stats *out);

/**
 * host_ksm_read() - every figure of @out: /sys/kernel/mm/ksm/ (host-wide, -1 when unreadable),
 * /proc/self/ksm_stat (or ksm_merging_pages on Linux 6.1), and the smaps lines of the guest
 * mapping [@base, @base + @size bytes) (none when @base is NULL). @mergeable: MADV_MERGEABLE
 * was applied. Missing files leave their figures unset; never fails.
 */
void host_ksm_read(const void *base, uint64_t size, bool mergeable, struct ksm_stats *out);

#endif
