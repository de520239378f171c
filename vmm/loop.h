/*
 * The epoll event loop (one thread): ioeventfds (queue kicks), timers, signals, control clients.
 * Callbacks run on the loop thread, one at a time.
 */
#ifndef VMM_LOOP_H
#define VMM_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

/* @events: EPOLLIN/EPOLLOUT/EPOLLHUP/EPOLLERR bits that fired. */
typedef void (*loop_fd_fn)(void *opaque, int fd, uint32_t events);
typedef void (*loop_timer_fn)(void *opaque);

/** loop_create() - new empty loop. Returns it, or NULL with errno set. */
struct loop *loop_create(void);

/** loop_destroy() - close the epoll fd and timers it owns (not the fds added with loop_add_fd). */
void loop_destroy(struct loop *loop);

/**
 * loop_add_fd() - watch @fd for @events (EPOLLIN, EPOLLOUT, ...); @fn(@opaque, fd, events) runs on
 * the loop thread. Thread-safe. Returns 0 or -errno (-EEXIST when already watched).
 */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *opaque);

/** loop_mod_fd() - change the events watched on @fd. Returns 0 or -errno. */
int loop_mod_fd(struct loop *loop, int fd, uint32_t events);

/**
 * loop_del_fd() - stop watching @fd (the caller still owns and closes it). Safe to call from a
 * callback, including @fd's own. Returns 0 or -ENOENT.
 */
int loop_del_fd(struct loop *loop, int fd);

/**
 * loop_add_timer() - call @fn(@opaque) after @period_ms milliseconds, then every @period_ms if
 * @periodic. Returns a timer id >= 0 for loop_del_timer(), or -errno.
 */
int loop_add_timer(struct loop *loop, uint64_t period_ms, bool periodic, loop_timer_fn fn,
		   void *opaque);

/** loop_del_timer() - cancel timer @id. Returns 0 or -ENOENT. */
int loop_del_timer(struct loop *loop, int id);

/**
 * loop_run() - dispatch events until loop_stop(). Returns 0, or -errno when epoll_wait fails.
 */
int loop_run(struct loop *loop);

/**
 * loop_dispatch() - one round of loop_run(): wait at most @timeout_ms (-1: forever, 0: not at all)
 * for events and run their callbacks (not more after loop_stop()). Loop thread only (unit tests
 * and fuzz targets drive a loop with it). Returns the number of events fetched, or -errno.
 */
int loop_dispatch(struct loop *loop, int timeout_ms);

/** loop_stop() - make loop_run() return soon. Thread- and async-signal-safe. */
void loop_stop(struct loop *loop);

#endif
