#include "line_reader.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../util.h"

#define FIRST_CAP 65536

void line_reader_init(struct line_reader *r, int fd, size_t max_line, bool exact)
{
	*r = (struct line_reader){.fd = fd, .exact = exact, .max = max_line};
}

void line_reader_free(struct line_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = r->consumed = 0;
}

int line_reader_next(struct line_reader *r, uint64_t deadline_ns, const volatile sig_atomic_t *stop,
		     char **line, size_t *len)
{
	if (r->consumed) {
		memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
		r->len -= r->consumed;
		r->consumed = 0;
	}
	for (;;) {
		char *nl = r->len ? memchr(r->buf, '\n', r->len) : NULL;
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		int timeout = -1;
		ssize_t n;

		if (nl) {
			*nl = '\0';
			r->consumed = (size_t)(nl - r->buf) + 1;
			*line = r->buf;
			if (len)
				*len = (size_t)(nl - r->buf);
			return 1;
		}
		if (r->len > r->max)
			return -EMSGSIZE;
		if (r->len + 1 >= r->cap) {
			size_t cap = r->cap ? r->cap * 2 : FIRST_CAP;
			char *b;

			if (cap > r->max + 2)
				cap = MAX(r->max + 2, r->len + 2);
			b = realloc(r->buf, cap);
			if (!b)
				return -ENOMEM;
			r->buf = b;
			r->cap = cap;
		}
		if (deadline_ns) {
			uint64_t now = now_ns();

			if (now >= deadline_ns)
				return -ETIMEDOUT;
			timeout = (int)MIN((deadline_ns - now) / 1000000 + 1, (uint64_t)INT32_MAX);
		}
		if (stop && *stop)
			return -EINTR;
		n = poll(&pfd, 1, timeout);
		if (n < 0 && errno == EINTR)
			continue; /* the check above ends the wait when @stop was set */
		if (n < 0)
			return -errno;
		if (n == 0)
			continue;
		n = recv(r->fd, r->buf + r->len, r->exact ? 1 : r->cap - r->len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		r->len += (size_t)n;
	}
}
