/*
 * virtio-console internals shared by virtio_console.c (queues, ports, host descriptors) and
 * virtio_console_ctrl.c (the control protocol). Everything here runs with vdev.lock held.
 */
#ifndef DEVICES_VIRTIO_CONSOLE_PRIV_H
#define DEVICES_VIRTIO_CONSOLE_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_config.h>
#include <linux/virtio_console.h>

#include "outbuf.h"
#include "virtio.h"
#include "virtio_console.h"

struct state_in;
struct state_out;

#define CTRL_RXQ 2 /* control receiveq (device -> driver messages) */
#define CTRL_TXQ 3 /* control transmitq (driver -> device messages) */

/* Control messages a port still has to send, in this order (§5.3.6.2). */
#define SEND_ADD     (1u << 0)
#define SEND_CONSOLE (1u << 1)
#define SEND_NAME    (1u << 2)
#define SEND_OPEN    (1u << 3)

_Static_assert(sizeof(struct virtio_console_control) == VCONSOLE_CTRL_MSG_LEN, "control layout");
_Static_assert((VCONSOLE_MAX_PORTS + 1) * 2 <= VIRTIO_MAX_QUEUES, "queues of every port");

struct vconsole;

struct vc_port {
	struct vconsole *vc;
	unsigned int id;
	char name[VCONSOLE_NAME_MAX + 1]; /* "" = unnamed */
	bool console;
	struct outbuf *out; /* NULL: the port has no output */
	int in_fd;
	bool in_file;	 /* regular file (epoll refuses it): read as buffers come */
	bool in_watched; /* EPOLLIN watch on in_fd */
	bool in_eof;
	bool add_sent, ready, guest_open, host_open;
	unsigned int pending; /* SEND_* */
	/* A transmitq chain taken but not yet all in the output buffer (back-pressure). */
	bool tx_held;
	uint32_t tx_off;
	struct vq_chain tx;
	/* A receiveq buffer taken, waiting for host input. */
	bool rx_held;
	struct vq_chain rx;
	uint64_t tx_bytes, rx_bytes;
};

struct vconsole {
	struct virtio_dev vdev; /* first: the transport's handle */
	struct loop *loop;
	unsigned int nr_ports;
	struct vc_port ports[VCONSOLE_MAX_PORTS];
};

static inline bool vc_multiport(const struct vconsole *vc)
{
	return virtio_has_feature(&vc->vdev, VIRTIO_CONSOLE_F_MULTIPORT);
}

/* Queue work only between DRIVER_OK and a reset, and not after a driver error. */
static inline bool vc_usable(const struct vconsole *vc)
{
	uint8_t s = vc->vdev.status;

	return (s & VIRTIO_CONFIG_S_DRIVER_OK) && !(s & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* The host side of @p is open while it has an output, or input not at its end. */
static inline bool vc_host_connected(const struct vc_port *p)
{
	return p->out || (p->in_fd >= 0 && !p->in_eof);
}

/* §5.3.2: port 0's pair, the control pair, then the other ports' pairs. */
static inline uint16_t vc_rxq(unsigned int port)
{
	return (uint16_t)(port ? 2 + 2 * port : 0);
}

static inline uint16_t vc_txq(unsigned int port)
{
	return (uint16_t)(vc_rxq(port) + 1);
}

/* A guest-caused error: counted in vdev.err_count, logged rate-limited. */
void vc_guest_err(struct vconsole *vc, const char *what, uint64_t arg);

/* Return chain @head of queue @qidx with @len bytes written (errors counted). */
void vc_complete(struct vconsole *vc, uint16_t qidx, uint16_t head, uint32_t len);

/* Next well-formed chain of @qidx into *@c: 1, or 0 when there is none (empty, or a broken ring:
 * then DEVICE_NEEDS_RESET). Malformed chains are completed with length 0 and counted. */
int vc_pop(struct vconsole *vc, uint16_t qidx, struct vq_chain *c);

/* Feed host input to port @p's receiveq (or stop watching it when the guest cannot take it). */
void vc_port_rx(struct vc_port *p);

/* Send the ports' pending control messages while the guest has control buffers. */
void vc_flush_ctrl(struct vconsole *vc);

/* Handle the driver's control messages, then send what they asked for. */
void vc_ctrl_tx(struct vconsole *vc);

/* Snapshot hooks (virtio_dev_ops.save/load, virtio_console_state.c); vdev.lock held. */
int vc_save(struct virtio_dev *dev, struct state_out *o);
int vc_load(struct virtio_dev *dev, struct state_in *in);

#endif
