/*
 * Internals of the control server shared by its files (server.c: the listening socket and the
 * server's life; server_client.c: one client's I/O; server_cmd.c: the commands;
 * server_events.c: events and deferred replies). Loop thread only, except the event queue.
 */
#ifndef VMM_CONTROL_SERVER_PRIV_H
#define VMM_CONTROL_SERVER_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "server.h"

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

/* Reply bytes queued for @cl. */
static inline size_t wq_bytes(const struct ctl_client *cl)
{
	return cl->w.len - cl->w.off;
}

/* --- server_client.c: one client's buffered input and output ----------------------- */

/*
 * Mark @cl dead: it is closed by reap(); in-memory clients stay until control_test_free().
 * Its deferred replies stay in the list (a walk of the list may be the caller, through a failed
 * send): the walks skip and free them, and reap() drops the rest before freeing @cl.
 */
void client_kill(struct ctl_client *cl);

/* Send what is queued; a full socket is left for EPOLLOUT. */
void client_flush(struct ctl_client *cl);

/*
 * Queue @n bytes for @cl, sending at once when nothing is queued. A client whose queue would
 * pass CTL_WQ_MAX is not reading: drop it rather than let it hold memory or the loop.
 */
void client_write(struct ctl_client *cl, const char *buf, size_t n);

/* Send one error line (@has_id/@id: the request's id) and count it. */
void send_error(struct ctl_client *cl, bool has_id, int64_t id, enum ctl_code code,
		const char *msg);

/* An error line "@what: strerror" with the code ctl_code_from_errno(@err) gives. */
void send_errno(struct ctl_client *cl, const struct ctl_request *req, int err, const char *what);

/* Send {"id":..,"ok":@ok} (takes @ok; NULL: an internal-error line instead). */
void send_ok(struct ctl_client *cl, const struct ctl_request *req, struct json_object *ok);

/* Free @cl's buffers and @cl (its fd is the caller's business). */
void client_free(struct ctl_client *cl);

/* Close dead clients and those done; re-arm epoll interest for the others. */
void reap(struct control *c);

/* Loop callback of a client socket (@opaque: the struct ctl_client). */
void client_cb(void *opaque, int fd, uint32_t events);

/* A new client in a free slot (@fd: -1 for in-memory), NULL when all are taken or ENOMEM. */
struct ctl_client *client_new(struct control *c, int fd);

/* --- server_cmd.c: the commands ---------------------------------------------------- */

/* Parse and answer one request line of @n bytes (blank lines are ignored). */
void handle_line(struct control *c, struct ctl_client *cl, char *line, size_t n);

/* --- server_events.c: events from any thread, deferred replies --------------------- */

/* Unlink and free every deferred reply of @cl (never while a list walk runs). */
void drop_pending(struct control *c, struct ctl_client *cl);

/* Set the timerfd to the earliest deadline of the deferred replies (none: disarm). */
void arm_timer(struct control *c);

/* Answer the deferred balloon.stats requests that have a fresh set or whose wait ended. */
void complete_stats(struct control *c, bool expire_all);

/*
 * Answer the deferred memory.reclaim requests: those of run @job with @data (the event's JSON
 * text; NULL: none), and those whose deadline passed (or all, @expire_all) with an error.
 */
void complete_reclaims(struct control *c, uint64_t job, const char *data, bool expire_all);

/* Queue a balloon.stats reply of @cl awaiting a set newer than @seq0. 0, -EBUSY, -ENOMEM. */
int defer_stats(struct control *c, struct ctl_client *cl, const struct ctl_request *req,
		uint64_t seq0);

/* Take the queued events and hand each to its subscribers (loop thread). */
void deliver_events(struct control *c);

/* Loop callback of the event fd: deliver what other threads posted. */
void event_cb(void *opaque, int fd, uint32_t events);

/* Loop callback of the timerfd: answer the deferred replies whose wait ended. */
void timer_cb(void *opaque, int fd, uint32_t events);

#endif
