/*
 * What the memory autopilot reads of the host (vmm/mem/policy_host.c): the VMM's cgroup v2 found
 * from mountinfo and /proc/self/cgroup texts, its files read from a directory made here, and the
 * host pressure policy_step() sees in them.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../vmm/mem/policy.h"
#include "../../vmm/util.h"

static const char mountinfo[] =
	"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"25 22 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
	"26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:9 - cgroup2 cgroup2 rw\n";

Test(policy_cgroup, dir_from_mountinfo_and_cgroup)
{
	char dir[256];

	cr_assert_eq(
		policy_cgroup_dir(mountinfo, "0::/system.slice/ci-job.scope\n", dir, sizeof(dir)),
		0);
	cr_expect_str_eq(dir, "/sys/fs/cgroup/system.slice/ci-job.scope");
	/* The root cgroup: the mount point itself. */
	cr_assert_eq(policy_cgroup_dir(mountinfo, "0::/\n", dir, sizeof(dir)), 0);
	cr_expect_str_eq(dir, "/sys/fs/cgroup");
	/* Hybrid (this repository's CI machine): v1 controllers, v2 at .../unified. */
	cr_assert_eq(
		policy_cgroup_dir("30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup "
				  "rw,memory\n"
				  "31 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
				  "4:memory:/job\n0::/job\n", dir, sizeof(dir)),
		0);
	cr_expect_str_eq(dir, "/sys/fs/cgroup/unified/job");
	/* A space in the mount point (mountinfo escapes it as \040). */
	cr_assert_eq(policy_cgroup_dir("26 25 0:23 / /mnt/cg\\040two rw - cgroup2 none rw\n",
				       "0::/a\n", dir, sizeof(dir)),
		     0);
	cr_expect_str_eq(dir, "/mnt/cg two/a");
	/* A mount of a subtree: the path is taken relative to its root. */
	cr_assert_eq(policy_cgroup_dir("26 25 0:23 /jobs /cg rw - cgroup2 none rw\n",
				       "0::/jobs/j1\n", dir, sizeof(dir)),
		     0);
	cr_expect_str_eq(dir, "/cg/j1");
	cr_expect_eq(policy_cgroup_dir("26 25 0:23 /jobs /cg rw - cgroup2 none rw\n",
				       "0::/jobsx/j1\n", dir, sizeof(dir)),
		     -ENOENT);
	/* No v2 line, no cgroup2 mount, a buffer too small. */
	cr_expect_eq(policy_cgroup_dir(mountinfo, "4:memory:/job\n", dir, sizeof(dir)), -ENOENT);
	cr_expect_eq(policy_cgroup_dir("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "0::/a\n", dir,
				       sizeof(dir)),
		     -ENOENT);
	cr_expect_eq(policy_cgroup_dir(mountinfo, "0::/a\n", dir, 8), -ENAMETOOLONG);
	cr_expect_eq(policy_cgroup_dir("", "", dir, sizeof(dir)), -ENOENT);
}

static char tmp[64];

static void put(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	f = fopen(path, "w");
	cr_assert(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

static void make_dir(void)
{
	strcpy(tmp, "/tmp/vmm-cgXXXXXX");
	cr_assert(mkdtemp(tmp));
}

static void remove_dir(void)
{
	static const char *const names[] = {"memory.current", "memory.high", "memory.max",
					    "memory.stat", "memory.pressure"};
	char path[128];

	for (unsigned int i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp, names[i]);
		unlink(path);
	}
	rmdir(tmp);
}

Test(policy_cgroup, read_limit_current_cache_and_pressure, .init = make_dir, .fini = remove_dir)
{
	struct policy_input in = {0};

	put("memory.current", "943718400\n"); /* 900 MiB */
	put("memory.high", "max\n");
	put("memory.max", "max\n");
	put("memory.stat", "anon 800000000\nfile 90000000\nactive_file 10485760\n"
			   "inactive_file 104857600\n"); /* 100 MiB the kernel drops first */
	put("memory.pressure", "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\n"
			       "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	policy_read_cgroup(tmp, &in);
	cr_expect_eq(in.cg_limit, 0, "no limit: nothing to leave");
	cr_expect(in.cg_psi_known);
	cr_expect_eq(in.cg_psi_some_avg10_pct, 12);
	put("memory.high", "1073741824\n"); /* 1 GiB */
	policy_read_cgroup(tmp, &in);
	cr_expect_eq(in.cg_limit, 1024 * MiB);
	cr_expect_eq(in.cg_avail, (1024 - 900 + 100) * MiB);
	put("memory.max", "858993459\n"); /* under memory.current, and below high: the limit */
	policy_read_cgroup(tmp, &in);
	cr_expect_eq(in.cg_limit, 858993459);
	cr_expect_eq(in.cg_avail, 858993459 - 800 * MiB);
	/* Garbage and a missing file leave the fields unset, not wrong. */
	put("memory.max", "-5\n");
	put("memory.high", "lots\n");
	policy_read_cgroup(tmp, &in);
	cr_expect_eq(in.cg_limit, 0);
	put("memory.pressure", "some avg10=nan\n");
	policy_read_cgroup(tmp, &in);
	cr_expect(!in.cg_psi_known);
	put("memory.high", "1073741824\n");
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/memory.current", tmp);
		unlink(path);
	}
	policy_read_cgroup(tmp, &in);
	cr_expect_eq(in.cg_limit, 0, "no memory.current (the root cgroup): no figures");
}

/*
 * A guest in its band, in a cgroup close to its memory.high: host pressure, so the band moves
 * down and the policy inflates (and asks for compression); with room under the limit, nothing.
 */
Test(policy_cgroup, a_cgroup_near_its_limit_is_host_pressure)
{
	struct policy_config cfg;
	struct policy p;
	struct policy_input in = {.guest_ram = 512 * MiB, .have_avail = true, .avail = 110 * MiB};
	struct policy_decision d;

	policy_config_default(&cfg);
	policy_init(&p, &cfg);
	in.target = in.actual = 100 * MiB;
	in.now_ms = 1000;
	in.stats_seq = 1;
	in.cg_limit = 1024 * MiB;
	in.cg_avail = 300 * MiB; /* 29% left */
	d = policy_step(&p, &in);
	cr_expect(!d.host_pressure);
	cr_expect_eq(d.action, POLICY_NONE, "%s", d.why);
	in.now_ms += 1000;
	in.stats_seq++;
	in.cg_avail = 80 * MiB; /* under 10% of the limit */
	cr_expect(policy_wants_resident(&p, &in));
	d = policy_step(&p, &in);
	cr_expect(d.host_pressure);
	cr_expect_eq(d.action, POLICY_INFLATE, "%s", d.why);
	cr_expect_gt(d.reclaim_bytes, 0);
	in.target = in.actual = d.new_target; /* the guest follows */
	/* The cgroup's own PSI, with room under the limit. */
	in.now_ms += 1000;
	in.stats_seq++;
	in.cg_avail = 500 * MiB;
	in.cg_psi_known = true;
	in.cg_psi_some_avg10_pct = 25;
	cr_expect(policy_step(&p, &in).host_pressure);
	/* A limit set near 2^64 (not "max") cannot wrap the headroom test either way. */
	in.now_ms += 1000;
	in.stats_seq++;
	in.cg_psi_known = false;
	in.cg_limit = UINT64_MAX - 1;
	in.cg_avail = in.cg_limit / 2;
	cr_expect(!policy_step(&p, &in).host_pressure);
	in.now_ms += 1000;
	in.stats_seq++;
	in.cg_avail = in.cg_limit / 100;
	cr_expect(policy_step(&p, &in).host_pressure);
}
