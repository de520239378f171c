#include "control_fake.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../vmm/loop.h"
#include "../../vmm/util.h"

#define FAKE_PAGE    4096ULL
#define FAKE_TICK_MS 10

/* Resident guest RAM as memory.stats reports it. */
static uint64_t fake_resident(const struct control_fake *f)
{
	return f->ram_bytes / 4;
}

static void post(struct control_fake *f, const char *event, const char *data)
{
	if (f->ctl)
		control_post_event(f->ctl, event, data);
}

static void post_change(struct control_fake *f)
{
	char data[96];

	snprintf(data, sizeof(data), "{\"actual_mib\":%llu,\"target_mib\":%llu}",
		 (unsigned long long)(f->bc.actual_pages * FAKE_PAGE / MiB),
		 (unsigned long long)(f->bc.target_pages * FAKE_PAGE / MiB));
	post(f, "balloon.change", data);
}

static void set_state(struct control_fake *f, const char *state)
{
	char data[64];

	f->state = state;
	snprintf(data, sizeof(data), "{\"state\":\"%s\"}", state);
	post(f, "vm.state", data);
}

static void step(void *opaque)
{
	struct control_fake *f = opaque;
	uint64_t t = f->bc.target_pages, a = f->bc.actual_pages;

	if (a == t)
		return;
	f->bc.actual_pages = a < t ? MIN(t, a + f->step_pages) : MAX(t, a - MIN(a, f->step_pages));
	if (a < t)
		f->bc.inflated_pages += f->bc.actual_pages - a;
	else
		f->bc.deflated_pages += a - f->bc.actual_pages;
	post_change(f);
}

int control_fake_set_step(struct control_fake *f, struct loop *loop, uint64_t pages)
{
	int id;

	control_fake_fini(f);
	f->step_pages = pages;
	f->loop = loop;
	if (!pages || !loop)
		return 0;
	id = loop_add_timer(loop, FAKE_TICK_MS, true, step, f);
	if (id < 0)
		return id;
	f->timer = id;
	return 0;
}

void control_fake_fini(struct control_fake *f)
{
	if (f->timer >= 0 && f->loop)
		loop_del_timer(f->loop, f->timer);
	f->timer = -1;
}

void control_fake_init(struct control_fake *f, uint64_t ram_bytes, unsigned int vcpus)
{
	memset(f, 0, sizeof(*f));
	f->state = "running";
	f->vcpus = vcpus;
	f->ram_bytes = ram_bytes;
	f->start_ns = now_ns();
	f->has_balloon = f->stats_vq = f->stats_answer = f->guest_shutdown = true;
	f->compressed = f->reclaim_answer = true;
	f->timer = -1;
	f->bc.features = (1ULL << 1) | (1ULL << 2); /* stats_vq, deflate_on_oom */
}

static int fake_info(void *opaque, struct ctl_vm_info *out)
{
	struct control_fake *f = opaque;

	out->state = f->state;
	out->vcpus = f->vcpus;
	out->memory_bytes = f->ram_bytes;
	out->uptime_ms = (now_ns() - f->start_ns) / 1000000;
	out->devices[out->nr_devices++] = "serial";
	if (f->has_balloon) {
		out->devices[out->nr_devices++] = "virtio-balloon";
		out->has_balloon = true;
		out->balloon_features = f->bc.features;
	}
	if (!strcmp(f->state, "stopped")) {
		out->stopped = true;
		snprintf(out->exit_reason, sizeof(out->exit_reason), "fake: stopped");
	}
	return 0;
}

static int fake_pause(void *opaque)
{
	struct control_fake *f = opaque;

	f->nr_pause++;
	if (!strcmp(f->state, "paused"))
		return 1;
	if (strcmp(f->state, "running"))
		return -ESRCH;
	set_state(f, "paused");
	return 0;
}

static int fake_resume(void *opaque)
{
	struct control_fake *f = opaque;

	f->nr_resume++;
	if (!strcmp(f->state, "running"))
		return 1;
	if (strcmp(f->state, "paused"))
		return -ESRCH;
	set_state(f, "running");
	return 0;
}

static int fake_shutdown(void *opaque, uint64_t timeout_ms, bool *guest_notified)
{
	struct control_fake *f = opaque;

	f->nr_shutdown++;
	if (strcmp(f->state, "running") && strcmp(f->state, "paused"))
		return -ESRCH;
	f->last_shutdown_timeout_ms = timeout_ms;
	*guest_notified = f->guest_shutdown && timeout_ms;
	/* The fake guest complies at once. */
	post(f, "guest.exit", "{\"status\":0}");
	set_state(f, "stopped");
	return 0;
}

static int fake_balloon_set(void *opaque, uint64_t num_pages)
{
	struct control_fake *f = opaque;

	if (!f->has_balloon)
		return -ENODEV;
	if (num_pages > f->ram_bytes / FAKE_PAGE)
		return -EINVAL;
	f->bc.target_pages = num_pages;
	if (!f->step_pages) {
		if (num_pages > f->bc.actual_pages)
			f->bc.inflated_pages += num_pages - f->bc.actual_pages;
		else
			f->bc.deflated_pages += f->bc.actual_pages - num_pages;
		f->bc.actual_pages = num_pages;
	}
	post_change(f);
	return 0;
}

static int fake_balloon_get(void *opaque, struct balloon_counters *out, uint64_t *ram_bytes)
{
	struct control_fake *f = opaque;

	if (!f->has_balloon)
		return -ENODEV;
	*out = f->bc;
	*ram_bytes = f->ram_bytes;
	return 0;
}

static int fake_stats_request(void *opaque)
{
	struct control_fake *f = opaque;
	char data[48];

	if (!f->has_balloon)
		return -ENODEV;
	if (!f->stats_vq)
		return -ENOTSUP;
	f->nr_stats_requests++;
	if (!f->stats_answer)
		return 0;
	f->stats.seq++;
	f->stats.received_ns = now_ns();
	for (unsigned int t = 0; t < 10; t++) {
		f->stats.valid[t] = true;
		f->stats.val[t] = t * 1000 + f->stats.seq;
	}
	f->stats.val[4] = f->ram_bytes / 2;				 /* free_bytes */
	f->stats.val[5] = f->ram_bytes - f->bc.actual_pages * FAKE_PAGE; /* total_bytes */
	snprintf(data, sizeof(data), "{\"seq\":%llu}", (unsigned long long)f->stats.seq);
	post(f, "balloon.stats", data);
	return 0;
}

static int fake_stats_get(void *opaque, struct balloon_stats *out)
{
	struct control_fake *f = opaque;

	if (!f->has_balloon)
		return -ENODEV;
	*out = f->stats;
	return 0;
}

static int fake_memory_stats(void *opaque, struct ctl_memory_stats *out)
{
	struct control_fake *f = opaque;

	out->guest_ram_bytes = f->ram_bytes;
	out->ballooned_pages = f->bc.actual_pages;
	out->resident_bytes = fake_resident(f);
	out->discard_calls = f->bc.inflated_pages / 256;
	out->has_balloon = f->has_balloon;
	out->balloon = f->bc;
	out->ksm.mergeable = true;
	out->ksm.run = -1;
	return 0;
}

int control_fake_reclaim_done(struct control_fake *f)
{
	uint64_t before = fake_resident(f), target = f->reclaim_target_mib * MiB;
	struct memtier_result r = {.job = f->reclaim_job,
				   .target_bytes = target,
				   .reached = true,
				   .why = "reached",
				   .resident_before = before,
				   .resident_after = MIN(before, target)};
	struct json_object *o;

	if (!f->reclaim_running)
		return -ENOENT;
	f->reclaim_running = false;
	r.evicted_pages = r.compressed_pages = (before - r.resident_after) / FAKE_PAGE;
	r.input_bytes = r.evicted_pages * FAKE_PAGE;
	r.output_bytes = r.input_bytes / 4;
	o = ctl_reclaim_json(&r);
	post(f, "memory.reclaim",
	     o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL);
	json_object_put(o);
	return 0;
}

static int fake_reclaim(void *opaque, uint64_t target_mib, uint64_t timeout_ms, uint64_t *job)
{
	struct control_fake *f = opaque;

	(void)timeout_ms;
	if (!f->compressed)
		return -ENODEV;
	if (f->reclaim_running)
		return -EBUSY;
	f->nr_reclaims++;
	f->reclaim_running = true;
	f->reclaim_target_mib = target_mib;
	*job = ++f->reclaim_job;
	if (f->reclaim_answer)
		control_fake_reclaim_done(f);
	return 0;
}

const struct control_backend_ops control_fake_ops = {
	.info = fake_info,
	.pause = fake_pause,
	.resume = fake_resume,
	.shutdown = fake_shutdown,
	.balloon_set = fake_balloon_set,
	.balloon_get = fake_balloon_get,
	.stats_request = fake_stats_request,
	.stats_get = fake_stats_get,
	.memory_stats = fake_memory_stats,
	.reclaim = fake_reclaim,
};
