/*
 * Control-socket load test: N clients x M requests each, every reply checked (id, ok/error kind).
 *   control_load --socket PATH      against a running VMM (vmm run --control PATH)
 *   control_load --self             against an in-process server over the fake backend, torn down
 *                                   at the end so LeakSanitizer/valgrind see every allocation
 *   control_load --serve PATH       only serve the fake backend at PATH until SIGINT/SIGTERM
 * Options: --clients N (32), --requests M (1000), --window W (requests in flight per client, 1),
 * --mix (cycle through every read-only command and some expected errors instead of balloon.get).
 * Exit status 0 only when every request got the expected reply.
 */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../vmm/control/line_reader.h"
#include "../../vmm/control/server.h"
#include "../fake/control_fake.h"
#include "../../vmm/loop.h"
#include "../../vmm/util.h"

#define REPLY_TIMEOUT_MS 10000

struct kind {
	const char *req;  /* the request without "id" (the line is {"id":N,<req>}) */
	const char *want; /* "ok" or the error code */
	bool null_id;	  /* the request is unparsable: the reply carries "id":null */
};

static const struct kind plain[] = {{"\"cmd\":\"balloon.get\"", "ok", false}};
static const struct kind mix[] = {
	{"\"cmd\":\"balloon.get\"", "ok", false},
	{"\"cmd\":\"vm.info\"", "ok", false},
	{"\"cmd\":\"memory.stats\"", "ok", false},
	{"\"cmd\":\"balloon.stats\"", "ok", false},
	{"\"cmd\":\"events.subscribe\",\"args\":{\"events\":[\"guest.exit\"]}", "ok", false},
	{"\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":4294967296}", "invalid-argument",
	 false},
	{"\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":1,\"guest_mib\":1}", "invalid-argument",
	 false},
	{"\"cmd\":\"vm.info\",\"args\":{\"verbose\":true}", "invalid-argument", false},
	{"\"cmd\":\"vm.frobnicate\"", "unknown-command", false},
	{"\"cmd\":", "parse-error", true},
};

static struct {
	const char *socket;
	int clients, requests, window;
	bool mix;
} opt = {.clients = 32, .requests = 1000, .window = 1};

static atomic_long n_ok, n_failed, n_connect_failed;
static atomic_int first_errors;

struct client {
	pthread_t thread;
	int idx;
	struct line_reader rd;
};

static void failure(struct client *c, const char *what, const char *line)
{
	atomic_fetch_add(&n_failed, 1);
	if (atomic_fetch_add(&first_errors, 1) < 10)
		fprintf(stderr, "client %d: %s: %.300s\n", c->idx, what, line ? line : "");
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

static const struct kind *kind_of(int i)
{
	return opt.mix ? &mix[i % (int)ARRAY_SIZE(mix)] : &plain[0];
}

/* Check one reply against the oldest matching outstanding request. */
static void check_reply(struct client *c, const char *line, int *outstanding_null, char *pending,
			int *inflight)
{
	struct json_object *r = json_tokener_parse(line), *id, *err, *code;
	const struct kind *k;
	const char *got;
	int64_t i;

	if (!r || !json_object_object_get_ex(r, "id", &id)) {
		failure(c, "malformed reply", line);
		json_object_put(r);
		(*inflight)--;
		return;
	}
	if (json_object_object_get_ex(r, "event", NULL)) {
		json_object_put(r); /* not a reply */
		return;
	}
	(*inflight)--;
	got = json_object_object_get_ex(r, "error", &err) &&
			      json_object_object_get_ex(err, "code", &code)
		      ? json_object_get_string(code)
	      : json_object_object_get_ex(r, "ok", NULL) ? "ok"
							 : "?";
	if (!id) {
		if (*outstanding_null > 0 && !strcmp(got, "parse-error")) {
			(*outstanding_null)--;
			atomic_fetch_add(&n_ok, 1);
		} else {
			failure(c, "unexpected reply with id null", line);
		}
		json_object_put(r);
		return;
	}
	i = json_object_get_int64(id);
	if (i < 0 || i >= opt.requests || !pending[i]) {
		failure(c, "reply to no outstanding request", line);
	} else {
		pending[i] = 0;
		k = kind_of((int)i);
		if (strcmp(got, k->want))
			failure(c, "unexpected reply", line);
		else
			atomic_fetch_add(&n_ok, 1);
	}
	json_object_put(r);
}

static void *client_thread(void *arg)
{
	struct client *c = arg;
	char *pending = calloc((size_t)opt.requests, 1);
	int fd = connect_to(opt.socket), sent = 0, inflight = 0, outstanding_null = 0;

	if (fd < 0 || !pending) {
		atomic_fetch_add(&n_connect_failed, 1);
		atomic_fetch_add(&n_failed, opt.requests);
		free(pending);
		return NULL;
	}
	line_reader_init(&c->rd, fd, 16 * MiB, false);
	while (sent < opt.requests || inflight > 0) {
		char req[256], *line;
		int n;

		while (sent < opt.requests && inflight < opt.window) {
			const struct kind *k = kind_of(sent);
			size_t len = (size_t)snprintf(req, sizeof(req), "{\"id\":%d,%s}\n", sent,
						      k->req);

			if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
				failure(c, "send failed", NULL);
				goto out;
			}
			if (k->null_id)
				outstanding_null++;
			else
				pending[sent] = 1;
			sent++;
			inflight++;
		}
		n = line_reader_next(&c->rd, now_ns() + REPLY_TIMEOUT_MS * 1000000ULL, NULL, &line,
				     NULL);
		if (n <= 0) {
			failure(c,
				n == 0 || n == -ETIMEDOUT ? "connection closed or reply timed out"
							  : "recv failed",
				NULL);
			goto out;
		}
		check_reply(c, line, &outstanding_null, pending, &inflight);
	}
out:
	/* Requests never answered are failures too. */
	atomic_fetch_add(&n_failed, inflight > 0 ? inflight : 0);
	atomic_fetch_add(&n_failed, opt.requests - sent);
	close(fd);
	free(pending);
	line_reader_free(&c->rd);
	return NULL;
}

struct self {
	char dir[64], path[96];
	struct loop *loop;
	struct control *ctl;
	struct control_fake fake;
	pthread_t thread;
};

static void *loop_thread(void *arg)
{
	loop_run(arg);
	return NULL;
}

static int self_start(struct self *s, const char *path)
{
	memset(s, 0, sizeof(*s));
	if (path) {
		snprintf(s->path, sizeof(s->path), "%s", path);
	} else {
		strcpy(s->dir, "/tmp/vmm-load.XXXXXX");
		if (!mkdtemp(s->dir))
			return -errno;
		snprintf(s->path, sizeof(s->path), "%s/ctl.sock", s->dir);
	}
	s->loop = loop_create();
	if (!s->loop)
		return -errno;
	control_fake_init(&s->fake, 1024 * MiB, 2);
	if (control_create(s->loop, s->path, &control_fake_ops, &s->fake, &s->ctl))
		return -EIO;
	s->fake.ctl = s->ctl;
	return pthread_create(&s->thread, NULL, loop_thread, s->loop) ? -EAGAIN : 0;
}

static void self_stop(struct self *s)
{
	loop_stop(s->loop);
	pthread_join(s->thread, NULL);
	control_destroy(s->ctl);
	loop_destroy(s->loop);
	if (s->dir[0])
		rmdir(s->dir);
}

static volatile sig_atomic_t stop_serving;

static void on_signal(int sig)
{
	(void)sig;
	stop_serving = 1;
}

static int serve(const char *path)
{
	struct sigaction sa = {.sa_handler = on_signal};
	struct self s;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (self_start(&s, path)) {
		fprintf(stderr, "control_load: cannot serve %s\n", path);
		return 2;
	}
	fprintf(stderr, "control_load: serving the fake backend at %s (Ctrl-C stops)\n", path);
	while (!stop_serving)
		pause();
	self_stop(&s);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: control_load (--socket PATH | --self | --serve PATH) [--clients N] "
			"[--requests M] [--window W] [--mix]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct client *clients;
	struct self s;
	bool self = false;
	uint64_t t0, dt;
	long total;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--self")) {
			self = true;
		} else if (!strcmp(a, "--mix")) {
			opt.mix = true;
		} else if (!v) {
			usage();
		} else if (!strcmp(a, "--serve")) {
			return serve(v);
		} else if (!strcmp(a, "--socket")) {
			opt.socket = v;
			i++;
		} else if (!strcmp(a, "--clients")) {
			opt.clients = atoi(v);
			i++;
		} else if (!strcmp(a, "--requests")) {
			opt.requests = atoi(v);
			i++;
		} else if (!strcmp(a, "--window")) {
			opt.window = atoi(v);
			i++;
		} else {
			usage();
		}
	}
	if (self == !!opt.socket || opt.clients <= 0 || opt.requests <= 0 || opt.window <= 0)
		usage();
	if (self) {
		if (self_start(&s, NULL)) {
			fprintf(stderr, "control_load: cannot start the in-process server\n");
			return 2;
		}
		opt.socket = s.path;
	}
	clients = calloc((size_t)opt.clients, sizeof(*clients));
	t0 = now_ns();
	for (int i = 0; i < opt.clients; i++) {
		clients[i].idx = i;
		pthread_create(&clients[i].thread, NULL, client_thread, &clients[i]);
	}
	for (int i = 0; i < opt.clients; i++)
		pthread_join(clients[i].thread, NULL);
	dt = now_ns() - t0;
	free(clients);
	if (self)
		self_stop(&s);
	total = (long)opt.clients * opt.requests;
	printf("control load: %d clients x %d requests%s (window %d): %ld ok, %ld failed, "
	       "%ld connect failures, %.2f s, %.0f req/s\n",
	       opt.clients, opt.requests, opt.mix ? " (mix)" : " (balloon.get)", opt.window,
	       (long)n_ok, (long)n_failed, (long)n_connect_failed, (double)dt / 1e9,
	       (double)total / ((double)dt / 1e9));
	return n_ok == total && !n_failed ? 0 : 1;
}
