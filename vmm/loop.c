#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "util.h"

#define LOOP_MAX_TIMERS 32

struct loop_entry {
	int fd;
	bool dead;
	loop_fd_fn fn;
	void *opaque;
	struct loop_entry *next;
};

struct loop_timer {
	int fd; /* timerfd, -1 when the slot is free */
	loop_timer_fn fn;
	void *opaque;
	bool periodic;
	struct loop *loop;
};

struct loop {
	int epfd;
	int stop_fd;
	volatile bool stop;
	pthread_mutex_t lock;
	struct loop_entry *entries;   /* live and dead entries */
	struct loop_entry *graveyard; /* deleted while events may still point at them */
	struct loop_timer timers[LOOP_MAX_TIMERS];
};

static void stop_cb(void *opaque, int fd, uint32_t events)
{
	struct loop *loop = opaque;
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_warn("loop: reading stop eventfd: %s", strerror(errno));
	loop->stop = true;
}

struct loop *loop_create(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	pthread_mutex_init(&loop->lock, NULL);
	for (int i = 0; i < LOOP_MAX_TIMERS; i++)
		loop->timers[i].fd = -1;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->epfd < 0 || loop->stop_fd < 0 ||
	    loop_add_fd(loop, loop->stop_fd, EPOLLIN, stop_cb, loop) < 0) {
		int e = errno;

		loop_destroy(loop);
		errno = e;
		return NULL;
	}
	return loop;
}

static void free_list(struct loop_entry *e)
{
	while (e) {
		struct loop_entry *n = e->next;

		free(e);
		e = n;
	}
}

void loop_destroy(struct loop *loop)
{
	if (!loop)
		return;
	for (int i = 0; i < LOOP_MAX_TIMERS; i++)
		if (loop->timers[i].fd >= 0)
			close(loop->timers[i].fd);
	if (loop->stop_fd >= 0)
		close(loop->stop_fd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	free_list(loop->entries);
	free_list(loop->graveyard);
	free(loop);
}

static struct loop_entry *find_entry(struct loop *loop, int fd)
{
	for (struct loop_entry *e = loop->entries; e; e = e->next)
		if (e->fd == fd && !e->dead)
			return e;
	return NULL;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *opaque)
{
	struct epoll_event ev = {.events = events};
	struct loop_entry *e;
	int ret = 0;

	pthread_mutex_lock(&loop->lock);
	if (find_entry(loop, fd)) {
		ret = -EEXIST;
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		ret = -ENOMEM;
		goto out;
	}
	*e = (struct loop_entry){.fd = fd, .fn = fn, .opaque = opaque, .next = loop->entries};
	ev.data.ptr = e;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ret = -errno;
		free(e);
		goto out;
	}
	loop->entries = e;
out:
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

int loop_mod_fd(struct loop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events};
	struct loop_entry *e;
	int ret = 0;

	pthread_mutex_lock(&loop->lock);
	e = find_entry(loop, fd);
	if (!e) {
		ret = -ENOENT;
	} else {
		ev.data.ptr = e;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
			ret = -errno;
	}
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

int loop_del_fd(struct loop *loop, int fd)
{
	struct loop_entry **pp, *e;
	int ret = -ENOENT;

	pthread_mutex_lock(&loop->lock);
	for (pp = &loop->entries; (e = *pp); pp = &e->next) {
		if (e->fd != fd || e->dead)
			continue;
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
		/* Events already fetched may still point at it: free after the batch. */
		e->dead = true;
		*pp = e->next;
		e->next = loop->graveyard;
		loop->graveyard = e;
		ret = 0;
		break;
	}
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

static void timer_cb(void *opaque, int fd, uint32_t events)
{
	struct loop_timer *t = opaque;
	uint64_t expirations;

	(void)events;
	if (read(fd, &expirations, sizeof(expirations)) < 0)
		return;
	t->fn(t->opaque);
	/* A one-shot timer frees its slot, unless the callback already deleted or reused it. */
	if (!t->periodic && t->fd == fd) {
		loop_del_fd(t->loop, fd);
		close(fd);
		t->fd = -1;
	}
}

int loop_add_timer(struct loop *loop, uint64_t period_ms, bool periodic, loop_timer_fn fn,
		   void *opaque)
{
	struct itimerspec its = {0};
	struct loop_timer *t = NULL;
	int id, fd, ret;

	if (!period_ms)
		return -EINVAL;
	pthread_mutex_lock(&loop->lock);
	for (id = 0; id < LOOP_MAX_TIMERS; id++) {
		if (loop->timers[id].fd < 0) {
			t = &loop->timers[id];
			t->fd = -2; /* reserved */
			break;
		}
	}
	pthread_mutex_unlock(&loop->lock);
	if (!t)
		return -ENOSPC;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0) {
		t->fd = -1;
		return -errno;
	}
	its.it_value.tv_sec = period_ms / 1000;
	its.it_value.tv_nsec = (period_ms % 1000) * 1000000;
	if (periodic)
		its.it_interval = its.it_value;
	t->fn = fn;
	t->opaque = opaque;
	t->periodic = periodic;
	t->loop = loop;
	t->fd = fd;
	if (timerfd_settime(fd, 0, &its, NULL) < 0 ||
	    (ret = loop_add_fd(loop, fd, EPOLLIN, timer_cb, t)) < 0) {
		ret = -errno;
		close(fd);
		t->fd = -1;
		return ret;
	}
	return id;
}

int loop_del_timer(struct loop *loop, int id)
{
	struct loop_timer *t;

	if (id < 0 || id >= LOOP_MAX_TIMERS || loop->timers[id].fd < 0)
		return -ENOENT;
	t = &loop->timers[id];
	loop_del_fd(loop, t->fd);
	close(t->fd);
	t->fd = -1;
	return 0;
}

int loop_dispatch(struct loop *loop, int timeout_ms)
{
	struct epoll_event evs[32];
	int n = epoll_wait(loop->epfd, evs, ARRAY_SIZE(evs), timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n && !loop->stop; i++) {
		struct loop_entry *e = evs[i].data.ptr;

		if (!e->dead)
			e->fn(e->opaque, e->fd, evs[i].events);
	}
	pthread_mutex_lock(&loop->lock);
	free_list(loop->graveyard);
	loop->graveyard = NULL;
	pthread_mutex_unlock(&loop->lock);
	return n;
}

int loop_run(struct loop *loop)
{
	while (!loop->stop) {
		int n = loop_dispatch(loop, -1);

		if (n < 0)
			return n;
	}
	return 0;
}

void loop_stop(struct loop *loop)
{
	uint64_t one = 1;

	loop->stop = true;
	if (write(loop->stop_fd, &one, sizeof(one)) < 0) {
		/* Counter overflow only; the flag is set anyway. */
	}
}
