/*
 * ctl_rtt SOCKET N [GAP_MS]: N control-socket round trips (vm.info, one at a time on one
 * connection, GAP_MS apart, default 10), then one line on stdout:
 *   ctl_rtt: N requests, p50 A ms, p99 B ms, max C ms
 * Exit status 0, 1 when a reply does not come within 10 s or is not an ok reply, 2 on usage or
 * connection errors. A test tool (tests/kvm/flood.sh), shipped into the nested test host by
 * tests/kvm/run.sh ("# tools:"); it speaks the protocol of docs/control.md directly.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_N	   100000
#define REPLY_MS   10000
#define LINE_BYTES (1 << 20)

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Read until a full line; returns its length (the '\n' replaced by 0) or -1. */
static int read_line(int fd, char *buf, size_t cap, size_t *have, double deadline)
{
	for (;;) {
		char *nl = memchr(buf, '\n', *have);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		double left = deadline - now_ms();
		ssize_t n;

		if (nl) {
			*nl = 0;
			return (int)(nl - buf);
		}
		if (left <= 0 || *have == cap || poll(&p, 1, (int)left + 1) <= 0)
			return -1;
		n = read(fd, buf + *have, cap - *have);
		if (n <= 0)
			return -1;
		*have += (size_t)n;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
	long gap = argc > 3 ? strtol(argv[3], NULL, 10) : 10;
	static char buf[LINE_BYTES];
	size_t have = 0;
	double *rtt;
	int fd;

	if (argc < 3 || n < 1 || n > MAX_N || gap < 0 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: ctl_rtt SOCKET N [GAP_MS]\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "ctl_rtt: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	rtt = calloc((size_t)n, sizeof(*rtt));
	if (!rtt)
		return 2;
	for (long i = 0; i < n; i++) {
		char req[64];
		int len = snprintf(req, sizeof(req), "{\"id\":%ld,\"cmd\":\"vm.info\"}\n", i);
		double t0 = now_ms();
		int l;

		if (write(fd, req, (size_t)len) != len) {
			fprintf(stderr, "ctl_rtt: write: %s\n", strerror(errno));
			return 2;
		}
		l = read_line(fd, buf, sizeof(buf), &have, t0 + REPLY_MS);
		if (l < 0) {
			fprintf(stderr, "ctl_rtt: request %ld: no reply within %d ms\n", i,
				REPLY_MS);
			return 1;
		}
		rtt[i] = now_ms() - t0;
		if (!strstr(buf, "\"ok\"")) {
			fprintf(stderr, "ctl_rtt: request %ld: %s\n", i, buf);
			return 1;
		}
		memmove(buf, buf + l + 1, have - (size_t)l - 1);
		have -= (size_t)l + 1;
		if (gap)
			usleep((useconds_t)gap * 1000);
	}
	qsort(rtt, (size_t)n, sizeof(*rtt), cmp_double);
	printf("ctl_rtt: %ld requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", n, rtt[n / 2],
	       rtt[(n * 99 + 99) / 100 - 1], rtt[n - 1]);
	free(rtt);
	close(fd);
	return 0;
}
