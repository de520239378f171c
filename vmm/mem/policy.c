#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"

void policy_config_default(struct policy_config *cfg)
{
	*cfg = (struct policy_config){
		.low_pct = 15,
		.high_pct = 25,
		.step_bytes = 64 * MiB,
		.floor_bytes = 64 * MiB,
		.period_ms = 1000,
		.hold_ms = 60000,
		.majflt_per_period = 100,
		.psi_pct = 10,
		.host_min_avail_pct = 10,
	};
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

int policy_parse(const char *arg, bool *on, struct policy_config *cfg, char *err,
		 unsigned int errlen)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	policy_config_default(cfg);
	*on = true;
	for (tok = strtok_r(copy, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save)) {
		char *val = strchr(tok, '=');
		unsigned long v = 0;
		uint64_t size = 0;
		bool ok;

		if (!val) {
			if (!strcmp(tok, "on") || !strcmp(tok, "off")) {
				*on = !strcmp(tok, "on");
				continue;
			}
			snprintf(err, errlen, "'%s' is not on, off or KEY=VALUE", tok);
			ret = -EINVAL;
			break;
		}
		*val++ = '\0';
		if (!strcmp(tok, "low") && (ok = parse_uint(val, 100, &v)))
			cfg->low_pct = (unsigned int)v;
		else if (!strcmp(tok, "high") && (ok = parse_uint(val, 100, &v)))
			cfg->high_pct = (unsigned int)v;
		else if (!strcmp(tok, "period") && (ok = parse_uint(val, 3600000, &v) && v >= 100))
			cfg->period_ms = (unsigned int)v;
		else if (!strcmp(tok, "hold") && (ok = parse_uint(val, 86400, &v)))
			cfg->hold_ms = (unsigned int)(v * 1000);
		else if (!strcmp(tok, "step") && (ok = parse_size(val, &size) == 0 && size >= MiB))
			cfg->step_bytes = size;
		else if (!strcmp(tok, "floor") && (ok = parse_size(val, &size) == 0))
			cfg->floor_bytes = size;
		else if (strcmp(tok, "low") && strcmp(tok, "high") && strcmp(tok, "period") &&
			 strcmp(tok, "hold") && strcmp(tok, "step") && strcmp(tok, "floor")) {
			snprintf(err, errlen,
				 "unknown option '%s' (low, high, step, floor, period, hold)", tok);
			ret = -EINVAL;
			break;
		} else
			ok = false;
		if (!ok) {
			snprintf(err, errlen, "bad value '%s' for %s", val, tok);
			ret = -EINVAL;
		}
	}
	if (!ret && cfg->low_pct >= cfg->high_pct) {
		snprintf(err, errlen, "low=%u must be below high=%u", cfg->low_pct, cfg->high_pct);
		ret = -EINVAL;
	}
	free(copy);
	return ret;
}

void policy_init(struct policy *p, const struct policy_config *cfg)
{
	memset(p, 0, sizeof(*p));
	p->cfg = *cfg;
	p->last_set_target = UINT64_MAX;
}

/*
 * How far available memory may fall in a period and the guest still count as quiet: 1 MiB per
 * 512 MiB of RAM (an idle guest moves by well under that; a program allocating even 4 MiB a
 * period on a loaded host is not quiet).
 */
#define QUIET_SLACK(ram) ((ram) / 512)

static struct policy_decision none(struct policy *p, const char *why)
{
	return p->last = (struct policy_decision){.action = POLICY_NONE, .why = why};
}

/* The configured band for @ram bytes of guest RAM: *@low and *@high in bytes available. */
static void band(const struct policy_config *c, uint64_t ram, uint64_t *low, uint64_t *high)
{
	*low = ram / 100 * c->low_pct;
	*high = ram / 100 * c->high_pct;
}

/*
 * The host is short of memory: PSI memory "some" avg10 (the host's or the VMM's cgroup's) at or
 * above psi_pct, or MemAvailable (the host's, or what the cgroup's limit leaves) under
 * host_min_avail_pct of host RAM (of the limit).
 */
static bool host_pressure(const struct policy_config *c, const struct policy_input *in)
{
	return (in->host_psi_known && in->host_psi_some_avg10_pct >= c->psi_pct) ||
	       (in->host_total && in->host_avail * 100 < in->host_total * c->host_min_avail_pct) ||
	       (in->cg_psi_known && in->cg_psi_some_avg10_pct >= c->psi_pct) ||
	       /* Divided, not multiplied: memory.high may be set to any 64-bit figure. */
	       (in->cg_limit && in->cg_avail < in->cg_limit / 100 * c->host_min_avail_pct);
}

/*
 * A recent "already returned" skip still holds: its recheck is not due, and nothing the guest
 * shows since can have made memory resident again (the balloon moved, available memory rose:
 * memory freed since, or free memory fell: page cache filled).
 */
static bool returned_holds(const struct policy *p, const struct policy_input *in)
{
	uint64_t ram = in->guest_ram, gain = POLICY_MIN_GAIN(ram);

	/* Guest figures capped at RAM (as skip_*: they were capped the same way), so no sum wraps.
	 */
	return p->recheck_ms && in->now_ms < p->recheck_ms && in->actual == p->skip_actual &&
	       MIN(in->avail, ram) <= p->skip_avail + gain &&
	       MIN(in->free, ram) + gain >= p->skip_free;
}

bool policy_wants_resident(const struct policy *p, const struct policy_input *in)
{
	uint64_t low, high;

	band(&p->cfg, in->guest_ram, &low, &high);
	/* Host pressure moves the band's top down to the configured bottom (policy_step()). */
	return in->have_avail && in->avail > (host_pressure(&p->cfg, in) ? low : high) &&
	       !returned_holds(p, in);
}

/* Keep decision @d (made at @now_ms) as the last one; an action becomes the policy's target. */
static struct policy_decision record(struct policy *p, struct policy_decision d, uint64_t now_ms)
{
	if (d.action != POLICY_NONE) {
		d.new_target &= ~(uint64_t)4095;
		p->last_set_target = d.new_target;
		p->following = true;
		if (d.action == POLICY_INFLATE) {
			p->inflates++;
			p->last_inflate_ms = now_ms;
		} else {
			p->deflates++;
			p->last_deflate_ms = now_ms;
			p->settling = true;
		}
	}
	return p->last = d;
}

struct policy_decision policy_step(struct policy *p, const struct policy_input *in)
{
	const struct policy_config *c = &p->cfg;
	struct policy_decision d = {.action = POLICY_NONE};
	uint64_t ram = in->guest_ram, low, high, mid, max_target, want;
	uint64_t majflt, swapin, taken, p_last_avail, p_last_resident;
	bool recent_inflate, spared;
	bool first = p->last_seq == 0;

	if (!ram)
		return none(p, "no guest RAM");
	if (p->last_set_target == UINT64_MAX)
		p->last_set_target = in->target; /* the target the policy starts from */
	/* Someone else moved the target: a client's word holds for hold_ms. */
	if (p->last_set_target != UINT64_MAX && in->target != p->last_set_target) {
		p->hold_until_ms = in->now_ms + c->hold_ms;
		p->last_set_target = in->target;
		p->following = false;
		p->settled_seq = in->stats_seq;
		p->holds++;
		return none(p, "client target");
	}
	if (in->now_ms < p->hold_until_ms)
		return none(p, "holding for a client target");
	/* Once the guest reached the last target, only a later statistics set shows its effect. */
	if (p->following && in->actual == in->target) {
		p->following = false;
		p->settled_seq = in->stats_seq;
	}
	if (!in->stats_seq || in->stats_seq == p->last_seq || !in->have_avail)
		return none(p, "no fresh guest statistics");

	majflt = first || in->major_faults < p->last_majflt ? 0 : in->major_faults - p->last_majflt;
	swapin = first || in->swap_in < p->last_swap_in ? 0 : in->swap_in - p->last_swap_in;
	/* Available memory the balloon took (it grew since the last set) is not the guest's doing.
	 */
	taken = in->actual > p->last_actual ? in->actual - p->last_actual : 0;
	/*
	 * A fall of available memory is the guest's doing only when no inflate of ours is recent:
	 * a statistics set lags the balloon by up to a period, so right after an inflate the fall
	 * the balloon caused cannot be told apart (it made the policy oscillate in the e2e run).
	 */
	recent_inflate =
		p->last_inflate_ms && in->now_ms < p->last_inflate_ms + 3ULL * c->period_ms;
	d.guest_pressure =
		majflt >= c->majflt_per_period || swapin > 0 ||
		(!first && !recent_inflate && p->last_avail > in->avail + taken + c->step_bytes);
	d.host_pressure = host_pressure(c, in);
	/* A recent returned skip spared this period's pagemap walk (policy_wants_resident()). */
	spared = !in->resident && returned_holds(p, in);
	p->last_seq = in->stats_seq;
	p_last_avail = p->last_avail;
	p->last_avail = in->avail;
	p_last_resident = p->last_resident;
	/* Kept over the periods a returned skip spares the walk: growth since is touching too. */
	if (!spared)
		p->last_resident = in->resident;
	p->last_actual = in->actual;
	p->last_majflt = in->major_faults;
	p->last_swap_in = in->swap_in;
	p->decisions++;

	band(c, ram, &low, &high);
	if (d.host_pressure && !d.guest_pressure) {
		uint64_t width = high - low;

		high = low;
		low = low > width ? low - width : 0;
		d.reclaim_bytes = c->step_bytes;
	}
	mid = low + (high - low) / 2;
	max_target = ram > c->floor_bytes ? ram - c->floor_bytes : 0;

	if (!(in->avail > high) || d.guest_pressure) {
		p->have_base = false; /* the next inflate step starts a new series */
		p->gain_since_ms = 0;
		p->recheck_ms = 0;
		p->recheck_periods = 0;
	}
	if (d.guest_pressure || in->avail < low) {
		/*
		 * To the band's top, plus what the guest consumed in the last period: a guest that
		 * is allocating gets a period's worth of room ahead instead of waiting on every
		 * period.
		 */
		want = in->avail < high ? high - in->avail : 0;
		if (!first && p_last_avail + taken > in->avail)
			want += p_last_avail + taken - in->avail;
		if (d.guest_pressure)
			want = MAX(want, 2 * c->step_bytes);
		want = MIN(want, in->target);
		if (!want) {
			d.why = d.guest_pressure ? "guest pressure, balloon empty"
						 : "below band, balloon empty";
			return p->last = d;
		}
		d.action = POLICY_DEFLATE;
		d.new_target = in->target - want;
		d.why = d.guest_pressure ? "guest pressure: deflate at once"
					 : "below band: deflate";
	} else if (in->avail > high) {
		if (p->following || in->actual < in->target) {
			d.why = "above band, guest still inflating";
			return p->last = d;
		}
		if (in->stats_seq <= p->settled_seq) {
			d.why = "above band, statistics predate the last target";
			return p->last = d;
		}
		/* After a deflate: only once the guest stopped consuming (it is quiet). */
		if (p->settling &&
		    (in->now_ms <
			     p->last_deflate_ms + (uint64_t)POLICY_SETTLE_PERIODS * c->period_ms ||
		     p_last_avail > in->avail + QUIET_SLACK(ram))) {
			d.why = "above band, settling after a deflate";
			return p->last = d;
		}
		p->settling = false;
		/* Since the last step: what available memory lost beyond what the balloon took. */
		if (p->have_base &&
		    (int64_t)(p->base_avail - in->avail) - (int64_t)(in->actual - p->base_actual) >
			    (int64_t)QUIET_SLACK(ram)) {
			p->base_avail = in->avail;
			p->base_actual = in->actual;
			d.why = "above band, guest allocating";
			return p->last = d;
		}
		/* Returned a moment ago, and nothing changed since: no pagemap walk was made. */
		if (spared) {
			p->returned_skips++;
			d.why = "above band, already returned to the host (checked again later)";
			return p->last = d;
		}
		p->recheck_ms = 0;
		/* Resident memory growing fast: the guest is touching memory its statistics lag. */
		if (in->resident && p_last_resident &&
		    in->resident > p_last_resident + POLICY_MIN_GAIN(ram)) {
			p->gain_since_ms = 0;
			p->touching_skips++;
			d.why = "above band, guest touching new memory";
			return p->last = d;
		}
		/*
		 * Nothing of the available memory is resident: it was returned already. (Both
		 * figures come from the guest: avail is capped before the sum cannot wrap.)
		 */
		if (in->resident &&
		    in->resident < ram - MIN(ram, MIN(ram, in->avail) + in->actual) +
					   POLICY_MIN_GAIN(ram)) {
			p->gain_since_ms = 0;
			p->returned_skips++;
			p->recheck_periods = p->recheck_periods
						     ? MIN(2 * p->recheck_periods,
							   (unsigned int)POLICY_RECHECK_MAX_PERIODS)
						     : 2;
			p->recheck_ms = in->now_ms + (uint64_t)p->recheck_periods * c->period_ms;
			p->skip_avail = MIN(in->avail, ram);
			p->skip_free = MIN(in->free, ram);
			p->skip_actual = in->actual;
			d.why = "above band, already returned to the host";
			return p->last = d;
		}
		p->recheck_periods = 0;
		if (in->resident && in->reporting) {
			if (!p->gain_since_ms)
				p->gain_since_ms = in->now_ms;
			if (in->now_ms < p->gain_since_ms + POLICY_REPORT_WAIT_MS) {
				d.why = "above band, waiting for free page reporting";
				return p->last = d;
			}
		}
		p->have_base = true;
		p->base_avail = in->avail;
		p->base_actual = in->actual;
		want = MIN(in->avail - mid, c->step_bytes);
		if (in->target >= max_target) {
			d.why = "above band, at the floor";
			return p->last = d;
		}
		want = MIN(want, max_target - in->target);
		want &= ~(uint64_t)4095;
		if (!want) {
			d.why = "above band, step too small";
			return p->last = d;
		}
		d.action = POLICY_INFLATE;
		d.new_target = in->target + want;
		d.why = d.host_pressure ? "host pressure: inflate" : "above band: inflate";
	} else {
		d.why = "in band";
	}
	return record(p, d, in->now_ms);
}

/* A deflate decided between periods: to @new_target, settling as after any deflate. */
static struct policy_decision watch_deflate(struct policy *p, uint64_t now_ms, uint64_t new_target,
					    const char *why)
{
	struct policy_decision d = {.action = POLICY_DEFLATE,
				    .new_target = new_target,
				    .guest_pressure = true,
				    .why = why};

	p->have_base = false; /* the next inflate step starts a new series */
	return record(p, d, now_ms);
}

struct policy_decision policy_watch(struct policy *p, const struct policy_input *in)
{
	struct policy_decision d = {.action = POLICY_NONE, .why = "nothing to answer"};
	uint64_t prev = p->watch_actual, low, high, want;
	bool reached = in->actual == in->target;

	p->watch_actual = in->actual;
	/* Statistics up to the one present when the guest reached a new target may predate it. */
	if (!reached || in->target != p->watch_target)
		p->watch_reached_seq = in->stats_seq;
	p->watch_target = in->target;
	/* Only a target of the policy's own, outside a client's hold. */
	if (p->last_set_target == UINT64_MAX || in->target != p->last_set_target ||
	    in->now_ms < p->hold_until_ms || !in->target)
		return d;
	/* Deflate-on-OOM: actual fell below the target (an inflate climbs towards it). */
	if (in->actual < in->target && in->actual < prev) {
		want = MIN(in->actual, MAX(2 * p->cfg.step_bytes, in->actual / 2));
		if (!want)
			return d;
		p->oom_deflates++;
		return watch_deflate(p, in->now_ms, in->actual - want,
				     "guest deflated on OOM: deflate at once");
	}
	/*
	 * Below the band on a set taken at the current target: the guest is allocating fast.
	 * Both cases give back at least half the balloon: a deflated page costs the host nothing
	 * until the guest touches it, while each further round (a set, a deflate) stalls the
	 * allocating program again (bench/slowdown: two rounds of two steps cost it 20%).
	 */
	band(&p->cfg, in->guest_ram, &low, &high);
	if (!reached || !in->have_avail || in->stats_seq <= p->watch_reached_seq ||
	    in->stats_seq == p->watch_seq || in->avail >= low)
		return d;
	p->watch_seq = in->stats_seq;
	want = MIN(MAX(MAX(high - in->avail, 2 * p->cfg.step_bytes), in->target / 2), in->target);
	p->fast_deflates++;
	return watch_deflate(p, in->now_ms, in->target - want,
			     "below band between periods: deflate at once");
}
