/*
 * virtio-balloon (virtio 1.2 §5.5): the device whose num_pages drives host reclamation.
 * The host side (control socket) sets the target; the guest's driver inflates/deflates and
 * writes `actual`; inflated and reported pages are discarded through the memory layer.
 */
#ifndef DEVICES_VIRTIO_BALLOON_H
#define DEVICES_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio.h"

struct guest_mem;
struct virtio_dev;
struct balloon;

/* Options of the balloon device (--balloon). */
struct balloon_config {
	bool enabled;
	bool deflate_on_oom;	     /* offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	bool free_page_reporting;    /* offer VIRTIO_BALLOON_F_REPORTING */
	bool stats;		     /* offer VIRTIO_BALLOON_F_STATS_VQ */
	unsigned int stats_period_s; /* 0: refresh only on demand */
};

#define BALLOON_NR_STAT_TAGS 16 /* tags 0-15 (Linux 6.12 added 10-15) */

struct balloon_stats {
	uint64_t seq;	      /* increments with every set received from the guest; 0 = none yet */
	uint64_t received_ns; /* now_ns() when the set arrived */
	bool valid[BALLOON_NR_STAT_TAGS];
	uint64_t val[BALLOON_NR_STAT_TAGS]; /* VIRTIO_BALLOON_S_* values as the guest sent them */
};

struct balloon_counters {
	uint64_t target_pages;	 /* num_pages (4 KiB pages) */
	uint64_t actual_pages;	 /* the guest's `actual` */
	uint64_t inflated_pages; /* total PFNs accepted on the inflate queue */
	uint64_t deflated_pages;
	uint64_t reported_bytes; /* free page reporting, total discarded */
	uint64_t discard_ranges; /* gm_discard calls */
	uint64_t err_count;	 /* malformed buffers and rejected PFNs (hostile-guest counter) */
	uint64_t features;	 /* negotiated */
	unsigned int nr_queues;	 /* queues the negotiated features create (inflate, deflate, ...) */
	struct vq_state queues[VIRTIO_MAX_QUEUES];
};

/*
 * Event sink: @event is "balloon.change" (actual moved; data {"actual_mib":..,"target_mib":..})
 * or "balloon.stats" (a fresh stats set arrived; data {"seq":N}). Called from the balloon's own
 * event thread (started by balloon_set_event_sink()) with no device lock held; events of one kind
 * that pile up before delivery are coalesced into one carrying the latest values.
 */
typedef void (*balloon_event_fn)(void *opaque, const char *event, const char *data_json);

/**
 * balloon_create() - allocate the device. @gm: guest RAM (discard target); @cfg: features offered.
 * Returns the device or NULL (ENOMEM). The caller attaches balloon_virtio_dev() to a transport.
 */
struct balloon *balloon_create(struct guest_mem *gm, const struct balloon_config *cfg);

/** balloon_destroy() - free the device (after the transport is gone). */
void balloon_destroy(struct balloon *b);

/** balloon_virtio_dev() - the embedded virtio device, for the transport. */
struct virtio_dev *balloon_virtio_dev(struct balloon *b);

/**
 * balloon_quiesce() - before a snapshot is saved (issue 14): wait until the event thread has
 * delivered every pending event and is idle, so no event is lost or half-sent across the
 * snapshot. Call without the device lock, with nothing posting events (vCPUs paused, on the
 * loop thread).
 */
void balloon_quiesce(struct balloon *b);

/** balloon_set_event_sink() - where balloon.change / balloon.stats events go. */
void balloon_set_event_sink(struct balloon *b, balloon_event_fn fn, void *opaque);

/**
 * balloon_set_target() - set num_pages (4 KiB pages the guest should give back) and raise a
 * configuration-change interrupt (§5.5.6). Returns 0, or -EINVAL when @num_pages exceeds guest RAM.
 */
int balloon_set_target(struct balloon *b, uint64_t num_pages);

/** balloon_get_counters() - consistent snapshot of targets, totals and error counters. */
void balloon_get_counters(struct balloon *b, struct balloon_counters *out);

/**
 * balloon_request_stats() - return the held stats buffer so the guest sends a fresh set
 * (§5.5.6.3). Returns 0, -ENOTSUP when STATS_VQ was not negotiated, -EAGAIN when no buffer is held.
 */
int balloon_request_stats(struct balloon *b);

/** balloon_get_stats() - copy the latest stats set (seq 0 when none has arrived yet). */
void balloon_get_stats(struct balloon *b, struct balloon_stats *out);

/**
 * balloon_stats_tick() - periodic stats refresh; the owner calls it every stats_period_s from
 * the loop thread (no-op when the period is 0).
 */
void balloon_stats_tick(struct balloon *b);

#endif
