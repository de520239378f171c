/* The control server: each command, answered through the backend ops (docs/control.md). */
#include "server_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"

#define STR_(x) #x
#define STR(x)	STR_(x)

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
	static const char *const names[] = {"balloon.change", "balloon.stats",	"vm.state",
					    "guest.exit",     "memory.reclaim", "memory.policy"};
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

static void cmd_snapshot(struct control *c, struct ctl_client *cl, const struct ctl_request *req)
{
	struct ctl_snapshot_result r = {0};
	struct json_object *o;
	char why[CTL_MSG_LEN];
	int ret;

	if (!c->ops->snapshot) {
		send_error(cl, req->has_id, req->id, CTL_E_NOT_SUPPORTED, "no snapshots here");
		return;
	}
	why[0] = '\0';
	ret = c->ops->snapshot(c->opaque, req->args.snapshot.path, req->args.snapshot.stop, &r, why,
			       sizeof(why));
	if (ret < 0) {
		send_error(cl, req->has_id, req->id, ctl_code_from_errno(ret),
			   why[0] ? why : "snapshot.create failed");
		return;
	}
	o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "path", json_object_new_string(req->args.snapshot.path));
		json_object_object_add(o, "pause_ms", json_object_new_uint64(r.pause_ms));
		json_object_object_add(o, "total_ms", json_object_new_uint64(r.total_ms));
		json_object_object_add(o, "state_bytes", json_object_new_uint64(r.state_bytes));
		json_object_object_add(o, "memory_bytes", json_object_new_uint64(r.memory_bytes));
		json_object_object_add(o, "memory_allocated_bytes",
				       json_object_new_uint64(r.memory_allocated_bytes));
		json_object_object_add(o, "data_pages", json_object_new_uint64(r.data_pages));
		json_object_object_add(o, "stopped", json_object_new_boolean(r.stopped));
	}
	send_ok(cl, req, o);
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
	case CTL_CMD_SNAPSHOT_CREATE:
		cmd_snapshot(c, cl, req);
		break;
	default:
		send_error(cl, req->has_id, req->id, CTL_E_INTERNAL, "unhandled command");
		break;
	}
}

void handle_line(struct control *c, struct ctl_client *cl, char *line, size_t n)
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
