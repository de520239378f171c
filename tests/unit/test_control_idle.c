/*
 * Idle clients (issue 12 item 8): a client that sends nothing for the idle timeout while no
 * deferred reply waits is told so in one error line and closed, so clients holding every slot
 * cannot lock the orchestrator out for longer than that; the busy reply names the limit.
 * Also the --control PATH[,idle-timeout=SECONDS] argument.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_control_helpers.h"

#define IDLE_MS 300

static void start(struct test_server *s, uint64_t idle_ms)
{
	cr_assert_eq(test_server_init(s), 0);
	s->idle_ms = idle_ms;
	cr_assert_eq(test_server_start(s), 0);
}

/* Read lines until EOF within @ms: returns the last error code seen ("" if none), "-" on timeout.
 */
static const char *read_until_eof(int fd, int ms, char *msg, size_t msg_size)
{
	static char code[64];
	char line[4096];
	int n;

	strcpy(code, "");
	while ((n = test_read_line(fd, line, sizeof(line), ms)) > 0) {
		struct json_object *r = json_tokener_parse(line), *e, *m;

		snprintf(code, sizeof(code), "%s", test_code(r));
		if (msg && json_object_object_get_ex(r, "error", &e) &&
		    json_object_object_get_ex(e, "message", &m))
			snprintf(msg, msg_size, "%s", json_object_get_string(m));
		json_object_put(r);
	}
	return n == -ETIMEDOUT ? "-" : code;
}

static int64_t counter(const char *path, const char *name)
{
	int fd = test_connect(path);
	struct json_object *r = test_call(fd, "{\"id\":1,\"cmd\":\"vm.info\"}\n");
	int64_t v = test_i64(json_object_object_get(test_ok(r), "control"), name);

	cr_assert_not_null(test_ok(r));
	json_object_put(r);
	close(fd);
	return v;
}

Test(control_idle, silent_client_is_told_and_closed)
{
	struct test_server s;
	char msg[256] = "";
	uint64_t t0;
	int fd;

	start(&s, IDLE_MS);
	t0 = now_ns();
	fd = test_connect(s.path);
	cr_assert_geq(fd, 0);
	cr_assert_str_eq(read_until_eof(fd, 5000, msg, sizeof(msg)), "idle-timeout");
	cr_assert(strstr(msg, "0.3 s"), "the message names the timeout: %s", msg);
	cr_assert_geq(now_ns() - t0, IDLE_MS * 1000000ULL, "closed before the timeout");
	close(fd);
	cr_assert_eq(counter(s.path, "clients_idle_closed"), 1);
	test_server_stop(&s);
}

/* Requests, and blank lines (the keepalive), keep a connection open past the timeout. */
Test(control_idle, requests_and_blank_lines_keep_a_client)
{
	struct test_server s;
	struct json_object *r;
	int fd;

	start(&s, IDLE_MS);
	fd = test_connect(s.path);
	for (int i = 0; i < 8; i++) {
		usleep(IDLE_MS * 1000 / 3);
		cr_assert_eq(test_send(fd, i % 2 ? "\n" : "{\"id\":1,\"cmd\":\"balloon.get\"}\n"),
			     0);
		if (i % 2 == 0) {
			char line[4096];

			cr_assert_gt(test_read_line(fd, line, sizeof(line), 2000), 0);
			cr_assert(strstr(line, "\"ok\""), "%s", line);
		}
	}
	r = test_call(fd, "{\"id\":2,\"cmd\":\"vm.info\"}\n");
	cr_assert_not_null(test_ok(r), "closed while active");
	cr_assert_eq(test_i64(json_object_object_get(test_ok(r), "control"), "clients_idle_closed"),
		     0);
	json_object_put(r);
	close(fd);
	test_server_stop(&s);
}

/* A deferred reply keeps its client: balloon.stats waits CTL_STATS_WAIT_MS > the timeout. */
Test(control_idle, a_pending_reply_keeps_the_client)
{
	struct test_server s;
	char line[4096];
	int fd;

	cr_assert_gt(CTL_STATS_WAIT_MS, 2 * IDLE_MS);
	cr_assert_eq(test_server_init(&s), 0);
	s.idle_ms = IDLE_MS;
	s.fake.stats_answer = false;
	cr_assert_eq(test_server_start(&s), 0);
	fd = test_connect(s.path);
	cr_assert_eq(test_send(fd, "{\"id\":5,\"cmd\":\"balloon.stats\"}\n"), 0);
	cr_assert_gt(test_read_line(fd, line, sizeof(line), CTL_STATS_WAIT_MS + 2000), 0);
	cr_assert(strstr(line, "\"id\":5") && strstr(line, "\"ok\""), "%s", line);
	/* Idle afterwards: closed then. */
	cr_assert_str_eq(read_until_eof(fd, 5000, NULL, 0), "idle-timeout");
	close(fd);
	test_server_stop(&s);
}

/* All slots held by silent clients: the 33rd is told the limit, and gets in after the timeout. */
Test(control_idle, slots_held_by_idle_clients_free_up)
{
	struct test_server s;
	int fds[CTL_MAX_CLIENTS], fd;
	char line[512];
	struct json_object *r = NULL;

	start(&s, IDLE_MS * 3);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		fds[i] = test_connect(s.path);
		cr_assert_geq(fds[i], 0);
		r = test_call(fds[i], "{\"id\":1,\"cmd\":\"balloon.get\"}\n");
		cr_assert_not_null(test_ok(r));
		json_object_put(r);
	}
	fd = test_connect(s.path);
	cr_assert_gt(test_read_line(fd, line, sizeof(line), 5000), 0);
	cr_assert(strstr(line, "\"busy\""), "%s", line);
	cr_assert(strstr(line, "32 clients"), "the busy reply names the limit: %s", line);
	cr_assert(strstr(line, "0.9 s"), "and the idle timeout: %s", line);
	close(fd);
	r = NULL;
	for (int tries = 0; tries < 300 && !r; tries++) {
		usleep(10000);
		fd = test_connect(s.path);
		r = test_call(fd, "{\"id\":2,\"cmd\":\"vm.info\"}\n");
		if (!test_ok(r)) {
			json_object_put(r);
			r = NULL;
		}
		close(fd);
	}
	cr_assert_not_null(r, "no slot freed up after the idle timeout");
	json_object_put(r);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		close(fds[i]);
	test_server_stop(&s);
}

/* The subscription reply tells the timeout, so a watcher knows how often to send a keepalive. */
Test(control_idle, subscribe_reply_names_the_timeout)
{
	struct test_server s;
	struct json_object *r;
	int fd;

	start(&s, IDLE_MS);
	fd = test_connect(s.path);
	r = test_call(fd, "{\"id\":1,\"cmd\":\"events.subscribe\"}\n");
	cr_assert_eq(test_i64(test_ok(r), "idle_timeout_ms"), IDLE_MS);
	json_object_put(r);
	close(fd);
	test_server_stop(&s);
}

Test(control_idle, never)
{
	struct test_server s;
	struct json_object *r;
	int fd;

	start(&s, CTL_IDLE_NEVER);
	fd = test_connect(s.path);
	usleep(4 * IDLE_MS * 1000);
	r = test_call(fd, "{\"id\":1,\"cmd\":\"events.subscribe\"}\n");
	cr_assert_not_null(test_ok(r));
	cr_assert_eq(test_i64(test_ok(r), "idle_timeout_ms"), 0);
	json_object_put(r);
	close(fd);
	test_server_stop(&s);
}

Test(control_idle, default_and_setter_range)
{
	struct test_server s;
	struct json_object *r;
	int fd;

	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(control_create(s.loop, NULL, &control_fake_ops, &s.fake, &s.ctl), 0);
	cr_assert_eq(control_set_idle_timeout(s.ctl, CTL_IDLE_MAX_MS + 1), -EINVAL);
	cr_assert_eq(control_set_idle_timeout(s.ctl, 0), 0); /* 0: the default */
	control_destroy(s.ctl);
	s.ctl = NULL;
	cr_assert_eq(test_server_start(&s), 0);
	fd = test_connect(s.path);
	r = test_call(fd, "{\"id\":1,\"cmd\":\"events.subscribe\"}\n");
	cr_assert_eq(test_i64(test_ok(r), "idle_timeout_ms"), CTL_IDLE_DEF_MS);
	json_object_put(r);
	close(fd);
	test_server_stop(&s);
}

Test(control_idle, parse_control_argument)
{
	char path[64], err[256];
	uint64_t ms = 1;

	cr_assert_eq(control_parse_arg("/run/vm.sock", path, sizeof(path), &ms, err, sizeof(err)),
		     0);
	cr_assert_str_eq(path, "/run/vm.sock");
	cr_assert_eq(ms, 0, "absent: the default");
	cr_assert_eq(control_parse_arg("/run/vm.sock,idle-timeout=5", path, sizeof(path), &ms, err,
				       sizeof(err)),
		     0);
	cr_assert_str_eq(path, "/run/vm.sock");
	cr_assert_eq(ms, 5000);
	cr_assert_eq(control_parse_arg("/a,b/vm.sock,idle-timeout=0", path, sizeof(path), &ms, err,
				       sizeof(err)),
		     0);
	cr_assert_str_eq(path, "/a,b/vm.sock");
	cr_assert_eq(ms, CTL_IDLE_NEVER);
	cr_assert_eq(control_parse_arg("/a,b", path, sizeof(path), &ms, err, sizeof(err)), 0);
	cr_assert_str_eq(path, "/a,b", "a comma without an option is part of the path");
	cr_assert_eq(
		control_parse_arg("/s,idle-timeout=x", path, sizeof(path), &ms, err, sizeof(err)),
		-EINVAL);
	cr_assert(strstr(err, "idle-timeout"), "%s", err);
	cr_assert_eq(
		control_parse_arg("/s,idle-timeout=", path, sizeof(path), &ms, err, sizeof(err)),
		-EINVAL);
	cr_assert_eq(control_parse_arg("/s,idle-timeout=86401", path, sizeof(path), &ms, err,
				       sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "86400"), "the message names the limit: %s", err);
	cr_assert_eq(control_parse_arg("/s,idle=5", path, sizeof(path), &ms, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "unknown"), "%s", err);
	cr_assert_eq(
		control_parse_arg(",idle-timeout=5", path, sizeof(path), &ms, err, sizeof(err)),
		-EINVAL);
	cr_assert_eq(control_parse_arg(
			     "/a/very/long/path/that/does/not/fit/in/sixty-four/bytes/of/room.sock",
			     path, sizeof(path), &ms, err, sizeof(err)),
		     -ENAMETOOLONG);
}
