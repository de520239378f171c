// SPDX-License-Identifier: GPL-2.0
/*
 * vmm-console: the job's stdio on the vmm's virtio-console ports (devices/virtio_console.h).
 *
 *   vmm-console --probe [TIMEOUT_MS]   wait (default 10000 ms) until the ports "vmm.stdout" and
 *                                      "vmm.stderr" are named in /sys/class/virtio-ports; exit 0,
 *                                      or 1 when they did not appear (no device: use the UART)
 *   vmm-console CMD [ARGS...]          run CMD with its stdout, stderr and stdin on pipes that
 *                                      this process relays to/from the ports vmm.stdout,
 *                                      vmm.stderr and vmm.stdin; exit with CMD's status
 *                                      (128 + N when a signal N killed it)
 *
 * Why pipes and not the port devices themselves: Linux lets one open file own a port at a time
 * (a second open() is EBUSY), so a job reopening /dev/stdout or /dev/stderr (tee /dev/stderr)
 * would fail on a port; on a pipe it works.
 *
 * The tail is never lost: once CMD has exited, everything it wrote is in the pipes; it is read
 * until the pipes are empty and written to the ports, and a write to a port returns once the data
 * is queued to the device, which drains its queues when the VM stops. Output a background
 * process writes after CMD exited may be lost (the VM stops right after). SIGTERM (SysRq 'e') is
 * ignored here so the relay outlives CMD and still delivers what CMD wrote.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PORTS_DIR "/sys/class/virtio-ports"
#define BUF_SIZE  (64 * 1024)

struct stream {
	int src, dst; /* -1 once closed */
	char buf[BUF_SIZE];
	size_t len, off;
};

static struct stream out_s, err_s, in_s;

/* Path of the port named @name into @path ("/dev/vportNpM"); false when there is none. */
static bool find_port(const char *name, char *path, size_t cap)
{
	/* Test hook: VMM_CONSOLE_ROOT=DIR looks in DIR/sys/class/virtio-ports and DIR/dev. */
	const char *root = getenv("VMM_CONSOLE_ROOT") ?: "";
	char dir[256];
	DIR *d;
	struct dirent *e;
	bool found = false;

	snprintf(dir, sizeof(dir), "%s" PORTS_DIR, root);
	d = opendir(dir);

	while (d && !found && (e = readdir(d))) {
		char file[600], got[128] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "%s/%s/name", dir, e->d_name);
		f = fopen(file, "r");
		if (!f)
			continue;
		if (fgets(got, sizeof(got), f))
			got[strcspn(got, "\n")] = '\0';
		fclose(f);
		if (!strcmp(got, name)) {
			snprintf(path, cap, "%s/dev/%s", root, e->d_name);
			found = true;
		}
	}
	if (d)
		closedir(d);
	return found;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int probe(long timeout_ms)
{
	char p[600];
	long end = now_ms() + timeout_ms;

	for (;;) {
		if (find_port("vmm.stdout", p, sizeof(p)) && find_port("vmm.stderr", p, sizeof(p)))
			return 0;
		if (now_ms() >= end)
			return 1;
		usleep(10000);
	}
}

static int open_port(const char *name, int flags)
{
	char path[600];

	if (!find_port(name, path, sizeof(path))) {
		errno = ENOENT;
		return -1;
	}
	return open(path, flags | O_CLOEXEC);
}

static void on_signal(int sig)
{
	(void)sig; /* SIGTERM: keep relaying until CMD is gone */
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void fill(struct stream *s)
{
	ssize_t n = read(s->src, s->buf, sizeof(s->buf));

	if (n > 0) {
		s->len = (size_t)n;
		s->off = 0;
	} else if (!(n < 0 && (errno == EAGAIN || errno == EINTR))) {
		close_fd(&s->src);
		if (s == &in_s)
			close_fd(&s->dst); /* end of the job's input */
	}
}

static void flush(struct stream *s)
{
	ssize_t n = write(s->dst, s->buf + s->off, s->len - s->off);

	if (n > 0) {
		s->off += (size_t)n;
		if (s->off == s->len)
			s->len = s->off = 0;
	} else if (!(n < 0 && (errno == EAGAIN || errno == EINTR))) {
		s->len = s->off = 0; /* the reader is gone (EPIPE): stop feeding it */
		close_fd(&s->dst);
		close_fd(&s->src);
	}
}

/* After CMD exited: everything it wrote is in the pipe; move it to the port (blocking writes:
 * the port's back-pressure) until the pipe is empty. */
static void finish(struct stream *s)
{
	while (s->dst >= 0) {
		ssize_t n;

		if (s->len) {
			flush(s);
			continue;
		}
		if (s->src < 0)
			break;
		n = read(s->src, s->buf, sizeof(s->buf));
		if (n > 0) {
			s->len = (size_t)n;
			s->off = 0;
		} else if (!(n < 0 && errno == EINTR)) {
			break; /* end, or empty (EAGAIN) */
		}
	}
}

static void relay(pid_t pid, int *status)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool done = false;

	while (!done) {
		struct stream *ss[3] = {&out_s, &err_s, &in_s};
		struct pollfd pfd[7];
		struct stream *who[7];
		int n = 0;

		for (int i = 0; i < 3; i++) {
			struct stream *s = ss[i];

			if (s->len && s->dst >= 0) {
				pfd[n] = (struct pollfd){.fd = s->dst, .events = POLLOUT};
				who[n++] = s;
			} else if (!s->len && s->src >= 0 && s->dst >= 0) {
				pfd[n] = (struct pollfd){.fd = s->src, .events = POLLIN};
				who[n++] = s;
			}
		}
		if (pidfd >= 0) {
			pfd[n] = (struct pollfd){.fd = pidfd, .events = POLLIN};
			who[n++] = NULL;
		}
		if (poll(pfd, n, pidfd >= 0 ? -1 : 50) < 0)
			continue; /* EINTR (SIGTERM) */
		for (int i = 0; i < n; i++) {
			if (!pfd[i].revents || !who[i])
				continue;
			if (pfd[i].events & POLLOUT)
				flush(who[i]);
			else
				fill(who[i]);
		}
		done = waitpid(pid, status, WNOHANG) == pid;
	}
	finish(&out_s);
	finish(&err_s);
}

static int run(char **argv)
{
	int op[2], ep[2], ip[2] = {-1, -1}, status = 0;
	pid_t pid;

	out_s.dst = open_port("vmm.stdout", O_WRONLY);
	err_s.dst = open_port("vmm.stderr", O_WRONLY);
	in_s.src = open_port("vmm.stdin", O_RDONLY);
	if (out_s.dst < 0 || err_s.dst < 0 || pipe2(op, O_CLOEXEC) || pipe2(ep, O_CLOEXEC) ||
	    (in_s.src >= 0 && pipe2(ip, O_CLOEXEC))) {
		fprintf(stderr, "vmm-console: cannot open the ports (%s): running on the console\n",
			strerror(errno));
		execvp(argv[0], argv);
		return 127;
	}
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	pid = fork();
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		dup2(ip[0] >= 0 ? ip[0] : open("/dev/null", O_RDONLY), 0);
		dup2(op[1], 1);
		dup2(ep[1], 2);
		execvp(argv[0], argv);
		fprintf(stderr, "vmm-console: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0) {
		perror("vmm-console: fork");
		return 125;
	}
	close(op[1]);
	close(ep[1]);
	if (ip[0] >= 0)
		close(ip[0]);
	out_s.src = op[0];
	err_s.src = ep[0];
	in_s.dst = ip[1];
	fcntl(op[0], F_SETFL, O_NONBLOCK);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	if (ip[1] >= 0)
		fcntl(ip[1], F_SETFL, O_NONBLOCK);
	relay(pid, &status);
	close_fd(&out_s.dst);
	close_fd(&err_s.dst);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	out_s.src = err_s.src = in_s.dst = -1;
	if (argc >= 2 && !strcmp(argv[1], "--probe"))
		return probe(argc >= 3 ? atol(argv[2]) : 10000);
	if (argc < 2) {
		fprintf(stderr,
			"usage: vmm-console --probe [TIMEOUT_MS] | vmm-console CMD [ARGS...]\n");
		return 2;
	}
	return run(argv + 1);
}
