/*
 * The real control backend (vmm/control/vm_backend.c) without KVM: a hand-built struct machine with
 * guest RAM, a balloon (no transport), no vCPUs and the loop on a thread. Covers
 * control_start/stop, the VM calls behind each command, event routing through vm_emit_event(), and
 * the shutdown path (no console: the guest cannot be asked, so the host stops the VM).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/stat.h>

#include "../../vmm/machine.h"
#include "../../vmm/vm.h"
#include "console_driver.h"
#include "test_control_helpers.h"

struct tvm {
	struct machine m;
	char dir[64], path[96];
	pthread_t thread;
	bool running;
};

static void *vm_loop(void *arg)
{
	loop_run(arg);
	return NULL;
}

static void tvm_init(struct tvm *t)
{
	struct balloon_config bcfg = {.enabled = true, .stats = true};
	struct vm *vm = &t->m.vm;

	memset(t, 0, sizeof(*t));
	strcpy(t->dir, "/tmp/vmm-ctlvm.XXXXXX");
	cr_assert_not_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/vm.sock", t->dir);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->kvm_fd = vm->vm_fd = -1;
	vm->cfg.mem_bytes = 64 * MiB;
	t->m.cfg.console = CONSOLE_NONE;
	cr_assert_eq(gm_init(&vm->gm, 64 * MiB, false), 0);
	vm->loop = loop_create();
	cr_assert_not_null(vm->loop);
	t->m.balloon = balloon_create(&vm->gm, &bcfg);
	cr_assert_not_null(t->m.balloon);
	vm->state = VM_RUNNING;
	vm->start_ns = now_ns();
	cr_assert_eq(control_start(&t->m, t->path), 0);
	cr_assert_eq(pthread_create(&t->thread, NULL, vm_loop, vm->loop), 0);
	t->running = true;
}

static void tvm_fini(struct tvm *t)
{
	if (t->running) {
		loop_stop(t->m.vm.loop);
		pthread_join(t->thread, NULL);
	}
	control_stop(&t->m);
	cr_assert_null(t->m.vm.event_fn);
	balloon_destroy(t->m.balloon);
	gm_destroy(&t->m.vm.gm);
	loop_destroy(t->m.vm.loop);
	rmdir(t->dir);
}

Test(control_vm, start_info_balloon_memory)
{
	struct tvm t;
	struct json_object *r, *ok;
	struct stat st;
	int fd;

	tvm_init(&t);
	cr_assert_eq(stat(t.path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_not_null(t.m.control);
	fd = test_connect(t.path);
	cr_assert_geq(fd, 0);

	r = test_call(fd, "{\"id\":1,\"cmd\":\"vm.info\"}\n");
	ok = test_ok(r);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(ok, "state")), "running");
	cr_assert_eq(test_i64(ok, "memory_mib"), 64);
	cr_assert(strstr(json_object_to_json_string(ok), "virtio-balloon"));
	json_object_put(r);

	r = test_call(fd, "{\"id\":2,\"cmd\":\"balloon.set\",\"args\":{\"guest_mib\":48}}\n");
	cr_assert_eq(test_i64(test_ok(r), "target_mib"), 16, "%s", json_object_to_json_string(r));
	json_object_put(r);
	r = test_call(fd, "{\"id\":3,\"cmd\":\"balloon.get\"}\n");
	cr_assert_eq(test_i64(test_ok(r), "target_pages"), 16 * 256);
	cr_assert_eq(test_i64(test_ok(r), "actual_pages"), 0);
	json_object_put(r);
	r = test_call(fd, "{\"id\":4,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":65}}\n");
	cr_assert_str_eq(test_code(r), "invalid-argument");
	json_object_put(r);

	/* No driver negotiated the stats queue: the last (empty) set at once. */
	r = test_call(fd, "{\"id\":5,\"cmd\":\"balloon.stats\"}\n");
	cr_assert_eq(test_i64(test_ok(r), "seq"), 0, "%s", json_object_to_json_string(r));
	json_object_put(r);

	memset(t.m.vm.gm.base, 1, 4 * MiB); /* make some guest RAM resident */
	r = test_call(fd, "{\"id\":6,\"cmd\":\"memory.stats\"}\n");
	ok = test_ok(r);
	cr_assert_geq(test_i64(ok, "resident_bytes"), 4 * MiB, "%s", json_object_to_json_string(r));
	cr_assert_leq(test_i64(ok, "resident_bytes"), 64 * MiB);
	cr_assert_eq(test_i64(ok, "guest_ram_bytes"), 64 * MiB);
	cr_assert_geq(test_i64(json_object_object_get(ok, "ksm"), "guest_rss_bytes"), 4 * MiB, "%s",
		      json_object_to_json_string(r));
	json_object_put(r);
	close(fd);
	tvm_fini(&t);
}

Test(control_vm, pause_resume_events_and_second_instance)
{
	struct tvm t;
	struct json_object *r;
	char line[512];
	int fd, ev;

	tvm_init(&t);
	cr_assert_eq(control_start(&(struct machine){.vm = {.loop = t.m.vm.loop}}, t.path),
		     -EADDRINUSE);
	fd = test_connect(t.path);
	ev = test_connect(t.path);
	json_object_put(test_call(ev, "{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":"
				      "[\"vm.state\"]}}\n"));
	r = test_call(fd, "{\"id\":2,\"cmd\":\"vm.pause\"}\n");
	cr_assert(json_object_get_boolean(json_object_object_get(test_ok(r), "changed")));
	json_object_put(r);
	cr_assert_eq(vm_get_state(&t.m.vm), VM_PAUSED);
	cr_assert_gt(test_read_line(ev, line, sizeof(line), 5000), 0);
	cr_assert_str_eq(line, "{\"event\":\"vm.state\",\"data\":{\"state\":\"paused\"}}");
	r = test_call(fd, "{\"id\":3,\"cmd\":\"vm.pause\"}\n");
	cr_assert_not(json_object_get_boolean(json_object_object_get(test_ok(r), "changed")));
	json_object_put(r);
	r = test_call(fd, "{\"id\":4,\"cmd\":\"vm.resume\"}\n");
	cr_assert(json_object_get_boolean(json_object_object_get(test_ok(r), "changed")));
	json_object_put(r);
	cr_assert_gt(test_read_line(ev, line, sizeof(line), 5000), 0);
	cr_assert_str_eq(line, "{\"event\":\"vm.state\",\"data\":{\"state\":\"running\"}}");
	close(fd);
	close(ev);
	tvm_fini(&t);
}

Test(control_vm, shutdown_without_console_stops_the_vm)
{
	struct tvm t;
	struct json_object *r;
	char line[512];
	int fd, ev;

	tvm_init(&t);
	fd = test_connect(t.path);
	ev = test_connect(t.path);
	json_object_put(test_call(ev, "{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":"
				      "[\"guest.exit\"]}}\n"));
	r = test_call(fd, "{\"id\":2,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":100}}\n");
	cr_assert_not(json_object_get_boolean(json_object_object_get(test_ok(r), "guest_notified")),
		      "%s", json_object_to_json_string(r));
	json_object_put(r);
	/* vm_stop() stops the loop: the thread ends by itself. */
	pthread_join(t.thread, NULL);
	t.running = false;
	cr_assert_eq(vm_get_state(&t.m.vm), VM_STOPPED);
	cr_assert_eq(t.m.vm.exit_status, 0);
	cr_assert(strstr(t.m.vm.exit_reason, "vm.shutdown"), "%s", t.m.vm.exit_reason);
	control_stop(&t.m); /* delivers guest.exit, then closes */
	cr_assert_gt(test_read_line(ev, line, sizeof(line), 5000), 0);
	cr_assert_str_eq(line, "{\"event\":\"guest.exit\",\"data\":{\"status\":0}}");
	cr_assert_eq(test_read_line(ev, line, sizeof(line), 5000), 0);
	cr_assert_eq(test_read_line(fd, line, sizeof(line), 5000), 0);
	cr_assert_neq(access(t.path, F_OK), 0, "socket file removed");
	close(fd);
	close(ev);
	tvm_fini(&t);
}

Test(control_vm, stopped_vm_refuses_lifecycle_commands)
{
	struct tvm t;
	struct json_object *r;
	int fd;

	tvm_init(&t);
	fd = test_connect(t.path);
	pthread_mutex_lock(&t.m.vm.lock);
	t.m.vm.state = VM_CREATED;
	pthread_mutex_unlock(&t.m.vm.lock);
	r = test_call(fd, "{\"id\":1,\"cmd\":\"vm.pause\"}\n");
	cr_assert_str_eq(test_code(r), "vm-not-running");
	json_object_put(r);
	r = test_call(fd, "{\"id\":2,\"cmd\":\"vm.shutdown\"}\n");
	cr_assert_str_eq(test_code(r), "vm-not-running");
	json_object_put(r);
	close(fd);
	tvm_fini(&t);
}

/* The "name" entry of vm.info's devices, or NULL. */
static struct json_object *device(struct json_object *ok, const char *name)
{
	struct json_object *devs = json_object_object_get(ok, "devices");

	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);

		if (!strcmp(json_object_get_string(json_object_object_get(d, "name")), name))
			return d;
	}
	return NULL;
}

/* vm.info carries the entropy device's rate and counters and the console's per-port counters,
 * read from the devices themselves: 5 bytes the fake driver wrote on vmm.stdout show up as
 * tx_bytes and written of that port, not of another. */
Test(control_vm, info_has_rng_and_console_counters)
{
	struct rng_config rcfg = {.enabled = true, .rate_bytes_per_s = 4096, .burst_bytes = 512};
	struct json_object *r, *ok, *d, *ports, *p;
	uint8_t got[8];
	struct tvm t;
	int fd;

	tvm_init(&t);
	t.m.cfg.rng = rcfg;
	t.m.rng = rng_create(&t.m.vm.gm, &rcfg, NULL);
	cr_assert_not_null(t.m.rng);
	setup_dev(F_MP, -1, false); /* console_driver.h: ports vmm.stdout, vmm.stderr, vmm.stdin */
	handshake();
	guest_write(0, "hello", 5);
	cr_assert_eq(read_pipe(out_pipe[0], got, sizeof(got)), 5);
	t.m.vconsole = vc;
	fd = test_connect(t.path);
	cr_assert_geq(fd, 0);

	r = test_call(fd, "{\"id\":1,\"cmd\":\"vm.info\"}\n");
	ok = test_ok(r);
	d = device(ok, "virtio-rng");
	cr_assert_not_null(d, "%s", json_object_to_json_string(ok));
	cr_assert_eq(test_i64(d, "rate_bytes_per_s"), 4096);
	cr_assert_eq(test_i64(d, "burst_bytes"), 512);
	cr_assert_eq(test_i64(d, "bytes"), 0);
	cr_assert_eq(test_i64(d, "requests"), 0);
	cr_assert_eq(test_i64(d, "throttled"), 0);
	cr_assert_eq(test_i64(d, "guest_errors"), 0);
	d = device(ok, "virtio-console");
	cr_assert_not_null(d, "%s", json_object_to_json_string(ok));
	cr_assert_eq(test_i64(d, "guest_errors"), 0);
	cr_assert(json_object_get_boolean(json_object_object_get(d, "multiport")));
	ports = json_object_object_get(d, "ports");
	cr_assert_eq(json_object_array_length(ports), 3, "%s", json_object_to_json_string(d));
	p = json_object_array_get_idx(ports, 0);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(p, "name")), "vmm.stdout");
	cr_assert(json_object_get_boolean(json_object_object_get(p, "added")));
	cr_assert_eq(test_i64(p, "tx_bytes"), 5);
	cr_assert_eq(test_i64(p, "written"), 5);
	cr_assert_eq(test_i64(p, "dropped"), 0);
	cr_assert_eq(test_i64(p, "buffered"), 0);
	p = json_object_array_get_idx(ports, 1);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(p, "name")), "vmm.stderr");
	cr_assert_eq(test_i64(p, "tx_bytes"), 0);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(
				 json_object_array_get_idx(ports, 2), "name")),
			 "vmm.stdin");
	json_object_put(r);

	/* A malformed control message counts as one guest error, seen in vm.info. */
	send_ctrl_raw("bad", 3);
	r = test_call(fd, "{\"id\":2,\"cmd\":\"vm.info\"}\n");
	cr_assert_eq(test_i64(device(test_ok(r), "virtio-console"), "guest_errors"), 1);
	json_object_put(r);
	close(fd);
	if (t.running) { /* stop the loop before the devices go */
		loop_stop(t.m.vm.loop);
		pthread_join(t.thread, NULL);
		t.running = false;
	}
	t.m.vconsole = NULL;
	teardown();
	rng_destroy(t.m.rng);
	t.m.rng = NULL;
	tvm_fini(&t);
}
