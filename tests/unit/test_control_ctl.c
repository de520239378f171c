/* `vmm ctl` (vmm/control/ctl.c) against an in-process server over the fake backend: output and exit
 * codes.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_control_helpers.h"

int ctl_main(int argc, char **argv);

struct ctl_result {
	int status;
	char out[16384];
	char err[4096];
};

static void slurp(int fd, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

/* Run ctl_main(argv) in a child with stdout/stderr captured; @kill_after_ms > 0 sends SIGINT. */
static void run_ctl_ex(struct ctl_result *r, int kill_after_ms, char *const argv[])
{
	char outp[] = "/tmp/ctl-out.XXXXXX", errp[] = "/tmp/ctl-err.XXXXXX";
	int out = mkstemp(outp), err = mkstemp(errp), st = 0, argc = 0;
	pid_t pid;

	unlink(outp);
	unlink(errp);
	while (argv[argc])
		argc++;
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(out, STDOUT_FILENO);
		dup2(err, STDERR_FILENO);
		_exit(ctl_main(argc, (char **)argv));
	}
	if (kill_after_ms > 0) {
		usleep((useconds_t)kill_after_ms * 1000);
		kill(pid, SIGINT);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "ctl died from signal %d", WTERMSIG(st));
	r->status = WEXITSTATUS(st);
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
}

#define run_ctl(r, ...) run_ctl_ex(r, 0, (char *const[]){"ctl", __VA_ARGS__, NULL})

static struct test_server srv;

static void setup(void)
{
	cr_assert_eq(test_server_init(&srv), 0);
	cr_assert_eq(test_server_start(&srv), 0);
}

static void teardown(void)
{
	test_server_stop(&srv);
}

TestSuite(ctl, .init = setup, .fini = teardown);

Test(ctl, usage_errors_exit_2)
{
	struct ctl_result r;

	run_ctl(&r, "info");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "-s PATH"), "%s", r.err);
	run_ctl(&r, "-s", srv.path);
	cr_assert_eq(r.status, 2);
	run_ctl(&r, "-s", srv.path, "frobnicate");
	cr_assert_eq(r.status, 2);
	run_ctl(&r, "-s", srv.path, "balloon");
	cr_assert_eq(r.status, 2);
	run_ctl(&r, "-s", srv.path, "balloon", "set");
	cr_assert_eq(r.status, 2);
	run_ctl(&r, "-s", srv.path, "balloon", "set", "12abc");
	cr_assert_eq(r.status, 2);
	run_ctl(&r, "-s", srv.path, "balloon", "set", "1536K");
	cr_assert_eq(r.status, 2, "not a whole MiB");
	run_ctl(&r, "-s", srv.path, "balloon", "set", "64", "--timeout", "5s");
	cr_assert_eq(r.status, 2, "--timeout without --wait");
	run_ctl(&r, "-s", srv.path, "info", "extra");
	cr_assert_eq(r.status, 2);
	run_ctl(&r, "-s", srv.path, "--bogus", "info");
	cr_assert_eq(r.status, 2);
	run_ctl(&r, "-s", srv.path, "pause", "--wait");
	cr_assert_eq(r.status, 2);
	run_ctl(&r, "-s", srv.path, "shutdown", "--timeout", "soon");
	cr_assert_eq(r.status, 2);
	cr_assert_eq(srv.fake.nr_pause + srv.fake.nr_shutdown, 0, "nothing was sent");
	run_ctl(&r, "--help");
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "balloon set"));
}

Test(ctl, connection_errors_exit_2)
{
	struct ctl_result r;

	run_ctl(&r, "-s", "/nonexistent/ctl.sock", "info");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "cannot connect"), "%s", r.err);
}

Test(ctl, info_human_and_json)
{
	struct ctl_result r;
	struct json_object *o;

	run_ctl(&r, "-s", srv.path, "info");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "state     running"), "%s", r.out);
	cr_assert(strstr(r.out, "memory    1024 MiB"), "%s", r.out);
	cr_assert(strstr(r.out, "virtio-balloon (stats_vq deflate_on_oom)"), "%s", r.out);
	run_ctl(&r, "--json", "--socket", srv.path, "info");
	cr_assert_eq(r.status, 0);
	o = json_tokener_parse(r.out);
	cr_assert_not_null(test_ok(o), "%s", r.out);
	json_object_put(o);
	run_ctl(&r, "--socket=", "info"); /* an empty path cannot be connected to */
	cr_assert_eq(r.status, 2);
}

Test(ctl, pause_resume_shutdown)
{
	struct ctl_result r;

	run_ctl(&r, "-s", srv.path, "pause");
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "paused\n");
	run_ctl(&r, "-s", srv.path, "pause");
	cr_assert_str_eq(r.out, "paused (already)\n");
	run_ctl(&r, "-s", srv.path, "resume");
	cr_assert_str_eq(r.out, "running\n");
	run_ctl(&r, "-s", srv.path, "shutdown", "--timeout", "2s");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "2000 ms"), "%s", r.out);
	cr_assert_eq(srv.fake.last_shutdown_timeout_ms, 2000);
	/* The fake guest obeyed: now the VM is stopped and commands say so (exit 1). */
	run_ctl(&r, "-s", srv.path, "pause");
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "vm-not-running"), "%s", r.err);
}

Test(ctl, balloon_commands)
{
	struct ctl_result r;

	run_ctl(&r, "-s", srv.path, "balloon", "set", "256");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "balloon target 256 MiB (the guest keeps 768 MiB of 1024 MiB)"),
		  "%s", r.out);
	run_ctl(&r, "-s", srv.path, "balloon", "set", "--guest", "1G");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "balloon target 0 MiB"), "%s", r.out);
	run_ctl(&r, "-s", srv.path, "balloon", "set", "512M");
	run_ctl(&r, "-s", srv.path, "balloon", "get");
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "target    512 MiB"), "%s", r.out);
	cr_assert(strstr(r.out, "guest     512 MiB of 1024 MiB"), "%s", r.out);
	run_ctl(&r, "-s", srv.path, "balloon", "set", "4096");
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "invalid-argument"), "%s", r.err);
	run_ctl(&r, "-s", srv.path, "--json", "balloon", "set", "4096");
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.out, "\"error\""), "%s", r.out);
	run_ctl(&r, "-s", srv.path, "balloon", "stats");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "free_bytes"), "%s", r.out);
	cr_assert(strstr(r.out, "(512.0 MiB)"), "%s", r.out);
	run_ctl(&r, "-s", srv.path, "memory");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "guest_ram_bytes"), "%s", r.out);
	cr_assert(strstr(r.out, "balloon.target_mib"), "%s", r.out);
}

Test(ctl, balloon_wait)
{
	struct ctl_result r;

	/* Reaches the target at 64 MiB per 10 ms: 512 MiB in ~80 ms. */
	cr_assert_eq(control_fake_set_step(&srv.fake, srv.loop, 64 * 256), 0);
	run_ctl(&r, "-s", srv.path, "balloon", "set", "--guest", "512", "--wait", "--timeout",
		"10s");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "reached   512 MiB"), "%s", r.out);
	/* 1 MiB per 10 ms cannot deflate 512 MiB in 200 ms. */
	cr_assert_eq(control_fake_set_step(&srv.fake, srv.loop, 256), 0);
	run_ctl(&r, "-s", srv.path, "balloon", "set", "0", "--wait", "--timeout", "200ms");
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "timed out"), "%s", r.err);
}

Test(ctl, events_stream_until_interrupted)
{
	struct ctl_result r;
	pid_t pid;

	/* Change the balloon from another process while `ctl events` listens. */
	pid = fork();
	if (pid == 0) {
		usleep(300000);
		for (int i = 1; i <= 3; i++) {
			int fd = test_connect(srv.path);
			char req[128];

			snprintf(req, sizeof(req),
				 "{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":%d}}"
				 "\n",
				 i);
			json_object_put(test_call(fd, req));
			close(fd);
		}
		_exit(0);
	}
	run_ctl_ex(&r, 900, (char *const[]){"ctl", "-s", srv.path, "events", NULL});
	waitpid(pid, NULL, 0);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "balloon.change actual_mib=1 target_mib=1"), "%s", r.out);
	cr_assert(strstr(r.out, "balloon.change actual_mib=3 target_mib=3"), "%s", r.out);
}

Test(ctl, events_json_filtered_and_guest_exit_ends)
{
	struct ctl_result r;
	pid_t pid = fork();

	if (pid == 0) {
		int fd;

		usleep(300000);
		fd = test_connect(srv.path);
		json_object_put(test_call(fd, "{\"id\":1,\"cmd\":\"vm.pause\"}\n"));
		json_object_put(test_call(fd, "{\"id\":2,\"cmd\":\"balloon.set\",\"args\":"
					      "{\"balloon_mib\":5}}\n"));
		json_object_put(test_call(fd, "{\"id\":3,\"cmd\":\"vm.shutdown\"}\n"));
		close(fd);
		_exit(0);
	}
	run_ctl_ex(&r, 900,
		   (char *const[]){"ctl", "-s", srv.path, "--json", "events", "vm.state",
				   "guest.exit", NULL});
	waitpid(pid, NULL, 0);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "{\"event\":\"vm.state\",\"data\":{\"state\":\"paused\"}}\n"), "%s",
		  r.out);
	cr_assert(strstr(r.out, "\"guest.exit\""), "%s", r.out);
	cr_assert_null(strstr(r.out, "balloon.change"), "%s", r.out);
}

/* `ctl events` sends the keepalive the subscription reply asks for: it outlives the timeout. */
Test(ctl_keepalive, events_outlive_the_idle_timeout)
{
	struct test_server s;
	struct ctl_result r;
	struct json_object *info;
	pid_t pid;
	int fd;

	cr_assert_eq(test_server_init(&s), 0);
	s.idle_ms = 400;
	cr_assert_eq(test_server_start(&s), 0);
	pid = fork();
	if (pid == 0) {
		usleep(1200000); /* 3 timeouts later */
		fd = test_connect(s.path);
		json_object_put(test_call(fd, "{\"id\":1,\"cmd\":\"balloon.set\",\"args\":"
					      "{\"balloon_mib\":7}}\n"));
		close(fd);
		_exit(0);
	}
	run_ctl_ex(&r, 1600, (char *const[]){"ctl", "-s", s.path, "events", NULL});
	waitpid(pid, NULL, 0);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "balloon.change actual_mib=7 target_mib=7"), "%s", r.out);
	fd = test_connect(s.path);
	info = test_call(fd, "{\"id\":2,\"cmd\":\"vm.info\"}\n");
	cr_assert_eq(
		test_i64(json_object_object_get(test_ok(info), "control"), "clients_idle_closed"),
		0);
	json_object_put(info);
	close(fd);
	test_server_stop(&s);
}
