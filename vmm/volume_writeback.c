/* --volume: the write-back after a clean exit and the helper process that does it (volume.h). */
#include "volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define EXT2_VALID_FS 1
#define EXT2_ERROR_FS 2

static int remove_at(int dirfd, const char *name)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, ret = 0;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	/* A read-only directory (0555) cannot lose its entries until it is writable again. */
	if ((st.st_mode & 0700) != 0700)
		fchmodat(dirfd, name, (st.st_mode & 07777) | 0700, 0);
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		int r;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = remove_at(fd, de->d_name);
		if (r && !ret)
			ret = r;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && !ret)
		ret = -errno;
	return ret;
}

int volume_remove_tree(const char *path)
{
	return remove_at(AT_FDCWD, path);
}

int volume_commit_tree(const char *host, const char *stage, char *err, size_t cap)
{
	char old[PATH_MAX + 8];
	struct stat st;
	int r;

	if (stat(host, &st) < 0) {
		snprintf(err, cap, "%s: %s", host, strerror(errno));
		return -errno;
	}
	/* The directory keeps its identity: HOSTDIR's mode and owner, on the new tree. */
	if (chmod(stage, st.st_mode & 07777) < 0 ||
	    (geteuid() == 0 && chown(stage, st.st_uid, st.st_gid) < 0)) {
		snprintf(err, cap, "%s: %s", stage, strerror(errno));
		return -errno;
	}
	if (renameat2(AT_FDCWD, stage, AT_FDCWD, host, RENAME_EXCHANGE) < 0) {
		if (errno != EINVAL && errno != ENOSYS) {
			snprintf(err, cap, "swapping %s with its new contents: %s", host,
				 strerror(errno));
			return -errno;
		}
		/* No RENAME_EXCHANGE here: HOSTDIR is missing between the two renames, and the
		 * old tree is at STAGE.old if vmm dies there. */
		snprintf(old, sizeof(old), "%s.old", stage);
		if (rename(host, old) < 0) {
			snprintf(err, cap, "moving %s aside: %s", host, strerror(errno));
			return -errno;
		}
		if (rename(stage, host) < 0) {
			int e = errno;

			rename(old, host);
			snprintf(err, cap, "moving the new contents into %s: %s", host,
				 strerror(e));
			return -e;
		}
		stage = old;
	}
	r = volume_remove_tree(stage); /* the old tree now */
	if (r)
		pr_warn("--volume %s: the old contents are left in %s: %s", host, stage,
			strerror(-r));
	return 0;
}

/*
 * debugfs writes its banner and, where it cannot chown (vmm not root: the files come back owned
 * by the invoking user), "while changing ownership of" lines; anything else is a failure (its exit
 * status stays 0 even when writes fail with ENOSPC). The first failing line into @out.
 */
static bool debugfs_failed(int fd, char *out, size_t cap)
{
	FILE *f;
	char *line = NULL;
	size_t n = 0;
	bool failed = false;
	int dfd = dup(fd);

	if (dfd < 0 || lseek(dfd, 0, SEEK_SET) < 0 || !(f = fdopen(dfd, "r"))) {
		snprintf(out, cap, "cannot read debugfs's output: %s", strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return true;
	}
	while (!failed && getline(&line, &n, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || !strncmp(line, "debugfs ", 8) ||
		    strstr(line, "while changing ownership of"))
			continue;
		snprintf(out, cap, "%s", line);
		failed = true;
	}
	free(line);
	fclose(f);
	return failed;
}

/*
 * The guest wrote the image: before debugfs walks it, e2fsck -fn (read-only) must find nothing
 * wrong, which rules out what a valid ext4 never has and rdump would follow: duplicate names in
 * a directory, names with '/', blocks shared between files, directory loops. The first line
 * e2fsck complains with into @msg.
 */
static int check_image(struct volume *v, char *msg, size_t cap)
{
	char e2fsck[PATH_MAX], img[40], *line = NULL;
	char *argv[] = {e2fsck, "-fn", img, NULL};
	int out, rc;
	size_t n = 0;
	FILE *f;

	if (volume_find_tool("e2fsck", "E2FSCK", e2fsck, sizeof(e2fsck)) < 0) {
		snprintf(msg, cap, "e2fsck not found");
		return -ENOENT;
	}
	snprintf(img, sizeof(img), "/proc/self/fd/%d", v->fd);
	out = memfd_create("e2fsck-output", MFD_CLOEXEC);
	if (out < 0)
		return -errno;
	rc = volume_run(argv, NULL, v->fd, out);
	if (rc == 0) {
		close(out);
		return 0;
	}
	snprintf(msg, cap, "the guest left a damaged file system (e2fsck -fn: status %d)", rc);
	lseek(out, 0, SEEK_SET);
	f = fdopen(out, "r");
	while (f && getline(&line, &n, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || !strncmp(line, "e2fsck ", 7) || !strncmp(line, "Pass ", 5))
			continue;
		snprintf(msg, cap, "the guest left a damaged file system (e2fsck -fn: %s)", line);
		break;
	}
	free(line);
	if (f)
		fclose(f);
	else
		close(out);
	return -EINVAL;
}

int volume_write_back(struct volume *v, char *err, size_t cap)
{
	char debugfs[PATH_MAX], parent[PATH_MAX], stage[PATH_MAX + 32], img[40], msg[300];
	char request[64], *name;
	uint16_t mnt_count, state;
	int out, rc;

	rc = volume_read_super(v->fd, &mnt_count, &state);
	if (rc < 0) {
		snprintf(
			err, cap,
			"--volume %s: the image has no ext4 superblock any more: %s left unchanged",
			v->host_arg, v->host_arg);
		return rc;
	}
	if (mnt_count == v->mnt_count && (state & EXT2_VALID_FS))
		return 1; /* never mounted: nothing to bring back */
	if (!(state & EXT2_VALID_FS) || (state & EXT2_ERROR_FS)) {
		snprintf(
			err, cap,
			"--volume %s: the guest did not unmount it cleanly (%s): %s left unchanged",
			v->host_arg, state & EXT2_ERROR_FS ? "file system errors" : "still mounted",
			v->host_arg);
		return -EBUSY;
	}
	if (volume_find_tool("debugfs", "DEBUGFS", debugfs, sizeof(debugfs)) < 0) {
		snprintf(err, cap, "--volume %s: debugfs not found: %s left unchanged", v->host_arg,
			 v->host_arg);
		return -ENOENT;
	}
	rc = check_image(v, msg, sizeof(msg));
	if (rc < 0) {
		snprintf(err, cap, "--volume %s: %s: %s left unchanged", v->host_arg, msg,
			 v->host_arg);
		return rc;
	}
	/* The stage lives next to HOSTDIR (same file system, so the swap is a rename); its name
	 * is plain so that debugfs's request parser needs no quoting (debugfs runs there). */
	snprintf(parent, sizeof(parent), "%s", v->host);
	name = dirname(parent);
	memmove(parent, name, strlen(name) + 1);
	snprintf(stage, sizeof(stage), "%s/.vmm-volume-XXXXXX", parent);
	if (!mkdtemp(stage)) {
		snprintf(
			err, cap,
			"--volume %s: cannot make a staging directory in %s: %s: %s left unchanged",
			v->host_arg, parent, strerror(errno), v->host_arg);
		return -errno;
	}
	snprintf(request, sizeof(request), "rdump / %s", strrchr(stage, '/') + 1);
	snprintf(img, sizeof(img), "/proc/self/fd/%d", v->fd);
	out = memfd_create("debugfs-output", MFD_CLOEXEC);
	{
		char *argv[] = {debugfs, "-R", request, img, NULL};

		/* A file holds at most the image; all of them at most twice that (holes of sparse
		 * files come back as zeros). */
		const struct volume_confine c = {.write_dir = stage,
						 .max_file_bytes = v->image_bytes,
						 .max_total_bytes = 2 * v->image_bytes,
						 .min_free_bytes = VOLUME_MIN_FREE};

		rc = out < 0 ? -errno : volume_run_confined(argv, parent, v->fd, out, &c);
	}
	if (rc != 0 || debugfs_failed(out, msg, sizeof(msg))) {
		if (rc == -EFBIG)
			snprintf(msg, sizeof(msg),
				 "the files would take more than twice the image (%llu MiB) or "
				 "leave less than %llu MiB free",
				 (unsigned long long)(v->image_bytes >> 19),
				 (unsigned long long)(VOLUME_MIN_FREE >> 20));
		else if (rc < 0)
			snprintf(msg, sizeof(msg), "%s", strerror(-rc));
		else if (rc == 256 + SIGXFSZ)
			snprintf(msg, sizeof(msg), "a file is larger than the image (%llu MiB)",
				 (unsigned long long)(v->image_bytes >> 20));
		else if (rc > 256)
			snprintf(msg, sizeof(msg), "debugfs killed by signal %d", rc - 256);
		else if (rc)
			snprintf(msg, sizeof(msg), "debugfs exited with status %d", rc);
		volume_remove_tree(stage);
		if (out >= 0)
			close(out);
		snprintf(err, cap,
			 "--volume %s: reading the files back failed: %s: %s left unchanged",
			 v->host_arg, msg, v->host_arg);
		return rc == -EFBIG ? -EFBIG : strstr(msg, "space") ? -ENOSPC : -EIO;
	}
	close(out);
	if (!v->had_lost_found) { /* mke2fs's, not the user's (kept if e2fsck put files there) */
		char lf[PATH_MAX + 48];

		snprintf(lf, sizeof(lf), "%s/lost+found", stage);
		rmdir(lf);
	}
	{
		/* On disk before the swap: a host crash right after it must not find empty files.
		 */
		int sfd = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (sfd < 0 || syncfs(sfd) < 0) {
			snprintf(err, cap, "--volume %s: syncing %s: %s: %s left unchanged",
				 v->host_arg, stage, strerror(errno), v->host_arg);
			if (sfd >= 0)
				close(sfd);
			volume_remove_tree(stage);
			return -EIO;
		}
		close(sfd);
	}
	rc = volume_commit_tree(v->host, stage, msg, sizeof(msg));
	if (rc < 0) {
		volume_remove_tree(stage);
		snprintf(err, cap, "--volume %s: %s: %s left unchanged", v->host_arg, msg,
			 v->host_arg);
		return rc;
	}
	return 0;
}

static ssize_t full_io(int fd, void *buf, size_t n, bool wr)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = wr ? write(fd, (char *)buf + done, n - done)
			       : read(fd, (char *)buf + done, n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : (ssize_t)done;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static void helper_main(struct volume *vols, unsigned int n, int cmd_fd, int result_fd)
{
	sigset_t none;
	char c;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_IGN); /* ^C reaches the whole process group; vmm decides */
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (full_io(cmd_fd, &c, 1, false) != 1 || c != 'W')
		_exit(0); /* vmm ended without a clean exit (or died): HOSTDIR stays as it is */
	for (unsigned int i = 0; i < n; i++) {
		struct volume_result r = {0};

		if (vols[i].ro)
			continue;
		r.status = volume_write_back(&vols[i], r.msg, sizeof(r.msg));
		if (full_io(result_fd, &r, sizeof(r), true) != sizeof(r))
			_exit(1);
	}
	_exit(0);
}

int volume_helper_start(struct volume *vols, unsigned int n, struct volume_helper *h)
{
	int cmd[2], res[2];
	unsigned int rw = 0;

	*h = (struct volume_helper){.cmd_fd = -1, .result_fd = -1};
	for (unsigned int i = 0; i < n; i++)
		rw += !vols[i].ro;
	if (!rw)
		return 0;
	if (pipe2(cmd, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(res, O_CLOEXEC) < 0) {
		close(cmd[0]);
		close(cmd[1]);
		return -errno;
	}
	h->pid = fork();
	if (h->pid < 0) {
		int e = errno;

		close(cmd[0]);
		close(cmd[1]);
		close(res[0]);
		close(res[1]);
		h->pid = 0;
		return -e;
	}
	if (h->pid == 0) {
		close(cmd[1]);
		close(res[0]);
		helper_main(vols, n, cmd[0], res[1]);
	}
	close(cmd[0]);
	close(res[1]);
	h->cmd_fd = cmd[1];
	h->result_fd = res[0];
	return 0;
}

int volume_helper_write_back(struct volume_helper *h, struct volume_result *res, unsigned int n)
{
	int ret = 0;
	char c = 'W';

	if (!h->pid)
		return 0;
	if (full_io(h->cmd_fd, &c, 1, true) != 1)
		ret = -EPIPE;
	for (unsigned int i = 0; i < n; i++) {
		if (ret == 0 && full_io(h->result_fd, &res[i], sizeof(res[i]), false) ==
					(ssize_t)sizeof(res[i]))
			continue;
		ret = -EPIPE;
		res[i].status = -EPIPE;
		snprintf(res[i].msg, sizeof(res[i].msg),
			 "--volume: the write-back helper died: the directory may be partly "
			 "written back (see its .vmm-volume-* neighbour)");
	}
	volume_helper_cancel(h);
	return ret;
}

void volume_helper_cancel(struct volume_helper *h)
{
	if (h->cmd_fd >= 0)
		close(h->cmd_fd);
	if (h->result_fd >= 0)
		close(h->result_fd);
	h->cmd_fd = h->result_fd = -1;
}
