/* The control server: the listening socket, accepting clients, the idle timeout, its life. */
#include "server_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "../loop.h"
#include "../util.h"

#define ACCEPT_BATCH   64
#define FLUSH_DEADLINE (200 * 1000000ULL) /* control_destroy() flush budget, ns */

/* "60 s", "0.3 s": an idle timeout for messages. */
static const char *secs(uint64_t ns, char *buf, size_t size)
{
	snprintf(buf, size, "%g s", (double)(ns / 1000000) / 1000.0);
	return buf;
}

static void reject(struct control *c, int fd)
{
	char msg[CTL_MSG_LEN], t[32], *line;

	if (c->idle_ns)
		snprintf(
			msg, sizeof(msg),
			"too many clients (the limit is %d clients; idle ones are closed after %s)",
			CTL_MAX_CLIENTS, secs(c->idle_ns, t, sizeof(t)));
	else
		snprintf(msg, sizeof(msg), "too many clients (the limit is %d clients)",
			 CTL_MAX_CLIENTS);
	line = ctl_reply_error(false, 0, CTL_E_BUSY, msg);

	c->st.clients_rejected++;
	if (line && send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* Best effort: the client learns from the close anyway. */
	}
	free(line);
	close(fd);
}

/*
 * Serve only peers of our uid or root (SO_PEERCRED: who connected, whatever the file's mode
 * lets through). Returns true when @fd may stay; otherwise it got one error line and is closed.
 */
static bool peer_allowed(struct control *c, int fd)
{
	struct ucred cred = {.uid = (uid_t)-1};
	socklen_t len = sizeof(cred);
	char msg[CTL_MSG_LEN], *line;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	    (cred.uid == c->uid || cred.uid == 0))
		return true;
	c->st.clients_refused_peer++;
	pr_warn_ratelimited("control: refusing a client of uid %d pid %d (only uid %u and root)",
			    (int)cred.uid, (int)cred.pid, (unsigned int)c->uid);
	snprintf(msg, sizeof(msg), "uid %d may not use this socket (only uid %u and root)",
		 (int)cred.uid, (unsigned int)c->uid);
	line = ctl_reply_error(false, 0, CTL_E_NOT_PERMITTED, msg);
	if (line && send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* Best effort, as for busy. */
	}
	free(line);
	close(fd);
	return false;
}

/* Out of fds: accept with the spare one's slot and close, so the listener does not spin. */
static void accept_emfile(struct control *c)
{
	int fd;

	pr_err_ratelimited("control: out of file descriptors, refusing a client");
	if (c->spare_fd < 0)
		return;
	close(c->spare_fd);
	fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	c->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_cb(void *opaque, int lfd, uint32_t events)
{
	struct control *c = opaque;

	(void)events;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ctl_client *cl;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				accept_emfile(c);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				pr_err_ratelimited("control: accept: %s", strerror(errno));
			if (errno != EINTR && errno != ECONNABORTED)
				return;
			continue;
		}
		if (!peer_allowed(c, fd))
			continue;
		cl = client_new(c, fd);
		if (!cl) {
			reject(c, fd);
			continue;
		}
		if (loop_add_fd(c->loop, fd, EPOLLIN, client_cb, cl) < 0) {
			client_kill(cl);
			cl->fd = fd;
			reap(c);
			continue;
		}
		cl->watched = EPOLLIN;
	}
}

/* Close the socket clients silent for the idle timeout with no deferred reply waiting. */
static void idle_sweep(void *opaque)
{
	struct control *c = opaque;
	uint64_t now = now_ns();
	char msg[CTL_MSG_LEN], t[32];

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *cl = c->clients[i];

		char byte;

		if (!cl || cl->fd < 0 || cl->dead || cl->nr_pending || !c->idle_ns ||
		    now - cl->active_ns < c->idle_ns)
			continue;
		/* Bytes that arrived but are not read yet (same loop turn, or throttled) count. */
		if (recv(cl->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
			cl->active_ns = now;
			continue;
		}
		c->st.clients_idle_closed++;
		snprintf(msg, sizeof(msg),
			 "nothing received for %s; closing the connection (a blank line keeps it "
			 "open)",
			 secs(c->idle_ns, t, sizeof(t)));
		send_error(cl, false, 0, CTL_E_IDLE_TIMEOUT, msg);
		client_kill(cl);
	}
	reap(c);
}

int control_set_idle_timeout(struct control *c, uint64_t ms)
{
	int id = -1;

	if (!ms)
		ms = CTL_IDLE_DEF_MS;
	if (ms != CTL_IDLE_NEVER && ms > CTL_IDLE_MAX_MS)
		return -EINVAL;
	if (ms != CTL_IDLE_NEVER) {
		id = loop_add_timer(c->loop, MIN(1000, MAX(10, ms / 4)), true, idle_sweep, c);
		if (id < 0)
			return id;
	}
	if (c->idle_timer >= 0)
		loop_del_timer(c->loop, c->idle_timer);
	c->idle_timer = id;
	c->idle_ns = ms == CTL_IDLE_NEVER ? 0 : ms * 1000000ULL;
	return 0;
}

static int arg_error(char *err, size_t size, int ret, const char *fmt, const char *what)
{
	snprintf(err, size, fmt, what);
	return ret;
}

int control_parse_arg(const char *arg, char *path, size_t path_size, uint64_t *idle_ms, char *err,
		      size_t err_size)
{
	const char *opts = NULL;
	size_t len;

	*idle_ms = 0;
	/* The options start at the first comma from which on every part is NAME=VALUE. */
	for (const char *p = arg; (p = strchr(p, ',')); p++) {
		bool all = true;

		for (const char *q = p; q && all; q = strchr(q + 1, ',')) {
			size_t n = strcspn(q + 1, ",="),
			       k = strspn(q + 1, "abcdefghijklmnopqrstuvwxyz-");

			all = n && k == n && q[1 + n] == '=';
		}
		if (all) {
			opts = p;
			break;
		}
	}
	len = opts ? (size_t)(opts - arg) : strlen(arg);
	if (!len)
		return arg_error(err, err_size, -EINVAL,
				 "--control '%s': expected PATH[,idle-timeout=SECONDS]", arg);
	if (len >= path_size)
		return arg_error(err, err_size, -ENAMETOOLONG,
				 "--control '%s': the path is too long", arg);
	memcpy(path, arg, len);
	path[len] = '\0';
	for (const char *o = opts; o; o = strchr(o + 1, ',')) {
		const char *v = strchr(o, '=') + 1;
		size_t n = strcspn(v, ",");
		char num[32], *end;
		unsigned long long s;

		if (strncmp(o + 1, "idle-timeout=", 13)) {
			snprintf(err, err_size,
				 "--control: unknown option '%.*s' (known: idle-timeout)",
				 (int)(v - o - 2), o + 1);
			return -EINVAL;
		}
		snprintf(num, sizeof(num), "%.*s", (int)MIN(n, sizeof(num) - 1), v);
		errno = 0;
		s = strtoull(num, &end, 10);
		if (!n || n >= sizeof(num) || *end || errno || num[0] == '-' ||
		    s > CTL_IDLE_MAX_MS / 1000) {
			snprintf(err, err_size,
				 "--control: idle-timeout '%.*s': expected whole seconds from 0 "
				 "(never) "
				 "to %llu",
				 (int)n, v, CTL_IDLE_MAX_MS / 1000);
			return -EINVAL;
		}
		*idle_ms = s ? s * 1000 : CTL_IDLE_NEVER;
	}
	return 0;
}

void *control_backend_opaque(struct control *c)
{
	return c->opaque;
}

const char *control_socket_path(struct control *c)
{
	return c->path;
}

/* Is somebody accepting on @path? A full backlog (EAGAIN) counts as alive. */
static int probe_live(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int ret;

	if (fd < 0)
		return -errno;
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? 1 : -errno;
	close(fd);
	if (ret == -EAGAIN || ret == -EINPROGRESS)
		return 1;
	return ret == -ECONNREFUSED ? 0 : ret;
}

static int listen_on(struct control *c, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST; /* never delete a file that is not a socket */
		ret = probe_live(&sa);
		if (ret)
			return ret > 0 ? -EADDRINUSE : ret;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/*
	 * bind() creates the file with the socket inode's mode less the umask: 0600 from the
	 * start, and no chmod() of the path afterwards (it could be a symlink by then).
	 */
	if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 64) < 0 || stat(path, &st) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if ((st.st_mode & 0777) != 0600) {
		pr_err("control: %s: mode %03o after bind (the umask masks the owner's bits)", path,
		       (unsigned int)(st.st_mode & 0777));
		unlink(path);
		close(fd);
		return -EACCES;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->lfd = fd;
	return 0;
}

static int add_fds(struct control *c)
{
	int ret;

	c->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (c->evfd < 0 || c->tfd < 0)
		return -errno;
	ret = loop_add_fd(c->loop, c->evfd, EPOLLIN, event_cb, c);
	if (!ret)
		ret = loop_add_fd(c->loop, c->tfd, EPOLLIN, timer_cb, c);
	if (!ret && c->lfd >= 0)
		ret = loop_add_fd(c->loop, c->lfd, EPOLLIN, accept_cb, c);
	return ret;
}

int control_create(struct loop *loop, const char *path, const struct control_backend_ops *ops,
		   void *opaque, struct control **out)
{
	struct control *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	*c = (struct control){.loop = loop,
			      .ops = ops,
			      .opaque = opaque,
			      .lfd = -1,
			      .evfd = -1,
			      .tfd = -1,
			      .idle_timer = -1,
			      .uid = geteuid(),
			      .evtail = &c->evhead};
	pthread_mutex_init(&c->evlock, NULL);
	c->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (path) {
		c->path = strdup(path);
		ret = c->path ? listen_on(c, path) : -ENOMEM;
		if (ret < 0) {
			if (ret == -EADDRINUSE)
				pr_err("control: %s: another process is serving this socket", path);
			else
				pr_err("control: %s: %s", path, strerror(-ret));
			goto err;
		}
	}
	ret = add_fds(c);
	if (!ret)
		ret = control_set_idle_timeout(c, 0);
	if (ret < 0) {
		pr_err("control: event loop setup: %s", strerror(-ret));
		goto err;
	}
	*out = c;
	return 0;
err:
	control_destroy(c);
	return ret;
}

/* Give queued replies a short chance to leave before the sockets close. */
static void flush_all(struct control *c)
{
	uint64_t deadline = now_ns() + FLUSH_DEADLINE;

	for (;;) {
		struct pollfd pfd[CTL_MAX_CLIENTS];
		struct ctl_client *who[CTL_MAX_CLIENTS];
		uint64_t now = now_ns();
		nfds_t n = 0;

		for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
			struct ctl_client *cl = c->clients[i];

			if (!cl || cl->dead || cl->fd < 0)
				continue;
			client_flush(cl);
			if (wq_bytes(cl) && !cl->dead) {
				pfd[n] = (struct pollfd){.fd = cl->fd, .events = POLLOUT};
				who[n++] = cl;
			}
		}
		if (!n || now >= deadline)
			return;
		if (poll(pfd, n, (int)((deadline - now) / 1000000) + 1) <= 0)
			return;
		for (nfds_t i = 0; i < n; i++)
			if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL))
				client_kill(who[i]);
	}
}

void control_destroy(struct control *c)
{
	struct stat st;

	if (!c)
		return;
	if (c->loop) {
		if (c->lfd >= 0)
			loop_del_fd(c->loop, c->lfd);
		if (c->evfd >= 0)
			loop_del_fd(c->loop, c->evfd);
		if (c->tfd >= 0)
			loop_del_fd(c->loop, c->tfd);
		if (c->idle_timer >= 0)
			loop_del_timer(c->loop, c->idle_timer);
	}
	deliver_events(c);
	if (c->pending)
		complete_stats(c, true);
	if (c->pending)
		complete_reclaims(c, 0, NULL, true);
	flush_all(c);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *cl = c->clients[i];

		if (!cl)
			continue;
		drop_pending(c, cl);
		if (cl->fd >= 0) {
			if (c->loop)
				loop_del_fd(c->loop, cl->fd);
			close(cl->fd);
		}
		client_free(cl);
	}
	if (c->lfd >= 0) {
		close(c->lfd);
		if (c->path && stat(c->path, &st) == 0 && st.st_dev == c->dev &&
		    st.st_ino == c->ino)
			unlink(c->path);
	}
	if (c->evfd >= 0)
		close(c->evfd);
	if (c->tfd >= 0)
		close(c->tfd);
	if (c->spare_fd >= 0)
		close(c->spare_fd);
	pthread_mutex_destroy(&c->evlock);
	free(c->path);
	free(c);
}
