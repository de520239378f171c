/*
 * userfaultfd for the compressed tier (design.md "Threads": one userfaultfd thread, latency
 * critical): thin wrappers around the UFFDIO_* ioctls (<linux/userfaultfd.h>) and the handler
 * thread that reads fault messages and hands each to the tier.
 *
 * Registration is per range and is only done where the tier has evicted pages (2 MiB chunks), so
 * memory that was never reclaimed faults in the ordinary way. MISSING faults are resolved with
 * UFFDIO_COPY / UFFDIO_ZEROPAGE; write-protect faults (UFFD_FEATURE_PAGEFAULT_FLAG_WP, anonymous
 * memory, Linux >= 5.7) arrive while the reclaim worker holds pages still during compression and
 * are released by its UFFDIO_WRITEPROTECT un-protect, which wakes the waiting threads.
 * Faulting threads may be vCPUs inside KVM (get_user_pages waits on the handler) or VMM threads
 * touching guest RAM; the handler thread must never wait for anything they hold.
 */
#ifndef VMM_MEM_UFFD_H
#define VMM_MEM_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uffd_thread;

struct uffd_ops {
	/*
	 * A thread touched the missing page at host address @addr (page aligned); @write: the
	 * access was a write. Must resolve it (uffd_copy()/uffd_zeropage()) or the thread waits
	 * forever.
	 */
	void (*missing)(void *opaque, uintptr_t addr, bool write);
	/* A thread wrote the write-protected page at @addr (page aligned). May be NULL. */
	void (*wp)(void *opaque, uintptr_t addr);
};

/**
 * uffd_open() - a new userfaultfd (non-blocking, close-on-exec) after the UFFDIO_API handshake.
 * Tries the userfaultfd(2) syscall, then /dev/userfaultfd. @wp: require write-protect faults
 * (UFFD_FEATURE_PAGEFAULT_FLAG_WP). Sets *@fd. Returns 0, -ENOSYS (no userfaultfd), -EPERM (not
 * allowed: vm.unprivileged_userfaultfd), -EOPNOTSUPP (@wp asked on a kernel without it).
 */
int uffd_open(bool wp, int *fd);

/**
 * uffd_register() - register [@addr, @addr + @len) (page aligned, anonymous private memory) for
 * MISSING faults, and write-protect faults when @wp. Returns 0 or -errno (-EOPNOTSUPP when the
 * range does not support UFFDIO_WRITEPROTECT although @wp).
 */
int uffd_register(int fd, void *addr, size_t len, bool wp);

/** uffd_unregister() - undo uffd_register() over [@addr, @addr + @len). Returns 0 or -errno. */
int uffd_unregister(int fd, void *addr, size_t len);

/**
 * uffd_writeprotect() - write-protect (@protect) or un-protect [@addr, @addr + @len); an
 * un-protect also wakes the threads waiting on a write-protect fault there unless !@wake.
 * Only present pages are protected. Returns 0 or -errno.
 */
int uffd_writeprotect(int fd, void *addr, size_t len, bool protect, bool wake);

/**
 * uffd_copy() - atomically fill the missing page(s) at @dst with @len bytes from @src and wake
 * the waiting threads. Returns 0, -EEXIST (already present: someone else resolved it; the
 * waiters are woken), or -errno. Retries -EAGAIN.
 */
int uffd_copy(int fd, void *dst, const void *src, size_t len);

/** uffd_zeropage() - map the zero page at missing @dst (@len bytes); as uffd_copy(). */
int uffd_zeropage(int fd, void *dst, size_t len);

/** uffd_wake() - wake the threads waiting on faults in [@addr, @addr + @len). */
int uffd_wake(int fd, void *addr, size_t len);

/**
 * uffd_thread_start() - start the handler thread on @fd: it reads fault messages and calls @ops
 * (with @opaque) for each, in order, on its own thread. @ops must outlive it. All signals are
 * blocked in it. Returns 0 or -errno; *@out is the thread.
 */
int uffd_thread_start(int fd, const struct uffd_ops *ops, void *opaque, struct uffd_thread **out);

/**
 * uffd_thread_stop() - stop and join the handler thread and free @t (NULL is a no-op). Call only
 * when no thread can fault on the registered ranges any more (vCPUs joined), else they wait
 * forever. Does not close the fd.
 */
void uffd_thread_stop(struct uffd_thread *t);

/** uffd_thread_faults() - messages handled so far by @t. */
uint64_t uffd_thread_faults(const struct uffd_thread *t);

#endif
