#include "virtio_console.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "../vmm/loop.h"
#include "../vmm/mem/guest_mem.h"
#include "../vmm/util.h"
#include "outbuf.h"
#include "virtio.h"
#include "virtio_console_priv.h"

static struct vconsole *to_vc(struct virtio_dev *dev)
{
	return (struct vconsole *)dev; /* vdev is the first member */
}

void vc_guest_err(struct vconsole *vc, const char *what, uint64_t arg)
{
	vc->vdev.err_count++;
	pr_err_ratelimited("virtio-console: %s (%" PRIu64 ")", what, arg);
}

static unsigned int nr_ports(const struct vconsole *vc)
{
	return vc_multiport(vc) ? vc->nr_ports : 1;
}

void vc_complete(struct vconsole *vc, uint16_t qidx, uint16_t head, uint32_t len)
{
	int ret;

	if (head == VQ_HEAD_NONE)
		return;
	ret = virtio_complete(&vc->vdev, qidx, head, len);
	if (ret)
		vc_guest_err(vc, "cannot complete a buffer, errno", (uint64_t)-ret);
}

/* Next well-formed chain of @qidx: 1, or 0 when there is none (empty, or a broken ring). */
int vc_pop(struct vconsole *vc, uint16_t qidx, struct vq_chain *c)
{
	for (;;) {
		int ret = vq_pop(&vc->vdev.vqs[qidx], c);

		if (ret >= 0)
			return ret;
		if (ret == -EIO) {
			vc_guest_err(vc, "avail->idx runs more than a queue ahead, queue", qidx);
			virtio_needs_reset(&vc->vdev);
			return 0;
		}
		vc_guest_err(vc, "malformed descriptor chain, head", c->head);
		vc_complete(vc, qidx, c->head, 0);
	}
}

/* --- receiveq: host input -> guest -------------------------------------------------------- */

static void input_ready(void *opaque, int fd, uint32_t events)
{
	struct vc_port *p = opaque;

	(void)fd;
	(void)events; /* EPOLLHUP: the read below sees the end */
	pthread_mutex_lock(&p->vc->vdev.lock);
	if (p->in_watched)
		vc_port_rx(p);
	pthread_mutex_unlock(&p->vc->vdev.lock);
}

/* Removed rather than masked while off: epoll reports EPOLLHUP of a closed pipe regardless. */
static void watch_input(struct vc_port *p, bool on)
{
	if (p->in_file || p->in_watched == on || !p->vc->loop)
		return;
	if (on)
		p->in_watched = loop_add_fd(p->vc->loop, p->in_fd, EPOLLIN, input_ready, p) == 0;
	else {
		loop_del_fd(p->vc->loop, p->in_fd);
		p->in_watched = false;
	}
}

static bool readable(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, 0) > 0; /* POLLHUP/POLLERR too: the read then sees the end */
}

/* End of host input: once its data is in the used ring, tell the guest (PORT_OPEN 0). */
static void input_ended(struct vc_port *p)
{
	p->in_eof = true;
	watch_input(p, false);
	if (p->host_open && !vc_host_connected(p)) {
		p->pending |= SEND_OPEN;
		vc_flush_ctrl(p->vc);
	}
}

/* Feed host input into the guest's receive buffers: never blocks (a pollable descriptor is read
 * only when it is readable), at most one read per buffer the guest gave. */
void vc_port_rx(struct vc_port *p)
{
	struct vconsole *vc = p->vc;
	uint16_t q = vc_rxq(p->id);
	struct iovec iov[VQ_MAX_BUFS];
	ssize_t n;

	if (p->in_fd < 0 || p->in_eof || !p->guest_open || !vc_usable(vc) ||
	    !vc->vdev.vqs[q].ready) {
		watch_input(p, false);
		return;
	}
	for (;;) {
		if (!p->rx_held) {
			if (!vc_pop(vc, q, &p->rx)) {
				watch_input(p, false); /* until the guest's next buffer */
				return;
			}
			if (p->rx.n_out) {
				vc_guest_err(vc, "device-readable receive buffer, head",
					     p->rx.head);
				vc_complete(vc, q, p->rx.head, 0);
				continue;
			}
			p->rx_held = true;
		}
		if (!p->in_file && !readable(p->in_fd)) {
			watch_input(p, true);
			return;
		}
		for (unsigned int i = 0; i < p->rx.n_in; i++)
			iov[i] = (struct iovec){p->rx.bufs[i].hva, p->rx.bufs[i].len};
		n = readv(p->in_fd, iov, p->rx.n_in);
		if (n > 0) {
			p->rx_held = false;
			p->rx_bytes += (uint64_t)n;
			vc_complete(vc, q, p->rx.head, (uint32_t)n);
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			watch_input(p, true);
			return;
		} else {
			input_ended(p); /* the held buffer stays with the device */
			return;
		}
	}
}

/* --- transmitq: guest output -> host ------------------------------------------------------ */

/* Copy the held chain from tx_off into the output buffer. True when all of it is in. */
static bool put_chain(struct vc_port *p)
{
	uint32_t skip = p->tx_off;

	for (unsigned int i = 0; i < p->tx.n_out; i++) {
		const struct vq_buf *b = &p->tx.bufs[i];
		size_t want, n;

		if (skip >= b->len) {
			skip -= b->len;
			continue;
		}
		want = b->len - skip;
		n = p->out ? MIN(want, outbuf_room(p->out)) : want; /* no output: discarded */
		if (p->out && n)
			outbuf_put(p->out, (const uint8_t *)b->hva + skip, n);
		p->tx_off += (uint32_t)n;
		p->tx_bytes += n;
		if (n < want)
			return false;
		skip = 0;
	}
	return true;
}

static void port_tx(struct vc_port *p)
{
	struct vconsole *vc = p->vc;
	uint16_t q = vc_txq(p->id);

	if (!vc_usable(vc))
		return;
	for (;;) {
		if (!p->tx_held) {
			if (!vc_pop(vc, q, &p->tx))
				return;
			if (p->tx.n_in) {
				vc_guest_err(vc, "device-writable transmit buffer, head",
					     p->tx.head);
				vc_complete(vc, q, p->tx.head, 0);
				continue;
			}
			p->tx_held = true;
			p->tx_off = 0;
		}
		if (p->out && !outbuf_room(p->out))
			outbuf_flush(p->out); /* without a loop nobody else does */
		if (!put_chain(p))
			return; /* back-pressure: output_ready() resumes */
		p->tx_held = false;
		vc_complete(vc, q, p->tx.head, 0);
	}
}

/* The loop thread: a port's descriptor takes bytes again. */
static void output_ready(void *opaque)
{
	struct vc_port *p = opaque;

	pthread_mutex_lock(&p->vc->vdev.lock);
	outbuf_flush(p->out);
	port_tx(p);
	pthread_mutex_unlock(&p->vc->vdev.lock);
}

/* --- virtio_dev_ops ----------------------------------------------------------------------- */

static uint64_t vc_get_features(struct virtio_dev *dev)
{
	(void)dev;
	return (1ULL << VIRTIO_CONSOLE_F_MULTIPORT) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
	       (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
}

static void vc_config_read(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len)
{
	struct virtio_console_config cfg = {.max_nr_ports = htole32(to_vc(dev)->nr_ports)};

	if (off > sizeof(cfg) || len > sizeof(cfg) - off) {
		memset(data, 0, len);
		return;
	}
	memcpy(data, (uint8_t *)&cfg + off, len);
}

/* Every field is read-only: emerg_wr only exists with VIRTIO_CONSOLE_F_EMERG_WRITE. */
static void vc_config_write(struct virtio_dev *dev, uint32_t off, const void *data, uint32_t len)
{
	(void)data;
	(void)len;
	vc_guest_err(to_vc(dev), "write to read-only console config, offset", off);
}

static void process_all(struct vconsole *vc)
{
	if (vc_multiport(vc))
		vc_ctrl_tx(vc);
	for (unsigned int i = 0; i < nr_ports(vc); i++) {
		port_tx(&vc->ports[i]);
		vc_port_rx(&vc->ports[i]);
	}
}

static int vc_activate(struct virtio_dev *dev)
{
	struct vconsole *vc = to_vc(dev);

	/* Without MULTIPORT port 0 is a console the driver always has open (Linux's hvc0). */
	if (!vc_multiport(vc)) {
		vc->ports[0].guest_open = vc->ports[0].add_sent = vc->ports[0].ready = true;
		vc->ports[0].host_open = true;
	}
	process_all(vc);
	return 0;
}

static void vc_queue_notify(struct virtio_dev *dev, uint16_t qidx)
{
	struct vconsole *vc = to_vc(dev);
	unsigned int nq = (nr_ports(vc) + (vc_multiport(vc) ? 1 : 0)) * 2;

	pthread_mutex_lock(&dev->lock);
	if (!(dev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		dev->early_kicks++; /* picked up at DRIVER_OK (vc_activate) */
		pr_debug("virtio-console: queue %u notified before DRIVER_OK", qidx);
	} else if (qidx >= nq || !dev->vqs[qidx].ready) {
		vc_guest_err(vc, "notify of a queue that does not exist or is not enabled", qidx);
	} else if (vc_multiport(vc) && qidx == CTRL_RXQ) {
		vc_flush_ctrl(vc);
	} else if (vc_multiport(vc) && qidx == CTRL_TXQ) {
		vc_ctrl_tx(vc);
	} else {
		unsigned int port = qidx < 2 ? 0 : qidx / 2 - 1;

		if (qidx & 1)
			port_tx(&vc->ports[port]);
		else
			vc_port_rx(&vc->ports[port]);
	}
	pthread_mutex_unlock(&dev->lock);
}

static void vc_reset(struct virtio_dev *dev)
{
	struct vconsole *vc = to_vc(dev);

	for (unsigned int i = 0; i < vc->nr_ports; i++) {
		struct vc_port *p = &vc->ports[i];

		/* A chain half copied is the old driver's: its rings are gone. */
		p->tx_held = p->rx_held = false;
		p->add_sent = p->ready = p->guest_open = p->host_open = false;
		p->pending = 0;
		watch_input(p, false);
	}
}

static const struct virtio_dev_ops vc_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.max_queues = (VCONSOLE_MAX_PORTS + 1) * 2,
	.max_queue_size = VCONSOLE_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_console_config),
	.get_features = vc_get_features,
	.config_read = vc_config_read,
	.config_write = vc_config_write,
	.activate = vc_activate,
	.queue_notify = vc_queue_notify,
	.reset = vc_reset,
	.save = vc_save,
	.load = vc_load,
};

/* --- public API --------------------------------------------------------------------------- */

static int init_port(struct vconsole *vc, unsigned int id, const struct vconsole_port_config *pc)
{
	struct vc_port *p = &vc->ports[id];

	p->vc = vc;
	p->id = id;
	p->in_fd = pc->in_fd;
	p->console = pc->console;
	if (pc->name && strlen(pc->name) > VCONSOLE_NAME_MAX)
		return -EINVAL;
	snprintf(p->name, sizeof(p->name), "%s", pc->name ? pc->name : "");
	if (pc->out_fd >= 0) {
		p->out = outbuf_create(pc->out_fd, VCONSOLE_OUT_BUF, vc->loop, output_ready, p);
		if (!p->out)
			return -ENOMEM;
	}
	if (p->in_fd >= 0 && vc->loop) {
		/* Only probe whether epoll takes it: input is watched once the guest listens. */
		int ret = loop_add_fd(vc->loop, p->in_fd, EPOLLIN, input_ready, p);

		if (ret == 0)
			loop_del_fd(vc->loop, p->in_fd);
		else
			p->in_file = true; /* EPERM: a regular file or /dev/null, always readable */
	}
	return 0;
}

struct vconsole *vconsole_create(struct guest_mem *gm, struct loop *loop,
				 const struct vconsole_config *cfg)
{
	struct vconsole *vc;
	int ret = 0;

	if (!cfg->nr_ports || cfg->nr_ports > VCONSOLE_MAX_PORTS) {
		errno = EINVAL;
		return NULL;
	}
	vc = calloc(1, sizeof(*vc));
	if (!vc) {
		errno = ENOMEM;
		return NULL;
	}
	virtio_dev_init(&vc->vdev, &vc_ops, gm);
	vc->loop = loop;
	vc->nr_ports = cfg->nr_ports;
	for (unsigned int i = 0; i < vc->nr_ports && !ret; i++)
		ret = init_port(vc, i, &cfg->ports[i]);
	if (ret) {
		vconsole_destroy(vc);
		errno = -ret;
		return NULL;
	}
	return vc;
}

struct virtio_dev *vconsole_virtio_dev(struct vconsole *vc)
{
	return &vc->vdev;
}

int vconsole_drain(struct vconsole *vc, unsigned int idle_ms)
{
	int ret = 0;

	pthread_mutex_lock(&vc->vdev.lock);
	for (unsigned int i = 0; i < vc->nr_ports; i++) {
		struct vc_port *p = &vc->ports[i];

		for (;;) {
			port_tx(p);
			if (!p->out)
				break;
			if (outbuf_drain(p->out, idle_ms) < 0) {
				ret = -ETIMEDOUT;
				break;
			}
			if (!p->tx_held || !vc_usable(vc))
				break; /* the ring is empty and its bytes are written */
		}
	}
	pthread_mutex_unlock(&vc->vdev.lock);
	return ret;
}

void vconsole_get_stats(struct vconsole *vc, struct vconsole_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&vc->vdev.lock);
	out->err_count = vc->vdev.err_count;
	out->features = vc->vdev.driver_features;
	for (unsigned int i = 0; i < vc->nr_ports; i++) {
		const struct vc_port *p = &vc->ports[i];
		struct vconsole_port_stats *ps = &out->ports[i];
		struct outbuf_stats os = {0};

		if (p->out)
			outbuf_get_stats(p->out, &os);
		*ps = (struct vconsole_port_stats){
			.added = p->ready,
			.guest_open = p->guest_open,
			.host_open = p->host_open,
			.tx_bytes = p->tx_bytes,
			.rx_bytes = p->rx_bytes,
			.written = os.written,
			.dropped = os.dropped,
			.buffered = os.buffered,
		};
	}
	pthread_mutex_unlock(&vc->vdev.lock);
}

void vconsole_destroy(struct vconsole *vc)
{
	uint64_t dropped = 0;

	if (!vc)
		return;
	for (unsigned int i = 0; i < VCONSOLE_MAX_PORTS; i++) {
		struct vc_port *p = &vc->ports[i];

		if (p->in_watched)
			loop_del_fd(vc->loop, p->in_fd);
		dropped += outbuf_destroy(p->out, 0);
	}
	if (dropped)
		pr_warn("virtio-console: %" PRIu64 " bytes of guest output were dropped", dropped);
	pthread_mutex_destroy(&vc->vdev.lock);
	free(vc);
}
