/* The control server: one client's buffered input and output, and the in-memory test clients. */
#include "server_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../loop.h"
#include "../util.h"

#define READ_CHUNK 4096

/*
 * Mark @cl dead: it is closed by reap(); in-memory clients stay until control_test_free().
 * Its deferred replies stay in the list (a walk of the list may be the caller, through a failed
 * send): the walks skip and free them, and reap() drops the rest before freeing @cl.
 */
void client_kill(struct ctl_client *cl)
{
	cl->dead = true;
}

static int wbuf_append(struct wbuf *w, const char *buf, size_t n)
{
	if (w->off && w->len + n > w->cap) {
		memmove(w->data, w->data + w->off, w->len - w->off);
		w->len -= w->off;
		w->off = 0;
	}
	if (w->len + n > w->cap) {
		size_t cap = MAX(w->cap ? w->cap * 2 : 4096, w->len + n);
		char *d = realloc(w->data, cap);

		if (!d)
			return -ENOMEM;
		w->data = d;
		w->cap = cap;
	}
	memcpy(w->data + w->len, buf, n);
	w->len += n;
	return 0;
}

static void watch(struct ctl_client *cl, uint32_t want)
{
	if (cl->fd < 0 || cl->dead || want == cl->watched)
		return;
	if (loop_mod_fd(cl->c->loop, cl->fd, want) == 0)
		cl->watched = want;
}

/* Send what is queued; a full socket is left for EPOLLOUT. */
void client_flush(struct ctl_client *cl)
{
	while (cl->fd >= 0 && !cl->dead && wq_bytes(cl)) {
		ssize_t k = send(cl->fd, cl->w.data + cl->w.off, wq_bytes(cl),
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				client_kill(cl);
			break;
		}
		cl->w.off += (size_t)k;
		cl->active_ns = now_ns();
	}
	if (cl->w.off == cl->w.len)
		cl->w.off = cl->w.len = 0;
}

/*
 * Queue @n bytes for @cl, sending at once when nothing is queued. A client whose queue would
 * pass CTL_WQ_MAX is not reading: drop it rather than let it hold memory or the loop.
 */
void client_write(struct ctl_client *cl, const char *buf, size_t n)
{
	struct control *c = cl->c;

	if (cl->dead)
		return;
	if (cl->fd >= 0 && !wq_bytes(cl)) {
		ssize_t k = send(cl->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k < 0 && errno != EAGAIN && errno != EINTR) {
			client_kill(cl);
			return;
		}
		if (k > 0) {
			buf += k;
			n -= (size_t)k;
			cl->active_ns = now_ns();
		}
	}
	if (!n)
		return;
	if (wq_bytes(cl) + n > CTL_WQ_MAX) {
		c->st.clients_dropped_slow++;
		pr_warn_ratelimited("control: dropping a client that does not read its replies");
		client_kill(cl);
		return;
	}
	if (wbuf_append(&cl->w, buf, n) < 0) {
		client_kill(cl);
		return;
	}
	watch(cl, cl->watched | EPOLLOUT);
}

/* Send and free @line (NULL: out of memory, the client cannot be answered). */
static void send_line(struct ctl_client *cl, char *line)
{
	if (!line) {
		client_kill(cl);
		return;
	}
	client_write(cl, line, strlen(line));
	free(line);
}

void send_error(struct ctl_client *cl, bool has_id, int64_t id, enum ctl_code code, const char *msg)
{
	cl->c->st.error_replies++;
	send_line(cl, ctl_reply_error(has_id, id, code, msg));
}

void send_errno(struct ctl_client *cl, const struct ctl_request *req, int err, const char *what)
{
	char msg[CTL_MSG_LEN];

	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-err));
	send_error(cl, req->has_id, req->id, ctl_code_from_errno(err), msg);
}

void send_ok(struct ctl_client *cl, const struct ctl_request *req, struct json_object *ok)
{
	if (!ok) {
		send_error(cl, req->has_id, req->id, CTL_E_INTERNAL, "out of memory");
		return;
	}
	send_line(cl, ctl_reply_ok(req->has_id, req->id, ok));
}

static void line_too_long(struct ctl_client *cl)
{
	char msg[CTL_MSG_LEN];

	cl->c->st.lines_too_long++;
	snprintf(msg, sizeof(msg), "request line longer than %d bytes; closing the connection",
		 CTL_MAX_LINE);
	send_error(cl, false, 0, CTL_E_LINE_TOO_LONG, msg);
	cl->closing = true;
	cl->rstart = cl->rlen = 0;
}

/* Handle the complete lines buffered, unless the client's replies pile up unread. */
static void process_input(struct ctl_client *cl)
{
	struct control *c = cl->c;

	while (!cl->dead && !cl->closing && (cl->fd < 0 || wq_bytes(cl) < CTL_WQ_HIGH)) {
		char *start = cl->rbuf + cl->rstart;
		size_t avail = cl->rlen - cl->rstart;
		char *nl = avail ? memchr(start, '\n', avail) : NULL;

		if (!nl) {
			if (avail > CTL_MAX_LINE) {
				line_too_long(cl);
			} else if (cl->rd_eof) {
				/* A last line without '\n' still counts. */
				cl->rstart = cl->rlen;
				if (avail)
					handle_line(c, cl, start, avail);
				cl->closing = true;
			}
			break;
		}
		cl->rstart += (size_t)(nl - start) + 1;
		if (nl - start > CTL_MAX_LINE)
			line_too_long(cl);
		else
			handle_line(c, cl, start, (size_t)(nl - start));
	}
	if (cl->rstart == cl->rlen)
		cl->rstart = cl->rlen = 0;
}

/* Room for at least one more byte in the read buffer, up to CTL_MAX_LINE + 1 pending bytes. */
static size_t rbuf_room(struct ctl_client *cl)
{
	if (cl->rstart && cl->rlen == cl->rcap) {
		memmove(cl->rbuf, cl->rbuf + cl->rstart, cl->rlen - cl->rstart);
		cl->rlen -= cl->rstart;
		cl->rstart = 0;
	}
	if (cl->rlen == cl->rcap && cl->rcap < CTL_MAX_LINE + 1) {
		size_t cap = MIN(cl->rcap ? cl->rcap * 2 : READ_CHUNK, (size_t)CTL_MAX_LINE + 1);
		char *b = realloc(cl->rbuf, cap);

		if (b) {
			cl->rbuf = b;
			cl->rcap = cap;
		}
	}
	return cl->rcap - cl->rlen;
}

static void client_read(struct ctl_client *cl)
{
	size_t room = rbuf_room(cl);
	ssize_t n;

	if (!room) {
		/* Full and no '\n' (process_input ran): only possible with allocation failure. */
		line_too_long(cl);
		return;
	}
	n = recv(cl->fd, cl->rbuf + cl->rlen, room, MSG_DONTWAIT);
	if (n > 0) {
		cl->rlen += (size_t)n;
		cl->active_ns = now_ns();
	} else if (n == 0)
		cl->rd_eof = true;
	else if (errno != EAGAIN && errno != EINTR)
		client_kill(cl);
}

void client_free(struct ctl_client *cl)
{
	free(cl->rbuf);
	free(cl->w.data);
	free(cl);
}

/* Close dead clients and those done; re-arm epoll interest for the others. */
void reap(struct control *c)
{
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *cl = c->clients[i];
		uint32_t want = 0;

		if (!cl)
			continue;
		if (!cl->dead && cl->closing && !wq_bytes(cl) && !cl->nr_pending)
			client_kill(cl);
		if (cl->fd < 0)
			continue; /* in-memory: freed by control_test_free() */
		if (!cl->dead) {
			if (!cl->rd_eof && !cl->closing && wq_bytes(cl) < CTL_WQ_HIGH)
				want |= EPOLLIN;
			if (wq_bytes(cl))
				want |= EPOLLOUT;
			watch(cl, want);
			continue;
		}
		drop_pending(c, cl);
		loop_del_fd(c->loop, cl->fd);
		close(cl->fd);
		c->clients[i] = NULL;
		c->st.clients--;
		client_free(cl);
	}
}

void client_cb(void *opaque, int fd, uint32_t events)
{
	struct ctl_client *cl = opaque;

	(void)fd;
	if (events & EPOLLERR)
		client_kill(cl);
	if (events & EPOLLOUT)
		client_flush(cl);
	if ((events & EPOLLIN) && !cl->rd_eof && !cl->closing && !cl->dead)
		client_read(cl);
	else if (events & EPOLLHUP)
		client_kill(cl); /* gone both ways: nothing left to read or to answer */
	process_input(cl);
	client_flush(cl);
	reap(cl->c);
}

struct ctl_client *client_new(struct control *c, int fd)
{
	struct ctl_client *cl;

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (c->clients[i])
			continue;
		cl = calloc(1, sizeof(*cl));
		if (!cl)
			return NULL;
		cl->c = c;
		cl->fd = fd;
		cl->active_ns = now_ns();
		c->clients[i] = cl;
		c->st.clients++;
		c->st.clients_total++;
		return cl;
	}
	return NULL;
}

struct ctl_client *control_test_client(struct control *c)
{
	return client_new(c, -1);
}

int control_test_feed(struct control *c, struct ctl_client *cl, const void *data, size_t len,
		      bool eof)
{
	const char *p = data;

	while (len && !cl->dead && !cl->closing) {
		size_t room = rbuf_room(cl), n = MIN(room, len);

		if (!room) {
			line_too_long(cl);
			break;
		}
		memcpy(cl->rbuf + cl->rlen, p, n);
		cl->rlen += n;
		p += n;
		len -= n;
		process_input(cl);
	}
	if (eof && !cl->dead && !cl->closing) {
		cl->rd_eof = true;
		process_input(cl);
	}
	reap(c);
	return cl->dead || cl->closing ? -EPIPE : 0;
}

char *control_test_output(struct ctl_client *cl)
{
	size_t n = wq_bytes(cl);
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	if (n)
		memcpy(s, cl->w.data + cl->w.off, n);
	s[n] = '\0';
	cl->w.off = cl->w.len = 0;
	return s;
}

void control_test_free(struct control *c, struct ctl_client *cl)
{
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (c->clients[i] == cl) {
			c->clients[i] = NULL;
			c->st.clients--;
		}
	}
	drop_pending(c, cl);
	arm_timer(c);
	client_free(cl);
}

void control_test_poll(struct control *c, bool expire_all)
{
	deliver_events(c);
	if (c->pending)
		complete_stats(c, expire_all);
	if (c->pending)
		complete_reclaims(c, 0, NULL, expire_all);
	reap(c);
}
