/*
 * libFuzzer target for the control server over real Unix sockets (issue 12): several clients
 * connect, send partial lines and whole requests, shut their read or write side, close, read,
 * while the reclaim-capable fake backend answers or withholds balloon.stats and memory.reclaim
 * (deferred replies) and the input expires them. The loop runs on this thread
 * (loop_dispatch()), so a run is deterministic. Every line a client reads must be one JSON
 * object with "id" + "ok"/"error", or "event"; sanitizers catch the rest.
 * Input: a sequence of operations, each an opcode byte and its operands (see step()).
 */
#include <errno.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../vmm/control/server.h"
#include "../../vmm/loop.h"
#include "../../vmm/util.h"
#include "../fake/control_fake.h"

#define NR_CLIENTS 6
#define RX_MAX	   (256 * 1024)

static struct loop *loop;
static struct control *ctl;
static struct control_fake fake;
static char path[108];

struct client {
	int fd; /* -1: none */
	size_t len;
	char rx[RX_MAX];
};

static struct client clients[NR_CLIENTS];

static const char *const canned[] = {
	"{\"id\":1,\"cmd\":\"balloon.stats\"}\n",
	"{\"id\":2,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":4096}}\n",
	"{\"id\":3,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":1,\"timeout_ms\":0}}\n",
	"{\"id\":4,\"cmd\":\"events.subscribe\"}\n",
	"{\"id\":5,\"cmd\":\"vm.pause\"}\n",
	"{\"id\":6,\"cmd\":\"vm.resume\"}\n",
	"{\"id\":7,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":64}}\n",
	"{\"id\":8,\"cmd\":\"vm.info\"}\n",
	"{\"id\":9,\"cmd\":\"memory.stats\"}\n",
	"{\"id\":10,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":0}}\n",
	"{\"id\":11,\"cmd\":\"balloon.get\"}\n",
	"\n",
};

static void setup(void)
{
	char dir[] = "/tmp/vmm-fuzz-ctl.XXXXXX";

	log_level = LOG_QUIET; /* dropped clients and bad requests are expected */
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	loop = loop_create();
	control_fake_init(&fake, 256 * MiB, 1);
	if (!loop || control_create(loop, path, &control_fake_ops, &fake, &ctl) ||
	    control_set_idle_timeout(ctl, CTL_IDLE_NEVER))
		abort();
	fake.ctl = ctl;
	for (int i = 0; i < NR_CLIENTS; i++)
		clients[i].fd = -1;
}

static void run_loop(void)
{
	for (int i = 0; i < 64 && loop_dispatch(loop, 0) > 0; i++)
		;
}

/* Each complete line read so far is one JSON object of the documented shapes. */
static void check_lines(struct client *cl)
{
	char *start = cl->rx, *nl;

	while ((nl = memchr(start, '\n', cl->len - (size_t)(start - cl->rx)))) {
		struct json_object *o;

		*nl = '\0';
		o = json_tokener_parse(start);
		if (!o || !json_object_is_type(o, json_type_object))
			__builtin_trap();
		if (!json_object_object_get_ex(o, "event", NULL) &&
		    (!json_object_object_get_ex(o, "id", NULL) ||
		     (!json_object_object_get_ex(o, "ok", NULL) &&
		      !json_object_object_get_ex(o, "error", NULL))))
			__builtin_trap();
		json_object_put(o);
		start = nl + 1;
	}
	cl->len -= (size_t)(start - cl->rx);
	memmove(cl->rx, start, cl->len);
}

static void drain(struct client *cl)
{
	ssize_t n;

	while (cl->fd >= 0 && cl->len < RX_MAX &&
	       (n = recv(cl->fd, cl->rx + cl->len, RX_MAX - cl->len, MSG_DONTWAIT)) > 0)
		cl->len += (size_t)n;
	check_lines(cl);
	if (cl->len == RX_MAX)
		cl->len = 0; /* a line this long is not one of ours: trapped above if complete */
}

static void send_bytes(struct client *cl, const void *buf, size_t n)
{
	if (cl->fd >= 0 && send(cl->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* EAGAIN (the server throttles), EPIPE (it closed us): both are fine here. */
	}
}

static void open_client(struct client *cl)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (cl->fd >= 0)
		return;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cl->fd >= 0 && connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(cl->fd);
		cl->fd = -1;
	}
	cl->len = 0;
}

static void close_client(struct client *cl)
{
	if (cl->fd >= 0) {
		drain(cl);
		close(cl->fd);
	}
	cl->fd = -1;
	cl->len = 0;
}

/* One operation from @d (at most @n bytes); returns the bytes it used (at least 1). */
static size_t step(const uint8_t *d, size_t n)
{
	struct client *cl = &clients[(n > 1 ? d[1] : 0) % NR_CLIENTS];
	size_t len;

	switch (d[0] % 10) {
	case 0: /* connect */
		open_client(cl);
		return 2;
	case 1: /* raw bytes: partial lines, garbage, several lines */
		len = n > 2 ? MIN((size_t)d[2], n - 3) : 0;
		if (len)
			send_bytes(cl, d + 3, len);
		return 3 + len;
	case 2: /* a whole canned request */
		if (n > 2)
			send_bytes(cl, canned[d[2] % ARRAY_SIZE(canned)],
				   strlen(canned[d[2] % ARRAY_SIZE(canned)]));
		return 3;
	case 3:
		if (cl->fd >= 0)
			shutdown(cl->fd, SHUT_RD);
		return 2;
	case 4:
		if (cl->fd >= 0)
			shutdown(cl->fd, SHUT_WR);
		return 2;
	case 5:
		close_client(cl);
		return 2;
	case 6:
		drain(cl);
		return 2;
	case 7: /* the backend: answers or withholds */
		if (n > 1) {
			fake.stats_answer = d[1] & 1;
			fake.reclaim_answer = d[1] & 2;
			fake.compressed = !(d[1] & 4);
			fake.has_balloon = !(d[1] & 8);
		}
		return 2;
	case 8: /* a withheld reclaim finishes; a stats set arrives */
		control_fake_reclaim_done(&fake);
		if (n > 1 && (d[1] & 1))
			control_post_event(ctl, "balloon.stats", "{\"seq\":1}");
		return 2;
	default: /* deferred replies' waits end (as if their deadlines passed) */
		control_test_poll(ctl, true);
		return 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_server_stats st;

	if (!loop)
		setup();
	control_fake_init(&fake, 256 * MiB, 1);
	fake.ctl = ctl;
	for (size_t off = 0, ops = 0; off < size && ops < 256; ops++) {
		off += step(data + off, size - off);
		run_loop();
	}
	/* Everything closes; the server must forget every client and deferred reply. */
	for (int i = 0; i < NR_CLIENTS; i++)
		close_client(&clients[i]);
	control_test_poll(ctl, true);
	for (int i = 0; i < 1000; i++) {
		run_loop();
		control_get_stats(ctl, &st);
		if (!st.clients)
			break;
		if (i == 999)
			__builtin_trap(); /* a closed client was never reaped */
	}
	control_test_poll(ctl, true);
	return 0;
}
