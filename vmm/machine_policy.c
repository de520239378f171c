/*
 * The memory autopilot's glue (vmm/mem/policy.h): a loop timer every period feeds the policy the
 * balloon's statistics and counters and the host's pressure, applies its decision through the
 * same call a control client's balloon.set makes, asks the compressed tier for cold pages under
 * host pressure, emits one memory.policy event per decision that changes something (or holds),
 * and requests the guest's next statistics set. A second timer (POLICY_WATCH_MS) answers a guest
 * deflating on OOM, or falling below the band between periods, at once (policy_watch()).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../devices/virtio_balloon.h"
#include "loop.h"
#include "machine.h"
#include "mem/memtier.h"
#include "mem/policy.h"
#include "util.h"

#include <linux/virtio_balloon.h>

static void emit(struct machine *m, const struct policy_input *in, const struct policy_decision *d)
{
	static const char *const actions[] = {"none", "inflate", "deflate"};
	char data[1024];

	snprintf(data, sizeof(data),
		 "{\"saw\":{\"guest_available_mib\":%" PRIu64 ",\"guest_free_mib\":%" PRIu64
		 ",\"guest_ram_mib\":%" PRIu64 ",\"major_faults\":%" PRIu64
		 ",\"target_mib\":%" PRIu64 ",\"actual_mib\":%" PRIu64 ",\"resident_mib\":%" PRIu64
		 ",\"host_available_mib\":%" PRIu64 ",\"host_psi_some_avg10\":%d"
		 ",\"cgroup_limit_mib\":%" PRId64 ",\"cgroup_available_mib\":%" PRId64
		 ",\"cgroup_psi_some_avg10\":%d"
		 ",\"guest_pressure\":%s,\"host_pressure\":%s},"
		 "\"did\":{\"action\":\"%s\",\"target_mib\":%" PRIu64 ",\"reclaim_mib\":%" PRIu64
		 ",\"why\":\"%s\"}}",
		 (uint64_t)(in->avail / MiB), (uint64_t)(in->free / MiB),
		 (uint64_t)(in->guest_ram / MiB), in->major_faults, (uint64_t)(in->target / MiB),
		 (uint64_t)(in->actual / MiB), (uint64_t)(in->resident / MiB),
		 (uint64_t)(in->host_avail / MiB),
		 in->host_psi_known ? (int)in->host_psi_some_avg10_pct : -1,
		 in->cg_limit ? (int64_t)(in->cg_limit / MiB) : -1,
		 in->cg_limit ? (int64_t)(in->cg_avail / MiB) : -1,
		 in->cg_psi_known ? (int)in->cg_psi_some_avg10_pct : -1,
		 d->guest_pressure ? "true" : "false", d->host_pressure ? "true" : "false",
		 actions[d->action], (uint64_t)((d->action ? d->new_target : in->target) / MiB),
		 (uint64_t)(d->reclaim_bytes / MiB), d->why ? d->why : "");
	vm_emit_event(&m->vm, "memory.policy", data);
}

/* What the policy sees of the guest: its last statistics set and the balloon's counters. */
static void read_guest(struct machine *m, struct policy_input *in)
{
	struct balloon_counters bc;
	struct balloon_stats st;

	*in = (struct policy_input){.now_ms = now_ns() / 1000000, .guest_ram = m->vm.gm.size};
	balloon_get_stats(m->balloon, &st);
	balloon_get_counters(m->balloon, &bc);
	in->stats_seq = st.seq;
	in->have_avail = st.valid[VIRTIO_BALLOON_S_AVAIL];
	in->avail = st.val[VIRTIO_BALLOON_S_AVAIL];
	in->free = st.val[VIRTIO_BALLOON_S_MEMFREE];
	in->major_faults = st.val[VIRTIO_BALLOON_S_MAJFLT];
	in->swap_in = st.val[VIRTIO_BALLOON_S_SWAP_IN];
	in->target = bc.target_pages * 4096;
	in->actual = bc.actual_pages * 4096;
	in->reporting = bc.features & (1ULL << VIRTIO_BALLOON_F_REPORTING);
}

/* Sets @d's target, if it acts. Returns the target in effect after it (bytes; @in's otherwise). */
static uint64_t apply(struct machine *m, const struct policy_input *in,
		      const struct policy_decision *d)
{
	if (d->action == POLICY_NONE)
		return in->target;
	if (balloon_set_target(m->balloon, d->new_target / 4096) < 0)
		pr_warn("auto-balloon: target %" PRIu64 " MiB refused",
			(uint64_t)(d->new_target / MiB));
	return d->new_target;
}

static void policy_watch_tick(void *opaque);

/*
 * The watch runs only while the balloon holds memory (a target above 0): with nothing in it,
 * policy_watch() has nothing to answer, and an idle guest's VMM would wake 10 times a second
 * for nothing. A timer that cannot be made now is tried again on the next period.
 */
static void watch_arm(struct machine *m, bool on)
{
	if (on && m->policy_watch_timer < 0) {
		m->policy_watch_timer =
			loop_add_timer(m->vm.loop, POLICY_WATCH_MS, true, policy_watch_tick, m);
		if (m->policy_watch_timer < 0) {
			pr_warn_ratelimited("auto-balloon: no watch timer: %s",
					    strerror(-m->policy_watch_timer));
			m->policy_watch_timer = -1;
		}
	} else if (!on && m->policy_watch_timer >= 0) {
		loop_del_timer(m->vm.loop, m->policy_watch_timer);
		m->policy_watch_timer = -1;
	}
}

static void policy_tick(void *opaque)
{
	struct machine *m = opaque;
	struct policy_input in;
	struct policy_decision d;
	uint64_t holds = m->policy.holds, target;

	read_guest(m, &in);
	policy_read_host(&in);
	/* What an inflate step would gain (a pagemap read: only when one could be taken). */
	if (policy_wants_resident(&m->policy, &in))
		in.resident = gm_resident_bytes(&m->vm.gm);
	d = policy_step(&m->policy, &in);
	target = apply(m, &in, &d);
	if (d.reclaim_bytes && m->memtier) {
		uint64_t res = gm_resident_bytes(&m->vm.gm), job;

		if (res > d.reclaim_bytes)
			memtier_reclaim(
				m->memtier, res - d.reclaim_bytes, 10ULL * m->policy.cfg.period_ms,
				&job); /* -EBUSY while one runs: the next period asks again */
	}
	/* An action, host pressure, or a client's target that starts a hold. */
	if (d.action != POLICY_NONE || d.host_pressure || m->policy.holds != holds)
		emit(m, &in, &d);
	balloon_request_stats(m->balloon); /* the next period decides on a fresh set */
	watch_arm(m, target > 0);
}

/*
 * Every POLICY_WATCH_MS: a guest deflating on OOM, or allocating below the band faster than a
 * period, is given memory now (policy_watch()). While the balloon holds memory, and no client's
 * target holds the policy off, the guest is asked for a statistics set each time (a short round
 * trip on the stats queue).
 */
static void policy_watch_tick(void *opaque)
{
	struct machine *m = opaque;
	struct policy_input in;
	struct policy_decision d;
	uint64_t target;

	read_guest(m, &in);
	d = policy_watch(&m->policy, &in);
	target = apply(m, &in, &d);
	if (d.action != POLICY_NONE) {
		/* The host's figures for the event only: the watch itself does not read them. */
		policy_read_host(&in);
		emit(m, &in, &d);
	}
	/* A client's target holds the policy off: the watch would not act on a fresh set. */
	if (in.target && in.now_ms >= m->policy.hold_until_ms)
		balloon_request_stats(m->balloon);
	if (!target)
		watch_arm(m, false); /* the balloon is empty: nothing to watch until it is not */
}

int machine_policy_start(struct machine *m)
{
	struct balloon_counters bc;

	if (!m->cfg.auto_balloon)
		return 0;
	if (!m->balloon || !m->cfg.balloon.stats) {
		pr_err("--auto-balloon needs the balloon with stats (--balloon on, stats=on)");
		return -EINVAL;
	}
	policy_init(&m->policy, &m->cfg.policy);
	m->policy_timer = loop_add_timer(m->vm.loop, m->cfg.policy.period_ms, true, policy_tick, m);
	if (m->policy_timer < 0)
		return m->policy_timer;
	/* A restored balloon may hold memory already. */
	balloon_get_counters(m->balloon, &bc);
	m->policy_watch_timer = -1;
	watch_arm(m, bc.target_pages > 0);
	return 0;
}
