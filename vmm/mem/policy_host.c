/*
 * What the memory autopilot reads of the host each period (vmm/mem/policy.h): PSI memory
 * pressure and MemAvailable, and the VMM's cgroup v2 (memory.high, memory.max, memory.current,
 * memory.stat, memory.pressure; Documentation/admin-guide/cgroup-v2.rst). Files only: the
 * decision itself stays in policy.c.
 */
#include "policy.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "host_stats.h"

/* "some avg10=1.23 ..." in a PSI file (Documentation/accounting/psi.rst) -> 1 (whole percent). */
static bool read_psi(const char *path, unsigned int *pct)
{
	char *text = host_read_text(path), *p;
	double avg10;
	bool ok = false;

	if (!text)
		return false;
	p = strstr(text, "some avg10=");
	if (p && sscanf(p, "some avg10=%lf", &avg10) == 1 && avg10 >= 0 && avg10 <= 100) {
		*pct = (unsigned int)avg10;
		ok = true;
	}
	free(text);
	return ok;
}

/* A cgroup file holding one number, or "max" (*@v = UINT64_MAX). False when unreadable. */
static bool read_value(const char *dir, const char *name, uint64_t *v)
{
	char path[PATH_MAX], *text, *end;
	unsigned long long x;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return false;
	text = host_read_text(path);
	if (!text)
		return false;
	if (!strncmp(text, "max", 3)) {
		free(text);
		*v = UINT64_MAX;
		return true;
	}
	errno = 0;
	x = strtoull(text, &end, 10);
	if (errno || end == text || *text == '-') {
		free(text);
		return false;
	}
	free(text);
	*v = x;
	return true;
}

/* memory.stat's "inactive_file N" (bytes); 0 when absent. */
static uint64_t read_inactive_file(const char *dir)
{
	char path[PATH_MAX], *text, *p;
	unsigned long long v = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/memory.stat", dir) >= sizeof(path))
		return 0;
	text = host_read_text(path);
	if (!text)
		return 0;
	for (p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (sscanf(p, "inactive_file %llu", &v) == 1)
			break;
	free(text);
	return v;
}

void policy_read_cgroup(const char *dir, struct policy_input *in)
{
	uint64_t high = UINT64_MAX, max = UINT64_MAX, cur, limit;
	char path[PATH_MAX];

	in->cg_limit = in->cg_avail = 0;
	in->cg_psi_known = false;
	if ((size_t)snprintf(path, sizeof(path), "%s/memory.pressure", dir) < sizeof(path))
		in->cg_psi_known = read_psi(path, &in->cg_psi_some_avg10_pct);
	if (!read_value(dir, "memory.current", &cur) || cur == UINT64_MAX)
		return;
	read_value(dir, "memory.high", &high);
	read_value(dir, "memory.max", &max);
	limit = MIN(high, max);
	if (limit == UINT64_MAX || !limit)
		return; /* no limit: the host's own figures tell */
	in->cg_limit = limit;
	cur -= MIN(cur, read_inactive_file(dir));
	in->cg_avail = limit > cur ? limit - cur : 0;
}

/* Undoes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

int policy_cgroup_dir(const char *mountinfo, const char *cgroup, char *buf, size_t len)
{
	char root[PATH_MAX], mnt[PATH_MAX], path[PATH_MAX];
	const char *line, *rel;
	bool found = false;
	size_t rl;

	/* /proc/PID/cgroup: the v2 line is "0::PATH". */
	for (line = cgroup; line && !found;
	     line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (!strncmp(line, "0::", 3) && sscanf(line + 3, "%4095s", path) == 1)
			found = true;
	if (!found)
		return -ENOENT;
	/* mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER".
	 */
	found = false;
	for (line = mountinfo; line && !found;
	     line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		const char *sep = strstr(line, " - ");
		const char *eol = strchr(line, '\n');

		if (!sep || (eol && sep > eol) || strncmp(sep + 3, "cgroup2 ", 8))
			continue;
		if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) == 2)
			found = true;
	}
	if (!found)
		return -ENOENT;
	unescape(root);
	unescape(mnt);
	/* A mount of a subtree (ROOT not "/"): the path is relative to ROOT. */
	rel = path;
	rl = strlen(root);
	if (strcmp(root, "/")) {
		if (strncmp(path, root, rl) || (path[rl] && path[rl] != '/'))
			return -ENOENT; /* this process's cgroup is outside the mounted subtree */
		rel = path + rl;
	}
	if (!strcmp(rel, "/"))
		rel = "";
	if ((size_t)snprintf(buf, len, "%s%s", mnt, rel) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static char cg_dir[PATH_MAX];
static bool cg_found;
static pthread_once_t cg_once = PTHREAD_ONCE_INIT;

static void find_cgroup(void)
{
	char *mi = host_read_text("/proc/self/mountinfo");
	char *cg = host_read_text("/proc/self/cgroup");

	cg_found = mi && cg && !policy_cgroup_dir(mi, cg, cg_dir, sizeof(cg_dir));
	free(mi);
	free(cg);
}

void policy_read_host(struct policy_input *in)
{
	char *text = host_read_text("/proc/meminfo"), *p;

	in->host_psi_known = read_psi("/proc/pressure/memory", &in->host_psi_some_avg10_pct);
	in->host_avail = in->host_total = 0;
	for (p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		unsigned long long kib;

		/* A prefix test before sscanf(): 72 -> 58 us a read here (the rest is syscalls). */
		if (!strncmp(p, "MemTotal:", 9) && sscanf(p, "MemTotal: %llu kB", &kib) == 1)
			in->host_total = kib * KiB;
		else if (!strncmp(p, "MemAvailable:", 13) &&
			 sscanf(p, "MemAvailable: %llu kB", &kib) == 1)
			in->host_avail = kib * KiB;
	}
	free(text);
	in->cg_limit = in->cg_avail = 0;
	in->cg_psi_known = false;
	pthread_once(&cg_once, find_cgroup);
	if (cg_found)
		policy_read_cgroup(cg_dir, in);
}
