/*
 * The machine's stop order (vmm/machine.h) without KVM: a hand-built struct machine with guest RAM,
 * a balloon, the compressed tier and the real control server on a socket, torn down by
 * machine_destroy(). The control server must outlive every thread that can emit events: a
 * memory.reclaim that finishes while the machine shuts down still answers its client with the
 * reclaim's result (issue 12, item 7).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../vmm/machine.h"
#include "../../vmm/mem/memtier.h"
#include "../../vmm/mem/uffd.h"
#include "../../vmm/vm.h"
#include "test_control_helpers.h"

#define RAM (32 * MiB)

struct tmach {
	struct machine m;
	char dir[64], path[96];
	pthread_t thread;
};

static void *loop_main(void *arg)
{
	loop_run(arg);
	return NULL;
}

/*
 * What machine.c's glue does with a finished reclaim (vm_emit_event of ctl_reclaim_json), but
 * only once machine_destroy() has begun (the VM is stopped): the reclaim "finishes during
 * shutdown" every time, not only when the timing happens to line up.
 */
static void reclaim_done(void *opaque, const struct memtier_result *r)
{
	struct vm *vm = opaque;
	struct json_object *o;

	for (int i = 0; i < 10000 && vm_get_state(vm) != VM_STOPPED; i++)
		usleep(1000);
	o = ctl_reclaim_json(r);
	vm_emit_event(vm, "memory.reclaim",
		      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void tm_init(struct tmach *t)
{
	struct balloon_config bcfg = {.enabled = true, .stats = true};
	struct memtier_config mc = {.algo = CS_ALGO_LZ4, .vm_fd = -1, .done = reclaim_done};
	struct machine *m = &t->m;
	struct vm *vm = &m->vm;
	int fd = -1;

	if (uffd_open(true, &fd))
		cr_skip_test("userfaultfd write-protect unavailable here");
	close(fd);
	memset(t, 0, sizeof(*t));
	strcpy(t->dir, "/tmp/vmm-machine.XXXXXX");
	cr_assert_not_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/vm.sock", t->dir);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->kvm_fd = vm->vm_fd = -1;
	vm->cfg.mem_bytes = RAM;
	m->console_fd = m->stats_timer = m->mem_fd = -1;
	m->cfg.console = CONSOLE_NONE;
	cr_assert_eq(gm_init(&vm->gm, RAM, 0), 0);
	vm->loop = loop_create();
	cr_assert_not_null(vm->loop);
	m->balloon = balloon_create(&vm->gm, &bcfg);
	cr_assert_not_null(m->balloon);
	mc.opaque = vm;
	cr_assert_eq(memtier_create(&vm->gm, &mc, &m->memtier), 0);
	vm->state = VM_RUNNING;
	vm->start_ns = now_ns();
	cr_assert_eq(control_start(m, t->path), 0);
	cr_assert_eq(pthread_create(&t->thread, NULL, loop_main, vm->loop), 0);
}

Test(machine, reclaim_finishing_during_shutdown_answers_its_client)
{
	struct json_object *r, *ok, *why;
	struct tmach t;
	char line[65536];
	int fd;

	tm_init(&t);
	for (uint64_t off = 0; off < RAM; off += 4096)
		memset(t.m.vm.gm.base + off, (int)(off >> 12), 2048); /* compressible, not zero */
	fd = test_connect(t.path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(test_send(fd,
			       "{\"id\":1,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":0}}\n"
			       "{\"id\":2,\"cmd\":\"vm.info\"}\n"),
		     0);
	/* vm.info's reply comes first: the reclaim (id 1) is under way by then. */
	cr_assert_gt(test_read_line(fd, line, sizeof(line), 5000), 0);
	r = json_tokener_parse(line);
	cr_assert_eq(test_i64(r, "id"), 2, "%s", line);
	json_object_put(r);

	/* The process exits: the loop returns, then the machine comes down around the reclaim. */
	loop_stop(t.m.vm.loop);
	pthread_join(t.thread, NULL);
	machine_destroy(&t.m);

	cr_assert_gt(test_read_line(fd, line, sizeof(line), 5000), 0, "a reply for the reclaim");
	r = json_tokener_parse(line);
	cr_assert_eq(test_i64(r, "id"), 1, "%s", line);
	ok = test_ok(r);
	cr_assert_not_null(ok, "the reclaim's result, not an error: %s", line);
	/* Its result, whether or not the worker scanned a page yet (under load it may not). */
	cr_assert(json_object_object_get_ex(ok, "stopped_because", &why), "%s", line);
	json_object_put(r);
	cr_assert_eq(test_read_line(fd, line, sizeof(line), 5000), 0, "then the server closes");
	cr_assert_neq(access(t.path, F_OK), 0, "socket file removed");
	cr_assert_null(t.m.control);
	cr_assert_null(t.m.memtier);
	cr_assert_null(t.m.balloon);
	close(fd);
	rmdir(t.dir);
}
