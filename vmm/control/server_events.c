/* The control server: events posted from any thread, and the deferred replies they complete. */
#include "server_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../loop.h"
#include "../util.h"

void drop_pending(struct control *c, struct ctl_client *cl)
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

void arm_timer(struct control *c)
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
void complete_stats(struct control *c, bool expire_all)
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
void complete_reclaims(struct control *c, uint64_t job, const char *data, bool expire_all)
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

int defer_stats(struct control *c, struct ctl_client *cl, const struct ctl_request *req,
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

/* Take the queued events and hand each to its subscribers (loop thread). */
void deliver_events(struct control *c)
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

void event_cb(void *opaque, int fd, uint32_t events)
{
	struct control *c = opaque;
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_warn_ratelimited("control: reading the event fd: %s", strerror(errno));
	deliver_events(c);
	reap(c);
}

void timer_cb(void *opaque, int fd, uint32_t events)
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
