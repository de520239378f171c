#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum log_level log_level = LOG_WARN;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

static void vlog(enum log_level lvl, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	fprintf(stderr, "vmm: %s: %s\n", level_names[lvl], buf);
}

void vmm_log(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	vlog(lvl, fmt, ap);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
	exit(2);
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

bool ratelimit_ok(struct ratelimit *rl)
{
	uint64_t window = now_ns() / 1000000000ULL;

	/* Racy by design: an occasional extra line is harmless, a lock here is not worth it. */
	if (rl->window_ns != window) {
		rl->window_ns = window;
		rl->count = 0;
	}
	return rl->count++ < 10;
}

int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v, mult = 1;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return errno == ERANGE ? -ERANGE : -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = KiB;
		end++;
		break;
	case 'm':
	case 'M':
		mult = MiB;
		end++;
		break;
	case 'g':
	case 'G':
		mult = GiB;
		end++;
		break;
	case 't':
	case 'T':
		mult = 1024 * GiB;
		end++;
		break;
	default:
		return -EINVAL;
	}
	if (*end == 'i' || *end == 'B' || *end == 'b') /* accept "MiB", "MB" */
		end += (*end == 'i' && (end[1] == 'B' || end[1] == 'b')) ? 2 : 1;
	if (*end)
		return -EINVAL;
	if (__builtin_mul_overflow(v, mult, &v))
		return -ERANGE;
	*out = v;
	return 0;
}

int vmm_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int ret = pthread_attr_init(&attr);

	if (ret)
		return ret;
	ret = pthread_attr_setstacksize(&attr, VMM_THREAD_STACK);
	if (!ret)
		ret = pthread_create(thread, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return ret;
}

static int (*thread_start_hook)(enum vmm_thread_role role);

const char *vmm_thread_role_name(enum vmm_thread_role role)
{
	static const char *const names[VMM_THREAD_ROLES] = {
		[VMM_THREAD_LOOP] = "loop",	   [VMM_THREAD_VCPU] = "vcpu",
		[VMM_THREAD_UFFD] = "userfaultfd", [VMM_THREAD_RECLAIM] = "reclaim",
		[VMM_THREAD_EVENTS] = "events",
	};

	return (unsigned int)role < VMM_THREAD_ROLES ? names[role] : "?";
}

void vmm_set_thread_start_hook(int (*hook)(enum vmm_thread_role role))
{
	thread_start_hook = hook;
}

struct role_start {
	enum vmm_thread_role role;
	void *(*fn)(void *);
	void *arg;
};

static void *role_trampoline(void *p)
{
	struct role_start s = *(struct role_start *)p;

	free(p);
	if (thread_start_hook && thread_start_hook(s.role) < 0)
		return NULL;
	return s.fn(s.arg);
}

int vmm_thread_create_role(pthread_t *thread, enum vmm_thread_role role, void *(*fn)(void *),
			   void *arg)
{
	struct role_start *s = malloc(sizeof(*s));
	int ret;

	if (!s)
		return ENOMEM;
	*s = (struct role_start){role, fn, arg};
	ret = vmm_thread_create(thread, role_trampoline, s);
	if (ret)
		free(s);
	return ret;
}
