/*
 * virtio-rng, the entropy device (virtio 1.2 §5.4): one request queue; each buffer the driver
 * posts is a device-writable chain the device fills with bytes from getrandom(2).
 *
 * Rate limit (a guest must not burn a host core on entropy): a token bucket of
 * rate_bytes_per_s, holding at most burst_bytes (full at start). A request is served with
 * min(buffer, tokens, RNG_CHAIN_MAX) bytes once the bucket holds min(buffer, RNG_MIN_GRANT)
 * bytes; until then it waits and is completed later from a one-shot loop timer, set for when the
 * bucket will hold enough. The loop thread never blocks or spins on it: a waiting request costs
 * one timer, nothing else, and at most RNG_MIN_GRANT-byte grants bound the completions per
 * second to rate / RNG_MIN_GRANT.
 */
#ifndef DEVICES_VIRTIO_RNG_H
#define DEVICES_VIRTIO_RNG_H

#include <stdbool.h>
#include <stdint.h>

struct guest_mem;
struct loop;
struct rng;
struct virtio_dev;

#define RNG_DEFAULT_RATE (1024 * 1024) /* bytes per second (--rng on) */
#define RNG_MAX_RATE	 (1ULL << 30)  /* --rng rate= upper bound, bytes per second */
#define RNG_MIN_GRANT	 64	       /* smallest grant to a request larger than this */
#define RNG_CHAIN_MAX	 65536	       /* bytes written into one request at most */

/* Options of the entropy device (--rng). */
struct rng_config {
	bool enabled;
	uint64_t rate_bytes_per_s; /* 1..RNG_MAX_RATE */
	uint64_t burst_bytes;	   /* bucket size; 0: one second's worth (rate) */
};

struct rng_counters {
	uint64_t bytes;	    /* delivered to the guest */
	uint64_t requests;  /* buffers completed with bytes */
	uint64_t throttled; /* times a request had to wait for the bucket */
	uint64_t timer_wakeups;
	uint64_t err_count; /* malformed buffers (completed with length 0) */
};

/**
 * rng_create() - allocate the device. @gm: guest RAM; @cfg: its options (rate 1..RNG_MAX_RATE);
 * @loop: where the rate limiter's timers run (the loop thread); NULL (fuzzing) means a waiting
 * request is only retried at the next notification. Returns the device, or NULL with errno
 * (EINVAL for a bad rate, ENOMEM). The caller attaches rng_virtio_dev() to a transport.
 * If the host's entropy pool is not initialised yet, also starts a detached thread (role
 * VMM_THREAD_EVENTS) blocked in getrandom(2), which makes the kernel seed it.
 */
struct rng *rng_create(struct guest_mem *gm, const struct rng_config *cfg, struct loop *loop);

/** rng_destroy() - cancel its timer and free it, after the transport is detached. NULL is ok. */
void rng_destroy(struct rng *r);

/** rng_virtio_dev() - the embedded virtio device, for the transport. */
struct virtio_dev *rng_virtio_dev(struct rng *r);

/** rng_get_counters() - consistent snapshot of the device's counters. */
void rng_get_counters(struct rng *r, struct rng_counters *out);

/**
 * rng_parse_option() - parse the --rng argument "on|off[,rate=BYTES]" into *@cfg (BYTES per
 * second, 1..RNG_MAX_RATE, a K/M/G suffix allowed). Returns 0, or -EINVAL with a message in
 * @err (@err_len bytes).
 */
int rng_parse_option(const char *arg, struct rng_config *cfg, char *err, unsigned int err_len);

#endif
