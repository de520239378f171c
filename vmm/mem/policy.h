/*
 * Memory autopilot (issue 15, design.md "Memory autopilot"): a host-side policy that keeps a
 * guest right-sized by moving its balloon target, as kswapd's watermarks do inside one kernel.
 * This file is the decision only (no I/O, no device): every period the machine feeds it what it
 * saw (the guest's balloon statistics, the balloon's target and actual, the host's memory
 * pressure) and applies what it decided, emitting one `memory.policy` event per decision
 * (vmm/machine_policy.c).
 *
 * The rule, with A = the guest's available memory (VIRTIO_BALLOON_S_AVAIL) as a share of its RAM:
 *   - A above the band's top (high_pct): inflate by at most step_bytes per period towards the
 *     band's middle, never leaving the guest less than floor_bytes of RAM, and only on a
 *     statistics set taken after the guest reached the previous target (no overshoot on stale
 *     figures);
 *   - A below the band's bottom (low_pct): deflate at once (no step bound) to the band's top plus
 *     what the guest consumed in the last period, so an allocating guest stays ahead;
 *   - guest pressure (major faults at or above majflt_per_period, swap-ins, or A fell by more
 *     than a step since the last period): deflate at once, by at least two steps;
 *   - host pressure (PSI memory "some" avg10 at or above psi_pct, or MemAvailable under
 *     host_min_avail_pct of host RAM; the same two of the VMM's cgroup v2 when it has a memory
 *     limit: its memory.pressure, and what memory.high/memory.max leave): the band moves down by
 *     its own width (the guest keeps less slack), and the decision asks for cold pages to be
 *     compressed (reclaim_bytes);
 *   - a target set by someone else (a control client's balloon.set) holds the policy off for
 *     hold_ms;
 *   - after a deflate the guest is settling: no inflate until POLICY_SETTLE_PERIODS periods
 *     passed and a statistics set shows A no longer falling (by more than 1/512 of RAM since
 *     the last set). A guest that is still allocating keeps what it was given, instead of giving it
 *     back on the next set and asking for it again (bench/slowdown measured 8-11% slower runs
 *     from that churn);
 *   - between two inflate steps, available memory that fell by more than the balloon took (and
 *     1/512 of RAM) is the guest's own use: no further step until a set shows it quiet again;
 *   - an inflate step only where the host still holds some of the guest's available memory:
 *     with R = guest RAM resident in the host (policy_input.resident) and U = guest RAM minus
 *     available minus balloon (what the guest cannot give), no step while R - U is under
 *     POLICY_MIN_GAIN(RAM). Free page reporting has then already returned the free memory, and
 *     ballooning it would return nothing more while the guest pays a deflate round trip per MiB
 *     to get it back (bench/slowdown: 24% slower runs). Page cache, free memory the guest did not
 *     report (pages scattered over 2 MiB blocks) and memory with reporting off stay resident, so
 *     the policy still takes them. With reporting on, memory must have stayed resident for
 *     POLICY_REPORT_WAIT_MS first: Linux reports freed pages 2 s after they are freed, and a
 *     step taken at once would balloon memory reporting was about to return;
 *   - after such a skip R is not read again (a pagemap walk: 2 MiB of it per GiB of RAM) for 2,
 *     then 4, 8, up to POLICY_RECHECK_MAX_PERIODS periods while the guest's figures stay as they
 *     were: balloon actual unchanged, A not up and free memory not down by POLICY_MIN_GAIN(RAM)
 *     (memory freed since, or page cache filled, which may be resident). Those periods count as
 *     skips too. An idle guest above the band costs one walk per 16 s instead of one a second;
 *   - no inflate step while R grew by more than POLICY_MIN_GAIN(RAM) since the last period: the
 *     guest is touching new memory right now, and its statistics (a period old) do not show it
 *     yet (the e2e autoballoon_cgroup run: a step taken during a 270 MiB fill, deflated 2 s
 *     later).
 */
#ifndef VMM_MEM_POLICY_H
#define VMM_MEM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Periods after a deflate before the policy may inflate again (see "settling" above). */
#define POLICY_SETTLE_PERIODS 5

/*
 * The least host-resident available memory (bytes) worth an inflate step: 1/64 of guest RAM, at
 * least 4 MiB (8 MiB for a 512 MiB guest).
 */
#define POLICY_MIN_GAIN(ram) ((ram) / 64 > (4ULL << 20) ? (ram) / 64 : (4ULL << 20))

/* With free page reporting, how long resident available memory must last before a step (ms). */
#define POLICY_REPORT_WAIT_MS 3000

/* After an "already returned" skip, the most periods before resident memory is read again. */
#define POLICY_RECHECK_MAX_PERIODS 16

/* How often policy_watch() looks at the balloon between periods (ms). */
#define POLICY_WATCH_MS 100

struct policy_config {
	unsigned int low_pct;	/* band bottom, % of guest RAM available (default 15) */
	unsigned int high_pct;	/* band top (default 25) */
	uint64_t step_bytes;	/* largest inflate per period (default 64 MiB) */
	uint64_t floor_bytes;	/* RAM the guest always keeps (default 64 MiB) */
	unsigned int period_ms; /* decision period (default 1000) */
	unsigned int hold_ms;	/* pause after a client's balloon.set (default 60000) */
	unsigned int
		majflt_per_period; /* major faults per period that mean pressure (default 100) */
	unsigned int psi_pct;	   /* host PSI memory some avg10 that means host pressure (10) */
	unsigned int
		host_min_avail_pct; /* host MemAvailable below this % of host RAM: pressure (10) */
};

/** policy_config_default() - the documented defaults above. */
void policy_config_default(struct policy_config *cfg);

/**
 * policy_parse() - "on[,low=PCT][,high=PCT][,step=SIZE][,floor=SIZE][,period=MS][,hold=S]"
 * (the --auto-balloon argument; "off" turns it off). Sets *@on and fills @cfg (defaults first).
 * Returns 0, or -EINVAL with a reason in @err (@errlen bytes).
 */
int policy_parse(const char *arg, bool *on, struct policy_config *cfg, char *err,
		 unsigned int errlen);

/* What the policy saw this period. Bytes unless named otherwise. */
struct policy_input {
	uint64_t now_ms;
	uint64_t guest_ram;    /* guest RAM size */
	uint64_t stats_seq;    /* the balloon stats set's sequence number (0: none yet) */
	bool have_avail;       /* the guest sent VIRTIO_BALLOON_S_AVAIL */
	uint64_t avail;	       /* VIRTIO_BALLOON_S_AVAIL */
	uint64_t free;	       /* VIRTIO_BALLOON_S_MEMFREE (reported, not decided on) */
	uint64_t major_faults; /* VIRTIO_BALLOON_S_MAJFLT, cumulative */
	uint64_t swap_in;      /* VIRTIO_BALLOON_S_SWAP_IN, cumulative */
	uint64_t target;       /* balloon target now */
	uint64_t actual;       /* balloon actual (what the guest gave) */
	uint64_t resident;     /* guest RAM resident in the host (gm_resident_bytes; 0: unknown) */
	bool reporting;	       /* the guest negotiated free page reporting */
	bool host_psi_known;
	unsigned int host_psi_some_avg10_pct; /* /proc/pressure/memory some avg10, whole percent */
	uint64_t host_avail;		      /* /proc/meminfo MemAvailable (0: unknown) */
	uint64_t host_total;		      /* /proc/meminfo MemTotal */
	/* The VMM's cgroup v2 (policy_read_cgroup()); all 0/false without one. */
	uint64_t cg_limit; /* min(memory.high, memory.max) (0: no limit) */
	uint64_t cg_avail; /* limit - memory.current + inactive_file (if limited) */
	bool cg_psi_known; /* memory.pressure read */
	unsigned int cg_psi_some_avg10_pct; /* memory.pressure some avg10, whole percent */
};

enum policy_action { POLICY_NONE, POLICY_INFLATE, POLICY_DEFLATE };

struct policy_decision {
	enum policy_action action;
	uint64_t new_target; /* balloon target to set (bytes), valid unless POLICY_NONE */
	uint64_t
		reclaim_bytes; /* host pressure: compress this many bytes of cold pages (0: none) */
	bool host_pressure;
	bool guest_pressure;
	const char *why; /* short reason, static string */
};

struct policy {
	struct policy_config cfg;
	uint64_t last_seq;
	uint64_t last_avail;
	uint64_t last_actual; /* balloon actual at the last decision: what it took is no pressure */
	uint64_t last_inflate_ms; /* when the policy last inflated (0: never) */
	uint64_t last_deflate_ms; /* when the policy last deflated (0: never) */
	bool settling;		  /* deflated; no inflate until the guest is quiet again */
	bool have_base;		  /* base_*: the set the last inflate step decided on */
	uint64_t base_avail, base_actual;
	uint64_t last_majflt;
	uint64_t last_swap_in;
	uint64_t last_resident;	      /* policy_input.resident at the last decision (0: not read) */
	uint64_t last_set_target;     /* what this policy last set (UINT64_MAX: nothing yet) */
	uint64_t watch_actual;	      /* balloon actual at the last policy_watch() */
	uint64_t watch_target;	      /* balloon target at the last policy_watch() */
	uint64_t watch_reached_seq;   /* stats sets up to this one may predate watch_target */
	uint64_t watch_seq;	      /* the stats set policy_watch() last deflated on */
	uint64_t oom_deflates;	      /* policy_watch() deflates answering an OOM (in deflates) */
	uint64_t fast_deflates;	      /* policy_watch() deflates below the band (in deflates) */
	uint64_t returned_skips;      /* periods above the band with nothing resident to take */
	uint64_t touching_skips;      /* periods above the band with resident memory growing */
	uint64_t gain_since_ms;	      /* resident available memory seen since then (0: not now) */
	uint64_t recheck_ms;	      /* after a returned skip: no resident read before (0: none) */
	unsigned int recheck_periods; /* the wait that set it (doubles per skip) */
	uint64_t skip_avail, skip_free, skip_actual; /* the set that returned skip decided on */
	uint64_t hold_until_ms; /* a client's target holds the policy off until then */
	bool following;		/* a target was set and the guest has not reached it yet */
	uint64_t settled_seq;	/* stats sets up to this one predate the guest reaching it */
	uint64_t decisions;	/* counters for memory.stats */
	uint64_t inflates, deflates, holds;
	struct policy_decision last;
};

/** policy_init() - a policy with @cfg (copied), nothing seen yet. */
void policy_init(struct policy *p, const struct policy_config *cfg);

/**
 * policy_step() - decide for one period from @in. A target that differs from the one the policy
 * last set means a client set it: the policy holds off for cfg.hold_ms (decision POLICY_NONE, why
 * "client target"). No fresh stats set (same stats_seq) decides nothing. Returns the decision
 * (also kept in @p->last).
 */
struct policy_decision policy_step(struct policy *p, const struct policy_input *in);

/**
 * policy_watch() - between periods (every POLICY_WATCH_MS, the caller asking the guest for a
 * statistics set each time the balloon holds memory): deflate at once, without waiting for the
 * period, when
 *   - the guest deflates on OOM (virtio 1.2 §5.5.6.1 VIRTIO_BALLOON_F_DEFLATE_ON_OOM: Linux's OOM
 *     notifier gives back 1 MiB per failed allocation, each after a full failed reclaim, tens of
 *     ms apiece): @in->actual fell below the policy's own target. Deflates two steps or half
 *     of actual, whichever is more (at most actual);
 *   - a statistics set taken once the guest reached the current target shows available memory
 *     below the band (a program allocating faster than a period): deflates to the band's top, at
 *     least two steps and half the target (at most the target), so the guest never reaches
 *     the OOM path.
 * Then settles as after any deflate. A client's target, a hold, an empty balloon, or a deflate
 * still in progress decide nothing. Reads @in's now_ms, guest_ram, target, actual, stats_seq,
 * have_avail and avail. Returns the decision (POLICY_NONE or POLICY_DEFLATE; kept in @p->last
 * when it deflates).
 */
struct policy_decision policy_watch(struct policy *p, const struct policy_input *in);

/**
 * policy_wants_resident() - whether policy_step() could take an inflate step on @in, so needs
 * policy_input.resident: @in's available memory is above the band's top, the one policy_step()
 * uses (host pressure in @in's host fields lowers it to the configured bottom). The glue reads
 * resident, a pagemap walk, only then; and not while a recent "already returned" skip still
 * holds (the guest's figures unchanged since, the recheck not due: see the policy above).
 * Reads @in's now_ms, guest_ram, have_avail, avail, free, actual and host fields. Returns false
 * without an available figure.
 */
bool policy_wants_resident(const struct policy *p, const struct policy_input *in);

/**
 * policy_read_host() - fill @in's host fields: PSI memory "some" avg10 (/proc/pressure/memory,
 * host_psi_known false without PSI), MemTotal/MemAvailable (/proc/meminfo, 0 when unreadable),
 * and the cg_* fields from the VMM's cgroup v2 (policy_cgroup_dir(), found once; none on a
 * cgroup v1 memory controller, or in the root cgroup). Opens and reads files only.
 */
void policy_read_host(struct policy_input *in);

/**
 * policy_cgroup_dir() - the directory of this process's cgroup v2 (Documentation/admin-guide/
 * cgroup-v2.rst): the cgroup2 mount point in @mountinfo (a /proc/PID/mountinfo text) joined with
 * the "0::PATH" line of @cgroup (a /proc/PID/cgroup text), into @buf (@len bytes). Returns 0, or
 * -ENOENT when there is no cgroup2 mount or no v2 line, -ENAMETOOLONG when @buf is too small.
 */
int policy_cgroup_dir(const char *mountinfo, const char *cgroup, char *buf, size_t len);

/**
 * policy_read_cgroup() - fill @in's cg_* fields from the cgroup v2 directory @dir:
 * memory.high and memory.max ("max": no limit), memory.current, memory.stat's inactive_file
 * (page cache the kernel drops first, counted as available as MemAvailable does) and
 * memory.pressure's some avg10. Without a limit cg_limit and cg_avail stay 0; unreadable files
 * leave their fields 0/false.
 */
void policy_read_cgroup(const char *dir, struct policy_input *in);

#endif
