#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../util.h"

#define MSG_BATCH 16

struct uffd_thread {
	int fd, stop_fd;
	const struct uffd_ops *ops;
	void *opaque;
	pthread_t thread;
	uint64_t faults;
};

static int open_fd(void)
{
	int fd = -1;

#ifdef __NR_userfaultfd
	fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
#else
	errno = ENOSYS;
#endif
#ifdef USERFAULTFD_IOC_NEW
	{
		/* Linux >= 6.1: the device node, when the syscall is restricted (EPERM). */
		int e = errno, dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
			if (fd >= 0)
				return fd;
		}
		errno = e;
	}
#endif
	return -errno;
}

int uffd_open(bool wp, int *out)
{
	struct uffdio_api api = {.api = UFFD_API};
	int fd = open_fd();

	if (fd < 0)
		return fd;
	if (wp)
		api.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = errno;

		close(fd);
		return e == EINVAL && wp ? -EOPNOTSUPP : -e;
	}
	if (wp && !(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		close(fd);
		return -EOPNOTSUPP;
	}
	*out = fd;
	return 0;
}

int uffd_register(int fd, void *addr, size_t len, bool wp)
{
	struct uffdio_register reg = {
		.range = {.start = (uintptr_t)addr, .len = len},
		.mode = UFFDIO_REGISTER_MODE_MISSING | (wp ? UFFDIO_REGISTER_MODE_WP : 0),
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	if (wp && !(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		uffd_unregister(fd, addr, len);
		return -EOPNOTSUPP;
	}
	return 0;
}

int uffd_unregister(int fd, void *addr, size_t len)
{
	struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};

	return ioctl(fd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;
}

int uffd_writeprotect(int fd, void *addr, size_t len, bool protect, bool wake)
{
	struct uffdio_writeprotect w = {
		.range = {.start = (uintptr_t)addr, .len = len},
		.mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) |
			(!protect && !wake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0),
	};

	for (;;) {
		if (ioctl(fd, UFFDIO_WRITEPROTECT, &w) == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}

/*
 * Issue a resolving ioctl (@req with @arg; *@out is its result field), retrying EAGAIN/EINTR. A
 * page someone else resolved first (EEXIST) still gets its waiters woken.
 */
static int resolve(int fd, unsigned long req, void *arg, __s64 *out, void *dst, size_t len)
{
	for (;;) {
		*out = 0;
		if (ioctl(fd, req, arg) == 0)
			return 0;
		if (errno == EEXIST) {
			uffd_wake(fd, dst, len);
			return -EEXIST;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}

int uffd_copy(int fd, void *dst, const void *src, size_t len)
{
	struct uffdio_copy c = {.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len};

	return resolve(fd, UFFDIO_COPY, &c, &c.copy, dst, len);
}

int uffd_zeropage(int fd, void *dst, size_t len)
{
	struct uffdio_zeropage z = {.range = {.start = (uintptr_t)dst, .len = len}};

	return resolve(fd, UFFDIO_ZEROPAGE, &z, &z.zeropage, dst, len);
}

int uffd_wake(int fd, void *addr, size_t len)
{
	struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};

	return ioctl(fd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}

static void handle(struct uffd_thread *t, const struct uffd_msg *m)
{
	uintptr_t addr;

	if (m->event != UFFD_EVENT_PAGEFAULT)
		return; /* no non-cooperative features are asked for */
	addr = (uintptr_t)m->arg.pagefault.address & ~(uintptr_t)4095;
	__atomic_add_fetch(&t->faults, 1, __ATOMIC_RELAXED);
	if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
		if (t->ops->wp)
			t->ops->wp(t->opaque, addr);
		return;
	}
	t->ops->missing(t->opaque, addr, m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
}

static void *thread_main(void *arg)
{
	struct uffd_thread *t = arg;
	struct uffd_msg msgs[MSG_BATCH];

	for (;;) {
		struct pollfd pfd[2] = {{.fd = t->fd, .events = POLLIN},
					{.fd = t->stop_fd, .events = POLLIN}};
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			pr_err("userfaultfd thread: poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		n = read(t->fd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			pr_err("userfaultfd thread: read: %s", strerror(errno));
			break;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			handle(t, &msgs[i]);
	}
	return NULL;
}

int uffd_thread_start(int fd, const struct uffd_ops *ops, void *opaque, struct uffd_thread **out)
{
	struct uffd_thread *t = calloc(1, sizeof(*t));
	sigset_t all, old;
	int ret;

	if (!t)
		return -ENOMEM;
	t->fd = fd;
	t->ops = ops;
	t->opaque = opaque;
	t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->stop_fd < 0) {
		ret = -errno;
		free(t);
		return ret;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -vmm_thread_create_role(&t->thread, VMM_THREAD_UFFD, thread_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		close(t->stop_fd);
		free(t);
		return ret;
	}
	pthread_setname_np(t->thread, "vmm-uffd");
	*out = t;
	return 0;
}

void uffd_thread_stop(struct uffd_thread *t)
{
	uint64_t one = 1;

	if (!t)
		return;
	if (write(t->stop_fd, &one, sizeof(one)) < 0)
		pr_warn("userfaultfd thread: stop signal: %s", strerror(errno));
	pthread_join(t->thread, NULL);
	close(t->stop_fd);
	free(t);
}

uint64_t uffd_thread_faults(const struct uffd_thread *t)
{
	return t ? __atomic_load_n(&t->faults, __ATOMIC_RELAXED) : 0;
}
