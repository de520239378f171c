/*
 * The control socket's own sandbox rules (issue 12 "Sandbox"): a peer of another uid than the
 * VMM's (root excepted) is refused with one error line, even when the socket file lets it
 * connect; and the socket gets its mode 0600 before bind(), never by a chmod() of the path after
 * it (a path can be swapped for a symlink between the two).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_control_helpers.h"

#define NOBODY 65534

/* Path-based mode changes of the file at watched_path, seen through the libc entry points. */
static const char *watched_path;
static int path_chmods;

static void seen(const char *path)
{
	if (watched_path && path && !strcmp(path, watched_path))
		path_chmods++;
}

/* The executable's definitions win over libc's for libvmm.a too; both forward to the kernel. */
int chmod(const char *path, mode_t mode)
{
	seen(path);
	return (int)syscall(SYS_fchmodat, AT_FDCWD, path, mode);
}

int fchmodat(int dirfd, const char *path, mode_t mode, int flags)
{
	seen(path);
	(void)flags;
	return (int)syscall(SYS_fchmodat, dirfd, path, mode);
}

Test(control_sandbox, mode_0600_without_a_chmod_of_the_path)
{
	static const mode_t masks[] = {0, 022, 077};

	for (size_t i = 0; i < ARRAY_SIZE(masks); i++) {
		struct test_server s;
		struct stat st;
		mode_t old;

		cr_assert_eq(test_server_init(&s), 0);
		watched_path = s.path;
		path_chmods = 0;
		old = umask(masks[i]);
		cr_assert_eq(test_server_start(&s), 0);
		umask(old);
		watched_path = NULL;
		cr_assert_eq(path_chmods, 0, "chmod() of the socket path after bind()");
		cr_assert_eq(stat(s.path, &st), 0);
		cr_assert_eq(st.st_mode & 0777, 0600, "umask %03o: mode %03o", masks[i],
			     st.st_mode & 0777);
		test_server_stop(&s);
	}
}

/* In a child as uid/gid @uid: connect, read one line. Exit 0: not-permitted then EOF. */
static int connect_as(const char *path, uid_t uid)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char line[1024];
		struct json_object *r;
		int fd, n;

		if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(10);
		fd = test_connect(path);
		if (fd < 0)
			_exit(11);
		if (test_send(fd, "{\"id\":1,\"cmd\":\"vm.pause\"}\n") < 0 && errno != EPIPE)
			_exit(12);
		if (test_read_line(fd, line, sizeof(line), 5000) <= 0)
			_exit(13);
		r = json_tokener_parse(line);
		if (strcmp(test_code(r), "not-permitted") || !strstr(line, "uid"))
			_exit(14);
		/* Closed: EOF, or a reset since the request was never read. */
		n = test_read_line(fd, line, sizeof(line), 5000);
		if (n != 0 && n != -ECONNRESET)
			_exit(15);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

Test(control_sandbox, a_peer_of_another_uid_is_refused)
{
	struct test_server s;
	struct json_object *r;
	int fd, ret;

	if (geteuid() != 0)
		cr_skip_test("needs root to connect as another uid");
	cr_assert_eq(test_server_init(&s), 0);
	cr_assert_eq(test_server_start(&s), 0);
	/* Let anyone reach the socket (and its directory): only the peer check stands. */
	cr_assert_eq(syscall(SYS_fchmodat, AT_FDCWD, s.dir, 0755), 0);
	cr_assert_eq(syscall(SYS_fchmodat, AT_FDCWD, s.path, 0666), 0);
	ret = connect_as(s.path, NOBODY);
	cr_assert_eq(ret, 0, "the other uid was not refused as expected (step %d)", ret);
	/* The VMM's own uid (root here) is served, the VM untouched, the refusal counted. */
	fd = test_connect(s.path);
	r = test_call(fd, "{\"id\":2,\"cmd\":\"vm.info\"}\n");
	cr_assert_not_null(test_ok(r));
	cr_assert_str_eq(json_object_get_string(json_object_object_get(test_ok(r), "state")),
			 "running");
	cr_assert_eq(
		test_i64(json_object_object_get(test_ok(r), "control"), "clients_refused_peer"), 1);
	json_object_put(r);
	close(fd);
	test_server_stop(&s);
	cr_assert_eq(s.fake.nr_pause, 0);
}
