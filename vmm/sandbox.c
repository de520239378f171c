#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <malloc.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define SIGSYS_EXIT 159 /* 128 + SIGSYS, what a shell shows for a process killed by it */

/* Every thread: memory, locks, time, logging, thread exit and the SIGSYS reporter itself. */
static const int common_calls[] = {
	SCMP_SYS(read),
	SCMP_SYS(write),
	SCMP_SYS(writev),
	SCMP_SYS(close),
	SCMP_SYS(futex),
	SCMP_SYS(mmap),
	SCMP_SYS(munmap),
	SCMP_SYS(mprotect),
	SCMP_SYS(mremap),
	SCMP_SYS(brk),
	SCMP_SYS(madvise),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),
	SCMP_SYS(clock_gettime),
	SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep),
	SCMP_SYS(gettid),
	SCMP_SYS(getpid),
	SCMP_SYS(tgkill),
	SCMP_SYS(sched_yield),
	SCMP_SYS(restart_syscall),
	SCMP_SYS(newfstatat),
	SCMP_SYS(fstat),
	SCMP_SYS(lseek),
	SCMP_SYS(getrandom),
};

/* The main thread after setup: the event loop, control clients, device queue work, teardown. */
static const int loop_calls[] = {
	SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(accept4),
	SCMP_SYS(accept),
	SCMP_SYS(recvfrom),
	SCMP_SYS(recvmsg),
	SCMP_SYS(sendto),
	SCMP_SYS(sendmsg),
	SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt),
	SCMP_SYS(shutdown),
	SCMP_SYS(fcntl),
	SCMP_SYS(timerfd_create),
	SCMP_SYS(timerfd_settime),
	SCMP_SYS(timerfd_gettime),
	SCMP_SYS(eventfd2),
	SCMP_SYS(pread64),
	SCMP_SYS(pwrite64),
	SCMP_SYS(readv),
	SCMP_SYS(preadv),
	SCMP_SYS(pwritev),
	SCMP_SYS(mincore),
	SCMP_SYS(unlink),
	SCMP_SYS(unlinkat),
	SCMP_SYS(poll),
	SCMP_SYS(ppoll),
	SCMP_SYS(fsync),
	SCMP_SYS(fdatasync),
	SCMP_SYS(fallocate),
	SCMP_SYS(io_uring_enter),
	SCMP_SYS(io_uring_register),
	SCMP_SYS(rt_sigtimedwait),
	SCMP_SYS(getuid),
	SCMP_SYS(geteuid),
	SCMP_SYS(sysinfo),
	/* snapshot.create (vmm/snapshot/): DIR made, DIR/memory.tmp sized and renamed. */
	SCMP_SYS(mkdir),
	SCMP_SYS(mkdirat),
	SCMP_SYS(rename),
	SCMP_SYS(renameat),
	SCMP_SYS(renameat2),
	SCMP_SYS(ftruncate),
};

/* vCPU threads: KVM_RUN and what exit dispatch reaches (device registers, interrupts, stop). */
static const int vcpu_calls[] = {
	SCMP_SYS(sendto),
	SCMP_SYS(fcntl),
	SCMP_SYS(pread64),
	SCMP_SYS(rt_sigtimedwait),
	SCMP_SYS(poll),
	SCMP_SYS(ppoll),
	/* Device register handlers use the loop's API: timers (serial), fds (console output). */
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(timerfd_create),
	SCMP_SYS(timerfd_settime),
	SCMP_SYS(timerfd_gettime),
	/* The balloon's queues run here (notify_on_vcpu): glibc's qsort of a free page report
	 * asks sysinfo for the RAM size before it allocates its merge buffer. Read-only. */
	SCMP_SYS(sysinfo),
};

/* The userfaultfd thread: wait, read fault messages, resolve them. */
static const int uffd_calls[] = {SCMP_SYS(poll), SCMP_SYS(ppoll)};

/* The reclaim worker: page-age signals (pagemap, idle bitmap, dirty log), compression, discard. */
static const int reclaim_calls[] = {
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(mincore), SCMP_SYS(poll), SCMP_SYS(ppoll),
};

static const int events_calls[] = {SCMP_SYS(poll)};

/* ioctls by request number; any fd (the numbers are distinct across KVM, uffd and tty). */
static const unsigned long irq_ioctls[] = {
	KVM_IRQ_LINE, KVM_SIGNAL_MSI, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING,
};
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_TRANSLATE, KVM_SET_REGS,
};
static const unsigned long tty_ioctls[] = {TCGETS, TCSETS, TCSETSW, TCSETSF};
static const unsigned long uffd_ioctls[] = {
	UFFDIO_COPY,	     UFFDIO_ZEROPAGE, UFFDIO_WAKE,
	UFFDIO_WRITEPROTECT, UFFDIO_REGISTER, UFFDIO_UNREGISTER,
};
static const unsigned long dirty_ioctls[] = {KVM_GET_DIRTY_LOG, KVM_SET_USER_MEMORY_REGION};
/* snapshot.create on the loop thread reads the parked vCPUs' and the VM's state (GETs only). */
static const unsigned long snapshot_ioctls[] = {
	KVM_GET_CPUID2,	 KVM_GET_MP_STATE,    KVM_GET_REGS,  KVM_GET_SREGS,
	KVM_GET_XSAVE,	 KVM_GET_XSAVE2,      KVM_GET_XCRS,  KVM_GET_DEBUGREGS,
	KVM_GET_LAPIC,	 KVM_GET_VCPU_EVENTS, KVM_GET_MSRS,  KVM_GET_MSR_INDEX_LIST,
	KVM_GET_IRQCHIP, KVM_GET_PIT2,	      KVM_GET_CLOCK, KVM_CHECK_EXTENSION,
};

struct bpf {
	struct sock_fprog prog;
	bool built;
};

static enum sandbox_mode sb_mode = SANDBOX_OFF;
static bool sb_ready;
static struct bpf filters[VMM_THREAD_ROLES];
static int test_role = -1;
static __thread int thread_role = -1;

static int allow_list(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);

		if (ret)
			return ret;
	}
	return 0;
}

static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *req, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					   SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, req[i]));

		if (ret)
			return ret;
	}
	return 0;
}

#define ALLOW(ctx, list)  allow_list(ctx, list, ARRAY_SIZE(list))
#define IOCTLS(ctx, list) allow_ioctls(ctx, list, ARRAY_SIZE(list))

static int add_role_rules(scmp_filter_ctx ctx, enum vmm_thread_role role)
{
	int ret = ALLOW(ctx, common_calls);

	/* pthread_setname_np() on itself: prctl(PR_SET_NAME) only. */
	ret = ret
		      ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
					  SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));

	switch (role) {
	case VMM_THREAD_LOOP:
		ret = ret ?: ALLOW(ctx, loop_calls);
		ret = ret ?: IOCTLS(ctx, irq_ioctls);
		ret = ret ?: IOCTLS(ctx, tty_ioctls);
		ret = ret ?: IOCTLS(ctx, snapshot_ioctls);
		/* /proc/self/smaps, ksm_stat and /sys/kernel/mm/ksm for memory.stats: read-only. */
		ret = ret
			      ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
						  SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE, O_RDONLY));
		/* snapshot.create writes DIR/state.tmp and DIR/memory.tmp (write-only, never
		 * read-write: the loop thread still cannot open a file to change it in place). */
		ret = ret
			      ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
						  SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE, O_WRONLY));
		break;
	case VMM_THREAD_VCPU:
		ret = ret ?: ALLOW(ctx, vcpu_calls);
		ret = ret ?: IOCTLS(ctx, vcpu_ioctls);
		ret = ret ?: IOCTLS(ctx, irq_ioctls);
		break;
	case VMM_THREAD_UFFD:
		ret = ret ?: ALLOW(ctx, uffd_calls);
		ret = ret ?: IOCTLS(ctx, uffd_ioctls);
		break;
	case VMM_THREAD_RECLAIM:
		ret = ret ?: ALLOW(ctx, reclaim_calls);
		ret = ret ?: IOCTLS(ctx, uffd_ioctls);
		ret = ret ?: IOCTLS(ctx, dirty_ioctls);
		break;
	case VMM_THREAD_EVENTS:
		ret = ret ?: ALLOW(ctx, events_calls);
		break;
	default:
		ret = -EINVAL;
	}
	return ret;
}

/* Build @role's filter and export it as BPF into memory (libseccomp 2.5 exports only to an fd). */
static int build(enum vmm_thread_role role, uint32_t deny)
{
	scmp_filter_ctx ctx = seccomp_init(deny);
	struct bpf *f = &filters[role];
	int fd = -1, ret;
	off_t len;

	if (!ctx)
		return -ENOMEM;
	ret = add_role_rules(ctx, role);
	if (ret)
		goto out;
	fd = memfd_create("vmm-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = seccomp_export_bpf(ctx, fd);
	if (ret)
		goto out;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % sizeof(struct sock_filter) ||
	    len / sizeof(struct sock_filter) > 0xffff) {
		ret = -EINVAL;
		goto out;
	}
	f->prog.filter = malloc(len);
	if (!f->prog.filter) {
		ret = -ENOMEM;
		goto out;
	}
	if (pread(fd, f->prog.filter, len, 0) != len) {
		ret = -EIO;
		free(f->prog.filter);
		f->prog.filter = NULL;
		goto out;
	}
	f->prog.len = len / sizeof(struct sock_filter);
	f->built = true;
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return ret;
}

/* Async-signal-safe: only write(2) and exit_group(2), both allowed in every role. */
static void append(char *buf, size_t *len, size_t cap, const char *s)
{
	while (*s && *len < cap)
		buf[(*len)++] = *s++;
}

static void append_hex(char *buf, size_t *len, size_t cap, uint64_t v)
{
	char d[16];
	int n = 0;

	do
		d[n++] = "0123456789abcdef"[v & 15];
	while ((v >>= 4) && n < 16);
	append(buf, len, cap, "0x");
	while (n && *len < cap)
		buf[(*len)++] = d[--n];
}

static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	char msg[384], num[24];
	size_t len = 0, n = 0;
	int nr = si->si_syscall;
	const char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	unsigned int u = (unsigned int)nr;

	(void)sig;
	do
		num[n++] = (char)('0' + u % 10);
	while ((u /= 10) && n < sizeof(num));
	append(msg, &len, sizeof(msg), "vmm: error: seccomp: the ");
	append(msg, &len, sizeof(msg), vmm_thread_role_name(thread_role));
	append(msg, &len, sizeof(msg), " thread made a forbidden system call: ");
	append(msg, &len, sizeof(msg), name ? name : "?");
	append(msg, &len, sizeof(msg), " (");
	while (n && len < sizeof(msg))
		msg[len++] = num[--n];
	if (nr == SCMP_SYS(ioctl)) { /* which request: the second argument, in rsi */
		append(msg, &len, sizeof(msg), ", request ");
		append_hex(msg, &len, sizeof(msg), (uint64_t)uc->uc_mcontext.gregs[REG_RSI]);
	} else if (nr == SCMP_SYS(openat) && uc->uc_mcontext.gregs[REG_RSI]) {
		char path[96];

		/* Our own memory: the path the thread tried to open, bounded. */
		memccpy(path, (const char *)uc->uc_mcontext.gregs[REG_RSI], '\0', sizeof(path) - 1);
		path[sizeof(path) - 1] = '\0';
		append(msg, &len, sizeof(msg), ", ");
		append(msg, &len, sizeof(msg), path);
	}
	append(msg, &len, sizeof(msg), "); stopping the VMM (--seccomp log to allow and log)\n");
	if (write(STDERR_FILENO, msg, len) < 0) {
		/* nothing else to report it on */
	}
	syscall(SYS_exit_group, SIGSYS_EXIT);
}

static int start_hook(enum vmm_thread_role role)
{
	int ret = sandbox_enter(role);

	if (ret < 0) {
		pr_err("seccomp: cannot load the %s thread's filter: %s",
		       vmm_thread_role_name(role), strerror(-ret));
		syscall(SYS_exit_group, 1);
	}
	return 0;
}

int sandbox_parse_mode(const char *s, enum sandbox_mode *out)
{
	if (!strcmp(s, "on"))
		*out = SANDBOX_ON;
	else if (!strcmp(s, "log"))
		*out = SANDBOX_LOG;
	else if (!strcmp(s, "off"))
		*out = SANDBOX_OFF;
	else
		return -EINVAL;
	return 0;
}

void sandbox_test_violation(enum vmm_thread_role role)
{
	test_role = (int)role;
}

/*
 * glibc's free() may trim a thread arena's heap (heap_trim -> shrink_heap); the first trim reads
 * /proc/sys/vm/overcommit_memory (check_may_shrink_heap) and caches the answer, and no role may
 * open files. Have it read now, before any filter, by trimming a thread's arena (the main arena
 * trims with sbrk and never asks).
 */
static void *prime_heap_trim(void *arg)
{
	void *p[64];

	(void)arg;
	for (int i = 0; i < 64; i++)
		p[i] = malloc(32 << 10);
	for (int i = 0; i < 64; i++)
		free(p[i]);
	return NULL;
}

int sandbox_init(enum sandbox_mode mode)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
	int ret;

	/*
	 * One malloc arena for every thread. glibc's per-thread arenas open files lazily, under
	 * the filters: /sys/devices/system/cpu/online to size the arena limit on a thread's first
	 * malloc, /proc/sys/vm/overcommit_memory the first time a thread's heap shrinks (both
	 * killed the userfaultfd thread). The main arena does neither; the VMM's threads are few
	 * and allocate little after setup.
	 */
	mallopt(M_ARENA_MAX, 1);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) {
		ret = -errno;
		pr_err("sandbox: prctl: %s", strerror(-ret));
		return ret;
	}
	sb_mode = mode;
	if (mode == SANDBOX_OFF)
		return 0;
	{
		pthread_t t;

		if (!pthread_create(&t, NULL, prime_heap_trim, NULL))
			pthread_join(t, NULL);
	}
	for (int r = 0; r < VMM_THREAD_ROLES; r++) {
		ret = build(r, mode == SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
		if (ret) {
			pr_err("seccomp: building the %s thread's filter: %s",
			       vmm_thread_role_name(r), strerror(-ret));
			return ret;
		}
	}
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL)) {
		ret = -errno;
		pr_err("seccomp: SIGSYS handler: %s", strerror(-ret));
		return ret;
	}
	vmm_set_thread_start_hook(start_hook);
	sb_ready = true;
	return 0;
}

int sandbox_enter(enum vmm_thread_role role)
{
	if (!sb_ready || (unsigned int)role >= VMM_THREAD_ROLES || !filters[role].built)
		return 0;
	thread_role = (int)role;
	/* Threads that block every signal (the compressed tier's) must still get the report. */
	sigset_t sys;

	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filters[role].prog, 0, 0))
		return -errno;
	if (__atomic_load_n(&test_role, __ATOMIC_RELAXED) == (int)role &&
	    __atomic_exchange_n(&test_role, -1, __ATOMIC_RELAXED) == (int)role)
		syscall(SYS_getppid);
	return 0;
}
