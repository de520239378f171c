/* The control protocol: reply, error and event lines and the "ok" objects (protocol.h). */
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_console.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util.h"

#define PAGE_4K (1ULL << VIRTIO_BALLOON_PFN_SHIFT) /* balloon and state-map page size */

static const struct {
	unsigned int bit;
	const char *name;
} balloon_feature_names[] = {
	{VIRTIO_BALLOON_F_MUST_TELL_HOST, "must_tell_host"},
	{VIRTIO_BALLOON_F_STATS_VQ, "stats_vq"},
	{VIRTIO_BALLOON_F_DEFLATE_ON_OOM, "deflate_on_oom"},
	{VIRTIO_BALLOON_F_FREE_PAGE_HINT, "free_page_hint"},
	{VIRTIO_BALLOON_F_PAGE_POISON, "page_poison"},
	{VIRTIO_BALLOON_F_REPORTING, "reporting"},
};

static char *to_line(struct json_object *obj)
{
	const char *s;
	char *line = NULL;

	if (!obj)
		return NULL;
	s = json_object_to_json_string_ext(obj,
					   JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s && asprintf(&line, "%s\n", s) < 0)
		line = NULL;
	json_object_put(obj);
	return line;
}

static struct json_object *id_json(bool has_id, int64_t id)
{
	return has_id ? json_object_new_int64(id) : NULL;
}

char *ctl_reply_ok(bool has_id, int64_t id, struct json_object *ok)
{
	struct json_object *r = json_object_new_object();

	if (!r) {
		json_object_put(ok);
		return NULL;
	}
	json_object_object_add(r, "id", id_json(has_id, id));
	json_object_object_add(r, "ok", ok ? ok : json_object_new_object());
	return to_line(r);
}

char *ctl_reply_error(bool has_id, int64_t id, enum ctl_code code, const char *message)
{
	struct json_object *r = json_object_new_object(), *e = json_object_new_object();

	if (!r || !e) {
		json_object_put(r);
		json_object_put(e);
		return NULL;
	}
	json_object_object_add(e, "code", json_object_new_string(ctl_code_name(code)));
	json_object_object_add(e, "message", json_object_new_string(message ? message : ""));
	json_object_object_add(r, "id", id_json(has_id, id));
	json_object_object_add(r, "error", e);
	return to_line(r);
}

char *ctl_event_line(const char *event, const char *data_json)
{
	struct json_object *r, *data = NULL;
	const char *why;

	if (data_json && *data_json && ctl_parse_json(data_json, strlen(data_json), &data, &why))
		return NULL;
	r = json_object_new_object();
	if (!r) {
		json_object_put(data);
		return NULL;
	}
	json_object_object_add(r, "event", json_object_new_string(event));
	json_object_object_add(r, "data", data);
	return to_line(r);
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static struct json_object *feature_list(uint64_t features)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < ARRAY_SIZE(balloon_feature_names); i++)
		if (features & (1ULL << balloon_feature_names[i].bit))
			json_object_array_add(
				a, json_object_new_string(balloon_feature_names[i].name));
	return a;
}

static struct json_object *server_json(const struct ctl_server_stats *s)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	add_u64(o, "clients", s->clients);
	add_u64(o, "clients_total", s->clients_total);
	add_u64(o, "clients_rejected", s->clients_rejected);
	add_u64(o, "clients_dropped_slow", s->clients_dropped_slow);
	add_u64(o, "requests", s->requests);
	add_u64(o, "error_replies", s->error_replies);
	add_u64(o, "lines_too_long", s->lines_too_long);
	add_u64(o, "clients_idle_closed", s->clients_idle_closed);
	add_u64(o, "clients_refused_peer", s->clients_refused_peer);
	add_u64(o, "events_dropped", s->events_dropped);
	return o;
}

/* A disk's entry in vm.info's devices: the image and its request counters. */
static void disk_json(struct json_object *d, const struct ctl_disk_info *k)
{
	json_object_object_add(d, "path", json_object_new_string(k->path ? k->path : ""));
	json_object_object_add(d, "read_only", json_object_new_boolean(k->ro));
	add_u64(d, "capacity_sectors", k->c.capacity);
	add_u64(d, "reads", k->c.reads);
	add_u64(d, "writes", k->c.writes);
	add_u64(d, "flushes", k->c.flushes);
	add_u64(d, "discards", k->c.discards);
	add_u64(d, "write_zeroes", k->c.write_zeroes);
	add_u64(d, "get_ids", k->c.get_ids);
	add_u64(d, "bytes_read", k->c.bytes_read);
	add_u64(d, "bytes_written", k->c.bytes_written);
	add_u64(d, "unsupported", k->c.unsupported);
	add_u64(d, "rejected", k->c.rejected);
	add_u64(d, "io_errors", k->c.io_errors);
	add_u64(d, "guest_errors", k->c.err_count);
	add_u64(d, "submits", k->c.submits);
	add_u64(d, "inflight", k->c.inflight);
}

/* The entropy device's entry: its rate limit and counters. */
static void rng_json(struct json_object *d, const struct ctl_vm_info *info)
{
	const struct rng_counters *c = &info->rng;

	add_u64(d, "rate_bytes_per_s", info->rng_cfg.rate_bytes_per_s);
	add_u64(d, "burst_bytes",
		info->rng_cfg.burst_bytes ? info->rng_cfg.burst_bytes
					  : info->rng_cfg.rate_bytes_per_s);
	add_u64(d, "bytes", c->bytes);
	add_u64(d, "requests", c->requests);
	add_u64(d, "throttled", c->throttled);
	add_u64(d, "timer_wakeups", c->timer_wakeups);
	add_u64(d, "guest_errors", c->err_count);
}

/* The console's entry: guest errors, then one object per port with its byte counters. */
static void vconsole_json(struct json_object *d, const struct vconsole_stats *s)
{
	struct json_object *ports = json_object_new_array();

	add_u64(d, "guest_errors", s->err_count);
	json_object_object_add(
		d, "multiport",
		json_object_new_boolean(s->features & (1ULL << VIRTIO_CONSOLE_F_MULTIPORT)));
	if (!ports)
		return;
	for (unsigned int i = 0; i < s->nr_ports && i < VCONSOLE_MAX_PORTS; i++) {
		const struct vconsole_port_stats *p = &s->ports[i];
		struct json_object *o = json_object_new_object();

		if (!o)
			continue;
		add_u64(o, "id", i);
		json_object_object_add(o, "name", json_object_new_string(p->name));
		json_object_object_add(o, "added", json_object_new_boolean(p->added));
		json_object_object_add(o, "guest_open", json_object_new_boolean(p->guest_open));
		json_object_object_add(o, "host_open", json_object_new_boolean(p->host_open));
		add_u64(o, "tx_bytes", p->tx_bytes);
		add_u64(o, "rx_bytes", p->rx_bytes);
		add_u64(o, "written", p->written);
		add_u64(o, "dropped", p->dropped);
		add_u64(o, "buffered", p->buffered);
		json_object_array_add(ports, o);
	}
	json_object_object_add(d, "ports", ports);
}

struct json_object *ctl_info_json(const struct ctl_vm_info *info,
				  const struct ctl_server_stats *srv)
{
	struct json_object *o = json_object_new_object(), *devs = json_object_new_array();

	if (!o || !devs) {
		json_object_put(o);
		json_object_put(devs);
		return NULL;
	}
	json_object_object_add(o, "state", json_object_new_string(info->state ? info->state : "?"));
	add_u64(o, "vcpus", info->vcpus);
	add_u64(o, "memory_bytes", info->memory_bytes);
	add_u64(o, "memory_mib", info->memory_bytes / MiB);
	add_u64(o, "uptime_ms", info->uptime_ms);
	for (unsigned int i = 0, k = 0; i < info->nr_devices && i < CTL_MAX_DEVICES; i++) {
		struct json_object *d = json_object_new_object();

		if (!d)
			continue;
		json_object_object_add(d, "name", json_object_new_string(info->devices[i]));
		if (info->has_balloon && !strcmp(info->devices[i], "virtio-balloon"))
			json_object_object_add(d, "features", feature_list(info->balloon_features));
		if (!strcmp(info->devices[i], "virtio-blk") && k < info->nr_disks &&
		    k < CTL_MAX_DISKS)
			disk_json(d, &info->disks[k++]);
		if (info->has_rng && !strcmp(info->devices[i], "virtio-rng"))
			rng_json(d, info);
		if (info->has_vconsole && !strcmp(info->devices[i], "virtio-console"))
			vconsole_json(d, &info->vconsole);
		json_object_array_add(devs, d);
	}
	json_object_object_add(o, "devices", devs);
	if (info->stopped) {
		json_object_object_add(o, "exit_status", json_object_new_int(info->exit_status));
		json_object_object_add(o, "exit_reason", json_object_new_string(info->exit_reason));
	}
	if (srv)
		json_object_object_add(o, "control", server_json(srv));
	return o;
}

struct json_object *ctl_balloon_json(const struct balloon_counters *bc, uint64_t ram_bytes)
{
	struct json_object *o = json_object_new_object();
	uint64_t pages_per_mib = MiB / PAGE_4K;
	uint64_t ram_pages = ram_bytes / PAGE_4K;
	uint64_t actual = MIN(bc->actual_pages, ram_pages);

	if (!o)
		return NULL;
	add_u64(o, "target_mib", bc->target_pages / pages_per_mib);
	add_u64(o, "actual_mib", bc->actual_pages / pages_per_mib);
	add_u64(o, "target_pages", bc->target_pages);
	add_u64(o, "actual_pages", bc->actual_pages);
	add_u64(o, "guest_ram_mib", ram_bytes / MiB);
	add_u64(o, "guest_mib", (ram_pages - actual) / pages_per_mib);
	return o;
}

struct json_object *ctl_stats_json(const struct balloon_stats *st, uint64_t now_ns, bool fresh)
{
	struct json_object *o = json_object_new_object(), *s = json_object_new_object();

	if (!o || !s) {
		json_object_put(o);
		json_object_put(s);
		return NULL;
	}
	for (unsigned int t = 0; t < BALLOON_NR_STAT_TAGS; t++)
		if (st->valid[t])
			add_u64(s, ctl_stat_name(t), st->val[t]);
	add_u64(o, "seq", st->seq);
	if (st->seq)
		add_u64(o, "age_ms",
			now_ns > st->received_ns ? (now_ns - st->received_ns) / 1000000 : 0);
	else
		json_object_object_add(o, "age_ms", NULL);
	json_object_object_add(o, "fresh", json_object_new_boolean(fresh));
	json_object_object_add(o, "stats", s);
	return o;
}

/* A host figure that may be unreadable (negative): null then. A zeroed struct reads as 0. */
static void add_opt(struct json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, v >= 0 ? json_object_new_int64(v) : NULL);
}

static struct json_object *ksm_json(const struct ksm_stats *k)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "mergeable", json_object_new_boolean(k->mergeable));
	json_object_object_add(o, "run", k->run >= 0 ? json_object_new_int(k->run) : NULL);
	if (k->have_ksm_stat) {
		add_u64(o, "rmap_items", k->rmap_items);
		add_u64(o, "merging_pages", k->merging_pages);
		add_u64(o, "zero_pages", k->zero_pages);
		json_object_object_add(o, "profit_bytes", json_object_new_int64(k->process_profit));
	}
	if (k->have_smaps) {
		add_u64(o, "guest_rss_bytes", k->smaps_rss_bytes);
		add_u64(o, "guest_ksm_bytes", k->smaps_ksm_bytes);
		add_u64(o, "guest_swap_bytes", k->smaps_swap_bytes);
	}
	add_opt(o, "pages_to_scan", k->pages_to_scan);
	add_opt(o, "sleep_millisecs", k->sleep_millisecs);
	add_opt(o, "host_pages_shared", k->pages_shared);
	add_opt(o, "host_pages_sharing", k->pages_sharing);
	add_opt(o, "host_full_scans", k->full_scans);
	return o;
}

/* Pages and bytes held, ratio, skips, faults and their latency, reclaim throughput. */
static void tier_json(struct json_object *o, const struct memtier_stats *t)
{
	uint64_t orig = t->compressed_pages * PAGE_4K;

	json_object_object_add(o, "algorithm", json_object_new_string(t->algo ? t->algo : "?"));
	add_u64(o, "stored_pages_bytes", t->stored_pages * PAGE_4K);
	add_u64(o, "compressed_pages", t->compressed_pages);
	add_u64(o, "store_alloc_bytes", t->store_alloc_bytes);
	add_u64(o, "zero_pages", t->zero_pages);
	/* Page bytes per blob byte over the compressed pages; same-filled pages cost nothing. */
	json_object_object_add(o, "compression_ratio",
			       json_object_new_double(t->compressed_bytes
							      ? (double)orig / t->compressed_bytes
							      : 0));
	add_u64(o, "incompressible_pages_skipped", t->incompressible_skipped);
	add_u64(o, "shared_pages_skipped", t->shared_skipped);
	add_u64(o, "evicted_pages", t->evicted_pages);
	add_u64(o, "faults_stored", t->faults_stored);
	add_u64(o, "faults_zero", t->faults_zero);
	add_u64(o, "wp_faults", t->wp_faults);
	add_u64(o, "fault_p50_ns", t->fault_p50_ns);
	add_u64(o, "fault_p99_ns", t->fault_p99_ns);
	add_u64(o, "fault_max_ns", t->fault_max_ns);
	add_u64(o, "fault_samples", t->fault_samples);
	add_u64(o, "reclaim_runs", t->reclaim_runs);
	add_u64(o, "reclaim_input_bytes", t->reclaim_input_bytes);
	/* Compression throughput per core: page bytes over the worker's CPU time. */
	json_object_object_add(
		o, "reclaim_mb_per_s_per_core",
		json_object_new_double(
			t->reclaim_cpu_ns ? t->reclaim_input_bytes * 1e3 / t->reclaim_cpu_ns : 0));
	add_u64(o, "registered_bytes", t->registered_bytes);
	add_u64(o, "mem_limit_bytes", t->mem_limit_bytes);
	add_u64(o, "checksum_errors", t->checksum_errors);
	json_object_object_add(o, "busy", json_object_new_boolean(t->busy));
	json_object_object_add(o, "idle_tracking", json_object_new_boolean(t->idle_tracking));
	json_object_object_add(o, "dirty_logging", json_object_new_boolean(t->dirty_logging));
}

struct json_object *ctl_reclaim_json(const struct memtier_result *r)
{
	struct json_object *o = json_object_new_object();
	double secs = r->elapsed_ns / 1e9;

	if (!o)
		return NULL;
	add_u64(o, "job", r->job);
	add_u64(o, "target_mib", r->target_bytes / MiB);
	json_object_object_add(o, "reached", json_object_new_boolean(r->reached));
	json_object_object_add(o, "stopped_because", json_object_new_string(r->why ? r->why : "?"));
	add_u64(o, "resident_before_bytes", r->resident_before);
	add_u64(o, "resident_bytes", r->resident_after);
	add_u64(o, "resident_mib", r->resident_after / MiB);
	add_u64(o, "incompressible_resident_bytes", r->incompressible_resident_bytes);
	add_u64(o, "scanned_pages", r->scanned_pages);
	add_u64(o, "evicted_pages", r->evicted_pages);
	add_u64(o, "compressed_pages", r->compressed_pages);
	add_u64(o, "same_filled_pages", r->same_pages);
	add_u64(o, "incompressible_pages", r->incompressible_pages);
	add_u64(o, "shared_pages_skipped", r->shared_pages);
	add_u64(o, "hot_pages_skipped", r->hot_pages);
	add_u64(o, "input_bytes", r->input_bytes);
	add_u64(o, "output_bytes", r->output_bytes);
	json_object_object_add(o, "compression_ratio",
			       json_object_new_double(r->output_bytes
							      ? (double)r->compressed_pages *
									PAGE_4K / r->output_bytes
							      : 0));
	add_u64(o, "elapsed_ms", r->elapsed_ns / 1000000);
	add_u64(o, "cpu_ms", r->cpu_ns / 1000000);
	json_object_object_add(o, "mb_per_s",
			       json_object_new_double(secs > 0 ? r->input_bytes / 1e6 / secs : 0));
	json_object_object_add(
		o, "mb_per_s_per_core",
		json_object_new_double(r->cpu_ns ? r->input_bytes * 1e3 / r->cpu_ns : 0));
	add_u64(o, "revolutions", r->revolutions);
	return o;
}

static struct json_object *compressed_json(const struct ctl_compressed_stats *c)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "enabled", json_object_new_boolean(c->enabled));
	if (!c->enabled)
		return o;
	add_u64(o, "stored_pages", c->tier.stored_pages);
	add_u64(o, "stored_bytes", c->tier.compressed_bytes);
	add_u64(o, "same_filled_pages", c->tier.same_filled_pages);
	add_u64(o, "faults", c->tier.faults);
	tier_json(o, &c->tier);
	return o;
}

/* Per-queue indices and counters, in transport order (inflate, deflate, [stats], [reporting]). */
static struct json_object *queues_json(const struct balloon_counters *bc)
{
	struct json_object *a = json_object_new_array();

	for (unsigned int i = 0; a && i < bc->nr_queues; i++) {
		const struct vq_state *q = &bc->queues[i];
		struct json_object *o = json_object_new_object();

		if (!o)
			break;
		json_object_object_add(o, "ready", json_object_new_boolean(q->ready));
		add_u64(o, "size", q->size);
		add_u64(o, "last_avail", q->last_avail);
		add_u64(o, "avail_idx", q->avail_idx);
		add_u64(o, "used_idx", q->used_idx);
		add_u64(o, "used_event", q->used_event);
		add_u64(o, "avail_event", q->avail_event);
		add_u64(o, "popped", q->popped);
		add_u64(o, "notifications", q->notifications);
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *balloon_mem_json(const struct ctl_memory_stats *ms)
{
	const struct balloon_counters *bc = &ms->balloon;
	struct json_object *o;

	if (!ms->has_balloon)
		return NULL;
	o = ctl_balloon_json(bc, ms->guest_ram_bytes);
	if (!o)
		return NULL;
	add_u64(o, "inflated_pages", bc->inflated_pages);
	add_u64(o, "deflated_pages", bc->deflated_pages);
	add_u64(o, "reported_bytes", bc->reported_bytes);
	add_u64(o, "discard_ranges", bc->discard_ranges);
	json_object_object_add(o, "features", feature_list(bc->features));
	json_object_object_add(o, "queues", queues_json(bc));
	return o;
}

static struct json_object *errors_json(const struct ctl_memory_stats *ms,
				       const struct ctl_server_stats *srv)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (ms->has_balloon)
		add_u64(o, "balloon", ms->balloon.err_count);
	if (ms->compressed.enabled)
		add_u64(o, "compressed", ms->compressed.tier.errors);
	if (srv) {
		add_u64(o, "control_error_replies", srv->error_replies);
		add_u64(o, "control_clients_rejected", srv->clients_rejected);
		add_u64(o, "control_clients_dropped_slow", srv->clients_dropped_slow);
		add_u64(o, "control_lines_too_long", srv->lines_too_long);
		add_u64(o, "control_events_dropped", srv->events_dropped);
	}
	return o;
}

/* The autopilot's state (README "Memory autopilot"): its band, counters and last decision. */
static struct json_object *policy_json(const struct ctl_memory_stats *ms)
{
	static const char *const actions[] = {"none", "inflate", "deflate"};
	const struct policy *p = &ms->policy;
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "enabled", json_object_new_boolean(ms->has_policy));
	if (!ms->has_policy)
		return o;
	add_u64(o, "low_pct", p->cfg.low_pct);
	add_u64(o, "high_pct", p->cfg.high_pct);
	add_u64(o, "step_mib", p->cfg.step_bytes / MiB);
	add_u64(o, "floor_mib", p->cfg.floor_bytes / MiB);
	add_u64(o, "period_ms", p->cfg.period_ms);
	add_u64(o, "decisions", p->decisions);
	add_u64(o, "inflates", p->inflates);
	add_u64(o, "deflates", p->deflates);
	add_u64(o, "oom_deflates", p->oom_deflates);
	add_u64(o, "fast_deflates", p->fast_deflates);
	add_u64(o, "returned_skips", p->returned_skips);
	add_u64(o, "touching_skips", p->touching_skips);
	add_u64(o, "client_holds", p->holds);
	add_u64(o, "hold_remaining_ms",
		p->hold_until_ms > ms->policy_now_ms ? p->hold_until_ms - ms->policy_now_ms : 0);
	json_object_object_add(o, "last_action",
			       json_object_new_string(actions[p->last.action % 3]));
	json_object_object_add(o, "last_why",
			       json_object_new_string(p->last.why ? p->last.why : ""));
	add_u64(o, "last_guest_available_mib", p->last_avail / MiB);
	return o;
}

struct json_object *ctl_memory_json(const struct ctl_memory_stats *ms,
				    const struct ctl_server_stats *srv)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	add_u64(o, "guest_ram_bytes", ms->guest_ram_bytes);
	add_u64(o, "resident_bytes", ms->resident_bytes);
	add_u64(o, "ballooned_pages", ms->ballooned_pages);
	add_u64(o, "ballooned_bytes", ms->ballooned_pages * PAGE_4K);
	add_u64(o, "reported_pages", ms->reported_pages);
	add_u64(o, "reported_bytes", ms->reported_pages * PAGE_4K);
	add_u64(o, "discard_calls", ms->discard_calls);
	json_object_object_add(o, "balloon", balloon_mem_json(ms));
	json_object_object_add(o, "ksm", ksm_json(&ms->ksm));
	json_object_object_add(o, "compressed", compressed_json(&ms->compressed));
	json_object_object_add(o, "policy", policy_json(ms));
	json_object_object_add(o, "errors", errors_json(ms, srv));
	return o;
}
