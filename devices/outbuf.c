#include "outbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../vmm/loop.h"
#include "../vmm/util.h"

#define POLLED_MAX 256 /* bytes per write when only poll() keeps it from blocking */

enum out_kind { OUT_PLAIN, OUT_SOCKET, OUT_POLLED };

struct outbuf {
	int fd;	    /* where bytes go; -1: discarded (none, or the output ended) */
	int own_fd; /* our non-blocking reopen of the caller's descriptor, or -1 */
	enum out_kind kind;
	struct loop *loop;
	bool watched; /* EPOLLOUT watch on fd while bytes wait */
	void (*ready)(void *opaque);
	void *opaque;
	uint8_t *buf;
	size_t size, head, len;
	uint64_t written, dropped;
};

/* Pick how to write @fd without blocking (see outbuf.h). */
static void open_output(struct outbuf *ob, int fd)
{
	struct stat st;
	char path[64];

	ob->fd = fd;
	ob->kind = OUT_PLAIN;
	if (fd < 0 || fstat(fd, &st) < 0 || S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ob->own_fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (ob->own_fd >= 0)
		ob->fd = ob->own_fd;
	else
		ob->kind = S_ISSOCK(st.st_mode) ? OUT_SOCKET : OUT_POLLED;
}

static ssize_t out_write(struct outbuf *ob, const uint8_t *p, size_t n)
{
	struct pollfd pfd = {.fd = ob->fd, .events = POLLOUT};

	switch (ob->kind) {
	case OUT_SOCKET:
		return send(ob->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	case OUT_POLLED:
		if (poll(&pfd, 1, 0) == 0) {
			errno = EAGAIN;
			return -1;
		}
		return write(ob->fd, p, MIN(n, (size_t)POLLED_MAX));
	default:
		return write(ob->fd, p, n);
	}
}

static void loop_ready(void *opaque, int fd, uint32_t events)
{
	struct outbuf *ob = opaque;

	(void)fd;
	(void)events; /* EPOLLERR/EPOLLHUP: the owner's flush meets the error and ends output */
	ob->ready(ob->opaque);
}

/* Watch for writability only while bytes wait: an idle descriptor costs the loop nothing, and a
 * closed pipe's EPOLLERR cannot spin it. */
static void watch(struct outbuf *ob, bool on)
{
	if (on == ob->watched || !ob->loop)
		return;
	if (on)
		ob->watched = loop_add_fd(ob->loop, ob->fd, EPOLLOUT, loop_ready, ob) == 0;
	else {
		loop_del_fd(ob->loop, ob->fd);
		ob->watched = false;
	}
}

/* The reader went away (or the descriptor failed): what is queued and all later bytes go. */
static void end_output(struct outbuf *ob)
{
	watch(ob, false);
	ob->dropped += ob->len;
	ob->len = 0;
	ob->fd = -1;
}

/* Write from the head of the ring until the descriptor stops taking bytes. Returns 0 when the
 * buffer is empty (or the output ended), -EAGAIN when bytes are left. */
static int write_out(struct outbuf *ob)
{
	while (ob->len && ob->fd >= 0) {
		ssize_t n = out_write(ob, ob->buf + ob->head, MIN(ob->len, ob->size - ob->head));

		if (n > 0) {
			ob->head = (ob->head + (size_t)n) % ob->size;
			ob->len -= (size_t)n;
			ob->written += (uint64_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			return -EAGAIN;
		} else if (!(n < 0 && errno == EINTR)) {
			end_output(ob);
		}
	}
	return 0;
}

void outbuf_flush(struct outbuf *ob)
{
	watch(ob, write_out(ob) == -EAGAIN);
}

size_t outbuf_put(struct outbuf *ob, const void *buf, size_t len)
{
	size_t n, tail, first;

	if (ob->fd < 0)
		return len; /* no output: discarded, nothing to wait for */
	n = MIN(len, ob->size - ob->len);
	tail = (ob->head + ob->len) % ob->size;
	first = MIN(n, ob->size - tail);
	memcpy(ob->buf + tail, buf, first);
	memcpy(ob->buf, (const uint8_t *)buf + first, n - first);
	ob->len += n;
	ob->dropped += len - n;
	if (!ob->watched) /* else the loop writes once the descriptor takes more */
		outbuf_flush(ob);
	return n;
}

size_t outbuf_room(const struct outbuf *ob)
{
	return ob->fd < 0 ? SIZE_MAX : ob->size - ob->len;
}

int outbuf_drain(struct outbuf *ob, unsigned int idle_ms)
{
	uint64_t deadline = now_ns() + idle_ms * 1000000ULL, now, before;
	struct pollfd pfd = {.events = POLLOUT};

	for (;;) {
		before = ob->written;
		if (write_out(ob) == 0)
			return 0;
		now = now_ns();
		if (ob->written != before)
			deadline = now + idle_ms * 1000000ULL;
		else if (now >= deadline)
			return -ETIMEDOUT;
		pfd.fd = ob->fd;
		poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000));
	}
}

void outbuf_get_stats(const struct outbuf *ob, struct outbuf_stats *out)
{
	*out = (struct outbuf_stats){
		.written = ob->written, .dropped = ob->dropped, .buffered = ob->len};
}

struct outbuf *outbuf_create(int fd, size_t size, struct loop *loop, void (*ready)(void *opaque),
			     void *opaque)
{
	struct outbuf *ob = calloc(1, sizeof(*ob));

	if (!ob)
		return NULL;
	ob->buf = malloc(size ? size : 1);
	if (!ob->buf) {
		free(ob);
		return NULL;
	}
	ob->size = size ? size : 1;
	ob->own_fd = -1;
	ob->loop = loop;
	ob->ready = ready;
	ob->opaque = opaque;
	open_output(ob, fd);
	return ob;
}

uint64_t outbuf_destroy(struct outbuf *ob, unsigned int flush_ms)
{
	uint64_t deadline, now, dropped;

	if (!ob)
		return 0;
	watch(ob, false);
	deadline = now_ns() + flush_ms * 1000000ULL;
	while (write_out(ob) == -EAGAIN && (now = now_ns()) < deadline) {
		struct pollfd pfd = {.fd = ob->fd, .events = POLLOUT};

		poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000));
	}
	ob->dropped += ob->len;
	dropped = ob->dropped;
	if (ob->own_fd >= 0)
		close(ob->own_fd);
	free(ob->buf);
	free(ob);
	return dropped;
}
