/*
 * --volume (vmm/volume.h) without a guest: the option parser, the guest's command line argument,
 * and the write-back on real images made by mke2fs from temp directories, the guest's work
 * played by debugfs -w on the image (write, rm, the superblock's mount count and state). The
 * write-back must bring the changes into HOSTDIR, and leave HOSTDIR exactly as it was when the
 * image is not clean, was never mounted, or the extraction dies halfway; the helper process must
 * do nothing when its pipe closes without the word.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../vmm/util.h"
#include "../../vmm/volume.h"

static char base[PATH_MAX], host[PATH_MAX + 16];

static void put(const char *rel, const char *content)
{
	char p[PATH_MAX * 2];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", host, rel);
	f = fopen(p, "w");
	cr_assert(f, "%s: %s", p, strerror(errno));
	fputs(content, f);
	fclose(f);
}

/* The file's content, or "<missing>". */
static const char *get(const char *dir, const char *rel)
{
	static char buf[256];
	char p[PATH_MAX * 2];
	FILE *f;
	size_t n;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	f = fopen(p, "r");
	if (!f)
		return "<missing>";
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int count_entries(const char *dir, const char *prefix)
{
	char cmd[PATH_MAX + 64];
	int n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
	p = popen(cmd, "r");
	for (char line[512]; p && fgets(line, sizeof(line), p);)
		n += !strncmp(line, prefix, strlen(prefix));
	if (p)
		pclose(p);
	return n;
}

static bool have_e2fsprogs(void)
{
	char t[PATH_MAX];

	return volume_find_tool("mke2fs", NULL, t, sizeof(t)) == 0 &&
	       volume_find_tool("debugfs", NULL, t, sizeof(t)) == 0;
}

static void setup_tree(void)
{
	snprintf(base, sizeof(base), "/tmp/vmm-test-volume-XXXXXX");
	cr_assert(mkdtemp(base));
	snprintf(host, sizeof(host), "%s/job", base);
	cr_assert_eq(mkdir(host, 0750), 0);
	put("edit.txt", "original\n");
	put("del.txt", "doomed\n");
	cr_assert_eq(mkdir(strcat(strcpy((char[PATH_MAX + 32]){0}, host), "/ro"), 0755), 0);
	put("ro/inside", "inside\n");
	cr_assert_eq(chmod(strcat(strcpy((char[PATH_MAX + 32]){0}, host), "/ro"), 0555), 0);
	setenv("TMPDIR", base, 1);
}

static void teardown_tree(void)
{
	if (base[0])
		volume_remove_tree(base);
}

/* Play the guest on @v's image: debugfs -w REQUEST (through the open, unlinked image). */
static void guest_does(struct volume *v, const char *request)
{
	char debugfs[PATH_MAX], img[48], req[512];
	char *argv[] = {debugfs, "-w", "-R", req, img, NULL};
	int out = memfd_create("out", 0);

	cr_assert_eq(volume_find_tool("debugfs", NULL, debugfs, sizeof(debugfs)), 0);
	snprintf(img, sizeof(img), "/proc/self/fd/%d", v->fd);
	snprintf(req, sizeof(req), "%s", request);
	cr_assert_eq(volume_run(argv, base, v->fd, out), 0, "debugfs -w -R '%s'", request);
	close(out);
}

static void prepare(struct volume *v)
{
	char arg[PATH_MAX + 32], err[512];

	snprintf(arg, sizeof(arg), "%s:/work", host);
	cr_assert_eq(volume_parse(arg, v, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(volume_prepare(v, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(count_entries(base, "vmm-volume-"), 0, "the image file is unlinked at once");
}

/* The guest's edits, as a mounted-and-unmounted image would hold them. */
static void guest_edits(struct volume *v)
{
	char src[PATH_MAX + 16], req[PATH_MAX + 64];
	FILE *f;

	snprintf(src, sizeof(src), "%s/newdata", base);
	f = fopen(src, "w");
	fputs("edited\n", f);
	fclose(f);
	guest_does(v, "rm /edit.txt");
	snprintf(req, sizeof(req), "write newdata /edit.txt");
	guest_does(v, req);
	guest_does(v, "write newdata /new.txt");
	guest_does(v, "rm /del.txt");
	unlink(src);
	/* A kernel mount counts itself; an unmount leaves the state valid (1). */
	snprintf(req, sizeof(req), "ssv mnt_count %u", v->mnt_count + 1U);
	guest_does(v, req);
}

TestSuite(volume);

Test(volume, parse_forms)
{
	struct volume v;
	char err[256];

	cr_assert_eq(volume_parse("/h:/g", &v, err, sizeof(err)), 0);
	cr_assert_str_eq(v.host, "/h");
	cr_assert_str_eq(v.host_arg, "/h");
	cr_assert_str_eq(v.guest, "/g");
	cr_assert(!v.ro);
	cr_assert_eq(volume_parse("rel/dir:/a/b/,ro", &v, err, sizeof(err)), 0);
	cr_assert_str_eq(v.host, "rel/dir");
	cr_assert_str_eq(v.guest, "/a/b", "a trailing slash is dropped");
	cr_assert(v.ro);
	cr_assert_eq(volume_parse("h:/dir with space,and:colon,size=512M,ro", &v, err, sizeof(err)),
		     0);
	cr_assert_str_eq(v.guest, "/dir with space,and:colon");
	cr_assert_eq(v.size_bytes, 512 * MiB);
	cr_assert(v.ro);
	cr_assert_eq(volume_parse("h:/g,size=100", &v, err, sizeof(err)), 0);
	cr_assert_eq(v.size_bytes, 100 * MiB, "a bare number is MiB");
	cr_assert_eq(volume_parse("h:/g,ro,rw", &v, err, sizeof(err)), 0);
	cr_assert(!v.ro, "the last of ,ro and ,rw wins");
	cr_assert_eq(volume_parse("h:/g,size=1G,size=2M", &v, err, sizeof(err)), 0);
	cr_assert_eq(v.size_bytes, 2 * MiB, "the last size= wins");
}

Test(volume, parse_rejects)
{
	static const char *bad[] = {
		"nocolon",  ":/g",   "h:",	    "h:rel",	   "h:/",     "h:/a/../b",
		"h:/a/./b", "h:/..", "h:/g,size=x", "h:/g,size=0", "h:/a\nb",
	};
	struct volume v;
	char err[256];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		cr_expect_eq(volume_parse(bad[i], &v, err, sizeof(err)), -EINVAL, "'%s'", bad[i]);
		cr_expect(strstr(err, "--volume") && !strchr(err, '\n'), "'%s': one line: %s",
			  bad[i], err);
	}
	{
		char longg[VOLUME_GUEST_MAX + 8] = "h:/";

		memset(longg + 3, 'x', VOLUME_GUEST_MAX);
		longg[VOLUME_GUEST_MAX + 3] = '\0';
		cr_expect_eq(volume_parse(longg, &v, err, sizeof(err)), -EINVAL, "too long");
	}
}

Test(volume, cmdline_arg)
{
	struct volume v;
	char err[128], line[256] = "console=ttyS0";

	cr_assert_eq(volume_parse("h:/a b,ro", &v, err, sizeof(err)), 0);
	cr_assert_eq(volume_cmdline_arg(&v, 'c', line, sizeof(line)), 0);
	cr_assert_str_eq(line, "console=ttyS0 vmm.vol=vdc:L2EgYg==:ro");
	cr_assert_eq(volume_parse("h:/w", &v, err, sizeof(err)), 0);
	cr_assert_eq(volume_cmdline_arg(&v, 'a', line, strlen(line) + 10), -E2BIG);
	cr_assert_str_eq(line, "console=ttyS0 vmm.vol=vdc:L2EgYg==:ro", "unchanged on E2BIG");
	cr_assert_eq(volume_cmdline_arg(&v, 'a', line, sizeof(line)), 0);
	cr_assert_str_eq(line, "console=ttyS0 vmm.vol=vdc:L2EgYg==:ro vmm.vol=vda:L3c=:rw");
}

Test(volume, prepare_errors)
{
	struct volume v;
	char err[512], arg[PATH_MAX + 32];

	setup_tree();
	cr_assert_eq(volume_parse("/nonexistent/x:/w", &v, err, sizeof(err)), 0);
	cr_assert_eq(volume_prepare(&v, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "No such file or directory"), "%s", err);
	snprintf(arg, sizeof(arg), "%s/edit.txt:/w", host);
	cr_assert_eq(volume_parse(arg, &v, err, sizeof(err)), 0);
	cr_assert_eq(volume_prepare(&v, err, sizeof(err)), -ENOTDIR);
	snprintf(arg, sizeof(arg), "%s/fifo", host);
	cr_assert_eq(mkfifo(arg, 0600), 0);
	snprintf(arg, sizeof(arg), "%s:/w", host);
	cr_assert_eq(volume_parse(arg, &v, err, sizeof(err)), 0);
	cr_assert_eq(volume_prepare(&v, err, sizeof(err)), -EINVAL, "a FIFO cannot come back");
	cr_assert(strstr(err, "is a FIFO"), "%s", err);
	cr_assert_eq(volume_parse(arg, &v, err, sizeof(err)), 0);
	v.ro = true; /* a read-only volume takes the FIFO */
	setenv("TMPDIR", host, 1);
	cr_assert_eq(volume_prepare(&v, err, sizeof(err)), -EINVAL, "the image inside HOSTDIR");
	cr_assert(strstr(err, "set TMPDIR elsewhere"), "%s", err);
	setenv("TMPDIR", base, 1);
	cr_assert_eq(volume_prepare(&v, err, sizeof(err)), 0, "%s", err);
	volume_release(&v);
	teardown_tree();
}

Test(volume, write_back_round_trip)
{
	struct volume v;
	struct stat st;
	char err[512], p[PATH_MAX + 32];

	if (!have_e2fsprogs())
		cr_skip_test("e2fsprogs missing");
	setup_tree();
	prepare(&v);
	guest_edits(&v);
	cr_assert_eq(volume_write_back(&v, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(get(host, "edit.txt"), "edited\n");
	cr_assert_str_eq(get(host, "new.txt"), "edited\n");
	cr_assert_str_eq(get(host, "del.txt"), "<missing>");
	cr_assert_str_eq(get(host, "ro/inside"), "inside\n");
	cr_assert_str_eq(get(host, "lost+found/x"), "<missing>");
	snprintf(p, sizeof(p), "%s/lost+found", host);
	cr_assert_neq(lstat(p, &st), 0, "mke2fs's lost+found is not brought back");
	cr_assert_eq(stat(host, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0750, "HOSTDIR keeps its mode");
	snprintf(p, sizeof(p), "%s/ro", host);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0555, "a directory's mode");
	cr_assert_eq(count_entries(base, ".vmm-volume-"), 0, "no stage left");
	volume_release(&v);
	teardown_tree();
}

Test(volume, never_mounted_is_left_alone)
{
	struct volume v;
	struct stat before, after;
	char err[512];

	if (!have_e2fsprogs())
		cr_skip_test("e2fsprogs missing");
	setup_tree();
	prepare(&v);
	cr_assert_eq(stat(host, &before), 0);
	cr_assert_eq(volume_write_back(&v, err, sizeof(err)), 1);
	cr_assert_eq(stat(host, &after), 0);
	cr_assert_eq(before.st_ino, after.st_ino, "HOSTDIR not replaced");
	volume_release(&v);
	teardown_tree();
}

Test(volume, not_clean_leaves_hostdir)
{
	struct volume v;
	char err[512];

	if (!have_e2fsprogs())
		cr_skip_test("e2fsprogs missing");
	setup_tree();
	prepare(&v);
	guest_edits(&v);
	guest_does(&v, "ssv state 0"); /* still mounted read-write when the VM stopped */
	cr_assert_eq(volume_write_back(&v, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "did not unmount it cleanly") && strstr(err, "left unchanged"), "%s",
		  err);
	cr_assert_str_eq(get(host, "edit.txt"), "original\n");
	cr_assert_str_eq(get(host, "del.txt"), "doomed\n");
	cr_assert_str_eq(get(host, "new.txt"), "<missing>");
	volume_release(&v);
	teardown_tree();
}

Test(volume, extraction_dying_halfway_leaves_hostdir)
{
	struct volume v;
	char err[512], big[PATH_MAX + 16];
	struct rlimit rl = {.rlim_cur = 512 * 1024, .rlim_max = RLIM_INFINITY};
	FILE *f;

	if (!have_e2fsprogs())
		cr_skip_test("e2fsprogs missing");
	setup_tree();
	snprintf(big, sizeof(big), "%s/big", base);
	f = fopen(big, "w");
	for (int i = 0; i < 2048; i++)
		fwrite((char[1024]){0}, 1, 1024, f);
	fclose(f);
	prepare(&v);
	guest_edits(&v);
	guest_does(&v, "write big /zz-big");
	/* debugfs (a child: it inherits the limit) is stopped by SIGXFSZ 512 KiB into the 2 MiB
	 * file: the write-back fails halfway through the extraction. */
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	cr_assert_lt(volume_write_back(&v, err, sizeof(err)), 0);
	cr_assert(strstr(err, "reading the files back failed") && strstr(err, "left unchanged"),
		  "%s", err);
	cr_assert_str_eq(get(host, "edit.txt"), "original\n");
	cr_assert_str_eq(get(host, "del.txt"), "doomed\n");
	cr_assert_str_eq(get(host, "new.txt"), "<missing>");
	cr_assert_eq(count_entries(base, ".vmm-volume-"), 0, "the partial stage is removed");
	volume_release(&v);
	teardown_tree();
}

Test(volume, commit_tree_swaps)
{
	char stage[PATH_MAX + 16], err[256];
	struct stat st;

	setup_tree();
	snprintf(stage, sizeof(stage), "%s/.stage", base);
	cr_assert_eq(mkdir(stage, 0700), 0);
	{
		FILE *f = fopen(strcat(strcpy((char[PATH_MAX + 32]){0}, stage), "/only-new"), "w");

		fputs("new\n", f);
		fclose(f);
	}
	cr_assert_eq(volume_commit_tree(host, stage, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(get(host, "only-new"), "new\n");
	cr_assert_str_eq(get(host, "edit.txt"), "<missing>");
	cr_assert_neq(lstat(stage, &st), 0, "the old tree (with its 0555 directory) is removed");
	cr_assert_eq(stat(host, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0750);
	teardown_tree();
}

Test(volume, helper_does_nothing_without_the_word)
{
	struct volume v;
	struct volume_helper h;
	int status;

	if (!have_e2fsprogs())
		cr_skip_test("e2fsprogs missing");
	setup_tree();
	prepare(&v);
	guest_edits(&v);
	cr_assert_eq(volume_helper_start(&v, 1, &h), 0);
	cr_assert_gt(h.pid, 0);
	volume_helper_cancel(&h);
	cr_assert_eq(waitpid(h.pid, &status, 0), h.pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert_str_eq(get(host, "edit.txt"), "original\n");
	cr_assert_str_eq(get(host, "new.txt"), "<missing>");
	volume_release(&v);
	teardown_tree();
}

Test(volume, helper_writes_back_on_the_word)
{
	struct volume v[2];
	struct volume_helper h;
	struct volume_result r[1];
	char err[512], arg[PATH_MAX + 32];

	if (!have_e2fsprogs())
		cr_skip_test("e2fsprogs missing");
	setup_tree();
	snprintf(arg, sizeof(arg), "%s:/ro-copy,ro", host);
	cr_assert_eq(volume_parse(arg, &v[0], err, sizeof(err)), 0);
	cr_assert_eq(volume_prepare(&v[0], err, sizeof(err)), 0, "%s", err);
	prepare(&v[1]);
	guest_edits(&v[1]);
	cr_assert_eq(volume_helper_start(v, 2, &h), 0);
	cr_assert_eq(volume_helper_write_back(&h, r, 1), 0);
	cr_assert_eq(r[0].status, 0, "%s", r[0].msg);
	cr_assert_str_eq(get(host, "edit.txt"), "edited\n");
	waitpid(h.pid, NULL, 0);
	volume_release(&v[0]);
	volume_release(&v[1]);
	teardown_tree();
}

/* Rename, in the raw image, the directory entry @from to @to (same length): what a hostile guest
 * kernel can write on its disk. The image has no metadata checksums (see hostile_image()). */
static void patch_name(struct volume *v, const char *from, const char *to)
{
	static char buf[1 << 20];
	size_t n = strlen(from);
	bool done = false;

	cr_assert_eq(strlen(to), n);
	for (off_t off = 0; !done && off < (off_t)v->image_bytes; off += sizeof(buf) - 256) {
		ssize_t got = pread(v->fd, buf, sizeof(buf), off);

		cr_assert_gt(got, 0);
		for (ssize_t i = 8; i + (ssize_t)n <= got; i++) {
			/* ext4_dir_entry_2: inode, rec_len, name_len, file_type, name */
			if ((unsigned char)buf[i - 2] == n && !memcmp(buf + i, from, n)) {
				cr_assert_eq(pwrite(v->fd, to, n, off + i), (ssize_t)n);
				done = true;
				break;
			}
		}
	}
	cr_assert(done, "no directory entry '%s' in the image", from);
}

/*
 * The guest's image, crafted: without metadata_csum (so that raw edits stay valid), a symlink
 * "link-to-outside" to a file outside HOSTDIR followed by a second entry of the same name (a
 * regular file, which rdump opens through the symlink), and an entry whose name climbs out of
 * the stage ("../outside/file2"). Then it looks cleanly unmounted.
 */
static void hostile_image(struct volume *v, const char *outside)
{
	char tune2fs[PATH_MAX], img[48], src[PATH_MAX + 16], req[PATH_MAX + 64];
	int out = memfd_create("out", 0);
	FILE *f;

	cr_assert_eq(volume_find_tool("tune2fs", NULL, tune2fs, sizeof(tune2fs)), 0);
	snprintf(img, sizeof(img), "/proc/self/fd/%d", v->fd);
	{
		char *argv[] = {tune2fs, "-O", "^metadata_csum", img, NULL};

		cr_assert_eq(volume_run(argv, NULL, v->fd, out), 0, "tune2fs -O ^metadata_csum");
	}
	close(out);
	snprintf(src, sizeof(src), "%s/evil", base);
	f = fopen(src, "w");
	fputs("written by the guest\n", f);
	fclose(f);
	snprintf(req, sizeof(req), "symlink link-to-outside %s/file1", outside);
	guest_does(v, req);
	guest_does(v, "write evil zzzzzzzzzzzzzzz");
	patch_name(v, "zzzzzzzzzzzzzzz", "link-to-outside");
	guest_does(v, "write evil yyyyyyyyyyyyyyyy");
	patch_name(v, "yyyyyyyyyyyyyyyy", "../outside/file2");
	snprintf(req, sizeof(req), "ssv mnt_count %u", v->mnt_count + 1U);
	guest_does(v, req);
}

static void hostile_write_back(bool with_e2fsck)
{
	struct volume v;
	char err[512], outside[PATH_MAX + 16];

	if (!have_e2fsprogs())
		cr_skip_test("e2fsprogs missing");
	setup_tree();
	snprintf(outside, sizeof(outside), "%s/outside", base);
	cr_assert_eq(mkdir(outside, 0755), 0);
	{
		FILE *f = fopen(strcat(strcpy((char[PATH_MAX + 32]){0}, outside), "/file1"), "w");

		fputs("host secret\n", f);
		fclose(f);
	}
	prepare(&v);
	hostile_image(&v, outside);
	if (!with_e2fsck)
		setenv("E2FSCK", "/bin/true", 1); /* only the confinement of debugfs is left */
	volume_write_back(&v, err, sizeof(err));
	cr_log_info("write-back: %s", err);
	cr_assert_str_eq(get(outside, "file1"), "host secret\n", "written through a symlink");
	cr_assert_str_eq(get(outside, "file2"), "<missing>", "written through a '../' name");
	cr_assert_str_eq(get(host, "edit.txt"), "original\n");
	volume_release(&v);
	teardown_tree();
}

Test(volume, hostile_image_cannot_write_outside)
{
	hostile_write_back(true);
}

Test(volume, hostile_image_confined_without_e2fsck)
{
	hostile_write_back(false);
}

/* Sparse files: each just under the image's size (so RLIMIT_FSIZE lets it through), three of
 * them; rdump writes their holes as zeros: three times the image, the total cap is twice. */
Test(volume, hostile_sparse_files_are_capped)
{
	struct volume v;
	char err[512], src[PATH_MAX + 16], req[128];
	struct stat before, after;
	FILE *f;
	int r;

	if (!have_e2fsprogs())
		cr_skip_test("e2fsprogs missing");
	setup_tree();
	prepare(&v);
	snprintf(src, sizeof(src), "%s/evil", base);
	f = fopen(src, "w");
	fputs("x", f);
	fclose(f);
	for (int i = 0; i < 3; i++) {
		snprintf(req, sizeof(req), "write evil /sparse%d", i);
		guest_does(&v, req);
		snprintf(req, sizeof(req), "sif /sparse%d size %llu", i,
			 (unsigned long long)(v.image_bytes - 4096));
		guest_does(&v, req);
	}
	snprintf(req, sizeof(req), "ssv mnt_count %u", v.mnt_count + 1U);
	guest_does(&v, req);
	cr_assert_eq(stat(host, &before), 0);
	r = volume_write_back(&v, err, sizeof(err));
	cr_assert_eq(r, -EFBIG, "%d: %s", r, err);
	cr_assert(strstr(err, "more than twice the image") && strstr(err, "left unchanged"), "%s",
		  err);
	cr_assert_eq(stat(host, &after), 0);
	cr_assert_eq(before.st_ino, after.st_ino, "HOSTDIR not replaced");
	cr_assert_str_eq(get(host, "sparse0"), "<missing>");
	cr_assert_eq(count_entries(base, ".vmm-volume-"), 0, "the stage is removed");
	volume_release(&v);
	teardown_tree();
}
