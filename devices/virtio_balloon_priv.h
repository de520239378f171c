/*
 * virtio-balloon internals shared by devices/virtio_balloon.c (queues, config, events, API) and
 * devices/virtio_balloon_pfns.c (inflate/deflate buffers, virtio 1.2 §5.5.6.1). Nothing else
 * includes this header.
 */
#ifndef DEVICES_VIRTIO_BALLOON_PRIV_H
#define DEVICES_VIRTIO_BALLOON_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio.h"
#include "virtio_balloon.h"

struct state_in;
struct state_out;

/* Logical queues in the guest's order (virtio 1.2 §5.5.2); transport indices skip absent ones. */
enum bq { BQ_INFLATE, BQ_DEFLATE, BQ_STATS, BQ_FREE_PAGE, BQ_REPORTING, BQ_NR };

#define PFNS_PER_BUF	 256 /* Linux VIRTIO_BALLOON_ARRAY_PFNS_MAX */
#define STAT_SIZE	 sizeof(struct virtio_balloon_stat)
#define MAX_STATS_PARSED 64 /* bounds the work per stats buffer; Linux sends <= 16 */

struct balloon_events {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_cond_t idle; /* broadcast when a delivery ends (balloon_quiesce) */
	pthread_t thread;
	bool running, stop;
	bool busy; /* the sink is being called */
	balloon_event_fn fn;
	void *opaque;
	bool change, stats; /* pending, coalesced */
	uint64_t actual, target, seq;
};

/*
 * An inflate/deflate buffer whose PFNs are being applied: its sorted PFNs and how far it got.
 * The time budget may stop it between two ranges; the next notification continues it.
 */
struct pfn_work {
	bool active;
	bool inflate;
	uint16_t head;	   /* the chain, completed once every range is applied */
	unsigned int next; /* index of the first PFN not applied yet */
	unsigned int k;	   /* PFNs in pfns[] */
	uint64_t pfns[PFNS_PER_BUF];
};

struct balloon {
	struct virtio_dev vdev;	 /* first: the transport's handle */
	struct pfn_work work[2]; /* per BQ_INFLATE / BQ_DEFLATE queue */
	struct balloon_config cfg;
	uint32_t num_pages, actual; /* config space, host order */
	struct balloon_stats stats;
	bool stats_held; /* the guest's stats buffer, kept to request the next set */
	uint16_t stats_head;
	uint64_t inflated_pages, deflated_pages, reported_bytes, discard_ranges;
	struct balloon_events ev;
};

static inline struct balloon *to_balloon(struct virtio_dev *dev)
{
	return (struct balloon *)dev; /* vdev is the first member */
}

/* balloon_guest_err() - count a guest-caused error and log it (rate-limited). */
void balloon_guest_err(struct balloon *b, const char *what, uint64_t arg);

/*
 * balloon_start_pfns() - validate the inflate/deflate chain @c (device-readable le32 PFNs, at
 * most PFNS_PER_BUF), drop PFNs outside guest RAM (counted) and put the rest, sorted, in @w.
 * Returns false for a malformed buffer (counted; the caller completes it). Caller holds the lock.
 */
bool balloon_start_pfns(struct balloon *b, const struct vq_chain *c, bool inflate,
			struct pfn_work *w);

/*
 * balloon_run_pfns() - apply @w's remaining runs of consecutive PFNs, one memory-layer call
 * each (gm_discard / gm_clear_discarded). Returns true when all are applied; false when the
 * notification's time budget ran out between two runs (at least one is applied per call).
 */
bool balloon_run_pfns(struct balloon *b, struct pfn_work *w, const struct virtio_budget *budget);

/* balloon_queue_index() - transport index of logical queue @role, -1 when its feature is off. */
int balloon_queue_index(const struct virtio_dev *dev, enum bq role);

/* Snapshot hooks (virtio_dev_ops.save/load, virtio_balloon_state.c); dev->lock held. */
int balloon_save(struct virtio_dev *dev, struct state_out *o);
int balloon_load(struct virtio_dev *dev, struct state_in *in);

#endif
