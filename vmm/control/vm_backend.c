/* The control socket's real backend: commands become calls on the machine: the VM, its balloon
 * and memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../devices/virtio_balloon.h"
#include "vm_backend.h"

#include "server.h"
#include "../loop.h"
#include "../machine.h"
#include "../mem/host_stats.h"
#include "../mem/memtier.h"
#include "../snapshot/snapshot.h"
#include "../util.h"
#include "../vm.h"

struct control_vm {
	struct machine *m;
	struct vm *vm;
	int shutdown_timer; /* loop timer id of the pending hard stop, -1 when none */
	int snapshot_timer; /* loop timer id of the stop after snapshot.create --stop, -1 when none
			     */
	uint64_t shutdown_timeout_ms;
	bool shutdown_notified;
};

static int cvm_info(void *opaque, struct ctl_vm_info *out)
{
	struct control_vm *cv = opaque;
	struct vm *vm = cv->vm;
	uint64_t start;

	pthread_mutex_lock(&vm->lock);
	out->state = vm_state_name(vm->state);
	out->stopped = vm->state == VM_STOPPED;
	out->exit_status = vm->exit_status;
	snprintf(out->exit_reason, sizeof(out->exit_reason), "%s", vm->exit_reason);
	start = vm->start_ns;
	pthread_mutex_unlock(&vm->lock);
	out->vcpus = vm->nr_vcpus;
	out->memory_bytes = vm->gm.size ? vm->gm.size : vm->cfg.mem_bytes;
	out->uptime_ms = start ? (now_ns() - start) / 1000000 : 0;
	if (cv->m->cfg.console != CONSOLE_NONE)
		out->devices[out->nr_devices++] = "serial";
	out->devices[out->nr_devices++] = "i8042";
	out->devices[out->nr_devices++] = "exit-port";
	if (cv->m->pci)
		out->devices[out->nr_devices++] = "pci-host";
	if (cv->m->balloon) {
		struct balloon_counters bc;

		balloon_get_counters(cv->m->balloon, &bc);
		out->devices[out->nr_devices++] = "virtio-balloon";
		out->has_balloon = true;
		out->balloon_features = bc.features;
	}
	for (unsigned int i = 0; i < cv->m->cfg.nr_disks && i < CTL_MAX_DISKS; i++) {
		struct ctl_disk_info *d = &out->disks[out->nr_disks];

		if (!cv->m->disks[i] || out->nr_devices == CTL_MAX_DEVICES)
			continue;
		d->path = cv->m->cfg.disks[i].path;
		d->ro = cv->m->cfg.disks[i].ro;
		blk_get_counters(cv->m->disks[i], &d->c);
		out->nr_disks++;
		out->devices[out->nr_devices++] = "virtio-blk";
	}
	return 0;
}

static int cvm_pause(void *opaque)
{
	struct control_vm *cv = opaque;
	enum vm_state s = vm_get_state(cv->vm);

	if (s == VM_PAUSED)
		return 1;
	if (s != VM_RUNNING)
		return -ESRCH;
	/* -EBUSY: the state changed under us; report what it is now. */
	if (vm_pause(cv->vm) == -EBUSY)
		return vm_get_state(cv->vm) == VM_PAUSED ? 1 : -ESRCH;
	return 0;
}

static int cvm_resume(void *opaque)
{
	struct control_vm *cv = opaque;
	enum vm_state s = vm_get_state(cv->vm);

	if (s == VM_RUNNING)
		return 1;
	if (s != VM_PAUSED)
		return -ESRCH;
	if (vm_resume(cv->vm) == -EBUSY)
		return vm_get_state(cv->vm) == VM_RUNNING ? 1 : -ESRCH;
	return 0;
}

static void hard_stop(void *opaque)
{
	struct control_vm *cv = opaque;
	char reason[160];

	loop_del_timer(cv->vm->loop, cv->shutdown_timer);
	cv->shutdown_timer = -1;
	if (vm_get_state(cv->vm) == VM_STOPPED)
		return;
	if (cv->shutdown_notified)
		snprintf(reason, sizeof(reason),
			 "vm.shutdown: the guest did not stop within %llu ms, stopped by the host",
			 (unsigned long long)cv->shutdown_timeout_ms);
	else
		snprintf(reason, sizeof(reason), "vm.shutdown: stopped by the host");
	vm_stop(cv->vm, 0, reason);
}

static int cvm_shutdown(void *opaque, uint64_t timeout_ms, bool *guest_notified)
{
	struct control_vm *cv = opaque;
	struct vm *vm = cv->vm;
	enum vm_state s = vm_get_state(vm);
	int id;

	if (s != VM_RUNNING && s != VM_PAUSED)
		return -ESRCH;
	if (cv->shutdown_timer >= 0)
		return -EALREADY;
	/* A parked guest cannot act on the request. */
	if (s == VM_PAUSED && timeout_ms)
		vm_resume(vm);
	*guest_notified = timeout_ms && machine_request_guest_shutdown(cv->m) == 0;
	/* Even "at once" goes through the loop so the reply leaves before the loop stops. */
	id = loop_add_timer(vm->loop, *guest_notified ? timeout_ms : 1, false, hard_stop, cv);
	if (id < 0)
		return id;
	cv->shutdown_timer = id;
	cv->shutdown_timeout_ms = timeout_ms;
	cv->shutdown_notified = *guest_notified;
	return 0;
}

static int cvm_balloon_set(void *opaque, uint64_t num_pages)
{
	struct control_vm *cv = opaque;

	if (!cv->m->balloon)
		return -ENODEV;
	return balloon_set_target(cv->m->balloon, num_pages);
}

static int cvm_balloon_get(void *opaque, struct balloon_counters *out, uint64_t *ram_bytes)
{
	struct control_vm *cv = opaque;

	if (!cv->m->balloon)
		return -ENODEV;
	balloon_get_counters(cv->m->balloon, out);
	*ram_bytes = cv->vm->gm.size;
	return 0;
}

static int cvm_stats_request(void *opaque)
{
	struct control_vm *cv = opaque;

	if (!cv->m->balloon)
		return -ENODEV;
	return balloon_request_stats(cv->m->balloon);
}

static int cvm_stats_get(void *opaque, struct balloon_stats *out)
{
	struct control_vm *cv = opaque;

	if (!cv->m->balloon)
		return -ENODEV;
	balloon_get_stats(cv->m->balloon, out);
	return 0;
}

static int cvm_memory_stats(void *opaque, struct ctl_memory_stats *out)
{
	struct control_vm *cv = opaque;
	struct vm *vm = cv->vm;

	out->guest_ram_bytes = vm->gm.size;
	out->resident_bytes = gm_resident_bytes(&vm->gm);
	pthread_mutex_lock(&vm->gm.lock);
	out->ballooned_pages = vm->gm.nr_ballooned;
	out->reported_pages = vm->gm.nr_reported;
	out->discard_calls = vm->gm.discard_calls;
	pthread_mutex_unlock(&vm->gm.lock);
	if (cv->m->balloon) {
		out->has_balloon = true;
		balloon_get_counters(cv->m->balloon, &out->balloon);
	}
	host_ksm_read(vm->gm.base, vm->gm.size, vm->gm.mergeable, &out->ksm);
	if (cv->m->cfg.auto_balloon) { /* the policy is loop-thread state; so is this command */
		out->has_policy = true;
		out->policy = cv->m->policy;
		out->policy_now_ms = now_ns() / 1000000;
	}
	if (cv->m->memtier) {
		memtier_get_stats(cv->m->memtier, &out->compressed.tier);
		out->compressed.enabled = true;
	}
	return 0;
}

static int cvm_reclaim(void *opaque, uint64_t target_mib, uint64_t timeout_ms, uint64_t *job)
{
	struct control_vm *cv = opaque;

	if (!cv->m->memtier)
		return -ENODEV;
	if (vm_get_state(cv->vm) == VM_STOPPED)
		return -ESRCH;
	return memtier_reclaim(cv->m->memtier, target_mib * MiB, timeout_ms, job);
}

/* After snapshot.create with stop: the reply leaves first, then the VM stops (as vm.shutdown). */
static void snapshot_stop(void *opaque)
{
	struct control_vm *cv = opaque;

	loop_del_timer(cv->vm->loop, cv->snapshot_timer);
	cv->snapshot_timer = -1;
	vm_stop(cv->vm, 0, "stopped after a snapshot");
}

static int cvm_snapshot(void *opaque, const char *path, bool stop, struct ctl_snapshot_result *out,
			char *why, size_t why_len)
{
	struct control_vm *cv = opaque;
	struct snapshot_result r;
	enum vm_state s = vm_get_state(cv->vm);
	int ret;

	if (s != VM_RUNNING && s != VM_PAUSED) {
		snprintf(why, why_len, "the VM is %s", vm_state_name(s));
		return -ESRCH;
	}
	if (cv->snapshot_timer >= 0) {
		snprintf(why, why_len, "the VM is stopping after a snapshot");
		return -EALREADY;
	}
	ret = snapshot_create(cv->m, path, stop, &r, why, why_len);
	if (ret)
		return ret;
	*out = (struct ctl_snapshot_result){
		.pause_ms = r.pause_ns / 1000000,
		.total_ms = r.total_ns / 1000000,
		.state_bytes = r.state_bytes,
		.memory_bytes = r.mem.apparent_bytes,
		.memory_allocated_bytes = r.mem.allocated_bytes,
		.data_pages = r.mem.data_pages,
		.stopped = stop,
	};
	if (stop) {
		ret = loop_add_timer(cv->vm->loop, 1, false, snapshot_stop, cv);
		if (ret < 0)
			vm_stop(cv->vm, 0, "stopped after a snapshot");
		else
			cv->snapshot_timer = ret;
	}
	return 0;
}

static const struct control_backend_ops control_vm_ops = {
	.info = cvm_info,
	.pause = cvm_pause,
	.resume = cvm_resume,
	.shutdown = cvm_shutdown,
	.balloon_set = cvm_balloon_set,
	.balloon_get = cvm_balloon_get,
	.stats_request = cvm_stats_request,
	.stats_get = cvm_stats_get,
	.memory_stats = cvm_memory_stats,
	.reclaim = cvm_reclaim,
	.snapshot = cvm_snapshot,
};

int control_start(struct machine *m, const char *path)
{
	struct control_vm *cv = calloc(1, sizeof(*cv));
	struct vm *vm = &m->vm;
	struct control *c;
	int ret;

	if (!cv)
		return -ENOMEM;
	cv->m = m;
	cv->vm = vm;
	cv->shutdown_timer = -1;
	cv->snapshot_timer = -1;
	ret = control_create(vm->loop, path, &control_vm_ops, cv, &c);
	if (ret < 0) {
		free(cv);
		return ret;
	}
	ret = control_set_idle_timeout(c, m->cfg.control_idle_ms);
	if (ret < 0) {
		pr_err("control: idle timeout: %s", strerror(-ret));
		control_destroy(c);
		free(cv);
		return ret;
	}
	m->control = c;
	pthread_mutex_lock(&vm->lock);
	vm->event_opaque = c;
	vm->event_fn = control_post_event;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void control_stop(struct machine *m)
{
	struct control *c = m->control;
	struct vm *vm = &m->vm;
	struct control_vm *cv;

	if (!c)
		return;
	pthread_mutex_lock(&vm->lock);
	vm->event_fn = NULL;
	vm->event_opaque = NULL;
	pthread_mutex_unlock(&vm->lock);
	m->control = NULL;
	cv = control_backend_opaque(c);
	if (cv->shutdown_timer >= 0)
		loop_del_timer(vm->loop, cv->shutdown_timer);
	if (cv->snapshot_timer >= 0)
		loop_del_timer(vm->loop, cv->snapshot_timer);
	control_destroy(c);
	free(cv);
}
