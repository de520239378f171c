/*
 * balloon_timer: set a balloon target on a running VMM and time how long the guest takes to
 * reach it, for our VMM (control socket, docs/control.md) and QEMU (QMP) alike, polling the
 * balloon's `actual` the same way for both.
 *
 *   balloon_timer --vmm SOCK  --guest-mib N [--poll-ms MS] [--timeout S]
 *   balloon_timer --qmp SOCK  --guest-mib N [--poll-ms MS] [--timeout S]
 *   balloon_timer --vmm|--qmp SOCK --idle-ms MS [--poll-ms MS]   (only poll, for the poll cost)
 *
 * N is the memory the guest keeps (QMP `balloon` value; our balloon.set guest_mib). The clock
 * starts right before the set request is sent and stops at the first poll reply that shows
 * `actual` at the target. Prints one line:
 *   elapsed_ms=F polls=N target_mib=N
 * Exit status 0, 1 when the deadline passed first, 2 on a protocol or connection error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 65536

static int fd = -1;
static bool qmp;
static char rbuf[LINE_MAX_LEN];
static size_t rlen;
static uint64_t next_id = 1;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "balloon_timer: %s%s%s\n", what, errno ? ": " : "",
		errno ? strerror(errno) : "");
	exit(2);
}

/* One '\n'-terminated line into @out (NUL-terminated, newline stripped). */
static void read_line(char *out, size_t size)
{
	for (;;) {
		char *nl = memchr(rbuf, '\n', rlen);

		if (nl) {
			size_t n = (size_t)(nl - rbuf);

			if (n >= size)
				n = size - 1;
			memcpy(out, rbuf, n);
			out[n] = 0;
			rlen -= (size_t)(nl + 1 - rbuf);
			memmove(rbuf, nl + 1, rlen);
			return;
		}
		if (rlen == sizeof(rbuf)) {
			errno = 0;
			die("reply line too long");
		}
		ssize_t r = recv(fd, rbuf + rlen, sizeof(rbuf) - rlen, 0);

		if (r <= 0) {
			if (r == 0)
				errno = 0;
			die("connection closed while waiting for a reply");
		}
		rlen += (size_t)r;
	}
}

static void send_str(const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t w = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (w < 0)
			die("send");
		off += (size_t)w;
	}
}

/* Send @req and return the reply line in @out, skipping event lines (both protocols). */
static void call(const char *req, char *out, size_t size)
{
	send_str(req);
	for (;;) {
		read_line(out, size);
		if (strstr(out, "\"event\""))
			continue;
		if (strstr(out, "\"error\"")) {
			errno = 0;
			fprintf(stderr, "balloon_timer: error reply to %s: %s\n", req, out);
			exit(2);
		}
		return;
	}
}

static uint64_t field_u64(const char *line, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(line, key);
	if (!p) {
		errno = 0;
		fprintf(stderr, "balloon_timer: no %s in %s\n", name, line);
		exit(2);
	}
	p += strlen(key);
	while (*p == ' ')
		p++;
	return strtoull(p, NULL, 10);
}

static void connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[LINE_MAX_LEN];

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		die(path);
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die(path);
	if (qmp) {
		read_line(line, sizeof(line)); /* the greeting */
		call("{\"execute\":\"qmp_capabilities\"}\n", line, sizeof(line));
	}
}

static void set_target(uint64_t guest_mib)
{
	char req[256], line[LINE_MAX_LEN];

	if (qmp)
		snprintf(req, sizeof(req),
			 "{\"execute\":\"balloon\",\"arguments\":{\"value\":%" PRIu64 "}}\n",
			 guest_mib << 20);
	else
		snprintf(req, sizeof(req),
			 "{\"id\":%" PRIu64
			 ",\"cmd\":\"balloon.set\",\"args\":{\"guest_mib\":%" PRIu64 "}}\n",
			 next_id++, guest_mib);
	call(req, line, sizeof(line));
}

/* True when the guest's `actual` equals the target for @guest_mib. */
static bool reached(uint64_t guest_mib)
{
	char req[128], line[LINE_MAX_LEN];

	if (qmp) {
		call("{\"execute\":\"query-balloon\"}\n", line, sizeof(line));
		return field_u64(line, "actual") == guest_mib << 20;
	}
	snprintf(req, sizeof(req), "{\"id\":%" PRIu64 ",\"cmd\":\"balloon.get\"}\n", next_id++);
	call(req, line, sizeof(line));
	return field_u64(line, "actual_pages") == field_u64(line, "target_pages");
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void usage(void)
{
	fprintf(stderr, "usage: balloon_timer --vmm|--qmp SOCK (--guest-mib N [--timeout S] | "
			"--idle-ms MS) [--poll-ms MS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t guest_mib = UINT64_MAX, poll_ms = 10, timeout_s = 120, idle_ms = 0, polls = 0;
	const char *sock = NULL;
	uint64_t t0, deadline;
	bool ok = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(a, "--vmm") || !strcmp(a, "--qmp")) {
			qmp = !strcmp(a, "--qmp");
			sock = v;
		} else if (!strcmp(a, "--guest-mib")) {
			guest_mib = strtoull(v, NULL, 10);
		} else if (!strcmp(a, "--poll-ms")) {
			poll_ms = strtoull(v, NULL, 10);
		} else if (!strcmp(a, "--timeout")) {
			timeout_s = strtoull(v, NULL, 10);
		} else if (!strcmp(a, "--idle-ms")) {
			idle_ms = strtoull(v, NULL, 10);
		} else {
			usage();
		}
		i++;
	}
	if (!sock || (guest_mib == UINT64_MAX) == !idle_ms)
		usage();
	connect_to(sock);

	if (idle_ms) {
		t0 = now_ns();
		deadline = t0 + idle_ms * 1000000ULL;
		while (now_ns() < deadline) {
			reached(0);
			polls++;
			sleep_ms(poll_ms);
		}
		printf("elapsed_ms=%.3f polls=%" PRIu64 "\n", (double)(now_ns() - t0) / 1e6, polls);
		return 0;
	}

	t0 = now_ns();
	deadline = t0 + timeout_s * 1000000000ULL;
	set_target(guest_mib);
	for (;;) {
		polls++;
		if (reached(guest_mib)) {
			ok = true;
			break;
		}
		if (now_ns() >= deadline)
			break;
		sleep_ms(poll_ms);
	}
	printf("elapsed_ms=%.3f polls=%" PRIu64 " target_mib=%" PRIu64 "%s\n",
	       (double)(now_ns() - t0) / 1e6, polls, guest_mib, ok ? "" : " timeout=1");
	return ok ? 0 : 1;
}
