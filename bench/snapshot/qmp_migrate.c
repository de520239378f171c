/*
 * qmp_migrate: save a running QEMU to a file through QMP, the way `vmm ctl snapshot create
 * --stop` saves ours, and time it (bench/snapshot).
 *
 *   qmp_migrate SOCK FILE
 *
 * Sends qmp_capabilities, migrate {"uri":"exec:cat > FILE"} (QEMU pauses the guest at the end of
 * the migration; a guest stopped before it would stay stopped after -incoming), polls
 * query-migrate every 10 ms until "completed" (or "failed"), then quit. Prints one line:
 *   elapsed_ms=N status=completed
 * Exit status 0 when completed, 1 when the migration failed, 2 on a protocol or connection error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int fd = -1;
static char buf[1 << 16];
static size_t len;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The next line from QMP into @line (events included); 0, or -1 at EOF. */
static int read_line(char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(buf, '\n', len);
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - buf);

			snprintf(line, cap, "%.*s", (int)l, buf);
			memmove(buf, nl + 1, len - l - 1);
			len -= l + 1;
			return 0;
		}
		if (len == sizeof(buf))
			len = 0; /* a line longer than the buffer: drop it */
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
}

/* Send @cmd and return its reply line (skipping events) in @reply. */
static int call(const char *cmd, char *reply, size_t cap)
{
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd) || write(fd, "\n", 1) != 1)
		return -1;
	do {
		if (read_line(reply, cap) < 0)
			return -1;
	} while (strstr(reply, "\"event\""));
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[1 << 16], cmd[8192];
	uint64_t t0;
	int ok;

	if (argc != 3) {
		fprintf(stderr, "usage: qmp_migrate SOCK FILE\n");
		return 2;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    read_line(line, sizeof(line)) < 0 ||
	    call("{\"execute\":\"qmp_capabilities\"}", line, sizeof(line)) < 0) {
		perror("qmp_migrate: connect");
		return 2;
	}
	t0 = now_ms();
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > %s\"}}", argv[2]);
	if (call(cmd, line, sizeof(line)) < 0 || strstr(line, "\"error\"")) {
		fprintf(stderr, "qmp_migrate: %s\n", line);
		return 2;
	}
	for (;;) {
		if (call("{\"execute\":\"query-migrate\"}", line, sizeof(line)) < 0)
			return 2;
		if (strstr(line, "\"completed\"") || strstr(line, "\"failed\""))
			break;
		usleep(10000);
	}
	ok = strstr(line, "\"completed\"") != NULL;
	printf("elapsed_ms=%llu status=%s\n", (unsigned long long)(now_ms() - t0),
	       ok ? "completed" : "failed");
	call("{\"execute\":\"quit\"}", line, sizeof(line));
	return ok ? 0 : 1;
}
