/*
 * A fake control backend: a pretend VM with a balloon that reaches its target at once (or step
 * by step on a loop timer), a stats queue that answers at once, a compressed tier whose
 * memory.reclaim runs finish at once (or when the test says so), and call counters. Unit tests,
 * the fuzzer, the load test and bench/control run the real server against it without KVM.
 * Every hook runs on the loop thread, like the real backend.
 */
#ifndef TESTS_FAKE_CONTROL_FAKE_H
#define TESTS_FAKE_CONTROL_FAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "../../vmm/control/server.h"

struct control_fake {
	struct control *ctl; /* events go here (set after control_create); may be NULL */
	struct loop *loop;   /* for step_pages; may be NULL */
	const char *state;   /* "created", "running", "paused", "stopped" */
	unsigned int vcpus;
	uint64_t ram_bytes;
	uint64_t start_ns;
	bool has_balloon;    /* false: balloon commands get not-supported */
	bool stats_vq;	     /* false: stats_request returns -ENOTSUP */
	bool stats_answer;   /* false: a stats request is never answered (timeout path) */
	bool guest_shutdown; /* false: machine_request_guest_shutdown would return -ENOTSUP */
	uint64_t step_pages; /* 0: actual follows the target at once; else pages per 10 ms tick */
	int timer;	     /* loop timer id of the stepping, -1 when none */
	struct balloon_counters bc;
	struct balloon_stats stats;
	bool compressed;      /* false: memory.reclaim gets not-supported (-ENODEV) */
	bool reclaim_answer;  /* false: a run goes on until control_fake_reclaim_done() */
	bool reclaim_running; /* a run started and its event is not posted yet (-EBUSY) */
	uint64_t reclaim_job; /* id of the last run (1, 2, ...) */
	uint64_t reclaim_target_mib;
	unsigned int nr_pause, nr_resume, nr_shutdown, nr_stats_requests, nr_reclaims;
	uint64_t last_shutdown_timeout_ms;
};

/* The ops table; @opaque is a struct control_fake. */
extern const struct control_backend_ops control_fake_ops;

/**
 * control_fake_init() - a running VM of @ram_bytes guest RAM and @vcpus vCPUs with a balloon
 * offering the stats queue, answering stats and shutdown requests, actual following at once.
 */
void control_fake_init(struct control_fake *f, uint64_t ram_bytes, unsigned int vcpus);

/**
 * control_fake_set_step() - make actual move toward the target by @pages every 10 ms on @loop
 * (0 restores "at once"). Returns 0 or -errno from loop_add_timer().
 */
int control_fake_set_step(struct control_fake *f, struct loop *loop, uint64_t pages);

/**
 * control_fake_reclaim_done() - finish the running memory.reclaim run: post its
 * "memory.reclaim" event (resident memory went down to the target, or stayed when it was
 * already below). Returns 0, or -ENOENT when no run is going on.
 */
int control_fake_reclaim_done(struct control_fake *f);

/** control_fake_fini() - cancel the stepping timer. */
void control_fake_fini(struct control_fake *f);

#endif
