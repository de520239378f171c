/* Logging, fatal errors and small helpers shared by every module. */
#ifndef VMM_UTIL_H
#define VMM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#define ARRAY_SIZE(a)	 (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)	 ((a) < (b) ? (a) : (b))
#define MAX(a, b)	 ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a)	 (((x) + (a)-1) & ~((typeof(x))(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((typeof(x))(a)-1))
#define KiB		 (1024ULL)
#define MiB		 (1024ULL * KiB)
#define GiB		 (1024ULL * MiB)

/* LOG_QUIET as log_level drops every message (fuzz targets feeding errors by the million). */
enum log_level { LOG_QUIET = -1, LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Current verbosity; messages above it are dropped. Default LOG_WARN, VMM_DEBUG=1 raises it. */
extern enum log_level log_level;

/**
 * vmm_log() - print one line "vmm: <level>: ..." to stderr.
 * @lvl: severity; dropped when above log_level.
 * @fmt: printf format; a trailing newline is added when missing.
 */
void vmm_log(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * die() - print an error and exit(2). Only for failures before the guest runs (style rule 7).
 */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define pr_err(...)   vmm_log(LOG_ERR, __VA_ARGS__)
#define pr_warn(...)  vmm_log(LOG_WARN, __VA_ARGS__)
#define pr_info(...)  vmm_log(LOG_INFO, __VA_ARGS__)
#define pr_debug(...) vmm_log(LOG_DEBUG, __VA_ARGS__)

/**
 * ratelimit_ok() - token bucket for guest-caused messages: at most 10 per second per @state.
 * @state: caller-owned bucket (zero-initialised static is fine). Returns true when the caller may
 * log.
 */
struct ratelimit {
	uint64_t window_ns;
	unsigned int count;
};
bool ratelimit_ok(struct ratelimit *state);

/* Log at most 10 lines per second from this call site: for anything a guest can trigger. */
#define pr_err_ratelimited(...)              \
	do {                                 \
		static struct ratelimit _rl; \
		if (ratelimit_ok(&_rl))      \
			pr_err(__VA_ARGS__); \
	} while (0)
#define pr_warn_ratelimited(...)              \
	do {                                  \
		static struct ratelimit _rl;  \
		if (ratelimit_ok(&_rl))       \
			pr_warn(__VA_ARGS__); \
	} while (0)

/** now_ns() - CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/**
 * parse_size() - parse "512", "64K", "256M", "2G" (binary units, case-insensitive) into bytes.
 * @s: NUL-terminated text; @out: result in bytes.
 * Returns 0, or -EINVAL for malformed text, -ERANGE on overflow.
 */
int parse_size(const char *s, uint64_t *out);

#define VMM_THREAD_STACK (1024 * 1024) /* bytes */

/**
 * vmm_thread_create() - pthread_create() with a VMM_THREAD_STACK (1 MiB) stack. glibc's default
 * (8 MiB) mapping lands next to the 2 MiB-aligned guest RAM and a host with THP "always" backs
 * its touched top with a 2 MiB huge page per thread; a stack under 2 MiB never holds one.
 * @thread, @fn, @arg: as pthread_create(). Returns 0 or a positive errno, as pthread_create().
 */
int vmm_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg);

/*
 * What a VMM thread does: its seccomp filter is chosen by this (vmm/sandbox.h). Every thread the
 * VMM starts names its role; the main thread is VMM_THREAD_LOOP.
 */
enum vmm_thread_role {
	VMM_THREAD_LOOP,    /* main thread: event loop, control socket, device queue work */
	VMM_THREAD_VCPU,    /* KVM_RUN and exit dispatch */
	VMM_THREAD_UFFD,    /* compressed tier: userfaultfd fault-in */
	VMM_THREAD_RECLAIM, /* compressed tier: the reclaim worker */
	VMM_THREAD_EVENTS,  /* a device's event delivery thread (virtio-balloon) */
	VMM_THREAD_ROLES
};

/** vmm_thread_role_name() - "loop", "vcpu", ... for messages; "?" for an unknown role. */
const char *vmm_thread_role_name(enum vmm_thread_role role);

/**
 * vmm_thread_create_role() - vmm_thread_create() for a thread of @role: the new thread first calls
 * the hook set by vmm_set_thread_start_hook() (the sandbox installs the role's seccomp filter
 * there), then @fn(@arg). A hook that fails makes the thread return NULL at once without running
 * @fn (the hook reports why). Returns 0 or a positive errno, as pthread_create().
 */
int vmm_thread_create_role(pthread_t *thread, enum vmm_thread_role role, void *(*fn)(void *),
			   void *arg);

/**
 * vmm_set_thread_start_hook() - have every thread started by vmm_thread_create_role() call
 * @hook(role) before its function; NULL removes it. Set once, before any such thread starts.
 */
void vmm_set_thread_start_hook(int (*hook)(enum vmm_thread_role role));

#endif
