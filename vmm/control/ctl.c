/*
 * `vmm ctl`: the scripting client of the control socket (docs/control.md). Exit status 0 on an ok
 * reply, 1 on an error reply (or a --wait that timed out), 2 on usage or connection errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl_priv.h"
#include "line_reader.h"
#include "protocol.h"
#include "server.h"
#include "../util.h"

#define REPLY_TIMEOUT (10 * 1000000000ULL) /* ns to wait for one reply */
#define MAX_REPLY     (4 * 1024 * 1024)	   /* longest reply line accepted */
#define WAIT_POLL_MS  100		   /* balloon set --wait: balloon.get period */
#define DEF_WAIT_S    60

struct conn {
	int fd;
	struct line_reader rd;
	int64_t next_id;
	bool json; /* print raw lines */
};

static volatile sig_atomic_t interrupted;

static int conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(c, 0, sizeof(*c));
	c->next_id = 1;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "vmm ctl: socket path too long: %s\n", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		fprintf(stderr, "vmm ctl: cannot connect to %s: %s\n", path, strerror(e));
		if (c->fd >= 0)
			close(c->fd);
		return -e;
	}
	line_reader_init(&c->rd, c->fd, MAX_REPLY, false);
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	line_reader_free(&c->rd);
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Send {"id":N,"cmd":@cmd,"args":@args}; takes @args (may be NULL). Returns the id or -errno. */
static int64_t conn_send(struct conn *c, const char *cmd, struct json_object *args)
{
	struct json_object *r = json_object_new_object();
	int64_t id = c->next_id++;
	char *line = NULL;
	int ret;

	json_object_object_add(r, "id", json_object_new_int64(id));
	json_object_object_add(r, "cmd", json_object_new_string(cmd));
	if (args)
		json_object_object_add(r, "args", args);
	if (asprintf(&line, "%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN)) < 0)
		line = NULL;
	json_object_put(r);
	if (!line)
		return -ENOMEM;
	ret = send_all(c->fd, line, strlen(line));
	free(line);
	return ret < 0 ? ret : id;
}

/*
 * Next line (without '\n') into *@line (valid until the next call). Returns 1, 0 on EOF,
 * -ETIMEDOUT at @deadline_ns (0: none), -EINTR when interrupted, -errno.
 */
static int conn_line(struct conn *c, uint64_t deadline_ns, char **line)
{
	return line_reader_next(&c->rd, deadline_ns, &interrupted, line, NULL);
}

static struct json_object *parse_json(const char *s)
{
	return json_tokener_parse(s);
}

/*
 * Send @cmd and wait for its reply, skipping event lines. On success *@reply is the reply object
 * (caller puts it). Returns EXIT_OK with an ok reply, EXIT_REPLY_ERR with an error reply (printed),
 * EXIT_USAGE on connection trouble (printed).
 */
static int conn_call_until(struct conn *c, const char *cmd, struct json_object *args,
			   struct json_object **reply, uint64_t deadline);

static int conn_call(struct conn *c, const char *cmd, struct json_object *args,
		     struct json_object **reply)
{
	return conn_call_until(c, cmd, args, reply, now_ns() + REPLY_TIMEOUT);
}

/* conn_call() with the reply awaited until @deadline (ns, CLOCK_MONOTONIC). */
static int conn_call_until(struct conn *c, const char *cmd, struct json_object *args,
			   struct json_object **reply, uint64_t deadline)
{
	int64_t id = conn_send(c, cmd, args);

	*reply = NULL;
	if (id < 0) {
		fprintf(stderr, "vmm ctl: sending %s: %s\n", cmd, strerror((int)-id));
		return EXIT_USAGE;
	}
	for (;;) {
		struct json_object *r, *rid, *err, *ok;
		char *line;
		int ret = conn_line(c, deadline, &line);

		if (ret <= 0) {
			fprintf(stderr, "vmm ctl: waiting for the %s reply: %s\n", cmd,
				ret == 0 ? "connection closed by the VMM" : strerror(-ret));
			return EXIT_USAGE;
		}
		r = parse_json(line);
		if (!r || !json_object_is_type(r, json_type_object)) {
			json_object_put(r);
			fprintf(stderr, "vmm ctl: malformed reply: %.200s\n", line);
			return EXIT_USAGE;
		}
		if (json_object_object_get_ex(r, "event", NULL) ||
		    (json_object_object_get_ex(r, "id", &rid) && rid &&
		     json_object_get_int64(rid) != id)) {
			json_object_put(r);
			continue;
		}
		/* id null: an error about the connection itself (busy, line-too-long). */
		if (c->json)
			printf("%s\n", line);
		if (json_object_object_get_ex(r, "error", &err)) {
			struct json_object *code = NULL, *msg = NULL;

			json_object_object_get_ex(err, "code", &code);
			json_object_object_get_ex(err, "message", &msg);
			fprintf(stderr, "vmm ctl: %s: %s: %s\n", cmd,
				code ? json_object_get_string(code) : "?",
				msg ? json_object_get_string(msg) : "");
			json_object_put(r);
			return EXIT_REPLY_ERR;
		}
		if (!json_object_object_get_ex(r, "ok", &ok)) {
			json_object_put(r);
			fprintf(stderr, "vmm ctl: reply without ok or error: %.200s\n", line);
			return EXIT_USAGE;
		}
		*reply = r;
		return EXIT_OK;
	}
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int cmd_events(struct conn *c, struct opts *o)
{
	struct json_object *args = NULL, *reply;
	struct sigaction sa = {.sa_handler = on_signal};
	bool saw_exit = false;
	uint64_t keepalive_ns = 0, next = 0;
	int ret;

	if (o->nwords > 1) {
		struct json_object *names = json_object_new_array();

		for (int i = 1; i < o->nwords; i++)
			json_object_array_add(names, json_object_new_string(o->words[i]));
		args = json_object_new_object();
		json_object_object_add(args, "events", names);
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ret = conn_call(c, "events.subscribe", args, &reply);
	if (!ret) {
		struct json_object *ok = NULL, *t;

		/* The server closes a connection silent this long: a blank line keeps it. */
		if (json_object_object_get_ex(reply, "ok", &ok) &&
		    json_object_object_get_ex(ok, "idle_timeout_ms", &t))
			keepalive_ns = json_object_get_uint64(t) * 1000000ULL / 3;
	}
	json_object_put(reply);
	if (ret)
		return ret;
	fflush(stdout);
	if (keepalive_ns)
		next = now_ns() + keepalive_ns;
	for (;;) {
		char *line;
		int r = conn_line(c, next, &line);

		if (r == -ETIMEDOUT) {
			next += keepalive_ns;
			r = send_all(c->fd, "\n", 1);
			if (!r)
				continue;
		}
		if (r == -EINTR || interrupted)
			return EXIT_OK;
		if (r == 0) {
			if (saw_exit)
				return EXIT_OK;
			fprintf(stderr, "vmm ctl: connection closed by the VMM\n");
			return EXIT_USAGE;
		}
		if (r < 0) {
			fprintf(stderr, "vmm ctl: reading events: %s\n", strerror(-r));
			return EXIT_USAGE;
		}
		if (!strstr(line, "\"event\""))
			continue;
		saw_exit |= strstr(line, "\"guest.exit\"") != NULL;
		if (o->json)
			printf("%s\n", line);
		else
			print_event(line);
		fflush(stdout);
	}
}

/* Poll balloon.get until actual reaches @target_pages or the deadline passes. */
static int wait_balloon(struct conn *c, struct opts *o, uint64_t target_pages)
{
	uint64_t start = now_ns();
	uint64_t limit = o->has_timeout ? o->timeout_ms : DEF_WAIT_S * 1000ULL;
	uint64_t deadline = start + limit * 1000000ULL;

	for (;;) {
		struct json_object *reply, *ok;
		uint64_t actual, target;
		int ret = conn_call(c, "balloon.get", NULL, &reply);

		if (ret)
			return ret;
		ok = ok_of(reply);
		actual = get_u64(ok, "actual_pages");
		target = get_u64(ok, "target_pages");
		json_object_put(reply);
		if (target != target_pages) {
			fprintf(stderr,
				"vmm ctl: the balloon target changed to %" PRIu64
				" MiB while waiting\n",
				target / 256);
			return EXIT_REPLY_ERR;
		}
		if (actual == target) {
			if (!o->json)
				printf("reached   %" PRIu64 " MiB after %.2f s\n", actual / 256,
				       (double)(now_ns() - start) / 1e9);
			return EXIT_OK;
		}
		if (now_ns() >= deadline) {
			fprintf(stderr,
				"vmm ctl: timed out after %.1f s: balloon actual %" PRIu64
				" MiB, target %" PRIu64 " MiB\n",
				(double)limit / 1000, actual / 256, target / 256);
			return EXIT_REPLY_ERR;
		}
		usleep(MIN(WAIT_POLL_MS * 1000ULL, (deadline - now_ns()) / 1000 + 1));
	}
}

static int cmd_balloon_set(struct conn *c, struct opts *o)
{
	struct json_object *args = json_object_new_object(), *reply, *ok;
	uint64_t target, ram_mib;
	int ret;

	json_object_object_add(args, o->guest ? "guest_mib" : "balloon_mib",
			       json_object_new_uint64(o->mib));
	ret = conn_call(c, "balloon.set", args, &reply);
	if (ret)
		return ret;
	ok = ok_of(reply);
	target = get_u64(ok, "target_pages");
	ram_mib = get_u64(ok, "guest_ram_mib");
	if (!o->json)
		printf("balloon target %" PRIu64 " MiB (the guest keeps %" PRIu64 " MiB of %" PRIu64
		       " MiB)\n",
		       get_u64(ok, "target_mib"), ram_mib - MIN(ram_mib, (target + 255) / 256),
		       ram_mib);
	json_object_put(reply);
	return o->wait ? wait_balloon(c, o, target) : EXIT_OK;
}

static int cmd_shutdown(struct conn *c, struct opts *o)
{
	struct json_object *args = NULL, *reply, *ok;
	int ret;

	if (o->has_timeout) {
		args = json_object_new_object();
		json_object_object_add(args, "timeout_ms", json_object_new_uint64(o->timeout_ms));
	}
	ret = conn_call(c, "vm.shutdown", args, &reply);
	if (ret)
		return ret;
	ok = ok_of(reply);
	if (!o->json) {
		if (json_object_get_boolean(json_object_object_get(ok, "guest_notified")))
			printf("shutdown requested; the VM is stopped in %" PRIu64
			       " ms if the guest has not stopped by then\n",
			       get_u64(ok, "timeout_ms"));
		else
			printf("the guest cannot be asked to shut down: the VM is being stopped\n");
	}
	json_object_put(reply);
	return EXIT_OK;
}

/* The commands that are one request and one printed reply. */
static int cmd_simple(struct conn *c, struct opts *o, const char *cmd,
		      void (*print)(struct json_object *ok))
{
	struct json_object *reply;
	int ret = conn_call(c, cmd, NULL, &reply);

	if (!ret && !o->json)
		print(ok_of(reply));
	json_object_put(reply);
	return ret;
}

/* memory reclaim SIZE: one request whose reply comes when the reclaim is over. */
static int cmd_reclaim(struct conn *c, struct opts *o)
{
	uint64_t tmo = o->has_timeout ? o->timeout_ms : CTL_RECLAIM_DEF_MS;
	struct json_object *args = json_object_new_object(), *reply, *ok;
	int ret;

	json_object_object_add(args, "target_mib", json_object_new_uint64(o->mib));
	if (o->has_timeout)
		json_object_object_add(args, "timeout_ms", json_object_new_uint64(tmo));
	ret = conn_call_until(c, "memory.reclaim", args, &reply,
			      now_ns() + (tmo + CTL_RECLAIM_GRACE_MS + 10000) * 1000000ULL);
	if (ret)
		return ret;
	ok = ok_of(reply);
	if (!o->json) {
		printf("%s: guest RAM resident %.1f MiB (target %" PRIu64 " MiB, was %.1f MiB) "
		       "after %.2f s\n",
		       json_object_get_boolean(json_object_object_get(ok, "reached"))
			       ? "reached"
			       : "not reached",
		       (double)get_u64(ok, "resident_bytes") / MiB, get_u64(ok, "target_mib"),
		       (double)get_u64(ok, "resident_before_bytes") / MiB,
		       (double)get_u64(ok, "elapsed_ms") / 1000);
		print_flat(ok, "");
	}
	json_object_put(reply);
	return EXIT_OK;
}

static int watch_stats(void *conn, struct json_object **ok)
{
	struct json_object *reply = NULL, *o = NULL;
	int ret = conn_call(conn, "memory.stats", NULL, &reply);

	if (ret)
		return ret;
	if (json_object_object_get_ex(reply, "ok", &o))
		json_object_get(o);
	json_object_put(reply);
	*ok = o;
	return EXIT_OK;
}

/* memory --watch: ctl_watch.c, ended by SIGINT/SIGTERM. */
static int cmd_watch(struct conn *c, struct opts *o)
{
	struct sigaction sa = {.sa_handler = on_signal};

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	c->json = false; /* ctl_watch prints its own lines, not the raw replies */
	return ctl_watch(watch_stats, c, o->json, o->has_interval ? o->interval_ms : 1000,
			 &interrupted);
}

/* snapshot create DIR [--stop]: the directory made absolute here (the VMM has its own cwd). */
static int cmd_snapshot(struct conn *c, struct opts *o)
{
	struct json_object *args = json_object_new_object(), *reply, *ok;
	char path[4096], cwd[4096];
	int ret;

	if (o->words[2][0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return ctl_usage_err("cannot resolve '%s': no current directory", o->words[2]);
	if ((size_t)snprintf(path, sizeof(path), "%s%s%s", o->words[2][0] == '/' ? "" : cwd,
			     o->words[2][0] == '/' ? "" : "/", o->words[2]) >= sizeof(path))
		return ctl_usage_err("snapshot directory path too long: %s", o->words[2]);
	json_object_object_add(args, "path", json_object_new_string(path));
	if (o->stop)
		json_object_object_add(args, "stop", json_object_new_boolean(true));
	ret = conn_call_until(c, "snapshot.create", args, &reply, now_ns() + 3600 * 1000000000ULL);
	if (ret)
		return ret;
	ok = ok_of(reply);
	if (!o->json)
		printf("snapshot %s: paused %" PRIu64 " ms, total %" PRIu64 " ms; state %" PRIu64
		       " bytes, memory %.1f MiB (%.1f MiB allocated)%s\n",
		       path, get_u64(ok, "pause_ms"), get_u64(ok, "total_ms"),
		       get_u64(ok, "state_bytes"), get_u64(ok, "memory_bytes") / 1048576.0,
		       get_u64(ok, "memory_allocated_bytes") / 1048576.0,
		       o->stop ? "; VM stopped" : "");
	json_object_put(reply);
	return 0;
}

static int run(struct conn *c, struct opts *o)
{
	if (ctl_is(o, "info", NULL, 1))
		return cmd_simple(c, o, "vm.info", print_info);
	if (ctl_is(o, "pause", NULL, 1))
		return cmd_simple(c, o, "vm.pause", print_state);
	if (ctl_is(o, "resume", NULL, 1))
		return cmd_simple(c, o, "vm.resume", print_state);
	if (ctl_is(o, "shutdown", NULL, 1))
		return cmd_shutdown(c, o);
	if (ctl_is(o, "memory", "reclaim", 2))
		return cmd_reclaim(c, o);
	if (ctl_is(o, "memory", NULL, 1) && o->watch)
		return cmd_watch(c, o);
	if (ctl_is(o, "memory", NULL, 1))
		return cmd_simple(c, o, "memory.stats", print_memory);
	if (ctl_is(o, "events", NULL, 1))
		return cmd_events(c, o);
	if (ctl_is(o, "snapshot", "create", 2))
		return cmd_snapshot(c, o);
	if (ctl_is(o, "balloon", "set", 2))
		return cmd_balloon_set(c, o);
	if (ctl_is(o, "balloon", "get", 2))
		return cmd_simple(c, o, "balloon.get", print_balloon);
	return cmd_simple(c, o, "balloon.stats", print_stats);
}

int ctl_main(int argc, char **argv)
{
	struct opts o = {0};
	struct conn c;
	int ret = ctl_parse_args(argc, argv, &o);

	if (!ret)
		ret = ctl_check(&o);
	if (ret)
		return ret;
	if (conn_open(&c, o.socket) < 0)
		return EXIT_USAGE;
	c.json = o.json;
	ret = run(&c, &o);
	fflush(stdout);
	conn_close(&c);
	return ret;
}
