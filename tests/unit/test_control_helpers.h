/*
 * Helpers for the control tests: a control server with the fake backend, its loop running on a
 * thread, listening in a fresh temporary directory; and a blocking line client with deadlines.
 */
#ifndef TESTS_UNIT_TEST_CONTROL_HELPERS_H
#define TESTS_UNIT_TEST_CONTROL_HELPERS_H

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../vmm/control/line_reader.h"
#include "../../vmm/control/server.h"
#include "../../vmm/control/vm_backend.h"
#include "../fake/control_fake.h"
#include "../../vmm/loop.h"
#include "../../vmm/util.h"

struct test_server {
	char dir[64];
	char path[96];
	struct loop *loop;
	struct control *ctl;
	struct control_fake fake;
	pthread_t thread;
	bool running;
	uint64_t idle_ms; /* set before test_server_start(): control_set_idle_timeout(); 0: none */
};

static void *test_server_thread(void *arg)
{
	struct test_server *s = arg;

	loop_run(s->loop);
	return NULL;
}

/* Create (not start) a server over the fake backend with 1 GiB RAM, 2 vCPUs. Returns 0/-errno. */
static inline int test_server_init(struct test_server *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->dir, "/tmp/vmm-ctl-test.XXXXXX");
	if (!mkdtemp(s->dir))
		return -errno;
	snprintf(s->path, sizeof(s->path), "%s/ctl.sock", s->dir);
	s->loop = loop_create();
	if (!s->loop)
		return -errno;
	control_fake_init(&s->fake, 1024 * MiB, 2);
	s->fake.loop = s->loop;
	return 0;
}

/* Create the control socket and run the loop thread. */
static inline int test_server_start(struct test_server *s)
{
	int ret = control_create(s->loop, s->path, &control_fake_ops, &s->fake, &s->ctl);

	if (!ret && s->idle_ms)
		ret = control_set_idle_timeout(s->ctl, s->idle_ms);
	if (ret)
		return ret;
	s->fake.ctl = s->ctl;
	if (pthread_create(&s->thread, NULL, test_server_thread, s))
		return -EAGAIN;
	s->running = true;
	return 0;
}

static inline void test_server_stop(struct test_server *s)
{
	if (s->running) {
		loop_stop(s->loop);
		pthread_join(s->thread, NULL);
		s->running = false;
	}
	control_fake_fini(&s->fake);
	control_destroy(s->ctl);
	s->ctl = NULL;
	loop_destroy(s->loop);
	s->loop = NULL;
	unlink(s->path);
	rmdir(s->dir);
}

static inline int test_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static inline int test_send(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

		if (k < 0)
			return -errno;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

/*
 * Read one line (without '\n') into @buf within @timeout_ms: the shared line reader, a byte at
 * a time so nothing past the line is consumed (tests mix it with other reads of @fd). A longer
 * line is cut to @size - 1 bytes. Returns its length, 0 on EOF, -ETIMEDOUT, -errno.
 */
static inline int test_read_line(int fd, char *buf, size_t size, int timeout_ms)
{
	struct line_reader r;
	char *line;
	size_t len = 0;
	int ret;

	line_reader_init(&r, fd, 4 * CTL_MAX_LINE, true);
	ret = line_reader_next(&r, now_ns() + (uint64_t)timeout_ms * 1000000ULL, NULL, &line, &len);
	if (ret == 1) {
		len = MIN(len, size - 1);
		memcpy(buf, line, len);
		buf[len] = '\0';
		ret = (int)len;
	}
	line_reader_free(&r);
	return ret;
}

/* Send @req, read one line, parse it. Returns the object (caller puts) or NULL. */
static inline struct json_object *test_call(int fd, const char *req)
{
	char line[65536];

	if (test_send(fd, req) < 0 || test_read_line(fd, line, sizeof(line), 5000) <= 0)
		return NULL;
	return json_tokener_parse(line);
}

/* "ok" member of a reply or NULL. */
static inline struct json_object *test_ok(struct json_object *r)
{
	struct json_object *ok = NULL;

	json_object_object_get_ex(r, "ok", &ok);
	return ok;
}

/* Error code string of a reply or "" when it is not an error. */
static inline const char *test_code(struct json_object *r)
{
	struct json_object *e, *c;

	if (r && json_object_object_get_ex(r, "error", &e) &&
	    json_object_object_get_ex(e, "code", &c))
		return json_object_get_string(c);
	return "";
}

static inline int64_t test_i64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

#endif
