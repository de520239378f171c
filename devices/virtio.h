/*
 * The contract between a virtio device (virtio_balloon.c, ...) and its transport (virtio_pci.c).
 * The transport knows no device; a device knows no transport (style.md rule 3).
 * A device struct embeds `struct virtio_dev` as its first member.
 */
#ifndef DEVICES_VIRTIO_H
#define DEVICES_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtqueue.h"

struct guest_mem;
struct state_in;
struct state_out;
struct virtio_dev;

/* Device hooks; all are called with dev->lock held unless noted. */
struct virtio_dev_ops {
	const char *name;    /* "virtio-balloon" */
	uint16_t device_id;  /* VIRTIO_ID_* from <linux/virtio_ids.h> */
	uint16_t max_queues; /* queues the transport exposes (may exceed what features create) */
	uint16_t max_queue_size; /* largest queue size offered, a power of two */
	uint32_t config_size;	 /* bytes of device-specific config space */
	/* Feature bits offered (VIRTIO_F_VERSION_1 is added by the transport). */
	uint64_t (*get_features)(struct virtio_dev *dev);
	/* Device config space access; @off + @len <= config_size is guaranteed by the transport. */
	void (*config_read)(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len);
	void (*config_write)(struct virtio_dev *dev, uint32_t off, const void *data, uint32_t len);
	/* Driver wrote DRIVER_OK: features in dev->driver_features are final. Return 0 or -errno
	 * (the transport then sets DEVICE_NEEDS_RESET). */
	int (*activate)(struct virtio_dev *dev);
	/* Queue @qidx (transport index) was notified. Called from the event-loop thread (or the
	 * notifying vCPU thread, see notify_on_vcpu) WITHOUT dev->lock held: the device takes it.
	 */
	void (*queue_notify)(struct virtio_dev *dev, uint16_t qidx);
	/*
	 * true: the transport registers no ioeventfd for this device's queues and calls
	 * queue_notify on the vCPU thread whose notify write exited (up to 16 kick budgets; the
	 * rest continues on the event loop through notify_again). For a device whose driver waits
	 * on every buffer (the balloon's inflate/deflate: one round trip per 256 PFNs) and whose
	 * work is short: no wakeup of the loop thread, which shares CPUs with the vCPUs.
	 */
	bool notify_on_vcpu;
	/* Device reset (status 0); the transport has already reset features and queues. */
	void (*reset)(struct virtio_dev *dev);
	/*
	 * Snapshot (issue 14), both optional: append / read back the device-specific state that
	 * follows the common part (virtio_dev_save/load). load runs on a freshly reset device of
	 * the same configuration whose common part (features, status, queues) is already loaded;
	 * it validates every value (state_fail()) and must not process queues (the caller
	 * restarts them once every device is loaded). Return 0 or -errno (-EINVAL: rejected).
	 */
	int (*save)(struct virtio_dev *dev, struct state_out *o);
	int (*load)(struct virtio_dev *dev, struct state_in *in);
};

/* Transport hooks a device calls to interrupt the driver. */
struct virtio_transport_ops {
	/* Raise the used-buffer notification of queue @qidx (MSI-X vector or INTx + ISR bit 0). */
	void (*signal_used)(struct virtio_dev *dev, uint16_t qidx);
	/* Raise a configuration-change notification (ISR bit 1); bumps config_generation. */
	void (*signal_config)(struct virtio_dev *dev);
	/* The device stopped processing queue @qidx at its kick budget (struct virtio_budget):
	 * deliver another ops->queue_notify() for it on a later event-loop turn, never from
	 * inside this call. Called with dev->lock held. */
	void (*notify_again)(struct virtio_dev *dev, uint16_t qidx);
};

/*
 * The work budget of one queue notification (issue 12 item 4): a device handles at most
 * @chains descriptor chains, and stops earlier once @ns nanoseconds passed since it started
 * (checked after each chain), then asks the transport to notify it again on the next loop
 * turn (notify_again). So a guest that keeps republishing buffers cannot hold the loop thread
 * that also serves the control socket, signals and timers: other events wait at most one
 * budget per queue. Defaults below; a device may lower them (tests do).
 */
#define VIRTIO_KICK_BUDGET_CHAINS 64
#define VIRTIO_KICK_BUDGET_NS	  (500 * 1000ULL) /* 0.5 ms */

struct virtio_kick_budget {
	uint32_t chains; /* chains per notification, >= 1 */
	uint64_t ns;	 /* wall time per notification (0: one chain) */
};

/* What is left of the budget of the notification being processed. */
struct virtio_budget {
	uint32_t left;	      /* chains */
	uint64_t deadline_ns; /* now_ns() value at which it ends */
};

#define VIRTIO_MAX_QUEUES 10 /* virtio-console: 4 ports + control = 10 queues */

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	const struct virtio_transport_ops *transport;
	void *transport_priv;
	struct guest_mem *gm;
	pthread_mutex_t lock;	  /* device state; held for register access and queue work */
	uint64_t device_features; /* offered (device's + transport's bits) */
	uint64_t driver_features; /* accepted by the driver */
	uint8_t status;		  /* VIRTIO_CONFIG_S_* */
	uint8_t config_generation;
	struct virtqueue vqs[VIRTIO_MAX_QUEUES];
	uint64_t err_count;   /* guest-caused errors: malformed buffers, bad addresses, ... */
	uint64_t early_kicks; /* notifications before DRIVER_OK, drained and logged */
	uint64_t
		used_signals; /* used-buffer notifications raised (counted without transport too) */
	struct virtio_kick_budget budget; /* VIRTIO_KICK_BUDGET_* after virtio_dev_init() */
	uint64_t budget_yields;		  /* notifications that ended at the budget */
};

/**
 * virtio_dev_init() - initialise the common part of a device before handing it to a transport.
 * @dev: embedded in the device; @ops: static ops table; @gm: guest RAM used by the queues.
 */
void virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops,
		     struct guest_mem *gm);

/** virtio_has_feature() - true when the driver accepted feature bit @bit. */
static inline bool virtio_has_feature(const struct virtio_dev *dev, unsigned int bit)
{
	return bit < 64 && (dev->driver_features & (1ULL << bit));
}

/**
 * virtio_dev_reset() - the fixed reset path (style rule 4): clear features, status, queues, then
 * call the device's reset hook. Caller holds dev->lock.
 */
void virtio_dev_reset(struct virtio_dev *dev);

/**
 * virtio_dev_reset_common() - the common half of virtio_dev_reset(): features, status and queues
 * cleared, the device's reset hook NOT called (a state load must not undo what the memory layer
 * restored, e.g. the balloon's hook marks every ballooned page resident). Caller holds dev->lock.
 */
void virtio_dev_reset_common(struct virtio_dev *dev);

/*
 * virtio_needs_reset() - the device met a driver error it cannot recover from without a reset
 * (virtio 1.2 §2.1.2): set DEVICE_NEEDS_RESET and raise a configuration-change notification, once.
 * The transport then ignores the device's queue notifications until the driver resets it.
 * Caller holds dev->lock.
 */
void virtio_needs_reset(struct virtio_dev *dev);

/**
 * virtio_budget_begin() - start the budget of one queue notification (dev->budget) in *@b.
 * Caller holds dev->lock.
 */
void virtio_budget_begin(const struct virtio_dev *dev, struct virtio_budget *b);

/**
 * virtio_budget_spend() - the device handled one chain of queue @qidx (valid or malformed).
 * Returns true while the budget lasts. When it is used up (dev->budget.chains chains, or
 * dev->budget.ns elapsed) the transport's notify_again() is asked to notify @qidx again on a
 * later loop turn, dev->budget_yields counts it, and false is returned: the device stops
 * processing @qidx now. A transport without notify_again (test stubs) cannot re-notify, so
 * there the budget never ends a notification. Caller holds dev->lock.
 */
bool virtio_budget_spend(struct virtio_dev *dev, struct virtio_budget *b, uint16_t qidx);

/**
 * virtio_budget_expired() - has the notification's time budget run out (mid-chain checks of a
 * device that can resume a chain later)? Always false without a transport notify_again.
 */
bool virtio_budget_expired(const struct virtio_dev *dev, const struct virtio_budget *b);

/**
 * virtio_budget_yield() - stop processing queue @qidx now: count it in dev->budget_yields and
 * ask the transport's notify_again() for another notification on a later loop turn. Caller
 * holds dev->lock.
 */
void virtio_budget_yield(struct virtio_dev *dev, uint16_t qidx);

/**
 * virtio_complete() - put chain @head on queue @qidx's used ring with @len bytes written and
 * interrupt the driver when the ring's notification suppression (event_idx / flags) asks for it.
 * Caller holds dev->lock. Returns 0 or -errno from vq_push (ring not in guest RAM).
 */
int virtio_complete(struct virtio_dev *dev, uint16_t qidx, uint16_t head, uint32_t len);

/**
 * virtio_dev_save() - append @dev's common state to @o (issue 14): offered and accepted
 * features, status, config_generation, every queue the ops expose (size, ready, MSI-X vector,
 * ring GPAs, last_avail, used_idx, event_idx bookkeeping, negotiated ring features), the
 * counters, then ops->save(). Caller holds dev->lock; the device is quiesced (nothing in
 * flight). Returns 0 or -errno (-ENOMEM from the writer).
 */
int virtio_dev_save(struct virtio_dev *dev, struct state_out *o);

/**
 * virtio_dev_load() - read what virtio_dev_save() wrote into @dev, a freshly reset device of the
 * same configuration, then ops->load(). Hostile input: the offered features must equal @dev's,
 * accepted ones be offered once FEATURES_OK is set, DRIVER_OK needs FEATURES_OK (or
 * NEEDS_RESET), and every ready queue is re-enabled through vq_enable() (size a power of two,
 * at most ops->max_queue_size, rings aligned and inside guest RAM) with its negotiated ring
 * features as saved. Indices are free-running u16: any value. On error the common part is reset
 * (virtio_dev_reset_common(): the device's own reset hook is not run, so guest memory state is
 * left alone) and whatever device fields were loaded hold validated values only. Caller holds
 * dev->lock. Returns 0 or -EINVAL.
 */
int virtio_dev_load(struct virtio_dev *dev, struct state_in *in);

/**
 * virtio_repop() - for a load hook: the device held chain @head of queue @qidx (popped last, not
 * completed) when it was saved; walk it again from the loaded rings into *@c (validated by
 * vq_pop, as any chain). Returns 0, or -EINVAL when the queue is not ready or the avail ring
 * slot before last_avail does not hold a valid chain @head.
 */
int virtio_repop(struct virtio_dev *dev, uint16_t qidx, uint16_t head, struct vq_chain *c);

#endif
