/*
 * `vmm run --volume HOSTDIR:GUESTDIR[,ro][,size=SIZE]` (issue 13, README "Folders in and out"):
 * a host directory carried into the guest as an ext4 image on an extra virtio-blk disk, and, for a
 * writable volume, carried back into HOSTDIR after a clean exit.
 *
 * Life of a volume:
 *   1. volume_parse(): the option.
 *   2. volume_prepare(), before the sandbox: HOSTDIR walked (size, inode count, what cannot make
 *      the round trip), `mke2fs -t ext4 -O ^has_journal -d HOSTDIR` into a sparse file under
 *      $TMPDIR (else /var/tmp or /tmp), opened and unlinked at once (no file is left behind
 * whatever happens to vmm); the disk sees it as /proc/self/fd/N.
 *   3. volume_helper_start(), still before sandbox_init(): a helper process, forked while vmm has
 *      no seccomp filter and no NO_NEW_PRIVS yet, waits on a pipe. The guest's init mounts the
 *      volume (vmm.vol=vdX:BASE64(GUESTDIR):ro|rw) and unmounts it when the command ends.
 *   4. After the VM stopped and the disks were closed: volume_helper_write_back() when the guest
 *      left through its init's exit port, else volume_helper_cancel() (kernel panic, crash, kill,
 *      timeout: HOSTDIR is not touched). The helper writes back each writable volume
 *      (volume_write_back()).
 *
 * No journal on the image: the host reads it with debugfs, which does not replay a journal; the
 * superblock's state tells whether the guest unmounted it (ext4 without a journal clears
 * EXT2_VALID_FS while mounted read-write and sets it again at unmount), and its mount count
 * whether it was mounted at all.
 */
#ifndef VMM_VOLUME_H
#define VMM_VOLUME_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes of GUESTDIR (it travels base64 on the kernel command line). */
#define VOLUME_GUEST_MAX 255
#define VOLUME_MIN_FREE	 (32ULL << 20) /* bytes a write-back leaves free on HOSTDIR's fs */
#define VOLUME_SLACK	 (64ULL << 20) /* free space on an automatically sized image, bytes */

struct volume {
	char host_arg[PATH_MAX];	  /* HOSTDIR as given (messages) */
	char host[PATH_MAX];		  /* its real path (volume_prepare) */
	char guest[VOLUME_GUEST_MAX + 1]; /* GUESTDIR, absolute */
	bool ro;			  /* ,ro: read-only disk, never written back */
	uint64_t size_bytes;		  /* ,size=: image size; 0: twice the tree + VOLUME_SLACK */
	/* Set by volume_prepare(): */
	int fd;		      /* the image (unlinked), -1 before */
	char disk_path[40];   /* "/proc/self/fd/N", the --disk path */
	bool had_lost_found;  /* HOSTDIR has its own lost+found (else the image's is dropped) */
	uint16_t mnt_count;   /* the superblock's s_mnt_count after mke2fs */
	uint64_t image_bytes; /* the image's size */
	uint64_t tree_bytes;  /* HOSTDIR's apparent size (files rounded up to 4 KiB blocks) */
	uint64_t tree_inodes; /* files, directories and links in HOSTDIR */
};

/* The write-back helper process (volume_helper_start()). */
struct volume_helper {
	pid_t pid;     /* 0: not started */
	int cmd_fd;    /* parent -> helper: one byte 'W' means write back; EOF means do nothing */
	int result_fd; /* helper -> parent: one struct volume_result per writable volume */
};

/* A write-back's outcome, as the helper reports it. */
struct volume_result {
	int status;    /* 0, 1 (nothing to do: the guest never mounted it), or -errno */
	char msg[480]; /* one line when status < 0 */
};

/**
 * volume_parse() - one --volume argument "HOSTDIR:GUESTDIR[,ro|,rw][,size=SIZE]" into @v (zeroed
 * first). HOSTDIR ends at the first ':'; trailing ",ro", ",rw", ",size=SIZE" (K/M/G suffixes)
 * are options, so GUESTDIR may hold ',' and ':' but not end in one of them. GUESTDIR must be
 * absolute, not "/", without "." or ".." components, at most VOLUME_GUEST_MAX bytes. Returns 0, or
 * -EINVAL with one line in @err (@cap bytes).
 */
int volume_parse(const char *arg, struct volume *v, char *err, size_t cap);

/**
 * volume_prepare() - build @v's image: checks HOSTDIR (exists, a directory, readable throughout;
 * for a writable volume no device, FIFO or socket, which could not come back), makes the image
 * with mke2fs (e2fsprogs; $MKE2FS, /usr/sbin/mke2fs, /sbin/mke2fs or PATH) in a private file under
 * $TMPDIR, /var/tmp or /tmp, keeps it open in @v->fd and unlinks it. Call before sandbox_init().
 * For a writable volume also checks that debugfs exists (the write-back needs it). Returns 0, or
 * -errno with one line in @err (-ENOENT, -ENOTDIR, -EACCES, -ENOSPC, -EINVAL, -EIO: mke2fs
 * failed).
 */
int volume_prepare(struct volume *v, char *err, size_t cap);

/**
 * volume_find_tool() - the e2fsprogs program @name: $@env if set, else /usr/sbin/@name,
 * /sbin/@name, or the first in PATH, into @out (@cap bytes). Returns 0 or -ENOENT.
 */
int volume_find_tool(const char *name, const char *env, char *out, size_t cap);

/**
 * volume_run() - run @argv (argv[0] a path) in @cwd (NULL: here) with stdin /dev/null and stdout
 * and stderr on @out_fd (the caller's, e.g. a memfd; it is read afterwards), FD_CLOEXEC cleared
 * on @keep_fd (-1: none) in the child, and wait for it. Returns its exit status (0..255), 256 +
 * the signal that killed it, or -errno when it could not be started.
 */
int volume_run(char *const argv[], const char *cwd, int keep_fd, int out_fd);

/* What a tool that reads a guest-written image may write (volume_run_confined()). */
struct volume_confine {
	const char *write_dir;	  /* the only writable place; NULL: no confinement */
	uint64_t max_file_bytes;  /* RLIMIT_FSIZE (only lowered), 0: none */
	uint64_t max_total_bytes; /* at most this much of write_dir's free space used, 0: any */
	uint64_t min_free_bytes;  /* and at least this much left free */
};

/**
 * volume_run_confined() - volume_run() for a tool reading a guest-written image: in the child,
 * every mount read-only except @c->write_dir (a private mount namespace, plus a user namespace
 * mapping only the caller's ids when not root; where the kernel refuses, a warning line and no
 * confinement) and RLIMIT_FSIZE; the parent polls write_dir's free space every 20 ms and kills
 * the tool when it used more than @c->max_total_bytes or left less than @c->min_free_bytes
 * (-EFBIG). @c NULL: as volume_run(). Same returns as volume_run(), or -EFBIG.
 */
int volume_run_confined(char *const argv[], const char *cwd, int keep_fd, int out_fd,
			const struct volume_confine *c);

/**
 * volume_read_super() - the ext2/3/4 superblock fields the write-back looks at, read from image
 * @fd at byte 1024: *@mnt_count (s_mnt_count) and *@state (s_state: EXT2_VALID_FS 1, EXT2_ERROR_FS
 * 2). Returns 0, -EIO on a short read, or -EINVAL when the magic is not 0xEF53.
 */
int volume_read_super(int fd, uint16_t *mnt_count, uint16_t *state);

/** volume_release() - close @v's image. Idempotent. */
void volume_release(struct volume *v);

/**
 * volume_cmdline_arg() - append " vmm.vol=vdX:BASE64(GUESTDIR):ro|rw" for @v on disk @letter
 * ('a' + its index among the disks) to @dst (@cap bytes, NUL-terminated). Returns 0 or -E2BIG.
 */
int volume_cmdline_arg(const struct volume *v, char letter, char *dst, size_t cap);

/**
 * volume_write_back() - carry @v's image back into @v->host (the helper does this; tests call it
 * directly). The superblock must say the guest unmounted it (else -EBUSY); an image never mounted
 * is left alone (returns 1). The image is the guest's, so hostile: it must pass `e2fsck -fn`
 * (duplicate or '/' names, shared blocks, loops: -EINVAL otherwise), and debugfs runs confined
 * (volume_run_confined(): writes only inside the stage, no file larger than the image, at most
 * twice the image's size in all, VOLUME_MIN_FREE left free: -EFBIG). The tree
 * is extracted with `debugfs -R "rdump / STAGE"` into a directory next to HOSTDIR, synced, then
 * swapped with HOSTDIR in one renameat2(RENAME_EXCHANGE) (two renames where the file system lacks
 * it) and the old tree removed; any failure before the swap removes the stage and leaves HOSTDIR as
 * it was. Returns 0, 1, or -errno with one line in
 * @err.
 */
int volume_write_back(struct volume *v, char *err, size_t cap);

/**
 * volume_commit_tree() - replace directory @host by directory @stage (same file system): swap
 * them atomically, give @host's old mode and owner to the new tree, remove the old tree. If the
 * swap fails nothing has changed. Returns 0 or -errno with one line in @err; a failure to remove
 * the old tree is only a warning (logged; the new tree is in place).
 */
int volume_commit_tree(const char *host, const char *stage, char *err, size_t cap);

/**
 * volume_remove_tree() - rm -rf @path without following symlinks (directories made writable as
 * needed). Returns 0 or -errno of the first failure.
 */
int volume_remove_tree(const char *path);

/**
 * volume_helper_start() - fork the write-back helper for the writable volumes among @vols[0..@n).
 * Call after volume_prepare() and before sandbox_init() (the helper must be free to exec
 * debugfs). The helper ignores SIGINT/SIGQUIT (vmm decides) and exits when @h->cmd_fd closes.
 * With no writable volume nothing is started (@h->pid 0). Returns 0 or -errno.
 */
int volume_helper_start(struct volume *vols, unsigned int n, struct volume_helper *h);

/**
 * volume_helper_write_back() - tell the helper to write back, and wait for its results: one
 * struct volume_result per writable volume, in order, into @res (@n entries). Uses only write,
 * read and close (the loop thread's seccomp role allows them). Returns 0, or -EPIPE when the
 * helper died (its results then say so).
 */
int volume_helper_write_back(struct volume_helper *h, struct volume_result *res, unsigned int n);

/** volume_helper_cancel() - close the helper's pipes: it exits without touching anything. */
void volume_helper_cancel(struct volume_helper *h);

#endif
