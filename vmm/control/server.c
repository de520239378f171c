#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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

#define READ_CHUNK     4096
#define ACCEPT_BATCH   64
#define FLUSH_DEADLINE (200 * 1000000ULL) /* control_destroy() flush budget, ns */
#define STR_(x)	       #x
#define STR(x)	       STR_(x)

struct wbuf {
	char *data;
	size_t off, len, cap; /* bytes [off, len) are queued */
};

struct ctl_client {
	struct control *c;
	int fd;		    /* -1 for an in-memory (test) client */
	bool dead;	    /* to be closed: no more input or output */
	bool rd_eof;	    /* the peer shut its write side */
	bool closing;	    /* close once the output is flushed and no reply is deferred */
	uint32_t ev_mask;   /* subscribed events */
	uint32_t watched;   /* epoll events currently asked for */
	uint64_t active_ns; /* last byte received from or sent to the client (idle timeout) */
	unsigned int nr_pending;
	char *rbuf;
	size_t rstart, rlen, rcap; /* unread input is [rstart, rlen) */
	struct wbuf w;
};

/* A deferred balloon.stats or memory.reclaim reply. */
struct pending {
	struct pending *next;
	struct ctl_client *cl;
	bool has_id;
	int64_t id;
	bool reclaim; /* memory.reclaim: completed by its event, @job */
	uint64_t job;
	uint64_t seq0;	      /* stats seq when the request came */
	uint64_t deadline_ns; /* reply with what we have then */
};

struct evitem {
	struct evitem *next;
	char *name, *data;
};

struct control {
	struct loop *loop;
	const struct control_backend_ops *ops;
	void *opaque;
	char *path;
	dev_t dev; /* of our socket file, to never unlink someone else's */
	ino_t ino;
	int lfd, evfd, tfd, spare_fd;
	uint64_t idle_ns; /* control_set_idle_timeout(); 0: never */
	uid_t uid;	  /* ours (effective): peers of this uid or root are served */
	int idle_timer;	  /* loop timer of idle_sweep(), -1 when none */
	struct ctl_client *clients[CTL_MAX_CLIENTS];
	struct pending *pending;
	struct ctl_server_stats st;

	pthread_mutex_t evlock; /* protects the fields below: filled from any thread */
	struct evitem *evhead, **evtail;
	unsigned int evcount;
	uint64_t events_dropped;
};

static size_t wq_bytes(const struct ctl_client *cl)
{
	return cl->w.len - cl->w.off;
}

static void drop_pending(struct control *c, struct ctl_client *cl)
{
	for (struct pending **pp = &c->pending, *p; (p = *pp);) {
		if (p->cl == cl) {
			*pp = p->next;
			free(p);
		} else {
			pp = &p->next;
		}
	}
	cl->nr_pending = 0;
}

/*
 * Mark @cl dead: it is closed by reap(); in-memory clients stay until control_test_free().
 * Its deferred replies stay in the list (a walk of the list may be the caller, through a failed
 * send): the walks skip and free them, and reap() drops the rest before freeing @cl.
 */
static void client_kill(struct ctl_client *cl)
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
static void client_flush(struct ctl_client *cl)
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
static void client_write(struct ctl_client *cl, const char *buf, size_t n)
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

static void send_error(struct ctl_client *cl, bool has_id, int64_t id, enum ctl_code code,
		       const char *msg)
{
	cl->c->st.error_replies++;
	send_line(cl, ctl_reply_error(has_id, id, code, msg));
}

static void send_errno(struct ctl_client *cl, const struct ctl_request *req, int err,
		       const char *what)
{
	char msg[CTL_MSG_LEN];

	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-err));
	send_error(cl, req->has_id, req->id, ctl_code_from_errno(err), msg);
}

static void send_ok(struct ctl_client *cl, const struct ctl_request *req, struct json_object *ok)
{
	if (!ok) {
		send_error(cl, req->has_id, req->id, CTL_E_INTERNAL, "out of memory");
		return;
	}
	send_line(cl, ctl_reply_ok(req->has_id, req->id, ok));
}

static void arm_timer(struct control *c)
{
	struct itimerspec its = {0};
	uint64_t first = UINT64_MAX;

	if (c->tfd < 0)
		return;
	for (struct pending *p = c->pending; p; p = p->next)
		first = MIN(first, p->deadline_ns);
	if (first != UINT64_MAX) {
		its.it_value.tv_sec = first / 1000000000ULL;
		its.it_value.tv_nsec = first % 1000000000ULL;
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(c->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Answer the deferred balloon.stats requests that have a fresh set or whose wait ended. */
static void complete_stats(struct control *c, bool expire_all)
{
	struct balloon_stats st = {0};
	uint64_t now = now_ns();
	struct pending *q = c->pending;
	int ret;

	while (q && q->reclaim)
		q = q->next;
	if (!q)
		return; /* only memory.reclaim replies wait */
	ret = c->ops->stats_get(c->opaque, &st);

	for (struct pending **pp = &c->pending, *p; (p = *pp);) {
		bool fresh = st.seq > p->seq0;
		struct ctl_request req = {.has_id = p->has_id, .id = p->id};

		bool due = !p->reclaim && (fresh || expire_all || now >= p->deadline_ns);

		if (!due && !p->cl->dead) {
			pp = &p->next;
			continue;
		}
		/* Unlinked before the send, which may kill a client but frees no entry. */
		*pp = p->next;
		p->cl->nr_pending--;
		if (!p->cl->dead && ret < 0)
			send_errno(p->cl, &req, ret, "balloon.stats");
		else if (!p->cl->dead)
			send_ok(p->cl, &req, ctl_stats_json(&st, now, fresh));
		free(p);
	}
	arm_timer(c);
}

/*
 * Answer the deferred memory.reclaim requests: those of run @job with @data (the event's JSON
 * text; NULL: none), and those whose deadline passed (or all, @expire_all) with an error.
 */
static void complete_reclaims(struct control *c, uint64_t job, const char *data, bool expire_all)
{
	uint64_t now = now_ns();

	for (struct pending **pp = &c->pending, *p; (p = *pp);) {
		struct ctl_request req = {.has_id = p->has_id, .id = p->id};
		bool match = data && p->job == job;

		bool due = p->reclaim && (match || expire_all || now >= p->deadline_ns);

		if (!due && !p->cl->dead) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		p->cl->nr_pending--;
		if (!p->cl->dead && match)
			send_ok(p->cl, &req, json_tokener_parse(data));
		else if (!p->cl->dead)
			send_error(p->cl, p->has_id, p->id, CTL_E_INTERNAL,
				   "memory.reclaim: no result in time (the reclaim may go on)");
		free(p);
	}
	arm_timer(c);
}

/* The "job" field of a memory.reclaim event's data, 0 when absent. */
static uint64_t event_job(const char *data)
{
	struct json_object *o = data ? json_tokener_parse(data) : NULL, *j;
	uint64_t job = 0;

	if (o && json_object_object_get_ex(o, "job", &j))
		job = json_object_get_uint64(j);
	json_object_put(o);
	return job;
}

static int defer_stats(struct control *c, struct ctl_client *cl, const struct ctl_request *req,
		       uint64_t seq0)
{
	struct pending *p;

	if (cl->nr_pending >= CTL_MAX_PENDING)
		return -EBUSY;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct pending){.next = c->pending,
			      .cl = cl,
			      .has_id = req->has_id,
			      .id = req->id,
			      .seq0 = seq0,
			      .deadline_ns = now_ns() + CTL_STATS_WAIT_MS * 1000000ULL};
	c->pending = p;
	cl->nr_pending++;
	arm_timer(c);
	return 0;
}

static void cmd_balloon_stats(struct control *c, struct ctl_client *cl,
			      const struct ctl_request *req)
{
	struct balloon_stats st = {0};
	int ret = c->ops->stats_get(c->opaque, &st);

	if (ret < 0) {
		send_errno(cl, req, ret, "balloon.stats");
		return;
	}
	ret = c->ops->stats_request(c->opaque);
	/* -EAGAIN: a request is in flight already; its answer is fresh for us too. */
	if (ret == 0 || ret == -EAGAIN) {
		ret = defer_stats(c, cl, req, st.seq);
		if (ret == -EBUSY)
			send_error(cl, req->has_id, req->id, CTL_E_BUSY,
				   "balloon.stats: too many requests waiting on this connection "
				   "(at most " STR(CTL_MAX_PENDING) ")");
		else if (ret < 0)
			send_errno(cl, req, ret, "balloon.stats");
		return;
	}
	if (ret != -ENOTSUP) {
		send_errno(cl, req, ret, "balloon.stats");
		return;
	}
	send_ok(cl, req, ctl_stats_json(&st, now_ns(), false));
}

static void cmd_reclaim(struct control *c, struct ctl_client *cl, const struct ctl_request *req)
{
	uint64_t tmo = req->args.reclaim.timeout_ms, job = 0;
	struct pending *p;
	int ret;

	if (!c->ops->reclaim) {
		send_errno(cl, req, -ENODEV, "memory.reclaim");
		return;
	}
	if (cl->nr_pending >= CTL_MAX_PENDING) {
		send_error(cl, req->has_id, req->id, CTL_E_BUSY,
			   "memory.reclaim: too many requests waiting on this connection "
			   "(at most " STR(CTL_MAX_PENDING) ")");
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		send_errno(cl, req, -ENOMEM, "memory.reclaim");
		return;
	}
	ret = c->ops->reclaim(c->opaque, req->args.reclaim.target_mib, tmo, &job);
	if (ret < 0) {
		free(p);
		send_errno(cl, req, ret,
			   ret == -ENODEV ? "memory.reclaim (no compressed tier: "
					    "--compress=off)"
					  : "memory.reclaim");
		return;
	}
	/* The result comes as the run's event; past the run's own limit, answer anyway. */
	*p = (struct pending){
		.next = c->pending,
		.cl = cl,
		.has_id = req->has_id,
		.id = req->id,
		.reclaim = true,
		.job = job,
		.deadline_ns = now_ns() + (tmo + CTL_RECLAIM_GRACE_MS) * 1000000ULL,
	};
	c->pending = p;
	cl->nr_pending++;
	arm_timer(c);
}

static void cmd_balloon_set(struct control *c, struct ctl_client *cl, const struct ctl_request *req)
{
	const uint64_t pages_per_mib = MiB >> 12;
	struct balloon_counters bc = {0};
	uint64_t ram = 0, ram_mib, mib = req->args.balloon_set.mib, pages;
	char msg[CTL_MSG_LEN];
	int ret = c->ops->balloon_get(c->opaque, &bc, &ram);

	if (ret < 0) {
		send_errno(cl, req, ret, "balloon.set");
		return;
	}
	ram_mib = ram / MiB;
	if (mib > ram_mib) {
		snprintf(msg, sizeof(msg), "balloon.set: %s %llu exceeds guest RAM (%llu MiB)",
			 req->args.balloon_set.guest ? "guest_mib" : "balloon_mib",
			 (unsigned long long)mib, (unsigned long long)ram_mib);
		send_error(cl, req->has_id, req->id, CTL_E_INVALID_ARG, msg);
		return;
	}
	/* guest_mib: the guest keeps that much; a partial last MiB of RAM stays with it too. */
	pages = req->args.balloon_set.guest ? (ram >> 12) - mib * pages_per_mib
					    : mib * pages_per_mib;
	ret = c->ops->balloon_set(c->opaque, pages);
	if (ret == 0)
		ret = c->ops->balloon_get(c->opaque, &bc, &ram);
	if (ret < 0)
		send_errno(cl, req, ret, "balloon.set");
	else
		send_ok(cl, req, ctl_balloon_json(&bc, ram));
}

static struct json_object *state_reply(const char *state, bool changed)
{
	struct json_object *o = json_object_new_object();

	if (o) {
		json_object_object_add(o, "state", json_object_new_string(state));
		json_object_object_add(o, "changed", json_object_new_boolean(changed));
	}
	return o;
}

static void cmd_pause_resume(struct control *c, struct ctl_client *cl,
			     const struct ctl_request *req)
{
	bool pause = req->cmd == CTL_CMD_VM_PAUSE;
	int ret = pause ? c->ops->pause(c->opaque) : c->ops->resume(c->opaque);

	if (ret < 0)
		send_errno(cl, req, ret, ctl_cmd_name(req->cmd));
	else
		send_ok(cl, req, state_reply(pause ? "paused" : "running", ret == 0));
}

static void cmd_shutdown(struct control *c, struct ctl_client *cl, const struct ctl_request *req)
{
	uint64_t timeout = req->args.shutdown.timeout_ms;
	bool notified = false;
	struct json_object *o;
	int ret = c->ops->shutdown(c->opaque, timeout, &notified);

	if (ret < 0) {
		send_errno(cl, req, ret, "vm.shutdown");
		return;
	}
	o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "guest_notified", json_object_new_boolean(notified));
		json_object_object_add(o, "timeout_ms",
				       json_object_new_uint64(notified ? timeout : 0));
	}
	send_ok(cl, req, o);
}

static void cmd_subscribe(struct ctl_client *cl, const struct ctl_request *req)
{
	static const char *const names[] = {"balloon.change", "balloon.stats", "vm.state",
					    "guest.exit", "memory.reclaim"};
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	uint32_t mask = req->args.subscribe.mask;

	cl->ev_mask = mask;
	if (!o || !a) {
		json_object_put(a);
		json_object_put(o);
		send_ok(cl, req, NULL);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (mask & ctl_event_bit(names[i]))
			json_object_array_add(a, json_object_new_string(names[i]));
	json_object_object_add(o, "events", a);
	/* A watcher sends a blank line more often than this to stay connected. */
	json_object_object_add(o, "idle_timeout_ms",
			       json_object_new_uint64(cl->c->idle_ns / 1000000));
	send_ok(cl, req, o);
}

static void cmd_query(struct control *c, struct ctl_client *cl, const struct ctl_request *req)
{
	struct ctl_memory_stats ms = {0};
	struct balloon_counters bc = {0};
	struct ctl_vm_info info = {0};
	struct ctl_server_stats srv;
	struct json_object *ok = NULL;
	uint64_t ram = 0;
	int ret;

	control_get_stats(c, &srv);
	if (req->cmd == CTL_CMD_VM_INFO) {
		ret = c->ops->info(c->opaque, &info);
		if (!ret)
			ok = ctl_info_json(&info, &srv);
	} else if (req->cmd == CTL_CMD_BALLOON_GET) {
		ret = c->ops->balloon_get(c->opaque, &bc, &ram);
		if (!ret)
			ok = ctl_balloon_json(&bc, ram);
	} else {
		ret = c->ops->memory_stats(c->opaque, &ms);
		if (!ret)
			ok = ctl_memory_json(&ms, &srv);
	}
	if (ret < 0)
		send_errno(cl, req, ret, ctl_cmd_name(req->cmd));
	else
		send_ok(cl, req, ok);
}

static void dispatch(struct control *c, struct ctl_client *cl, const struct ctl_request *req)
{
	switch (req->cmd) {
	case CTL_CMD_VM_INFO:
	case CTL_CMD_BALLOON_GET:
	case CTL_CMD_MEMORY_STATS:
		cmd_query(c, cl, req);
		break;
	case CTL_CMD_VM_PAUSE:
	case CTL_CMD_VM_RESUME:
		cmd_pause_resume(c, cl, req);
		break;
	case CTL_CMD_VM_SHUTDOWN:
		cmd_shutdown(c, cl, req);
		break;
	case CTL_CMD_BALLOON_SET:
		cmd_balloon_set(c, cl, req);
		break;
	case CTL_CMD_BALLOON_STATS:
		cmd_balloon_stats(c, cl, req);
		break;
	case CTL_CMD_EVENTS_SUBSCRIBE:
		cmd_subscribe(cl, req);
		break;
	case CTL_CMD_MEMORY_RECLAIM:
		cmd_reclaim(c, cl, req);
		break;
	default:
		send_error(cl, req->has_id, req->id, CTL_E_INTERNAL, "unhandled command");
		break;
	}
}

static void handle_line(struct control *c, struct ctl_client *cl, char *line, size_t n)
{
	struct ctl_request req;
	struct ctl_error err;
	size_t i;

	while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	for (i = 0; i < n && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (i == n)
		return; /* blank lines are allowed (interactive use) */
	c->st.requests++;
	if (ctl_parse_request(line, n, &req, &err) < 0) {
		send_error(cl, req.has_id, req.id, err.code, err.message);
		return;
	}
	dispatch(c, cl, &req);
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

static void client_free(struct ctl_client *cl)
{
	free(cl->rbuf);
	free(cl->w.data);
	free(cl);
}

/* Close dead clients and those done; re-arm epoll interest for the others. */
static void reap(struct control *c)
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

static void client_cb(void *opaque, int fd, uint32_t events)
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

static struct ctl_client *client_new(struct control *c, int fd)
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

/* Take the queued events and hand each to its subscribers (loop thread). */
static void deliver_events(struct control *c)
{
	struct evitem *list, *next;
	bool stats = false;

	pthread_mutex_lock(&c->evlock);
	list = c->evhead;
	c->evhead = NULL;
	c->evtail = &c->evhead;
	c->evcount = 0;
	pthread_mutex_unlock(&c->evlock);
	for (; list; list = next) {
		uint32_t bit = ctl_event_bit(list->name);
		char *line = ctl_event_line(list->name, list->data);

		next = list->next;
		if (bit == CTL_EV_BALLOON_STATS)
			stats = true;
		if (bit == CTL_EV_MEMORY_RECLAIM && c->pending)
			complete_reclaims(c, event_job(list->data), list->data, false);
		if (!line) {
			pthread_mutex_lock(&c->evlock);
			c->events_dropped++;
			pthread_mutex_unlock(&c->evlock);
			pr_warn_ratelimited("control: event '%s' with invalid data dropped",
					    list->name);
		}
		for (int i = 0; line && i < CTL_MAX_CLIENTS; i++)
			if (c->clients[i] && (c->clients[i]->ev_mask & bit))
				client_write(c->clients[i], line, strlen(line));
		free(line);
		free(list->name);
		free(list->data);
		free(list);
	}
	if (stats && c->pending)
		complete_stats(c, false);
}

static void event_cb(void *opaque, int fd, uint32_t events)
{
	struct control *c = opaque;
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_warn_ratelimited("control: reading the event fd: %s", strerror(errno));
	deliver_events(c);
	reap(c);
}

static void timer_cb(void *opaque, int fd, uint32_t events)
{
	struct control *c = opaque;
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	complete_stats(c, false);
	complete_reclaims(c, 0, NULL, false);
	reap(c);
}

/* Close the socket clients silent for the idle timeout with no deferred reply waiting. */
static void idle_sweep(void *opaque)
{
	struct control *c = opaque;
	uint64_t now = now_ns();
	char msg[CTL_MSG_LEN], t[32];

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *cl = c->clients[i];

		if (!cl || cl->fd < 0 || cl->dead || cl->nr_pending || !c->idle_ns ||
		    now - cl->active_ns < c->idle_ns)
			continue;
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

void control_post_event(void *opaque, const char *event, const char *data_json)
{
	struct control *c = opaque;
	struct evitem *it;
	uint64_t one = 1;

	if (!c || !event)
		return;
	it = calloc(1, sizeof(*it));
	if (it) {
		it->name = strdup(event);
		it->data = data_json ? strdup(data_json) : NULL;
	}
	pthread_mutex_lock(&c->evlock);
	if (!it || !it->name || (data_json && !it->data) || c->evcount >= CTL_EVQ_MAX) {
		c->events_dropped++;
		pthread_mutex_unlock(&c->evlock);
		if (it) {
			free(it->name);
			free(it->data);
			free(it);
		}
		return;
	}
	*c->evtail = it;
	c->evtail = &it->next;
	c->evcount++;
	pthread_mutex_unlock(&c->evlock);
	if (c->evfd >= 0 && write(c->evfd, &one, sizeof(one)) < 0) {
		/* The counter only saturates: the loop wakes anyway. */
	}
}

void control_get_stats(struct control *c, struct ctl_server_stats *out)
{
	struct ctl_server_stats s = c->st;

	pthread_mutex_lock(&c->evlock);
	s.events_dropped = c->events_dropped;
	pthread_mutex_unlock(&c->evlock);
	*out = s;
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
