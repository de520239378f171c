/*
 * A bounded, non-blocking output buffer for a device's host-side stream (the serial console):
 * bytes are queued and written without ever blocking the caller, whatever the file descriptor is
 * and whether anyone reads it. A full buffer refuses bytes (counted); the event loop writes the
 * rest when the descriptor becomes writable.
 *
 * How a write is kept from blocking, by kind of descriptor:
 *   - regular file or block device: plain write() (never waits for a reader);
 *   - pipe, FIFO, terminal: written through a second open file description of the same file
 *     (/proc/self/fd/N reopened with O_NONBLOCK), so the caller's descriptor (often stdout,
 *     shared with the shell) keeps its flags;
 *   - socket: send(MSG_DONTWAIT | MSG_NOSIGNAL);
 *   - anything that cannot be reopened: write() of at most 256 bytes, only when poll() says the
 *     descriptor is writable.
 * A write error other than EAGAIN (EPIPE: the reader went away) ends the output: what is queued
 * counts as dropped, later bytes are discarded uncounted, and the buffer reports room again.
 *
 * Locking: none inside. The owner serializes every call with its own lock, including from its
 * @ready hook.
 */
#ifndef DEVICES_OUTBUF_H
#define DEVICES_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct outbuf;

struct outbuf_stats {
	uint64_t written;  /* bytes written to the descriptor */
	uint64_t dropped;  /* bytes refused (buffer full), or queued when the output ended */
	uint64_t buffered; /* bytes queued now */
};

/**
 * outbuf_create() - a buffer of @size bytes in front of @fd (not owned: the caller closes it
 * after outbuf_destroy(); -1: every byte is discarded). @loop watches the descriptor while bytes
 * are waiting and then calls @ready(@opaque) on the loop thread, with no lock held; the owner
 * takes its lock and calls outbuf_flush(). Returns the buffer, or NULL (ENOMEM).
 */
struct outbuf *outbuf_create(int fd, size_t size, struct loop *loop, void (*ready)(void *opaque),
			     void *opaque);

/**
 * outbuf_put() - queue the @len bytes at @buf and write what the descriptor takes now, without
 * blocking. Returns the bytes accepted (queued or written): fewer than @len when the buffer is
 * full, the rest being dropped and counted.
 */
size_t outbuf_put(struct outbuf *ob, const void *buf, size_t len);

/** outbuf_room() - bytes outbuf_put() would accept now (SIZE_MAX once the output is gone). */
size_t outbuf_room(const struct outbuf *ob);

/** outbuf_flush() - write what the descriptor takes now (the @ready hook's job). */
void outbuf_flush(struct outbuf *ob);

/**
 * outbuf_drain() - write what is queued, blocking the caller (not the loop: for an owner that is
 * shutting down) while the descriptor takes bytes: it gives up once the descriptor has taken
 * nothing for @idle_ms milliseconds, so a slow reader still gets everything and one that never
 * reads costs @idle_ms. Bytes stay queued when it gives up. Returns 0 when the buffer is empty
 * (or the output ended), -ETIMEDOUT when bytes are left.
 */
int outbuf_drain(struct outbuf *ob, unsigned int idle_ms);

/** outbuf_get_stats() - the counters above. */
void outbuf_get_stats(const struct outbuf *ob, struct outbuf_stats *out);

/**
 * outbuf_destroy() - write what is queued, waiting at most @flush_ms milliseconds for the
 * descriptor to take it (a reader that is merely slow still gets the tail; one that never reads
 * costs at most @flush_ms), count the rest as dropped, stop watching and free. NULL is a no-op.
 * Returns the bytes dropped over the buffer's life.
 */
uint64_t outbuf_destroy(struct outbuf *ob, unsigned int flush_ms);

#endif
