/*
 * The sandbox (vmm/sandbox.h): each thread role's seccomp filter, in a forked child so the filters
 * never reach the test runner. A forbidden call on a thread of each role must stop the process
 * with status 159 and a line naming the role and the call; the calls a role makes must pass.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../vmm/sandbox.h"
#include "../../vmm/util.h"

struct child_result {
	int status; /* exit status, or 128 + signal */
	char err[1024];
};

static void *thread_work(void *arg)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	void *p;

	(void)arg;
	/* What every role does: locks, heap, time, logging. */
	pthread_mutex_lock(&lock);
	pthread_mutex_unlock(&lock);
	p = malloc(1 << 20);
	free(p);
	pr_warn("thread alive");
	return NULL;
}

/* Run @fn(@arg) in a child with stderr captured; the child exits with fn's return value. */
static void run_child(int (*fn)(int), int arg, struct child_result *r)
{
	int pfd[2], st;
	pid_t pid;
	ssize_t n, len = 0;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], STDERR_FILENO);
		close(pfd[0]);
		_exit(fn(arg));
	}
	close(pfd[1]);
	while ((n = read(pfd[0], r->err + len, sizeof(r->err) - 1 - len)) > 0)
		len += n;
	r->err[len] = '\0';
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A thread of @role under SANDBOX_ON; with @violate it makes the forbidden call. */
static int child_thread(int arg)
{
	enum vmm_thread_role role = arg & 0xff;
	pthread_t t;

	if (arg & 0x100)
		sandbox_test_violation(role);
	if (sandbox_init(SANDBOX_ON))
		return 10;
	if (role == VMM_THREAD_LOOP) {
		if (sandbox_enter(VMM_THREAD_LOOP))
			return 11;
		thread_work(NULL);
		return 0;
	}
	/* As the compressed tier starts its threads: every signal blocked (SIGSYS must still work).
	 */
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (vmm_thread_create_role(&t, role, thread_work, NULL))
		return 12;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_join(t, NULL);
	return 0;
}

Test(sandbox, each_role_allows_its_ordinary_work)
{
	for (int role = 0; role < VMM_THREAD_ROLES; role++) {
		struct child_result r;

		run_child(child_thread, role, &r);
		cr_expect_eq(r.status, 0, "role %s: status %d, stderr: %s",
			     vmm_thread_role_name(role), r.status, r.err);
		cr_expect(strstr(r.err, "thread alive"), "role %s: %s", vmm_thread_role_name(role),
			  r.err);
	}
}

/*
 * What the compressed tier's threads do with the store's tables: free heap chunks in their own
 * malloc arena, so much at once that glibc trims the arena's heap (heap_trim -> shrink_heap,
 * which reads /proc/sys/vm/overcommit_memory once, the first time).
 */
static void *trim_heap(void *arg)
{
	void *p[64];

	(void)arg;
	for (int i = 0; i < 64; i++)
		p[i] = malloc(32 << 10);
	for (int i = 0; i < 64; i++)
		free(p[i]);
	pr_warn("thread alive");
	return NULL;
}

static int child_trim(int arg)
{
	pthread_t t;

	if (sandbox_init(SANDBOX_ON))
		return 10;
	if (vmm_thread_create_role(&t, (enum vmm_thread_role)arg, trim_heap, NULL))
		return 12;
	pthread_join(t, NULL);
	return 0;
}

/* Found by tests/kvm/memtier_race.sh: the userfaultfd thread died on openat in free(). */
Test(sandbox, heap_trim_in_a_thread_arena_is_allowed)
{
	enum vmm_thread_role roles[] = {VMM_THREAD_UFFD, VMM_THREAD_RECLAIM};

	for (unsigned int i = 0; i < 2; i++) {
		struct child_result r;

		run_child(child_trim, roles[i], &r);
		cr_expect_eq(r.status, 0, "role %s: status %d, stderr: %s",
			     vmm_thread_role_name(roles[i]), r.status, r.err);
	}
}

Test(sandbox, a_forbidden_call_on_each_role_stops_the_vmm_naming_it)
{
	for (int role = 0; role < VMM_THREAD_ROLES; role++) {
		struct child_result r;
		char want[128];

		run_child(child_thread, 0x100 | role, &r);
		snprintf(want, sizeof(want),
			 "seccomp: the %s thread made a forbidden system call: getppid",
			 vmm_thread_role_name(role));
		cr_expect_eq(r.status, 159, "role %s: status %d, stderr: %s",
			     vmm_thread_role_name(role), r.status, r.err);
		cr_expect(strstr(r.err, want), "role %s: stderr '%s'", vmm_thread_role_name(role),
			  r.err);
	}
}

/* The role filters really deny: a vCPU thread may not open files or create sockets. */
static void *vcpu_opens(void *arg)
{
	(void)arg;
	open("/dev/null", O_RDONLY);
	return NULL;
}

static int child_vcpu_open(int arg)
{
	pthread_t t;

	(void)arg;
	if (sandbox_init(SANDBOX_ON))
		return 10;
	if (vmm_thread_create_role(&t, VMM_THREAD_VCPU, vcpu_opens, NULL))
		return 12;
	pthread_join(t, NULL);
	return 0;
}

Test(sandbox, vcpu_thread_cannot_open_files)
{
	struct child_result r;

	run_child(child_vcpu_open, 0, &r);
	cr_expect_eq(r.status, 159, "status %d, stderr: %s", r.status, r.err);
	cr_expect(strstr(r.err, "the vcpu thread made a forbidden system call: openat"), "%s",
		  r.err);
}

static int child_status(int arg)
{
	char buf[4096];
	ssize_t n;
	int fd;

	(void)arg;
	if (sandbox_init(SANDBOX_ON) || sandbox_enter(VMM_THREAD_LOOP))
		return 10;
	fd = open("/proc/self/status", O_RDONLY);
	if (fd < 0)
		return 11;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 12;
	buf[n] = '\0';
	if (!strstr(buf, "NoNewPrivs:\t1"))
		return 13;
	if (!strstr(buf, "Seccomp:\t2"))
		return 14;
	return 0;
}

Test(sandbox, status_shows_no_new_privs_and_filter_mode)
{
	struct child_result r;

	run_child(child_status, 0, &r);
	cr_expect_eq(r.status, 0, "status %d (13: no NoNewPrivs, 14: no Seccomp 2), stderr: %s",
		     r.status, r.err);
}

static int child_log_mode(int arg)
{
	(void)arg;
	sandbox_test_violation(VMM_THREAD_LOOP);
	if (sandbox_init(SANDBOX_LOG) || sandbox_enter(VMM_THREAD_LOOP))
		return 10;
	return 0; /* getppid was allowed (and logged by the kernel) */
}

Test(sandbox, log_mode_allows_the_call)
{
	struct child_result r;

	run_child(child_log_mode, 0, &r);
	cr_expect_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
}

Test(sandbox, parse_mode)
{
	enum sandbox_mode m;

	cr_expect_eq(sandbox_parse_mode("on", &m), 0);
	cr_expect_eq(m, SANDBOX_ON);
	cr_expect_eq(sandbox_parse_mode("log", &m), 0);
	cr_expect_eq(m, SANDBOX_LOG);
	cr_expect_eq(sandbox_parse_mode("off", &m), 0);
	cr_expect_eq(m, SANDBOX_OFF);
	cr_expect_eq(sandbox_parse_mode("yes", &m), -EINVAL);
}
