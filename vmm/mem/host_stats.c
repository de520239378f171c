#include "host_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util.h"

#define SMAPS_CHUNK (64 * 1024)	  /* smaps_read() read buffer */
#define PROC_MAX    (1024 * 1024) /* the small /proc and /sys files read whole stay far below */

int ksm_parse_stat(const char *text, struct ksm_stats *out)
{
	bool found = false;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		char key[32];
		long long v;

		if (sscanf(p, "%31s %lld", key, &v) != 2)
			continue;
		if (!strcmp(key, "ksm_rmap_items"))
			out->rmap_items = v < 0 ? 0 : (uint64_t)v;
		else if (!strcmp(key, "ksm_merging_pages"))
			out->merging_pages = v < 0 ? 0 : (uint64_t)v;
		else if (!strcmp(key, "ksm_zero_pages"))
			out->zero_pages = v < 0 ? 0 : (uint64_t)v;
		else if (!strcmp(key, "ksm_process_profit"))
			out->process_profit = v;
		else
			continue;
		found = true;
	}
	out->have_ksm_stat = found;
	return found ? 0 : -EINVAL;
}

/* The summing state of one pass over smaps. */
struct smaps_scan {
	uint64_t start, end;
	bool inside; /* the current VMA overlaps [start, end) */
	struct ksm_stats *out;
};

/* Hex or decimal digits of [*@p, @e) into *@v; returns false when there is none. */
static bool parse_num(const char **p, const char *e, unsigned int base, uint64_t *v)
{
	const char *q = *p;

	*v = 0;
	for (; q < e; q++) {
		unsigned int d;

		if (*q >= '0' && *q <= '9')
			d = (unsigned int)(*q - '0');
		else if (base == 16 && *q >= 'a' && *q <= 'f')
			d = (unsigned int)(*q - 'a' + 10);
		else
			break;
		*v = *v * base + d;
	}
	if (q == *p)
		return false;
	*p = q;
	return true;
}

/* "Rss:   1234 kB" -> bytes added to *@acc when [@p, @e) starts with @key. */
static void smaps_field(const char *p, const char *e, const char *key, uint64_t *acc)
{
	size_t n = strlen(key);
	uint64_t kb;

	if ((size_t)(e - p) <= n || memcmp(p, key, n))
		return;
	for (p += n; p < e && *p == ' '; p++)
		;
	if (parse_num(&p, e, 10, &kb) && e - p >= 3 && !memcmp(p, " kB", 3))
		*acc += kb * KiB;
}

/*
 * One line [@p, @e) without its '\n'. Header lines are "lo-hi perms ..." (lowercase hex);
 * field lines start with a capitalized name. Linear in the line's length.
 */
static void smaps_line(struct smaps_scan *s, const char *p, const char *e)
{
	const char *q = p;
	uint64_t lo, hi;

	if (parse_num(&q, e, 16, &lo) && q < e && *q == '-' && (q++, parse_num(&q, e, 16, &hi)) &&
	    q < e && *q == ' ') {
		s->inside = lo < s->end && hi > s->start;
		s->out->have_smaps |= s->inside;
		return;
	}
	if (!s->inside)
		return;
	smaps_field(p, e, "Rss:", &s->out->smaps_rss_bytes);
	smaps_field(p, e, "KSM:", &s->out->smaps_ksm_bytes);
	smaps_field(p, e, "Swap:", &s->out->smaps_swap_bytes);
}

static void smaps_begin(struct smaps_scan *s, uint64_t start, uint64_t end, struct ksm_stats *out)
{
	*s = (struct smaps_scan){.start = start, .end = end, .out = out};
	out->smaps_rss_bytes = out->smaps_ksm_bytes = out->smaps_swap_bytes = 0;
	out->have_smaps = false;
}

int smaps_parse(const char *text, uint64_t start, uint64_t end, struct ksm_stats *out)
{
	const char *p = text, *e = text + strlen(text);
	struct smaps_scan s;

	smaps_begin(&s, start, end, out);
	while (p < e) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));

		if (!nl)
			nl = e;
		smaps_line(&s, p, nl);
		p = nl + 1;
	}
	return out->have_smaps ? 0 : -ENOENT;
}

int smaps_read(int fd, uint64_t start, uint64_t end, struct ksm_stats *out)
{
	char *buf = malloc(SMAPS_CHUNK);
	size_t len = 0;
	bool skip = false; /* dropping the rest of a line longer than the buffer */
	struct smaps_scan s;

	if (!buf)
		return -ENOMEM;
	smaps_begin(&s, start, end, out);
	for (;;) {
		ssize_t n = read(fd, buf + len, SMAPS_CHUNK - len);
		const char *p = buf, *e;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;

			free(buf);
			return err;
		}
		len += (size_t)n;
		e = buf + len;
		for (const char *nl; (nl = memchr(p, '\n', (size_t)(e - p))); p = nl + 1) {
			if (!skip)
				smaps_line(&s, p, nl);
			skip = false;
		}
		if (n == 0) {
			if (p < e && !skip)
				smaps_line(&s, p, e);
			break;
		}
		if (p == buf && len == SMAPS_CHUNK) {
			/* No '\n' in a full buffer: a header with a long path. Its start tells. */
			if (!skip)
				smaps_line(&s, p, e);
			skip = true;
			p = e;
		}
		len = (size_t)(e - p);
		memmove(buf, p, len);
	}
	free(buf);
	return out->have_smaps ? 0 : -ENOENT;
}

char *host_read_text(const char *path)
{
	size_t len = 0, cap = 16384;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (!buf || fd < 0)
		goto err;
	for (;;) {
		ssize_t n;

		if (len + 1 == cap) {
			char *b = cap < PROC_MAX ? realloc(buf, cap * 2) : NULL;

			if (!b)
				goto err;
			buf = b;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto err;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
err:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

/* A number from a one-line /proc or /sys file, -1 when unreadable. */
static int64_t read_num(const char *path)
{
	char *text = host_read_text(path);
	int64_t v = text && *text >= '0' && *text <= '9' ? strtoll(text, NULL, 10) : -1;

	free(text);
	return v;
}

void host_ksm_read(const void *base, uint64_t size, bool mergeable, struct ksm_stats *k)
{
	char *text;
	int fd;

	k->mergeable = mergeable;
	k->run = (int)read_num("/sys/kernel/mm/ksm/run");
	k->pages_to_scan = read_num("/sys/kernel/mm/ksm/pages_to_scan");
	k->sleep_millisecs = read_num("/sys/kernel/mm/ksm/sleep_millisecs");
	k->pages_shared = read_num("/sys/kernel/mm/ksm/pages_shared");
	k->pages_sharing = read_num("/sys/kernel/mm/ksm/pages_sharing");
	k->full_scans = read_num("/sys/kernel/mm/ksm/full_scans");
	text = host_read_text("/proc/self/ksm_stat");
	if (text)
		ksm_parse_stat(text, k);
	free(text);
	/* Linux 6.1's ksm_stat has only ksm_rmap_items: the merged pages have their own file. */
	if (!k->merging_pages) {
		int64_t m = read_num("/proc/self/ksm_merging_pages");

		if (m >= 0) {
			k->merging_pages = (uint64_t)m;
			k->have_ksm_stat = true;
		}
	}
	fd = base ? open("/proc/self/smaps", O_RDONLY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		smaps_read(fd, (uintptr_t)base, (uintptr_t)base + size, k);
		close(fd);
	}
}
