/*
 * One reader of '\n'-terminated lines from a stream socket, shared by the `vmm ctl` client, the
 * control load test and the unit tests' client (docs/control.md "Framing"). Blocking reads
 * with poll() and a deadline; no thread-safety (one reader per fd).
 */
#ifndef VMM_CONTROL_LINE_READER_H
#define VMM_CONTROL_LINE_READER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct line_reader {
	int fd;
	bool exact; /* read one byte at a time: nothing past the line leaves the socket */
	size_t max; /* longest line accepted, bytes */
	char *buf;
	size_t len, cap; /* buffered bytes [0, len) */
	size_t consumed; /* bytes of the line last returned, dropped at the next call */
};

/**
 * line_reader_init() - read lines of at most @max_line bytes from @fd (not owned). @exact:
 * recv() one byte at a time, for callers that also read @fd by other means.
 */
void line_reader_init(struct line_reader *r, int fd, size_t max_line, bool exact);

/** line_reader_free() - free the buffer (not the fd). */
void line_reader_free(struct line_reader *r);

/**
 * line_reader_next() - the next line, without its '\n', NUL-terminated in *@line (valid until
 * the next call) and its length in *@len (may be NULL).
 * @deadline_ns: CLOCK_MONOTONIC (now_ns()) time to give up at, 0 for none.
 * @stop: when not NULL and set (a signal handler's flag), return -EINTR; a poll() interrupted
 * by a signal is retried after that check.
 * Returns 1, 0 on EOF (a partial last line is dropped), -ETIMEDOUT, -EINTR, -EMSGSIZE (a line
 * longer than the maximum), -ENOMEM or -errno of poll()/recv().
 */
int line_reader_next(struct line_reader *r, uint64_t deadline_ns, const volatile sig_atomic_t *stop,
		     char **line, size_t *len);

#endif
