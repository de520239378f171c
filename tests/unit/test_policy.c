/* The memory autopilot's decisions (vmm/mem/policy.h), on synthetic inputs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../vmm/mem/policy.h"
#include "../../vmm/util.h"

#define RAM (512 * MiB)

static struct policy p;
static struct policy_input in;
static uint64_t seq;

static void setup(void)
{
	struct policy_config cfg;

	policy_config_default(&cfg);
	policy_init(&p, &cfg);
	memset(&in, 0, sizeof(in));
	in.guest_ram = RAM;
	in.have_avail = true;
	seq = 0;
}

/* One period: the guest reports @avail; the balloon is at target == actual unless changed. */
static struct policy_decision step(uint64_t avail)
{
	struct policy_decision d;

	in.now_ms += 1000;
	in.stats_seq = ++seq;
	in.avail = avail;
	d = policy_step(&p, &in);
	if (d.action != POLICY_NONE)
		in.target = in.actual = d.new_target; /* the guest follows at once */
	return d;
}

TestSuite(policy, .init = setup);

Test(policy, parse)
{
	struct policy_config c;
	char err[128];
	bool on = false;

	cr_assert_eq(policy_parse("on", &on, &c, err, sizeof(err)), 0);
	cr_expect(on);
	cr_expect_eq(c.low_pct, 15);
	cr_expect_eq(c.high_pct, 25);
	cr_expect_eq(c.step_bytes, 64 * MiB);
	cr_assert_eq(policy_parse("on,low=10,high=40,step=32M,floor=128M,period=500,hold=5", &on,
				  &c, err, sizeof(err)),
		     0);
	cr_expect_eq(c.low_pct, 10);
	cr_expect_eq(c.high_pct, 40);
	cr_expect_eq(c.step_bytes, 32 * MiB);
	cr_expect_eq(c.floor_bytes, 128 * MiB);
	cr_expect_eq(c.period_ms, 500);
	cr_expect_eq(c.hold_ms, 5000);
	cr_assert_eq(policy_parse("off", &on, &c, err, sizeof(err)), 0);
	cr_expect(!on);
	cr_expect_eq(policy_parse("on,low=30,high=20", &on, &c, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "below"), "%s", err);
	cr_expect_eq(policy_parse("on,low=101", &on, &c, err, sizeof(err)), -EINVAL);
	cr_expect_eq(policy_parse("on,period=10", &on, &c, err, sizeof(err)), -EINVAL);
	cr_expect_eq(policy_parse("on,step=-1", &on, &c, err, sizeof(err)), -EINVAL);
	cr_expect_eq(policy_parse("on,bogus=1", &on, &c, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "unknown option 'bogus'"), "%s", err);
	cr_expect_eq(policy_parse("maybe", &on, &c, err, sizeof(err)), -EINVAL);
}

Test(policy, no_fresh_statistics_decides_nothing)
{
	struct policy_decision d = step(400 * MiB);

	cr_assert_eq(d.action, POLICY_INFLATE);
	in.now_ms += 1000; /* same stats_seq */
	d = policy_step(&p, &in);
	cr_expect_eq(d.action, POLICY_NONE);
	cr_expect_str_eq(d.why, "no fresh guest statistics");
}

/* A target change followed by a stats set taken before the guest reached it never inflates. */
Test(policy, no_inflate_on_statistics_older_than_the_last_target)
{
	struct policy_decision d = step(450 * MiB);

	cr_assert_eq(d.action, POLICY_INFLATE);
	in.actual = 0; /* the guest has not followed yet */
	d = step(450 * MiB);
	cr_expect_str_eq(d.why, "above band, guest still inflating");
	in.actual = in.target; /* reached, but this set was asked for before */
	d = step(450 * MiB);
	cr_expect_str_eq(d.why, "above band, statistics predate the last target");
	d = step(400 * MiB);
	cr_expect_eq(d.action, POLICY_INFLATE, "%s", d.why);
}

Test(policy, idle_guest_is_inflated_in_bounded_steps_into_the_band)
{
	uint64_t avail = 450 * MiB; /* a guest that freed most of its memory */
	int periods = 0;

	for (;;) {
		uint64_t before = in.target;
		struct policy_decision d = step(avail);

		if (d.action == POLICY_NONE &&
		    !strcmp(d.why, "above band, statistics predate the last target"))
			continue; /* every other period: the stats set was asked for before the
				     change */
		if (d.action == POLICY_NONE)
			break;
		cr_assert_eq(d.action, POLICY_INFLATE, "period %d: %s", periods, d.why);
		cr_assert_leq(d.new_target - before, 64 * MiB, "a step above 64 MiB");
		avail -=
			d.new_target - before; /* what the guest gave back is no longer available */
		cr_assert_lt(++periods, 20, "did not settle");
	}
	/* Settled with the available share inside [15%, 25%] of RAM. */
	cr_expect_geq(avail, RAM / 100 * 15, "available %llu MiB",
		      (unsigned long long)(avail / MiB));
	cr_expect_leq(avail, RAM / 100 * 25, "available %llu MiB",
		      (unsigned long long)(avail / MiB));
	cr_expect_gt(in.target, 300 * MiB, "target only %llu MiB",
		     (unsigned long long)(in.target / MiB));
	cr_expect_leq(in.target, RAM - 64 * MiB);
}

Test(policy, never_below_the_floor)
{
	struct policy_decision d;

	in.target = in.actual = RAM - 80 * MiB;
	d = step(300 * MiB); /* impossible but hostile: the guest claims lots available */
	cr_assert_eq(d.action, POLICY_INFLATE);
	cr_expect_eq(d.new_target, RAM - 64 * MiB);
	d = step(300 * MiB);
	cr_expect_str_eq(d.why, "above band, statistics predate the last target");
	d = step(300 * MiB);
	cr_expect_eq(d.action, POLICY_NONE);
	cr_expect_str_eq(d.why, "above band, at the floor");
}

Test(policy, waits_while_the_guest_is_behind_the_target)
{
	struct policy_decision d;

	in.target = 200 * MiB;
	in.actual = 100 * MiB;
	d = step(400 * MiB);
	cr_expect_eq(d.action, POLICY_NONE);
	cr_expect_str_eq(d.why, "above band, guest still inflating");
}

Test(policy, below_band_deflates_at_once_not_by_steps)
{
	struct policy_decision d;

	in.target = in.actual = 400 * MiB;
	step(100 * MiB);    /* in band: 19.5% */
	d = step(20 * MiB); /* the guest allocated: 4% */
	cr_assert_eq(d.action, POLICY_DEFLATE);
	/* To the band's top (128 MiB) plus the 80 MiB consumed: at least 188 MiB in one go. */
	cr_expect_geq(400 * MiB - d.new_target, 188 * MiB, "deflated only %llu MiB",
		      (unsigned long long)((400 * MiB - d.new_target) / MiB));
}

Test(policy, guest_pressure_deflates_two_steps_even_in_band)
{
	struct policy_decision d;

	in.target = in.actual = 300 * MiB;
	in.major_faults = 1000;
	step(100 * MiB);
	in.major_faults += 500; /* 500 major faults this period */
	d = step(100 * MiB);
	cr_assert_eq(d.action, POLICY_DEFLATE);
	cr_expect(d.guest_pressure);
	cr_expect_eq(d.new_target, 300 * MiB - 128 * MiB);
}

Test(policy, falling_available_memory_is_pressure)
{
	struct policy_decision d;

	in.target = in.actual = 200 * MiB;
	step(120 * MiB);
	d = step(50 * MiB); /* fell 70 MiB (> one step) in one period */
	cr_assert_eq(d.action, POLICY_DEFLATE);
	cr_expect(d.guest_pressure);
	/* To the band's top (25% of 512 = 128 MiB: 78 MiB more) plus the 70 MiB it consumed. */
	cr_expect_eq(200 * MiB - d.new_target, 148 * MiB, "deflated %llu MiB",
		     (unsigned long long)((200 * MiB - d.new_target) / MiB));
}

/* The balloon's own inflate lowers available memory: that is not guest pressure. */
Test(policy, what_the_balloon_took_is_not_pressure)
{
	struct policy_decision d;

	in.target = in.actual = 100 * MiB;
	step(400 * MiB);
	in.actual = 200 * MiB; /* the guest gave 100 MiB more */
	in.target = 200 * MiB;
	p.last_set_target = 200 * MiB;
	d = step(300 * MiB);
	cr_expect(!d.guest_pressure, "%s", d.why);
	cr_expect_neq(d.action, POLICY_DEFLATE, "%s", d.why);
}

/* Statistics lag the balloon: a fall right after our own inflate is not taken for pressure. */
Test(policy, a_fall_right_after_an_inflate_is_not_pressure)
{
	struct policy_decision d = step(300 * MiB);

	cr_assert_eq(d.action, POLICY_INFLATE);
	/* The next set already shows the 64 MiB taken and the counters caught up late. */
	p.last_actual = in.actual;
	d = step(300 * MiB - 140 * MiB);
	cr_expect(!d.guest_pressure, "%s", d.why);
}

Test(policy, deflate_never_below_zero)
{
	struct policy_decision d;

	in.target = in.actual = 16 * MiB;
	step(100 * MiB);
	d = step(10 * MiB);
	cr_assert_eq(d.action, POLICY_DEFLATE);
	cr_expect_eq(d.new_target, 0);
	d = step(10 * MiB);
	cr_expect_eq(d.action, POLICY_NONE);
}

Test(policy, a_client_target_holds_the_policy_off)
{
	struct policy_decision d = step(450 * MiB);

	cr_assert_eq(d.action, POLICY_INFLATE);
	in.target = in.actual = 10 * MiB; /* a client's balloon.set */
	d = step(450 * MiB);
	cr_expect_eq(d.action, POLICY_NONE);
	cr_expect_str_eq(d.why, "client target");
	for (int i = 0; i < 57; i++) {
		d = step(450 * MiB);
		cr_assert_eq(d.action, POLICY_NONE, "period %d", i);
	}
	in.now_ms += 3000; /* hold (60 s) over */
	d = step(450 * MiB);
	cr_expect_eq(d.action, POLICY_INFLATE, "%s", d.why);
}

Test(policy, host_pressure_lowers_the_band_and_asks_for_compression)
{
	struct policy_decision d;

	in.target = in.actual = 300 * MiB;
	d = step(110 * MiB); /* 21%: in the normal band */
	cr_expect_eq(d.action, POLICY_NONE);
	in.host_psi_known = true;
	in.host_psi_some_avg10_pct = 40;
	d = step(110 * MiB);
	cr_expect(d.host_pressure);
	cr_expect_eq(d.action, POLICY_INFLATE, "%s", d.why);
	cr_expect_gt(d.reclaim_bytes, 0);
	in.host_psi_some_avg10_pct = 0;
	in.host_total = 100 * GiB;
	in.host_avail = 5 * GiB; /* under 10% */
	d = step(100 * MiB);
	cr_expect(d.host_pressure);
}

/*
 * bench/slowdown: a program allocating 200 MiB in a guest the policy had inflated. Each deflate
 * (to the band's top plus what the guest consumed) was followed, on the next statistics set, by
 * an inflate, because a deflate decided on a set that lagged the previous deflate overshoots into
 * the band's top; the guest gave the memory back and asked for it again a period later, 2-3
 * times per run. After a deflate the policy inflates again only once the guest is quiet (its
 * available memory stopped falling) and a few periods passed.
 */
Test(policy, no_inflate_while_the_guest_allocates_after_a_deflate)
{
	struct policy_decision d;
	uint64_t avail;

	in.target = in.actual = 376 * MiB;
	step(100 * MiB);    /* in band */
	d = step(74 * MiB); /* below 15% */
	cr_assert_eq(d.action, POLICY_DEFLATE, "%s", d.why);
	d = step(184 * MiB); /* the overshoot; this set predates the guest reaching the target */
	cr_assert_eq(d.action, POLICY_NONE, "%s", d.why);
	for (avail = 170 * MiB; avail >= 140 * MiB; avail -= 10 * MiB) {
		d = step(avail); /* above the band, but falling 10 MiB a period: still allocating */
		cr_expect_eq(d.action, POLICY_NONE, "available %llu MiB: %s",
			     (unsigned long long)(avail / MiB), d.why);
	}
}

/* Once the guest is quiet again (the program ended), an idle guest is inflated as before. */
Test(policy, an_idle_guest_is_inflated_again_after_settling)
{
	struct policy_decision d;
	int periods = 0;

	in.target = in.actual = 376 * MiB;
	step(100 * MiB);
	d = step(74 * MiB);
	cr_assert_eq(d.action, POLICY_DEFLATE, "%s", d.why);
	do {
		d = step(400 * MiB); /* the program freed its memory and the guest idles */
		cr_assert_lt(++periods, 8, "no inflate %d periods after the deflate: %s", periods,
			     d.why);
	} while (d.action == POLICY_NONE);
	cr_expect_eq(d.action, POLICY_INFLATE, "%s", d.why);
}

/*
 * bench/slowdown: the inflate steps towards the band that follow an idle phase went on when the
 * guest started allocating again before they were done (12 s of idle is not enough for 300 MiB
 * in 64 MiB steps), so the balloon took memory the program was asking for. Between two inflate
 * decisions, available memory that fell by more than the balloon took is the guest's own use.
 */
Test(policy, no_inflate_step_while_the_guest_allocates)
{
	struct policy_decision d = step(450 * MiB);

	cr_assert_eq(d.action, POLICY_INFLATE, "%s", d.why);
	d = step(450 * MiB - 64 * MiB); /* the guest gave the 64 MiB; set asked for before */
	cr_assert_eq(d.action, POLICY_NONE, "%s", d.why);
	d = step(450 * MiB - 64 * MiB - 30 * MiB); /* a program took 30 MiB more */
	cr_expect_eq(d.action, POLICY_NONE, "%s", d.why);
	cr_expect_str_eq(d.why, "above band, guest allocating");
	d = step(450 * MiB - 64 * MiB - 30 * MiB); /* quiet again: inflating resumes */
	cr_expect_eq(d.action, POLICY_INFLATE, "%s", d.why);
}

/*
 * bench/slowdown on a loaded machine: the program allocated only 4 MiB a period (under 1% of the
 * guest's RAM), which passed for quiet, and the policy inflated in the middle of the runs again.
 * An idle guest's available memory moves by well under 1 MiB a period.
 */
Test(policy, a_slowly_allocating_guest_is_not_quiet)
{
	struct policy_decision d;
	uint64_t avail;

	in.target = in.actual = 376 * MiB;
	step(100 * MiB);
	d = step(74 * MiB);
	cr_assert_eq(d.action, POLICY_DEFLATE, "%s", d.why);
	for (avail = 200 * MiB; avail >= 160 * MiB; avail -= 4 * MiB) {
		d = step(avail);
		cr_expect_eq(d.action, POLICY_NONE, "available %llu MiB: %s",
			     (unsigned long long)(avail / MiB), d.why);
	}
}

/* policy_watch() at @now_ms on the current input (target, actual, stats). */
static struct policy_decision watch(uint64_t now_ms)
{
	struct policy_input w = in;

	w.now_ms = now_ms;
	return policy_watch(&p, &w);
}

/* Deflate-on-OOM: the guest gives back 1 MiB per OOM; the watch answers with two steps at once. */
Test(policy, a_guest_deflating_on_oom_gets_two_steps_at_once)
{
	struct policy_decision d;

	in.target = in.actual = 300 * MiB;
	d = step(100 * MiB); /* in band: the policy keeps the 300 MiB target */
	cr_assert_eq(d.action, POLICY_NONE, "%s", d.why);
	cr_expect_eq(watch(in.now_ms + 100).action, POLICY_NONE);
	in.actual -= MiB; /* the OOM notifier leaked 256 pages; the target did not move */
	d = watch(in.now_ms + 200);
	cr_assert_eq(d.action, POLICY_DEFLATE, "%s", d.why);
	cr_expect(d.guest_pressure);
	/* Half the balloon (149.5 MiB, more than two steps' 128 MiB), in whole pages. */
	cr_expect_eq(d.new_target, (in.actual - in.actual / 2) & ~(uint64_t)4095);
	cr_expect_eq(p.oom_deflates, 1);
	in.target = d.new_target;
	/* The guest leaking down to the new target is our deflate, not another OOM. */
	in.actual = in.target + 32 * MiB;
	cr_expect_eq(watch(in.now_ms + 300).action, POLICY_NONE);
	in.actual = in.target;
	cr_expect_eq(watch(in.now_ms + 400).action, POLICY_NONE);
	/* The next period sees the target as the policy's own (no client hold) and settles. */
	in.now_ms += 400;
	d = step(300 * MiB);
	cr_expect_neq(d.action, POLICY_INFLATE, "%s", d.why);
	cr_expect_eq(p.holds, 0);
}

Test(policy, the_watch_leaves_an_inflating_guest_and_a_client_target_alone)
{
	struct policy_decision d = step(450 * MiB);
	uint64_t t = in.now_ms;

	cr_assert_eq(d.action, POLICY_INFLATE);
	in.actual = 0; /* the guest has not started on the new target */
	watch(t += 100);
	in.actual = 32 * MiB; /* climbing towards it */
	cr_expect_eq(watch(t += 100).action, POLICY_NONE);
	in.target = 300 * MiB; /* a client's balloon.set, not yet seen by a period */
	in.actual = 31 * MiB;
	cr_expect_eq(watch(t += 100).action, POLICY_NONE);
	step(450 * MiB); /* the period takes it for a client's: hold */
	in.actual -= MiB;
	cr_expect_eq(watch(in.now_ms + 100).action, POLICY_NONE);
	in.actual = in.target;
	in.avail = 10 * MiB; /* below the band, but the client's target holds */
	in.stats_seq = ++seq;
	watch(in.now_ms + 200);
	in.stats_seq = ++seq;
	cr_expect_eq(watch(in.now_ms + 300).action, POLICY_NONE);
	/* An empty balloon has nothing to give. */
	setup();
	in.target = 0;
	p.last_set_target = 0;
	p.watch_actual = 4096;
	cr_expect_eq(watch(100).action, POLICY_NONE);
}

/* A program allocating faster than a period: the watch deflates on the first set below the band. */
Test(policy, the_watch_deflates_below_the_band_between_periods)
{
	struct policy_decision d;
	uint64_t t;

	in.target = in.actual = 300 * MiB;
	d = step(100 * MiB); /* in band (19.5%) */
	cr_assert_eq(d.action, POLICY_NONE, "%s", d.why);
	t = in.now_ms;
	cr_expect_eq(watch(t += 100).action, POLICY_NONE); /* same set, in band */
	in.avail = 40 * MiB; /* a fresh set: 7.8%, under the 15% bottom */
	in.stats_seq = ++seq;
	d = watch(t += 100);
	cr_assert_eq(d.action, POLICY_DEFLATE, "%s", d.why);
	/* To the band's top (88 MiB more), at least two steps (128) and half the balloon (150). */
	cr_expect_eq(d.new_target, 150 * MiB);
	cr_expect_eq(p.fast_deflates, 1);
	in.target = d.new_target; /* the guest is leaking towards it */
	in.actual = 200 * MiB;
	in.stats_seq = ++seq;
	cr_expect_eq(watch(t += 100).action, POLICY_NONE, "deflate in progress");
	in.actual = in.target; /* reached; the set in hand predates it */
	cr_expect_eq(watch(t += 100).action, POLICY_NONE, "stale set");
	in.stats_seq = ++seq; /* a set taken at the new target, still below */
	d = watch(t += 100);
	cr_expect_eq(d.action, POLICY_DEFLATE, "%s", d.why);
	cr_expect_eq(d.new_target, 150 * MiB - 128 * MiB); /* two steps: more than half */
	/* The same set never deflates twice. */
	in.target = in.actual = d.new_target;
	watch(t += 100);
	cr_expect_eq(watch(t += 100).action, POLICY_NONE);
}

/*
 * Free page reporting returned the guest's free memory already (resident = what it cannot give):
 * no inflate step, which would return nothing and cost the guest a deflate later. Once memory the
 * guest could give is resident again (page cache, pages reporting cannot return), it inflates.
 */
Test(policy, no_inflate_of_memory_already_returned_to_the_host)
{
	struct policy_decision d;
	uint64_t avail = 400 * MiB, used = RAM - avail; /* what the guest cannot give */

	in.resident = used + 2 * MiB; /* the rest was reported and discarded */
	d = step(avail);
	cr_assert_eq(d.action, POLICY_NONE, "inflated to %llu MiB",
		     (unsigned long long)(d.new_target / MiB));
	cr_expect_str_eq(d.why, "above band, already returned to the host");
	cr_expect_eq(p.returned_skips, 1);
	d = step(avail);
	cr_expect_eq(d.action, POLICY_NONE);
	cr_expect_eq(p.returned_skips, 2);
	/* Just under the gain that makes a step worth it (1/64 of RAM): still nothing. */
	in.resident = used + POLICY_MIN_GAIN(RAM) - 4096;
	cr_expect_eq(step(avail).action, POLICY_NONE);
	/* 100 MiB of it resident (say page cache): a step, once it stopped growing. */
	in.resident = used + 100 * MiB;
	d = step(avail);
	cr_expect_str_eq(d.why, "above band, guest touching new memory");
	d = step(avail);
	cr_assert_eq(d.action, POLICY_INFLATE, "%s", d.why);
	cr_expect_eq(d.new_target, 64 * MiB);
	/* The balloon took 64 MiB of what was resident: U grows by the balloon, R falls by it. */
	in.resident -= 64 * MiB;
	avail -= 64 * MiB;
	d = step(avail);
	cr_expect_eq(d.action, POLICY_NONE, "%s", d.why); /* 36 MiB left, but the set predates */
	d = step(avail);
	cr_expect_eq(d.action, POLICY_INFLATE, "%s", d.why);
}

/* Resident unknown (0: no pagemap, no mincore): the policy inflates as without the check. */
Test(policy, unknown_resident_inflates_as_before)
{
	in.resident = 0;
	cr_expect_eq(step(400 * MiB).action, POLICY_INFLATE);
	cr_expect_eq(p.returned_skips, 0);
}

/*
 * With free page reporting, memory just freed is still resident for a moment (Linux reports it 2 s
 * later): the policy waits POLICY_REPORT_WAIT_MS and inflates only if it is still resident then.
 */
Test(policy, with_reporting_waits_for_the_report_before_a_step)
{
	uint64_t avail = 400 * MiB, used = RAM - avail;
	struct policy_decision d;

	in.reporting = true;
	in.resident = used + 200 * MiB; /* freed a moment ago */
	d = step(avail);
	cr_assert_eq(d.action, POLICY_NONE);
	cr_expect_str_eq(d.why, "above band, waiting for free page reporting");
	cr_expect_eq(step(avail).action, POLICY_NONE); /* 1 s */
	in.resident = used + 1 * MiB;		       /* reported: returned */
	d = step(avail);
	cr_expect_eq(d.action, POLICY_NONE);
	cr_expect_str_eq(d.why, "above band, already returned to the host");
	/* Resident again (page cache, say), no longer growing, and still so 3 s later: a step. */
	in.resident = used + 100 * MiB;
	cr_expect_str_eq(step(avail).why, "above band, guest touching new memory");
	cr_expect_eq(step(avail).action, POLICY_NONE);
	cr_expect_eq(step(avail).action, POLICY_NONE);
	cr_expect_eq(step(avail).action, POLICY_NONE);
	d = step(avail);
	cr_expect_eq(d.action, POLICY_INFLATE, "%s", d.why);
}

/* A guest reporting more available memory than exists cannot make the gate's sum wrap. */
Test(policy, hostile_available_memory_cannot_wrap_the_resident_check)
{
	struct policy_decision d;

	in.resident = 300 * MiB;
	in.actual = in.target = 64 * MiB; /* avail + actual would wrap to 64 MiB - 4 KiB */
	d = step(UINT64_MAX - 4095);
	cr_assert_eq(d.action, POLICY_INFLATE, "%s", d.why); /* 300 MiB resident: worth a step */
	cr_expect_leq(d.new_target, RAM - p.cfg.floor_bytes);
}

/*
 * Host pressure lowers the band's top to its configured bottom, so a guest in the configured band
 * can be inflated: the glue must read resident there too (policy_wants_resident()), or the
 * policy balloons memory that reporting returned already, as it did before this check.
 */
Test(policy, host_pressure_still_skips_memory_already_returned)
{
	uint64_t avail = 110 * MiB, used = RAM - avail; /* 21%: in the configured band */
	uint64_t resident = used + 2 * MiB;		/* the rest was reported */
	struct policy_decision d;

	cr_expect(!policy_wants_resident(
		&p, &(struct policy_input){.guest_ram = RAM, .have_avail = true, .avail = avail}));
	in.host_total = 100 * GiB;
	in.host_avail = 5 * GiB; /* under 10%: host pressure */
	in.avail = avail;
	cr_assert(policy_wants_resident(&p, &in));
	in.resident = resident; /* as the glue reads it */
	d = step(avail);
	cr_expect(d.host_pressure);
	cr_expect_eq(d.action, POLICY_NONE, "inflated to %llu MiB",
		     (unsigned long long)(d.new_target / MiB));
	cr_expect_str_eq(d.why, "above band, already returned to the host");
	/* Under the lowered bottom too (15% - 10% = 5%): nothing to read, a deflate if anything. */
	in.avail = 20 * MiB;
	cr_expect(!policy_wants_resident(&p, &in));
	in.have_avail = false;
	in.avail = 400 * MiB;
	cr_expect(!policy_wants_resident(&p, &in));
}

/*
 * e2e autoballoon_cgroup: with reporting off, a guest filling 270 MiB was inflated mid-fill. Its
 * statistics (a period old) still showed 479 MiB available while the resident figure, read now,
 * had grown by 120 MiB: no step while resident memory grows faster than POLICY_MIN_GAIN a period.
 */
Test(policy, no_inflate_while_resident_memory_grows)
{
	uint64_t avail = 479 * MiB, used = RAM - avail;
	struct policy_decision d;

	in.resident = used + 1 * MiB; /* untouched: nothing to take */
	cr_expect_eq(step(avail).action, POLICY_NONE);
	in.resident = 152 * MiB; /* the fill, which the statistics do not show yet */
	d = step(avail);
	cr_assert_eq(d.action, POLICY_NONE, "inflated to %llu MiB mid-fill",
		     (unsigned long long)(d.new_target / MiB));
	cr_expect_str_eq(d.why, "above band, guest touching new memory");
	cr_expect_eq(p.touching_skips, 1);
	/* Growth under RAM/64 a period (page cache, logs) is no fill: a step. */
	in.resident += POLICY_MIN_GAIN(RAM) - 4096;
	d = step(avail);
	cr_expect_eq(d.action, POLICY_INFLATE, "%s", d.why);
	cr_expect_eq(p.touching_skips, 1);
}

/*
 * One period as the glue makes it (machine_policy.c): resident memory @res is read (a pagemap
 * walk) only when policy_wants_resident() says so; *@read tells whether it was.
 */
static struct policy_decision glue_step(uint64_t avail, uint64_t res, bool *read)
{
	in.avail = avail;
	in.now_ms += 1000;
	*read = policy_wants_resident(&p, &in);
	in.now_ms -= 1000; /* step() moves the clock */
	in.resident = *read ? res : 0;
	return step(avail);
}

/*
 * An idle guest above the band whose free memory reporting returned: after the first "already
 * returned" skip, resident memory is read again after 2, 4, 8, then every 16 periods, not every
 * period (a pagemap walk of 2 MiB per GiB of RAM: 18 ms a second for an idle 16 GiB guest on
 * 4 KiB pages, measured). Every period in between is a skip too, never an inflate step.
 */
Test(policy, returned_memory_is_rechecked_less_and_less_often)
{
	uint64_t avail = 400 * MiB, used = RAM - avail;
	unsigned int reads = 0, t;
	bool read;
	struct policy_decision d;

	in.free = 380 * MiB;
	for (t = 0; t < 64; t++) {
		d = glue_step(avail, used + 1 * MiB, &read);
		cr_assert_eq(d.action, POLICY_NONE, "period %u: %s", t, d.why);
		reads += read;
	}
	/* Periods 0, 2, 6, 14, 30, 46, 62: 7 walks in 64 periods. */
	cr_expect_eq(reads, 7);
	cr_expect_eq(p.returned_skips, 64);
}

/*
 * What the guest shows can make memory resident again before the recheck is due: the walk is made
 * at once when the guest frees memory (available up), fills page cache (free down) or the balloon
 * moves; then a step is taken on the memory found resident.
 */
Test(policy, returned_memory_is_rechecked_when_the_guest_changes)
{
	uint64_t avail = 400 * MiB, used = RAM - avail;
	bool read;
	struct policy_decision d;

	in.free = 380 * MiB;
	glue_step(avail, used + 1 * MiB, &read);
	cr_assert(read);
	/* The recheck is not due, and small changes (under 1/64 of RAM) keep it so. */
	in.free -= 4 * MiB;
	glue_step(avail + 4 * MiB, used + 1 * MiB, &read);
	cr_assert(!read, "the recheck is not due");
	/* Page cache filled: free memory down by 100 MiB, available the same. */
	in.free -= 100 * MiB;
	d = glue_step(avail, used + 101 * MiB, &read);
	cr_expect(read, "page cache filled: resident again");
	cr_expect_str_eq(d.why, "above band, guest touching new memory");
	/* Freed memory: available up by 50 MiB (reported 2 s later). */
	setup();
	in.free = 380 * MiB;
	glue_step(avail, used + 1 * MiB, &read);
	glue_step(avail + 50 * MiB, used - 50 * MiB + 1 * MiB, &read);
	cr_expect(read, "memory freed: read again");
	/* The balloon moved (a client, say): read again. */
	setup();
	glue_step(avail, used + 1 * MiB, &read);
	in.actual = 16 * MiB;
	policy_wants_resident(&p, &in);
	in.now_ms += 1000;
	cr_expect(policy_wants_resident(&p, &in), "the balloon moved: read again");
	/* Below the band, then above it again: a fresh walk at once. */
	setup();
	glue_step(avail, used + 1 * MiB, &read);
	glue_step(100 * MiB, 0, &read);
	d = glue_step(avail, used + 1 * MiB, &read);
	cr_expect(read);
	cr_expect_str_eq(d.why, "above band, already returned to the host");
}
