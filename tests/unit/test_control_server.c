/*
 * The control server (vmm/control/server.c) over the fake backend: every command's replies and
 * argument errors through in-memory clients, then the socket rules (mode 0600, live/stale sockets,
 * 32 clients, line cap, slow and vanishing clients, events from other threads).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_control_helpers.h"

/* --- in-memory clients: the loop exists but does not run; control_test_poll() stands in ---- */

struct mem {
	struct loop *loop;
	struct control *ctl;
	struct control_fake fake;
	struct ctl_client *cl;
};

static void mem_init(struct mem *m)
{
	m->loop = loop_create();
	cr_assert_not_null(m->loop);
	control_fake_init(&m->fake, 1024 * MiB, 2);
	cr_assert_eq(control_create(m->loop, NULL, &control_fake_ops, &m->fake, &m->ctl), 0);
	m->fake.ctl = m->ctl;
	m->cl = control_test_client(m->ctl);
	cr_assert_not_null(m->cl);
}

static void mem_fini(struct mem *m)
{
	control_test_free(m->ctl, m->cl);
	control_destroy(m->ctl);
	loop_destroy(m->loop);
}

static void feed(struct mem *m, const char *s)
{
	control_test_feed(m->ctl, m->cl, s, strlen(s), false);
}

/* Feed @line, return the output as one parsed object (exactly one line expected). */
static struct json_object *mem_call(struct mem *m, const char *line)
{
	struct json_object *o;
	char *out;

	control_test_feed(m->ctl, m->cl, line, strlen(line), false);
	out = control_test_output(m->cl);
	cr_assert_not_null(out);
	cr_assert(strlen(out) && strchr(out, '\n') == out + strlen(out) - 1,
		  "expected one line for %s, got '%s'", line, out);
	o = json_tokener_parse(out);
	cr_assert_not_null(o, "%s", out);
	free(out);
	return o;
}

static void expect_code(struct mem *m, const char *line, const char *code)
{
	struct json_object *r = mem_call(m, line);

	cr_assert_str_eq(test_code(r), code, "%s -> %s", line, json_object_to_json_string(r));
	json_object_put(r);
}

Test(control_server, info_reply)
{
	struct mem m;
	struct json_object *r, *ok, *devs;

	mem_init(&m);
	r = mem_call(&m, "{\"id\":1,\"cmd\":\"vm.info\"}\n");
	cr_assert_eq(test_i64(r, "id"), 1);
	ok = test_ok(r);
	cr_assert_not_null(ok);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(ok, "state")), "running");
	cr_assert_eq(test_i64(ok, "vcpus"), 2);
	cr_assert_eq(test_i64(ok, "memory_bytes"), 1024 * MiB);
	cr_assert_eq(test_i64(ok, "memory_mib"), 1024);
	cr_assert_geq(test_i64(ok, "uptime_ms"), 0);
	devs = json_object_object_get(ok, "devices");
	cr_assert_eq(json_object_array_length(devs), 2);
	cr_assert_not_null(json_object_object_get(ok, "control"));
	json_object_put(r);
	mem_fini(&m);
}

Test(control_server, pause_resume)
{
	struct mem m;
	struct json_object *r;

	mem_init(&m);
	r = mem_call(&m, "{\"id\":1,\"cmd\":\"vm.pause\"}\n");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(test_ok(r), "state")),
			 "paused");
	cr_assert(json_object_get_boolean(json_object_object_get(test_ok(r), "changed")));
	json_object_put(r);
	r = mem_call(&m, "{\"id\":2,\"cmd\":\"vm.pause\"}\n");
	cr_assert_not(json_object_get_boolean(json_object_object_get(test_ok(r), "changed")));
	json_object_put(r);
	r = mem_call(&m, "{\"id\":3,\"cmd\":\"vm.resume\"}\n");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(test_ok(r), "state")),
			 "running");
	json_object_put(r);
	cr_assert_eq(m.fake.nr_pause, 2);
	m.fake.state = "stopped";
	expect_code(&m, "{\"id\":4,\"cmd\":\"vm.pause\"}\n", "vm-not-running");
	expect_code(&m, "{\"id\":5,\"cmd\":\"vm.resume\"}\n", "vm-not-running");
	expect_code(&m, "{\"id\":6,\"cmd\":\"vm.shutdown\"}\n", "vm-not-running");
	m.fake.state = "created";
	expect_code(&m, "{\"id\":7,\"cmd\":\"vm.pause\"}\n", "vm-not-running");
	mem_fini(&m);
}

Test(control_server, shutdown)
{
	struct mem m;
	struct json_object *r;

	mem_init(&m);
	r = mem_call(&m, "{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":250}}\n");
	cr_assert(json_object_get_boolean(json_object_object_get(test_ok(r), "guest_notified")));
	cr_assert_eq(test_i64(test_ok(r), "timeout_ms"), 250);
	cr_assert_eq(m.fake.last_shutdown_timeout_ms, 250);
	json_object_put(r);
	mem_fini(&m);

	mem_init(&m);
	m.fake.guest_shutdown = false;
	r = mem_call(&m, "{\"id\":1,\"cmd\":\"vm.shutdown\"}\n");
	cr_assert_not(
		json_object_get_boolean(json_object_object_get(test_ok(r), "guest_notified")));
	cr_assert_eq(test_i64(test_ok(r), "timeout_ms"), 0);
	cr_assert_eq(m.fake.last_shutdown_timeout_ms, CTL_SHUTDOWN_DEF_MS);
	json_object_put(r);
	expect_code(&m, "{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":-5}}\n",
		    "invalid-argument");
	mem_fini(&m);
}

Test(control_server, balloon_set_and_get)
{
	struct mem m;
	struct json_object *r, *ok;

	mem_init(&m);
	r = mem_call(&m, "{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":256}}\n");
	ok = test_ok(r);
	cr_assert_eq(test_i64(ok, "target_mib"), 256);
	cr_assert_eq(test_i64(ok, "target_pages"), 256 * 256);
	cr_assert_eq(m.fake.bc.target_pages, 256 * 256);
	json_object_put(r);

	r = mem_call(&m, "{\"id\":2,\"cmd\":\"balloon.set\",\"args\":{\"guest_mib\":1000}}\n");
	cr_assert_eq(test_i64(test_ok(r), "target_mib"), 24);
	cr_assert_eq(m.fake.bc.target_pages, 24 * 256);
	json_object_put(r);

	r = mem_call(&m, "{\"id\":3,\"cmd\":\"balloon.get\"}\n");
	ok = test_ok(r);
	cr_assert_eq(test_i64(ok, "target_mib"), 24);
	cr_assert_eq(test_i64(ok, "actual_mib"), 24);
	cr_assert_eq(test_i64(ok, "guest_mib"), 1000);
	cr_assert_eq(test_i64(ok, "guest_ram_mib"), 1024);
	json_object_put(r);

	/* The whole of RAM either way is allowed; beyond it is not. */
	r = mem_call(&m, "{\"id\":4,\"cmd\":\"balloon.set\",\"args\":{\"guest_mib\":0}}\n");
	cr_assert_eq(test_i64(test_ok(r), "target_mib"), 1024);
	json_object_put(r);
	r = mem_call(&m, "{\"id\":5,\"cmd\":\"balloon.set\",\"args\":{\"guest_mib\":1024}}\n");
	cr_assert_eq(test_i64(test_ok(r), "target_mib"), 0);
	json_object_put(r);
	expect_code(&m, "{\"id\":6,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":1025}}\n",
		    "invalid-argument");
	expect_code(&m, "{\"id\":7,\"cmd\":\"balloon.set\",\"args\":{\"guest_mib\":1025}}\n",
		    "invalid-argument");
	expect_code(&m, "{\"id\":8,\"cmd\":\"balloon.set\",\"args\":{\"guest_mib\":-1}}\n",
		    "invalid-argument");
	expect_code(&m, "{\"id\":9,\"cmd\":\"balloon.set\",\"args\":{}}\n", "invalid-argument");
	cr_assert_eq(m.fake.bc.target_pages, 0);
	mem_fini(&m);
}

Test(control_server, no_balloon_is_not_supported)
{
	struct mem m;
	struct json_object *r;

	mem_init(&m);
	m.fake.has_balloon = false;
	expect_code(&m, "{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":1}}\n",
		    "not-supported");
	expect_code(&m, "{\"id\":2,\"cmd\":\"balloon.get\"}\n", "not-supported");
	expect_code(&m, "{\"id\":3,\"cmd\":\"balloon.stats\"}\n", "not-supported");
	r = mem_call(&m, "{\"id\":4,\"cmd\":\"memory.stats\"}\n");
	cr_assert_null(json_object_object_get(test_ok(r), "balloon"));
	json_object_put(r);
	mem_fini(&m);
}

Test(control_server, stats_fresh_after_the_event)
{
	struct mem m;
	struct json_object *r, *ok;
	char *out;

	mem_init(&m);
	feed(&m, "{\"id\":1,\"cmd\":\"balloon.stats\"}\n");
	out = control_test_output(m.cl);
	cr_assert_str_eq(out, "", "the reply must wait for the guest");
	free(out);
	cr_assert_eq(m.fake.nr_stats_requests, 1);
	control_test_poll(m.ctl, false); /* delivers the "balloon.stats" event */
	out = control_test_output(m.cl);
	r = json_tokener_parse(out);
	free(out);
	ok = test_ok(r);
	cr_assert_not_null(ok);
	cr_assert_eq(test_i64(r, "id"), 1);
	cr_assert(json_object_get_boolean(json_object_object_get(ok, "fresh")));
	cr_assert_eq(test_i64(ok, "seq"), 1);
	cr_assert_geq(test_i64(ok, "age_ms"), 0);
	cr_assert_eq(test_i64(json_object_object_get(ok, "stats"), "free_bytes"), 512 * MiB);
	json_object_put(r);
	mem_fini(&m);
}

Test(control_server, stats_timeout_gives_the_last_set)
{
	struct mem m;
	struct json_object *r, *ok;
	char *out;

	mem_init(&m);
	m.fake.stats_answer = false;
	feed(&m, "{\"id\":1,\"cmd\":\"balloon.stats\"}\n");
	control_test_poll(m.ctl, false);
	out = control_test_output(m.cl);
	cr_assert_str_eq(out, "");
	free(out);
	control_test_poll(m.ctl, true);
	r = json_tokener_parse(out = control_test_output(m.cl));
	free(out);
	ok = test_ok(r);
	cr_assert_not(json_object_get_boolean(json_object_object_get(ok, "fresh")));
	cr_assert_eq(test_i64(ok, "seq"), 0);
	cr_assert(json_object_object_get_ex(ok, "age_ms", NULL));
	json_object_put(r);
	mem_fini(&m);
}

Test(control_server, stats_without_stats_queue_answers_at_once)
{
	struct mem m;
	struct json_object *r;

	mem_init(&m);
	m.fake.stats_vq = false;
	r = mem_call(&m, "{\"id\":1,\"cmd\":\"balloon.stats\"}\n");
	cr_assert_not(json_object_get_boolean(json_object_object_get(test_ok(r), "fresh")));
	json_object_put(r);
	mem_fini(&m);
}

Test(control_server, stats_pending_bound)
{
	struct mem m;
	char *out;
	int busy = 0;

	mem_init(&m);
	m.fake.stats_answer = false;
	for (int i = 0; i < CTL_MAX_PENDING + 3; i++)
		feed(&m, "{\"id\":1,\"cmd\":\"balloon.stats\"}\n");
	out = control_test_output(m.cl);
	for (char *p = out; (p = strstr(p, "\"busy\"")); p++)
		busy++;
	free(out);
	cr_assert_eq(busy, 3);
	mem_fini(&m); /* pending replies are dropped with the client: no leak */
}

Test(control_server, memory_stats)
{
	struct mem m;
	struct json_object *r, *ok;

	mem_init(&m);
	r = mem_call(&m, "{\"id\":1,\"cmd\":\"memory.stats\"}\n");
	ok = test_ok(r);
	cr_assert_eq(test_i64(ok, "guest_ram_bytes"), 1024 * MiB);
	cr_assert_not_null(json_object_object_get(ok, "resident_bytes"));
	cr_assert_not_null(json_object_object_get(ok, "ksm"));
	cr_assert_not_null(json_object_object_get(ok, "compressed"));
	cr_assert_not_null(json_object_object_get(ok, "errors"));
	cr_assert_not_null(json_object_object_get(ok, "balloon"));
	json_object_put(r);
	mem_fini(&m);
}

Test(control_server, subscribe_and_events)
{
	struct mem m;
	struct json_object *r;
	char *out;

	mem_init(&m);
	r = mem_call(&m, "{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":"
			 "[\"balloon.change\"]}}\n");
	cr_assert_eq(json_object_array_length(json_object_object_get(test_ok(r), "events")), 1);
	json_object_put(r);
	r = mem_call(&m, "{\"id\":2,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":8}}\n");
	json_object_put(r);
	control_post_event(m.ctl, "vm.state", "{\"state\":\"paused\"}"); /* not subscribed */
	control_post_event(m.ctl, "balloon.change", "{\"broken\":");	 /* invalid: dropped */
	control_test_poll(m.ctl, false);
	out = control_test_output(m.cl);
	cr_assert_str_eq(
		out,
		"{\"event\":\"balloon.change\",\"data\":{\"actual_mib\":8,\"target_mib\":8}}\n");
	free(out);
	{
		struct ctl_server_stats st;

		control_get_stats(m.ctl, &st);
		cr_assert_eq(st.events_dropped, 1);
	}
	mem_fini(&m);
}

Test(control_server, unsubscribed_clients_get_no_events)
{
	struct mem m;
	char *out;

	mem_init(&m);
	control_post_event(m.ctl, "guest.exit", "{\"status\":0}");
	control_test_poll(m.ctl, false);
	out = control_test_output(m.cl);
	cr_assert_str_eq(out, "");
	free(out);
	mem_fini(&m);
}

Test(control_server, framing)
{
	struct mem m;
	char *out;
	int lines = 0;

	mem_init(&m);
	/* Pipelined, split across feeds, CRLF, blank lines. */
	control_test_feed(m.ctl, m.cl, "{\"id\":1,\"cmd\":\"vm.info\"}\n{\"id\":2,", 33, false);
	control_test_feed(m.ctl, m.cl, "\"cmd\":\"balloon.get\"}\r\n\n  \r\n", 27, false);
	out = control_test_output(m.cl);
	for (char *p = out; (p = strchr(p, '\n')); p++)
		lines++;
	cr_assert_eq(lines, 2, "%s", out);
	cr_assert(strstr(out, "\"id\":1,\"ok\""));
	cr_assert(strstr(out, "\"id\":2,\"ok\""));
	free(out);
	/* The last line may lack its '\n' when the client shuts its side. */
	cr_assert_eq(control_test_feed(m.ctl, m.cl, "{\"id\":3,\"cmd\":\"vm.info\"}", 24, true),
		     -EPIPE);
	out = control_test_output(m.cl);
	cr_assert(strstr(out, "\"id\":3,\"ok\""), "%s", out);
	free(out);
	mem_fini(&m);
}

Test(control_server, every_bad_request_gets_an_error_and_the_connection_lives)
{
	static const char *const bad[][2] = {
		{"{\n", "parse-error"},
		{"\x01\x02\x03\n", "parse-error"},
		{"[]\n", "invalid-argument"},
		{"{\"id\":1}\n", "invalid-argument"},
		{"{\"id\":1,\"cmd\":\"vm.info\",\"x\":1}\n", "invalid-argument"},
		{"{\"id\":1,\"cmd\":\"vm.info\",\"args\":{\"x\":1}}\n", "invalid-argument"},
		{"{\"id\":1,\"cmd\":\"vm.reboot\"}\n", "unknown-command"},
		{"{\"id\":\"a\",\"cmd\":\"vm.info\"}\n", "invalid-argument"},
	};
	struct mem m;
	struct json_object *r;

	mem_init(&m);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_code(&m, bad[i][0], bad[i][1]);
	r = mem_call(&m, "{\"id\":9,\"cmd\":\"vm.info\"}\n");
	cr_assert_not_null(test_ok(r));
	json_object_put(r);
	mem_fini(&m);
}

Test(control_server, line_too_long_closes)
{
	struct mem m;
	size_t n = CTL_MAX_LINE + 10;
	char *big = malloc(n), *out;

	mem_init(&m);
	memset(big, ' ', n);
	cr_assert_eq(control_test_feed(m.ctl, m.cl, big, n, false), -EPIPE);
	out = control_test_output(m.cl);
	cr_assert(strstr(out, "line-too-long"), "%s", out);
	free(out);
	/* Nothing more is read from a closed client. */
	cr_assert_eq(control_test_feed(m.ctl, m.cl, "{\"cmd\":\"vm.info\"}\n", 18, false), -EPIPE);
	out = control_test_output(m.cl);
	cr_assert_str_eq(out, "");
	free(out);
	free(big);
	mem_fini(&m);
}

Test(control_server, line_at_the_limit_is_served)
{
	struct mem m;
	char *line = malloc(CTL_MAX_LINE + 1), *out;

	mem_init(&m);
	memset(line, ' ', CTL_MAX_LINE);
	memcpy(line, "{\"id\":1,\"cmd\":\"vm.info\"}", 24);
	line[CTL_MAX_LINE] = '\n';
	cr_assert_eq(control_test_feed(m.ctl, m.cl, line, CTL_MAX_LINE + 1, false), 0);
	out = control_test_output(m.cl);
	cr_assert(strstr(out, "\"ok\""), "%s", out);
	free(out);
	free(line);
	mem_fini(&m);
}

Test(control_server, random_bytes_never_crash)
{
	struct mem m;
	unsigned int seed = 12345;

	mem_init(&m);
	for (int round = 0; round < 2000; round++) {
		char buf[256];
		size_t n = (size_t)rand_r(&seed) % sizeof(buf);
		char *out;

		for (size_t i = 0; i < n; i++) {
			static const char alphabet[] = "{}[]\":,0123456789-.eE truenullfalse"
						       "idcmdargsvm.infoballoon_mib\n\\u";
			buf[i] = rand_r(&seed) % 4
					 ? alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)]
					 : (char)rand_r(&seed);
		}
		if (control_test_feed(m.ctl, m.cl, buf, n, false) < 0) {
			control_test_free(m.ctl, m.cl);
			m.cl = control_test_client(m.ctl);
		}
		control_test_poll(m.ctl, round % 7 == 0);
		out = control_test_output(m.cl);
		free(out);
	}
	mem_fini(&m);
}

/* --- real sockets: the loop runs on a thread --------------------------------------------- */

Test(control_socket, mode_0600_and_round_trip)
{
	struct test_server s;
	struct stat st;
	struct json_object *r;
	int fd;

	cr_assert_eq(test_server_init(&s), 0);
	umask(0);
	cr_assert_eq(test_server_start(&s), 0);
	cr_assert_eq(stat(s.path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	fd = test_connect(s.path);
	cr_assert_geq(fd, 0);
	r = test_call(fd, "{\"id\":7,\"cmd\":\"balloon.get\"}\n");
	cr_assert_eq(test_i64(r, "id"), 7);
	cr_assert_not_null(test_ok(r));
	json_object_put(r);
	close(fd);
	test_server_stop(&s);
	cr_assert_neq(stat(s.path, &st), 0, "the socket file must be removed");
}

Test(control_socket, live_socket_refused_stale_replaced)
{
	struct test_server s;
	struct control *other;
	struct control_fake fake;
	struct loop *loop = loop_create();
	int fd;

	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(test_server_start(&s), 0);
	control_fake_init(&fake, 64 * MiB, 1);
	cr_assert_eq(control_create(loop, s.path, &control_fake_ops, &fake, &other), -EADDRINUSE);
	test_server_stop(&s);

	/* A stale socket file: bound, then its owner went away without unlinking it. */
	cr_assert_eq(test_server_init(&s), 0);
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s.path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(fd);
	}
	cr_assert_eq(test_server_start(&s), 0);
	fd = test_connect(s.path);
	cr_assert_geq(fd, 0);
	close(fd);
	test_server_stop(&s);

	/* Anything but a socket is left alone. */
	cr_assert_eq(test_server_init(&s), 0);
	fd = open(s.path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	cr_assert_eq(control_create(loop, s.path, &control_fake_ops, &fake, &other), -EEXIST);
	cr_assert_eq(access(s.path, F_OK), 0);
	test_server_stop(&s);

	{
		char longpath[200];

		memset(longpath, 'x', sizeof(longpath) - 1);
		longpath[0] = '/';
		longpath[sizeof(longpath) - 1] = '\0';
		cr_assert_eq(control_create(loop, longpath, &control_fake_ops, &fake, &other),
			     -ENAMETOOLONG);
	}
	loop_destroy(loop);
}

Test(control_socket, client_33_gets_busy)
{
	struct test_server s;
	int fds[CTL_MAX_CLIENTS], fd;
	char line[512];
	struct json_object *r;

	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(test_server_start(&s), 0);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		fds[i] = test_connect(s.path);
		cr_assert_geq(fds[i], 0);
		/* A round trip makes sure the server has accepted this one. */
		r = test_call(fds[i], "{\"id\":1,\"cmd\":\"balloon.get\"}\n");
		cr_assert_not_null(test_ok(r));
		json_object_put(r);
	}
	fd = test_connect(s.path);
	cr_assert_geq(fd, 0);
	cr_assert_gt(test_read_line(fd, line, sizeof(line), 5000), 0);
	cr_assert(strstr(line, "\"busy\""), "%s", line);
	cr_assert_eq(test_read_line(fd, line, sizeof(line), 5000), 0, "must be closed");
	close(fd);
	/* A slot that frees up is usable again. */
	close(fds[0]);
	for (int tries = 0; tries < 100; tries++) {
		fd = test_connect(s.path);
		r = test_call(fd, "{\"id\":2,\"cmd\":\"vm.info\"}\n");
		if (r && test_ok(r))
			break;
		json_object_put(r);
		r = NULL;
		close(fd);
		usleep(10000);
	}
	cr_assert_not_null(r);
	json_object_put(r);
	close(fd);
	for (int i = 1; i < CTL_MAX_CLIENTS; i++)
		close(fds[i]);
	test_server_stop(&s);
}

Test(control_socket, socket_line_too_long)
{
	struct test_server s;
	char *big = malloc(CTL_MAX_LINE + 100), line[512];
	int fd;

	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(test_server_start(&s), 0);
	fd = test_connect(s.path);
	memset(big, 'a', CTL_MAX_LINE + 99);
	big[CTL_MAX_LINE + 99] = '\0';
	test_send(fd, big);
	cr_assert_gt(test_read_line(fd, line, sizeof(line), 5000), 0);
	cr_assert(strstr(line, "line-too-long"), "%s", line);
	cr_assert_leq(test_read_line(fd, line, sizeof(line), 5000), 0);
	close(fd);
	free(big);
	test_server_stop(&s);
}

/* A client trickling one byte at a time, and one vanishing mid-line, do not slow the others. */
Test(control_socket, slow_and_vanishing_clients_do_not_stall_others)
{
	static const char req[] = "{\"id\":1,\"cmd\":\"vm.info\"}\n";
	struct test_server s;
	int slow, gone, fast;
	uint64_t t0;
	char line[4096];

	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(test_server_start(&s), 0);
	slow = test_connect(s.path);
	gone = test_connect(s.path);
	fast = test_connect(s.path);
	test_send(gone, "{\"id\":1,\"cmd\":\"vm.in");
	close(gone);
	t0 = now_ns();
	for (size_t i = 0; i < sizeof(req) - 1; i++) {
		char one[2] = {req[i], 0};

		test_send(slow, one);
		for (int k = 0; k < 20; k++) {
			struct json_object *r =
				test_call(fast, "{\"id\":2,\"cmd\":\"balloon.get\"}\n");

			cr_assert_not_null(test_ok(r));
			json_object_put(r);
		}
		usleep(2000);
	}
	cr_assert_gt(test_read_line(slow, line, sizeof(line), 5000), 0);
	cr_assert(strstr(line, "\"ok\""));
	cr_assert_lt(now_ns() - t0, 10ULL * 1000000000ULL);
	close(slow);
	close(fast);
	test_server_stop(&s);
}

/* A subscriber that never reads is dropped once its queue passes the bound; others go on. */
Test(control_socket, slow_reader_dropped)
{
	struct test_server s;
	struct json_object *r;
	char data[8192], line[4096];
	int lazy, other;
	bool dropped = false;

	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(test_server_start(&s), 0);
	lazy = test_connect(s.path);
	other = test_connect(s.path);
	r = test_call(lazy, "{\"id\":1,\"cmd\":\"events.subscribe\"}\n");
	json_object_put(r);
	snprintf(data, sizeof(data), "{\"pad\":\"%0*d\"}", 8000, 0);
	for (int i = 0; i < 2000 && !dropped; i++) {
		struct ctl_server_stats st;

		control_post_event(s.ctl, "balloon.change", data); /* from this (non-loop) thread */
		if (i % 50 == 49) {
			/* Ask the loop thread for its counters through the protocol. */
			r = test_call(other, "{\"id\":2,\"cmd\":\"vm.info\"}\n");
			cr_assert_not_null(test_ok(r));
			dropped = test_i64(json_object_object_get(test_ok(r), "control"),
					   "clients_dropped_slow") == 1;
			json_object_put(r);
		}
		(void)st;
	}
	cr_assert(dropped, "the non-reading client was never dropped");
	/* The dropped client reads what was sent before, then EOF (or a reset). */
	while (test_read_line(lazy, line, sizeof(line), 2000) > 0)
		;
	close(lazy);
	close(other);
	test_server_stop(&s);
}

/* A client pipelining requests without reading is throttled, not dropped, and loses nothing. */
Test(control_socket, pipelining_client_is_throttled_not_dropped)
{
	enum { N = 20000 };
	struct test_server s;
	char *buf, line[1024];
	size_t len = 0, off = 0;
	int fd, got = 0;

	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(test_server_start(&s), 0);
	fd = test_connect(s.path);
	buf = malloc((size_t)N * 64);
	for (int i = 0; i < N; i++)
		len += (size_t)sprintf(buf + len, "{\"id\":%d,\"cmd\":\"balloon.get\"}\n", i);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	/* Send all we can without reading: the server must stop reading us, not drop us. */
	for (int spins = 0; off < len && spins < 200; spins++) {
		ssize_t k = send(fd, buf + off, len - off, MSG_NOSIGNAL);

		if (k > 0)
			off += (size_t)k;
		else
			usleep(5000);
	}
	cr_assert_lt(off, len, "the server should have pushed back");
	fcntl(fd, F_SETFL, 0);
	/* Now read and send the rest interleaved until every reply arrived. */
	while (got < N) {
		struct pollfd p[1] = {{.fd = fd, .events = POLLIN | (off < len ? POLLOUT : 0)}};

		cr_assert_gt(poll(p, 1, 5000), 0, "stalled after %d replies", got);
		if (p[0].revents & POLLOUT) {
			ssize_t k = send(fd, buf + off, MIN(len - off, 4096),
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k > 0)
				off += (size_t)k;
		}
		if (p[0].revents & POLLIN) {
			int n = test_read_line(fd, line, sizeof(line), 5000);

			cr_assert_gt(n, 0);
			cr_assert(strstr(line, "\"ok\""), "%s", line);
			got++;
		}
	}
	free(buf);
	close(fd);
	test_server_stop(&s);
}

/* Events posted from other threads reach subscribers in order; destroy flushes the last ones. */
Test(control_socket, events_from_threads_and_final_flush)
{
	struct test_server s;
	struct json_object *r;
	char line[1024];
	int fd;

	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(test_server_start(&s), 0);
	fd = test_connect(s.path);
	r = test_call(fd, "{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":"
			  "[\"vm.state\",\"guest.exit\"]}}\n");
	cr_assert_not_null(test_ok(r));
	json_object_put(r);
	control_post_event(s.ctl, "vm.state", "{\"state\":\"paused\"}");
	control_post_event(s.ctl, "balloon.change", "{\"actual_mib\":1}");
	control_post_event(s.ctl, "vm.state", "{\"state\":\"running\"}");
	cr_assert_gt(test_read_line(fd, line, sizeof(line), 5000), 0);
	cr_assert_str_eq(line, "{\"event\":\"vm.state\",\"data\":{\"state\":\"paused\"}}");
	cr_assert_gt(test_read_line(fd, line, sizeof(line), 5000), 0);
	cr_assert_str_eq(line, "{\"event\":\"vm.state\",\"data\":{\"state\":\"running\"}}");
	/* As at VM exit: the loop stops, then the last event is posted and the server destroyed. */
	loop_stop(s.loop);
	pthread_join(s.thread, NULL);
	s.running = false;
	control_post_event(s.ctl, "guest.exit", "{\"status\":3}");
	test_server_stop(&s);
	cr_assert_gt(test_read_line(fd, line, sizeof(line), 5000), 0);
	cr_assert_str_eq(line, "{\"event\":\"guest.exit\",\"data\":{\"status\":3}}");
	cr_assert_eq(test_read_line(fd, line, sizeof(line), 5000), 0);
	close(fd);
}

/* balloon.stats through the socket: the deferred reply comes after the event round trip. */
Test(control_socket, stats_deferred_over_socket)
{
	struct test_server s;
	struct json_object *r;
	int fd;
	uint64_t t0;

	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(test_server_start(&s), 0);
	fd = test_connect(s.path);
	r = test_call(fd, "{\"id\":1,\"cmd\":\"balloon.stats\"}\n");
	cr_assert(json_object_get_boolean(json_object_object_get(test_ok(r), "fresh")));
	json_object_put(r);
	s.fake.stats_answer = false;
	t0 = now_ns();
	r = test_call(fd, "{\"id\":2,\"cmd\":\"balloon.stats\"}\n");
	cr_assert_not(json_object_get_boolean(json_object_object_get(test_ok(r), "fresh")));
	cr_assert_eq(test_i64(test_ok(r), "seq"), 1);
	cr_assert_geq(now_ns() - t0, (CTL_STATS_WAIT_MS - 50) * 1000000ULL);
	cr_assert_lt(now_ns() - t0, 3000ULL * 1000000ULL);
	json_object_put(r);
	close(fd);
	test_server_stop(&s);
}
