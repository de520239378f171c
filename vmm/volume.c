/* --volume: the option, the image built from HOSTDIR, the guest's command line (volume.h). */
#include "volume.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_options.h"
#include "util.h"

#define EXT_BLOCK 4096ULL

static bool take_option(char *s, const char *opt)
{
	size_t n = strlen(s), k = strlen(opt);

	if (n < k || strcmp(s + n - k, opt))
		return false;
	s[n - k] = '\0';
	return true;
}

int volume_parse(const char *arg, struct volume *v, char *err, size_t cap)
{
	const char *colon = strchr(arg, ':');
	char guest[VOLUME_GUEST_MAX + 64], *comma;
	size_t hl;

	*v = (struct volume){.fd = -1};
	if (!colon || colon == arg || !colon[1]) {
		snprintf(err, cap, "--volume '%s': expected HOSTDIR:GUESTDIR[,ro][,size=SIZE]",
			 arg);
		return -EINVAL;
	}
	hl = (size_t)(colon - arg);
	if (hl >= sizeof(v->host)) {
		snprintf(err, cap, "--volume: HOSTDIR is longer than %zu bytes",
			 sizeof(v->host) - 1);
		return -EINVAL;
	}
	memcpy(v->host, arg, hl); /* until volume_prepare() puts the real path here */
	v->host[hl] = '\0';
	memcpy(v->host_arg, v->host, hl + 1);
	if (strlen(colon + 1) >= sizeof(guest)) {
		snprintf(err, cap, "--volume %s: GUESTDIR is longer than %d bytes", v->host,
			 VOLUME_GUEST_MAX);
		return -EINVAL;
	}
	snprintf(guest, sizeof(guest), "%s", colon + 1);
	/* Options, read from the end (the last of each kind wins): ",ro", ",rw", ",size=SIZE". */
	for (bool ro_seen = false, size_seen = false;;) {
		bool ro = take_option(guest, ",ro");

		if (ro || take_option(guest, ",rw")) {
			if (!ro_seen)
				v->ro = ro;
			ro_seen = true;
			continue;
		}
		comma = strrchr(guest, ',');
		if (comma && !strncmp(comma, ",size=", 6)) {
			uint64_t size;

			if (parse_size(comma + 6, &size) < 0) {
				snprintf(err, cap,
					 "--volume %s: size '%s': expected a size like 512M",
					 v->host, comma + 6);
				return -EINVAL;
			}
			if (!strpbrk(comma + 6, "kKmMgGtT"))
				size *= MiB; /* a bare number means MiB, like --mem */
			if (size < 1 * MiB) {
				snprintf(err, cap, "--volume %s: size '%s' is below 1 MiB", v->host,
					 comma + 6);
				return -EINVAL;
			}
			if (!size_seen)
				v->size_bytes = size;
			size_seen = true;
			*comma = '\0';
			continue;
		}
		break;
	}
	if (guest[0] != '/' || !strcmp(guest, "/") || strlen(guest) > VOLUME_GUEST_MAX) {
		snprintf(err, cap,
			 "--volume %s: GUESTDIR '%s' must be an absolute path below / (at most %d "
			 "bytes)",
			 v->host, guest, VOLUME_GUEST_MAX);
		return -EINVAL;
	}
	for (const char *c = guest; *c; c++) {
		if (*c == '\n' ||
		    (c[0] == '/' && c[1] == '.' &&
		     (c[2] == '/' || !c[2] || (c[2] == '.' && (c[3] == '/' || !c[3]))))) {
			snprintf(err, cap,
				 "--volume %s: GUESTDIR has a '.' or '..' component or a newline",
				 v->host);
			return -EINVAL;
		}
	}
	/* "/a/" and "/a" are the same directory: no trailing slash (mount points compare equal). */
	while (strlen(guest) > 1 && guest[strlen(guest) - 1] == '/')
		guest[strlen(guest) - 1] = '\0';
	snprintf(v->guest, sizeof(v->guest), "%s", guest);
	return 0;
}

int volume_find_tool(const char *name, const char *env, char *out, size_t cap)
{
	const char *e = env ? getenv(env) : NULL, *path = getenv("PATH");
	char cand[PATH_MAX];

	if (e && *e) {
		snprintf(out, cap, "%s", e);
		return access(out, X_OK) ? -ENOENT : 0;
	}
	snprintf(cand, sizeof(cand), "/usr/sbin/%s", name);
	if (!access(cand, X_OK))
		goto found;
	snprintf(cand, sizeof(cand), "/sbin/%s", name);
	if (!access(cand, X_OK))
		goto found;
	for (const char *p = path ? path : ""; *p;) {
		size_t n = strcspn(p, ":");

		if (n && n < sizeof(cand) - strlen(name) - 2) {
			snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, p, name);
			if (!access(cand, X_OK))
				goto found;
		}
		p += n + (p[n] == ':');
	}
	return -ENOENT;
found:
	snprintf(out, cap, "%s", cand);
	return 0;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * In the child about to run debugfs: a private mount namespace (and, not being root, a user
 * namespace mapping only our own ids) in which every mount is read-only but @dir, so no name,
 * symlink or duplicate entry in a hostile image can make debugfs write anywhere else (EROFS).
 */
static int confine_writes(const char *dir)
{
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY},
			  rw = {.attr_clr = MOUNT_ATTR_RDONLY};
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char map[64];
	int ret;

	if (unshare(CLONE_NEWNS | (uid ? CLONE_NEWUSER : 0)) < 0)
		return -errno;
	if (uid) {
		if ((ret = write_file("/proc/self/setgroups", "deny")) < 0)
			return ret;
		snprintf(map, sizeof(map), "%u %u 1", uid, uid);
		if ((ret = write_file("/proc/self/uid_map", map)) < 0)
			return ret;
		snprintf(map, sizeof(map), "%u %u 1", gid, gid);
		if ((ret = write_file("/proc/self/gid_map", map)) < 0)
			return ret;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount(dir, dir, NULL, MS_BIND, NULL) < 0 ||
	    mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof(ro)) < 0 ||
	    mount_setattr(AT_FDCWD, dir, 0, &rw, sizeof(rw)) < 0)
		return -errno;
	return 0;
}

static uint64_t free_bytes(const char *dir)
{
	struct statvfs sv;

	return statvfs(dir, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize : UINT64_MAX;
}

int volume_run_confined(char *const argv[], const char *cwd, int keep_fd, int out_fd,
			const struct volume_confine *c)
{
	const char *write_dir = c ? c->write_dir : NULL;
	uint64_t max_file_bytes = c ? c->max_file_bytes : 0, free0 = 0;
	bool watch = write_dir && (c->max_total_bytes || c->min_free_bytes);
	int status;
	pid_t pid;

	if (watch)
		free0 = free_bytes(write_dir);
	pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		sigset_t all;

		sigemptyset(&all); /* vmm blocks signals for its signalfd: not its tools */
		sigprocmask(SIG_SETMASK, &all, NULL);
		if (write_dir) {
			int r = confine_writes(write_dir);

			if (r < 0) /* fd 2 is still vmm's stderr */
				pr_warn("--volume: cannot confine debugfs's writes to %s (%s): "
					"only e2fsck's check of the image guards the host",
					write_dir, strerror(-r));
		}
		if (max_file_bytes) { /* lowered only: a smaller limit of the caller's stays */
			struct rlimit rl;

			if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur > max_file_bytes) {
				rl.rlim_cur = max_file_bytes;
				setrlimit(RLIMIT_FSIZE, &rl);
			}
		}
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
			_exit(126);
		if (keep_fd >= 0)
			fcntl(keep_fd, F_SETFD, 0);
		if (cwd && chdir(cwd) < 0) {
			dprintf(2, "cannot enter %s: %s\n", cwd, strerror(errno));
			_exit(126);
		}
		execv(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, watch ? WNOHANG : 0);
		uint64_t now;

		if (r == pid)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Still running: what it wrote so far, as the file system's lost free space. */
		now = free_bytes(write_dir);
		if ((c->max_total_bytes && free0 > now && free0 - now > c->max_total_bytes) ||
		    now < c->min_free_bytes) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return -EFBIG;
		}
		usleep(20 * 1000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 256 + WTERMSIG(status);
}

int volume_run(char *const argv[], const char *cwd, int keep_fd, int out_fd)
{
	return volume_run_confined(argv, cwd, keep_fd, out_fd, NULL);
}

int volume_read_super(int fd, uint16_t *mnt_count, uint16_t *state)
{
	uint8_t sb[0x40];

	if (pread(fd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb))
		return -EIO;
	if ((sb[0x38] | sb[0x39] << 8) != 0xEF53)
		return -EINVAL;
	*mnt_count = (uint16_t)(sb[0x34] | sb[0x35] << 8);
	*state = (uint16_t)(sb[0x3a] | sb[0x3b] << 8);
	return 0;
}

/* The walk of HOSTDIR (nftw has no user pointer; setup is single-threaded). */
static struct {
	struct volume *v;
	char *err;
	size_t cap;
	int ret;
} walk;

static int walk_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	struct volume *v = walk.v;
	const char *what = NULL;

	(void)ftw;
	if (type == FTW_DNR || type == FTW_NS) {
		snprintf(walk.err, walk.cap, "--volume %s: cannot read %s: %s", v->host_arg, path,
			 strerror(errno ? errno : EACCES));
		return walk.ret = -EACCES;
	}
	v->tree_inodes++;
	if (S_ISREG(st->st_mode)) {
		v->tree_bytes += ALIGN_UP((uint64_t)st->st_size, EXT_BLOCK);
		if (faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) < 0) {
			snprintf(walk.err, walk.cap, "--volume %s: cannot read %s: %s", v->host_arg,
				 path, strerror(errno));
			return walk.ret = -EACCES;
		}
	} else if (S_ISDIR(st->st_mode)) {
		v->tree_bytes += EXT_BLOCK;
	} else if (S_ISLNK(st->st_mode)) {
		v->tree_bytes += st->st_size >= 60 ? EXT_BLOCK : 0; /* else inside the inode */
	} else if (S_ISFIFO(st->st_mode)) {
		what = "a FIFO";
	} else if (S_ISSOCK(st->st_mode)) {
		what = "a socket";
	} else {
		what = "a device node";
	}
	if (what && !v->ro) {
		snprintf(walk.err, walk.cap,
			 "--volume %s: %s is %s, which a writable volume cannot bring back (use "
			 ",ro)",
			 v->host_arg, path, what);
		return walk.ret = -EINVAL;
	}
	return 0;
}

/* The last non-empty line of what a tool wrote to @fd, into @out. */
static void last_line(int fd, char *out, size_t cap)
{
	char buf[4096];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, MAX(0, lseek(fd, 0, SEEK_END) - 4095));
	char *end, *start;

	buf[n > 0 ? n : 0] = '\0';
	end = buf + strlen(buf);
	while (end > buf && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	start = strrchr(buf, '\n');
	snprintf(out, cap, "%s", start ? start + 1 : buf);
}

int volume_prepare(struct volume *v, char *err, size_t cap)
{
	char mke2fs[PATH_MAX], debugfs[PATH_MAX], img[PATH_MAX], msg[256], sizek[32], inodes[32];
	const char *tmpdir = getenv("TMPDIR");
	struct statvfs sv;
	struct stat st;
	int fd, out, rc;

	if (!realpath(v->host, img) || stat(img, &st) < 0) {
		snprintf(err, cap, "--volume %s: %s", v->host, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, cap, "--volume %s: not a directory", v->host);
		return -ENOTDIR;
	}
	snprintf(v->host, sizeof(v->host), "%s", img);
	if (volume_find_tool("mke2fs", "MKE2FS", mke2fs, sizeof(mke2fs)) < 0) {
		snprintf(err, cap,
			 "--volume %s: mke2fs (e2fsprogs) not found: install e2fsprogs (make deps)",
			 v->host_arg);
		return -ENOENT;
	}
	if (!v->ro && (volume_find_tool("debugfs", "DEBUGFS", debugfs, sizeof(debugfs)) < 0 ||
		       volume_find_tool("e2fsck", "E2FSCK", debugfs, sizeof(debugfs)) < 0)) {
		snprintf(err, cap,
			 "--volume %s: debugfs or e2fsck (e2fsprogs) not found: the write-back "
			 "needs them (or use ,ro)",
			 v->host_arg);
		return -ENOENT;
	}
	walk = (typeof(walk)){.v = v, .err = err, .cap = cap};
	v->tree_bytes = v->tree_inodes = 0;
	errno = 0;
	if (nftw(v->host, walk_entry, 32, FTW_PHYS) != 0) {
		if (walk.ret)
			return walk.ret;
		snprintf(err, cap, "--volume %s: %s", v->host_arg, strerror(errno));
		return -errno;
	}
	if (!v->size_bytes)
		v->size_bytes = ALIGN_UP(v->tree_bytes * 2 + VOLUME_SLACK, MiB);
	v->image_bytes = v->size_bytes;
	if (!tmpdir || !*tmpdir)
		tmpdir = access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
	snprintf(img, sizeof(img), "%s/vmm-volume-XXXXXX", tmpdir);
	if (statvfs(tmpdir, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < v->tree_bytes + 16 * MiB) {
		snprintf(
			err, cap,
			"--volume %s: no space in %s for its image: %llu MiB needed, %llu MiB free",
			v->host_arg, tmpdir, (unsigned long long)((v->tree_bytes >> 20) + 16),
			(unsigned long long)(((uint64_t)sv.f_bavail * sv.f_frsize) >> 20));
		return -ENOSPC;
	}
	{
		char real[PATH_MAX];
		size_t hl = strlen(v->host);

		/* mke2fs -d would copy the image it is writing into itself. */
		if (realpath(tmpdir, real) && !strncmp(real, v->host, hl) &&
		    (real[hl] == '/' || !real[hl] || hl == 1)) {
			snprintf(err, cap,
				 "--volume %s: the image directory %s is inside it: set TMPDIR "
				 "elsewhere",
				 v->host_arg, tmpdir);
			return -EINVAL;
		}
	}
	fd = mkostemp(img, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, cap, "--volume %s: cannot create its image in %s: %s", v->host_arg,
			 tmpdir, strerror(errno));
		return -errno;
	}
	close(fd);
	out = memfd_create("mke2fs-output", MFD_CLOEXEC);
	snprintf(sizek, sizeof(sizek), "%lluk", (unsigned long long)(v->size_bytes >> 10));
	snprintf(inodes, sizeof(inodes), "%llu", (unsigned long long)(v->tree_inodes * 2 + 4096));
	{
		char *argv[] = {mke2fs,	      "-q",   "-F",    "-t", "ext4", "-O",   "^has_journal",
				"-b",	      "4096", "-m",    "0",  "-N",   inodes, "-L",
				"vmm-volume", "-d",   v->host, img,  sizek,  NULL};

		rc = out < 0 ? -errno : volume_run(argv, NULL, -1, out);
	}
	if (rc != 0) {
		if (rc < 0)
			snprintf(msg, sizeof(msg), "%s", strerror(-rc));
		else
			last_line(out, msg, sizeof(msg));
		unlink(img);
		if (out >= 0)
			close(out);
		snprintf(err, cap, "--volume %s: mke2fs -d failed: %s", v->host_arg, msg);
		return strstr(msg, "space") ? -ENOSPC : -EIO;
	}
	close(out);
	fd = open(img, (v->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	unlink(img); /* the disk and the helper use the open file: nothing is left behind */
	if (fd < 0) {
		snprintf(err, cap, "--volume %s: cannot open its image: %s", v->host_arg,
			 strerror(errno));
		return -errno;
	}
	{
		uint16_t state;

		if (volume_read_super(fd, &v->mnt_count, &state) < 0) {
			close(fd);
			snprintf(err, cap, "--volume %s: mke2fs made no ext4 superblock",
				 v->host_arg);
			return -EIO;
		}
	}
	{
		char lf[PATH_MAX + 16];

		snprintf(lf, sizeof(lf), "%s/lost+found", v->host);
		v->had_lost_found = lstat(lf, &st) == 0;
	}
	v->fd = fd;
	snprintf(v->disk_path, sizeof(v->disk_path), "/proc/self/fd/%d", fd);
	return 0;
}

void volume_release(struct volume *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

int volume_cmdline_arg(const struct volume *v, char letter, char *dst, size_t cap)
{
	char b64[(VOLUME_GUEST_MAX + 2) / 3 * 4 + 1];
	size_t len = strnlen(dst, cap);
	int n;

	if (len >= cap)
		return -E2BIG;
	cli_base64((const uint8_t *)v->guest, strlen(v->guest), b64);
	n = snprintf(dst + len, cap - len, " vmm.vol=vd%c:%s:%s", letter, b64, v->ro ? "ro" : "rw");
	if (n < 0 || (size_t)n >= cap - len) {
		dst[len] = '\0';
		return -E2BIG;
	}
	return 0;
}
