/*
 * Deferred replies (balloon.stats, memory.reclaim) over real sockets, to clients that shut their
 * read side: the reply's send fails (EPIPE), the server drops the client and its other pending
 * replies while it walks the pending list (issue 12 item 1). The server must survive, close that
 * client and go on serving the others, also when it is destroyed with such replies pending.
 * Build with -fsanitize=address to see a use-after-free, not only a crash.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_control_helpers.h"

/* The "control" counters of vm.info through a fresh connection @fd. */
static int64_t server_counter(int fd, const char *name)
{
	struct json_object *r = test_call(fd, "{\"id\":99,\"cmd\":\"vm.info\"}\n");
	int64_t v;

	cr_assert_not_null(test_ok(r), "the server no longer answers");
	v = test_i64(json_object_object_get(test_ok(r), "control"), name);
	json_object_put(r);
	return v;
}

/* Wait up to @ms for counter @name to read @want (the probing connection counts as a client). */
static bool wait_counter(int probe, const char *name, int64_t want, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (server_counter(probe, name) == want)
			return true;
		usleep(10000);
	}
	return false;
}

/* A connection whose read side is shut before it sends @reqs in one send(). */
static int shut_reader(const char *path, const char *reqs)
{
	int fd = test_connect(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(shutdown(fd, SHUT_RD), 0);
	cr_assert_eq(test_send(fd, reqs), 0);
	return fd;
}

/*
 * memory.reclaim, then balloon.stats (never answered) on one line batch: the pending list is
 * [stats, reclaim]. The reclaim's event completes it; its send fails and the client is dropped
 * with its stats entry, the one the list walk stands on.
 */
Test(control_deferred, reclaim_reply_to_a_shut_reader)
{
	struct test_server s;
	int fd, probe;

	cr_assert_eq(test_server_init(&s), 0);
	s.fake.stats_answer = false;
	cr_assert_eq(test_server_start(&s), 0);
	probe = test_connect(s.path);
	cr_assert_geq(probe, 0);
	cr_assert_eq(server_counter(probe, "clients"), 1);
	fd = shut_reader(s.path,
			 "{\"id\":1,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":4096}}\n"
			 "{\"id\":2,\"cmd\":\"balloon.stats\"}\n");
	cr_assert(wait_counter(probe, "clients_total", 2, 2000), "never accepted");
	/* The failed send drops the client: only the probe is left, and it is still served. */
	cr_assert(wait_counter(probe, "clients", 1, 3000), "the shut reader was not dropped");
	/* Past the stats wait: nothing of the dropped client is left to answer. */
	usleep((CTL_STATS_WAIT_MS + 200) * 1000);
	cr_assert_eq(server_counter(probe, "clients"), 1);
	close(fd);
	close(probe);
	test_server_stop(&s);
	cr_assert_eq(s.fake.nr_reclaims, 1);
	cr_assert_eq(s.fake.nr_stats_requests, 1);
}

/*
 * Two balloon.stats 200 ms apart while the guest does not answer: the first one's wait ends
 * while the second waits in front of it in the list; its send fails and drops the second.
 */
Test(control_deferred, two_stats_timeouts_to_a_shut_reader)
{
	struct test_server s;
	int fd, probe;

	cr_assert_eq(test_server_init(&s), 0);
	s.fake.stats_answer = false;
	cr_assert_eq(test_server_start(&s), 0);
	probe = test_connect(s.path);
	cr_assert_geq(probe, 0);
	fd = shut_reader(s.path, "{\"id\":1,\"cmd\":\"balloon.stats\"}\n");
	usleep(200000);
	cr_assert_eq(test_send(fd, "{\"id\":2,\"cmd\":\"balloon.stats\"}\n"), 0);
	cr_assert_eq(server_counter(probe, "clients"), 2, "both requests wait");
	cr_assert(wait_counter(probe, "clients", 1, CTL_STATS_WAIT_MS + 3000),
		  "the shut reader was not dropped");
	/* Past the second one's wait too: the server lives on. */
	usleep(400000);
	cr_assert_eq(server_counter(probe, "clients"), 1);
	close(fd);
	close(probe);
	test_server_stop(&s);
}

/*
 * control_destroy() answers every pending reply: balloon.stats then memory.reclaim (neither
 * answered by the backend) make the list [reclaim, stats]; the stats reply's send fails and drops
 * the reclaim entry the walk stands on.
 */
Test(control_deferred, destroy_with_replies_pending_to_a_shut_reader)
{
	struct test_server s;
	int fd, probe;

	cr_assert_eq(test_server_init(&s), 0);
	s.fake.stats_answer = false;
	s.fake.reclaim_answer = false;
	cr_assert_eq(test_server_start(&s), 0);
	probe = test_connect(s.path);
	cr_assert_geq(probe, 0);
	fd = shut_reader(s.path,
			 "{\"id\":1,\"cmd\":\"balloon.stats\"}\n"
			 "{\"id\":2,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":1}}\n");
	/* Both requests were handled: the k-th probe call counts 2 + k requests. */
	for (int k = 1; server_counter(probe, "requests") < 2 + k; k++) {
		cr_assert_lt(k, 300, "the requests were never handled");
		usleep(10000);
	}
	cr_assert_eq(server_counter(probe, "clients"), 2, "both replies wait");
	test_server_stop(&s);
	cr_assert_eq(s.fake.nr_reclaims, 1);
	cr_assert_eq(s.fake.nr_stats_requests, 1);
	close(fd);
	close(probe);
}
