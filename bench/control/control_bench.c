/*
 * Control-socket round-trip latency: N sequential balloon.get requests on one connection, each
 * timed from send to the complete reply line; prints p50/p99 (and mean/max) in microseconds.
 *   control_bench --socket PATH   against a running VMM (vmm run --control PATH)
 *   control_bench --self          against an in-process server over the fake backend (no KVM)
 * --requests N (10000). In the same run it times the raw kernel primitive, a Unix socketpair
 * echo of the same bytes by a thread, and prints the ratio (the cost of parsing and dispatch).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../vmm/control/server.h"
#include "../../tests/fake/control_fake.h"
#include "../../vmm/loop.h"
#include "../../vmm/util.h"

static const char request_fmt[] = "{\"id\":%d,\"cmd\":\"balloon.get\"}\n";

struct lat {
	double p50, p99, mean, max;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static struct lat summarize(uint64_t *ns, int n)
{
	struct lat l = {0};
	double sum = 0;

	qsort(ns, (size_t)n, sizeof(*ns), cmp_u64);
	for (int i = 0; i < n; i++)
		sum += (double)ns[i];
	l.p50 = (double)ns[n / 2] / 1e3;
	l.p99 = (double)ns[(int)((long)n * 99 / 100)] / 1e3;
	l.mean = sum / n / 1e3;
	l.max = (double)ns[n - 1] / 1e3;
	return l;
}

/* Read until a '\n' arrives; returns 0 or -1 (EOF/error). Replies are small: one recv each. */
static int read_reply(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len < size) {
		ssize_t n = recv(fd, buf + len, size - len, 0);

		if (n <= 0)
			return -1;
		len += (size_t)n;
		if (buf[len - 1] == '\n')
			return 0;
	}
	return -1;
}

static int run_rtt(int fd, int n, uint64_t *ns, bool check)
{
	char req[128], reply[4096];

	for (int i = 0; i < n; i++) {
		int len = snprintf(req, sizeof(req), request_fmt, i);
		uint64_t t0 = now_ns();

		if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len ||
		    read_reply(fd, reply, sizeof(reply)))
			return -1;
		ns[i] = now_ns() - t0;
		if (check && !strstr(reply, "\"ok\"")) {
			fprintf(stderr, "control_bench: unexpected reply: %.200s", reply);
			return -1;
		}
	}
	return 0;
}

static void *echo_thread(void *arg)
{
	int fd = *(int *)arg;
	char buf[4096];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n <= 0 || send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	}
	return NULL;
}

static int raw_echo(int n, uint64_t *ns, struct lat *out)
{
	int sv[2];
	pthread_t t;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return -1;
	pthread_create(&t, NULL, echo_thread, &sv[1]);
	if (run_rtt(sv[0], n, ns, false))
		return -1;
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
	*out = summarize(ns, n);
	return 0;
}

static void *loop_thread(void *arg)
{
	loop_run(arg);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	char dir[] = "/tmp/vmm-bench.XXXXXX", self_path[96];
	struct control_fake fake;
	struct control *ctl = NULL;
	struct loop *loop = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct lat l, raw;
	pthread_t thread;
	bool self = false;
	uint64_t *ns;
	int n = 10000, fd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--self"))
			self = true;
		else if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
			n = atoi(argv[++i]);
		else
			goto usage;
	}
	if (self == !!path || n < 100)
		goto usage;
	if (self) {
		if (!mkdtemp(dir))
			return 2;
		snprintf(self_path, sizeof(self_path), "%s/ctl.sock", dir);
		loop = loop_create();
		control_fake_init(&fake, 1024 * MiB, 2);
		if (!loop || control_create(loop, self_path, &control_fake_ops, &fake, &ctl))
			return 2;
		fake.ctl = ctl;
		pthread_create(&thread, NULL, loop_thread, loop);
		path = self_path;
	}
	ns = calloc((size_t)n, sizeof(*ns));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (!ns || fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "control_bench: cannot connect to %s: %s\n", path, strerror(errno));
		return 2;
	}
	/* Warm up the allocator and caches, then measure. */
	if (run_rtt(fd, 100, ns, true) || run_rtt(fd, n, ns, true)) {
		fprintf(stderr, "control_bench: request failed\n");
		return 1;
	}
	close(fd);
	l = summarize(ns, n);
	if (raw_echo(n, ns, &raw))
		return 2;
	printf("control round trip, %d x balloon.get (%s):\n", n,
	       self ? "in-process server, fake backend" : path);
	printf("  control   p50 %7.1f us   p99 %7.1f us   mean %7.1f us   max %8.1f us\n", l.p50,
	       l.p99, l.mean, l.max);
	printf("  raw echo  p50 %7.1f us   p99 %7.1f us   mean %7.1f us   max %8.1f us"
	       "   (Unix socketpair + thread, same bytes)\n",
	       raw.p50, raw.p99, raw.mean, raw.max);
	printf("  control/raw: p50 %.2fx, p99 %.2fx\n", l.p50 / raw.p50, l.p99 / raw.p99);
	free(ns);
	if (self) {
		loop_stop(loop);
		pthread_join(thread, NULL);
		control_destroy(ctl);
		loop_destroy(loop);
		rmdir(dir);
	}
	return 0;
usage:
	fprintf(stderr, "usage: control_bench (--socket PATH | --self) [--requests N>=100]\n");
	return 2;
}
