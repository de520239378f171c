#include "virtio_rng.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "../vmm/loop.h"
#include "../vmm/mem/guest_mem.h"
#include "../vmm/state.h"
#include "../vmm/util.h"
#include "virtio.h"

#define RQ 0 /* the request queue, virtio 1.2 §5.4.2 */

struct rng {
	struct virtio_dev vdev; /* first: the transport's handle */
	struct loop *loop;
	uint64_t rate, burst; /* bytes per second, bytes */
	/* Token bucket, under vdev.lock. */
	uint64_t tokens;  /* bytes */
	uint64_t fill_ns; /* now_ns() up to which tokens were added */
	/* A request popped but not yet served (it waits for tokens), under vdev.lock. */
	bool waiting;
	struct vq_chain req;
	int timer; /* armed one-shot loop timer, or -1 */
	struct rng_counters c;
	uint8_t buf[RNG_CHAIN_MAX];
};

static struct rng *to_rng(struct virtio_dev *dev)
{
	return (struct rng *)dev; /* vdev is the first member */
}

static void guest_err(struct rng *r, const char *what, uint64_t arg)
{
	r->vdev.err_count++;
	r->c.err_count++;
	pr_err_ratelimited("virtio-rng: %s (0x%" PRIx64 ")", what, arg);
}

static void complete(struct rng *r, uint16_t head, uint32_t len)
{
	int ret;

	if (head == VQ_HEAD_NONE)
		return;
	ret = virtio_complete(&r->vdev, RQ, head, len);
	if (ret)
		guest_err(r, "cannot complete a buffer", (uint64_t)-ret);
}

/* Add the tokens earned since fill_ns; the fraction of a byte not yet earned is kept. */
static void refill(struct rng *r)
{
	uint64_t now = now_ns(), dt = now - r->fill_ns, add;

	if (now <= r->fill_ns)
		return;
	add = (uint64_t)((unsigned __int128)dt * r->rate / 1000000000u);
	if (add >= r->burst - r->tokens) {
		r->tokens = r->burst;
		r->fill_ns = now;
		return;
	}
	r->tokens += add;
	r->fill_ns += (uint64_t)((unsigned __int128)add * 1000000000u / r->rate);
}

static void timer_fired(void *opaque);

/* Wake up once the bucket holds @need bytes (one timer at a time). */
static void arm_timer(struct rng *r, uint64_t need)
{
	uint64_t ms;

	r->c.throttled++;
	if (!r->loop || r->timer >= 0)
		return;
	ms = ((need - r->tokens) * 1000 + r->rate - 1) / r->rate;
	r->timer = loop_add_timer(r->loop, MAX(ms, 1), false, timer_fired, r);
	if (r->timer < 0)
		pr_err_ratelimited("virtio-rng: no timer for a throttled request: %s",
				   strerror(-r->timer));
}

#define RNG_POOL_RETRY_MS 10 /* the host's pool is not initialised yet: ask again after this */

/*
 * Fill @n bytes of the request's writable buffers from getrandom(2), never blocking: early after
 * the host's own boot its pool may not be initialised, and getrandom(0) would then hold the
 * thread that serves the queue (the loop, or a vCPU). Sets *@pool_wait when nothing could be
 * had for that reason. Returns bytes written.
 */
static uint32_t fill(struct rng *r, uint32_t n, bool *pool_wait)
{
	uint32_t got = 0;

	*pool_wait = false;
	while (got < n) {
		ssize_t k = getrandom(r->buf + got, n - got, GRND_NONBLOCK);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN && got == 0) {
			*pool_wait = true;
			return 0;
		}
		if (k < 0 && errno == EAGAIN)
			break;
		if (k <= 0) {
			pr_err_ratelimited("virtio-rng: getrandom: %s", strerror(errno));
			break;
		}
		got += (uint32_t)k;
	}
	return vq_copy_to_chain(&r->req, r->buf, got);
}

/*
 * Serve requests within one notification's budget (devices/virtio.h), or until one has to wait
 * for the bucket. Caller holds vdev.lock; the device is live (DRIVER_OK, queue ready).
 */
static void process(struct rng *r)
{
	struct virtqueue *vq = &r->vdev.vqs[RQ];
	struct virtio_budget budget;
	uint64_t need, n;
	bool pool_wait;
	int ret;

	virtio_budget_begin(&r->vdev, &budget);
	for (;;) {
		if (!r->waiting) {
			ret = vq_pop(vq, &r->req);
			if (!ret)
				return;
			if (ret == -EIO) {
				guest_err(r, "avail->idx runs more than a queue ahead",
					  vq->last_avail);
				virtio_needs_reset(&r->vdev);
				return;
			}
			if (ret < 0 || r->req.n_out || !r->req.in_len) {
				/* §5.4.6.1: the driver posts device-writable buffers only. */
				guest_err(r,
					  ret < 0 ? "malformed descriptor chain, head"
						  : "request is not a device-writable buffer, head",
					  r->req.head);
				complete(r, r->req.head, 0);
				goto spent;
			}
			r->waiting = true;
		}
		refill(r);
		need = MIN(r->req.in_len, RNG_MIN_GRANT);
		if (r->tokens < need) {
			arm_timer(r, need);
			return;
		}
		n = MIN(MIN((uint64_t)r->req.in_len, r->tokens), RNG_CHAIN_MAX);
		n = fill(r, (uint32_t)n, &pool_wait);
		if (pool_wait) { /* the request keeps waiting; the timer serves it */
			if (r->loop && r->timer < 0)
				r->timer = loop_add_timer(r->loop, RNG_POOL_RETRY_MS, false,
							  timer_fired, r);
			return;
		}
		r->tokens -= n;
		r->waiting = false;
		r->c.bytes += n;
		r->c.requests++;
		complete(r, r->req.head, (uint32_t)n);
	spent:
		if (!virtio_budget_spend(&r->vdev, &budget, RQ))
			return;
	}
}

static bool live(const struct rng *r)
{
	return (r->vdev.status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(r->vdev.status & VIRTIO_CONFIG_S_NEEDS_RESET) && r->vdev.vqs[RQ].ready;
}

/* Loop thread: the bucket should now hold enough for the waiting request. */
static void timer_fired(void *opaque)
{
	struct rng *r = opaque;

	pthread_mutex_lock(&r->vdev.lock);
	r->timer = -1;
	r->c.timer_wakeups++;
	if (live(r))
		process(r);
	pthread_mutex_unlock(&r->vdev.lock);
}

/* --- virtio_dev_ops ----------------------------------------------------------------------- */

static uint64_t rng_get_features(struct virtio_dev *dev)
{
	(void)dev;
	return (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
}

static int rng_activate(struct virtio_dev *dev)
{
	struct rng *r = to_rng(dev);

	/*
	 * Buffers posted before DRIVER_OK (Linux posts one at probe) are served on the loop thread:
	 * activate runs on the vCPU thread that wrote the status, whose seccomp filter allows no
	 * timerfd or epoll call, and the rate limiter's timer belongs to the loop.
	 */
	if (!live(r))
		return 0;
	if (dev->transport && dev->transport->notify_again)
		dev->transport->notify_again(dev, RQ);
	else
		process(r);
	return 0;
}

static void rng_queue_notify(struct virtio_dev *dev, uint16_t qidx)
{
	struct rng *r = to_rng(dev);

	pthread_mutex_lock(&dev->lock);
	if (!(dev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		dev->early_kicks++; /* picked up by activate */
	} else if (qidx != RQ || !live(r)) {
		guest_err(r, "notify of a queue that does not exist or is not enabled", qidx);
	} else if (!r->waiting || r->timer < 0) {
		/* A waiting request is served by its timer, not by more kicks. */
		process(r);
	}
	pthread_mutex_unlock(&dev->lock);
}

static void rng_reset(struct virtio_dev *dev)
{
	struct rng *r = to_rng(dev);

	/* The queue is gone; a waiting request with it. An armed timer finds nothing to do. */
	r->waiting = false;
}

/* The rate limiter and the request waiting for it; the timer is re-armed by the first kick. */
static int rng_save(struct virtio_dev *dev, struct state_out *o)
{
	struct rng *r = to_rng(dev);

	refill(r);
	state_put_u64(o, r->rate);
	state_put_u64(o, r->burst);
	state_put_u64(o, r->tokens);
	state_put_bool(o, r->waiting);
	state_put_u16(o, r->waiting ? r->req.head : 0);
	state_put_u64(o, r->c.bytes);
	state_put_u64(o, r->c.requests);
	state_put_u64(o, r->c.throttled);
	state_put_u64(o, r->c.timer_wakeups);
	state_put_u64(o, r->c.err_count);
	return state_out_error(o);
}

static int rng_load(struct virtio_dev *dev, struct state_in *in)
{
	struct rng *r = to_rng(dev);
	uint64_t rate = state_get_u64(in), burst = state_get_u64(in), tokens = state_get_u64(in);
	bool waiting = state_get_bool(in);
	uint16_t head = state_get_u16(in);

	if (state_in_error(in))
		return state_in_error(in);
	if (rate != r->rate || burst != r->burst)
		return state_fail(in, "rng: rate limit differs from the configuration");
	if (tokens > burst)
		return state_fail(in, "rng: more tokens than the bucket holds");
	if (waiting && (virtio_repop(dev, RQ, head, &r->req) || r->req.n_out || !r->req.in_len))
		return state_fail(in,
				  "rng: the waiting request is not a writable chain on the ring");
	r->tokens = tokens;
	r->fill_ns = now_ns(); /* tokens earned while not running are not carried over */
	r->waiting = waiting;
	r->c.bytes = state_get_u64(in);
	r->c.requests = state_get_u64(in);
	r->c.throttled = state_get_u64(in);
	r->c.timer_wakeups = state_get_u64(in);
	r->c.err_count = state_get_u64(in);
	return state_in_error(in);
}

static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.max_queues = 1,
	.max_queue_size = 64,
	.config_size = 0, /* §5.4.4: no configuration */
	.get_features = rng_get_features,
	.activate = rng_activate,
	.queue_notify = rng_queue_notify,
	.reset = rng_reset,
	.save = rng_save,
	.load = rng_load,
};

/* --- public API --------------------------------------------------------------------------- */

/*
 * A thread that waits for the host's pool in a blocking getrandom(2): that call is what makes Linux
 * (5.4 and later) seed the pool itself from CPU timing jitter, where GRND_NONBLOCK only waits for
 * entropy that may never come (a quiet host without a hardware RNG: the nested test host seeds
 * nothing in minutes). The requests keep polling (RNG_POOL_RETRY_MS) until the pool is ready.
 */
static void *pool_seed(void *arg)
{
	uint8_t b;

	(void)arg;
	while (getrandom(&b, 1, 0) < 0 && errno == EINTR)
		;
	return NULL;
}

static void seed_pool_if_needed(void)
{
	pthread_t t;
	uint8_t b;
	int ret;

	if (getrandom(&b, 1, GRND_NONBLOCK) >= 0 || errno != EAGAIN)
		return;
	ret = vmm_thread_create_role(&t, VMM_THREAD_EVENTS, pool_seed, NULL);
	if (ret) {
		pr_warn("virtio-rng: the host's entropy pool is not ready and no thread can wait "
			"for it (%s): the guest's requests wait until it is",
			strerror(ret));
		return;
	}
	pthread_detach(t);
}

struct rng *rng_create(struct guest_mem *gm, const struct rng_config *cfg, struct loop *loop)
{
	struct rng *r;

	if (!cfg->rate_bytes_per_s || cfg->rate_bytes_per_s > RNG_MAX_RATE ||
	    cfg->burst_bytes > RNG_MAX_RATE) {
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	virtio_dev_init(&r->vdev, &rng_ops, gm);
	r->loop = loop;
	r->rate = cfg->rate_bytes_per_s;
	r->burst = MAX(cfg->burst_bytes ? cfg->burst_bytes : r->rate, (uint64_t)RNG_MIN_GRANT);
	r->tokens = r->burst;
	r->fill_ns = now_ns();
	r->timer = -1;
	seed_pool_if_needed();
	return r;
}

void rng_destroy(struct rng *r)
{
	if (!r)
		return;
	if (r->timer >= 0)
		loop_del_timer(r->loop, r->timer);
	pthread_mutex_destroy(&r->vdev.lock);
	free(r);
}

struct virtio_dev *rng_virtio_dev(struct rng *r)
{
	return &r->vdev;
}

void rng_get_counters(struct rng *r, struct rng_counters *out)
{
	pthread_mutex_lock(&r->vdev.lock);
	*out = r->c;
	pthread_mutex_unlock(&r->vdev.lock);
}

int rng_parse_option(const char *arg, struct rng_config *cfg, char *err, unsigned int err_len)
{
	char copy[128], *tok, *save = NULL;
	bool first = true;

	*cfg = (struct rng_config){.enabled = true, .rate_bytes_per_s = RNG_DEFAULT_RATE};
	if (snprintf(copy, sizeof(copy), "%s", arg) >= (int)sizeof(copy)) {
		snprintf(err, err_len, "--rng: argument too long");
		return -EINVAL;
	}
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save), first = false) {
		uint64_t v;

		if (first && (!strcmp(tok, "on") || !strcmp(tok, "off"))) {
			cfg->enabled = !strcmp(tok, "on");
		} else if (!strncmp(tok, "rate=", 5)) {
			if (parse_size(tok + 5, &v) < 0 || !v || v > RNG_MAX_RATE) {
				snprintf(err, err_len,
					 "--rng: bad rate '%s' (bytes per second, 1 to 1G, "
					 "K/M/G suffixes)",
					 tok + 5);
				return -EINVAL;
			}
			cfg->rate_bytes_per_s = v;
		} else {
			snprintf(err, err_len, "--rng: '%s' is not on, off or rate=BYTES", tok);
			return -EINVAL;
		}
	}
	if (first) {
		snprintf(err, err_len, "--rng: empty argument (on, off, on,rate=BYTES)");
		return -EINVAL;
	}
	return 0;
}
