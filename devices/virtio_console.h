/*
 * virtio-console (virtio 1.2 §5.3) with VIRTIO_CONSOLE_F_MULTIPORT: named ports that carry a
 * job's stdin, stdout and stderr between host file descriptors and the guest (/dev/vportNpM,
 * named in /sys/class/virtio-ports/vportNpM/name).
 *
 * Queues (§5.3.2): port 0 receiveq/transmitq (0, 1), control receiveq/transmitq (2, 3), then one
 * receiveq/transmitq pair per further port (4 + 2(p-1), 5 + 2(p-1)). VIRTIO_MAX_QUEUES (10) makes
 * VCONSOLE_MAX_PORTS 4. Without MULTIPORT only port 0 exists, always open (a plain console).
 *
 * Control protocol (§5.3.6.2), device side: on DEVICE_READY the device sends PORT_ADD for every
 * configured port; on a port's PORT_READY(1) it sends CONSOLE_PORT (if configured as a console),
 * PORT_NAME (if named) and PORT_OPEN(1) while the host side is connected. The guest's PORT_OPEN
 * tells whether a program has the port open; host input is fed only while it has (Linux drops
 * data that reaches a closed port).
 *
 * Host side of a port:
 *   - output (guest -> host, transmitq): written to out_fd through a VCONSOLE_OUT_BUF-byte
 *     buffer that never blocks (devices/outbuf.h). While the buffer is full the device stops
 *     taking the port's transmitq buffers: the guest's writer waits (back-pressure), no byte is
 *     dropped. The buffer resumes the queue when the descriptor takes bytes again.
 *   - input (host -> guest, receiveq): in_fd is read into the guest's receive buffers when it is
 *     readable (epoll; regular files as buffers come), while the guest has the port open. At end
 *     of input the device sends PORT_OPEN(0) once the data is in the used ring: Linux's read()
 *     then returns the data, then 0 (end of file).
 *   - the host side counts as connected while the port has an output, or input not at its end.
 *
 * Hostile guest: every chain comes through the validated walker (devices/virtqueue.h); chains in
 * the wrong direction, control messages that are not exactly 8 bytes, unknown events or port
 * ids, PORT_READY/PORT_OPEN for a port never added, and config writes are completed with length 0
 * (where a buffer is involved), counted in the device's err_count, and the device goes on.
 * The guest cannot make the VMM hold more than VCONSOLE_OUT_BUF bytes per port.
 */
#ifndef DEVICES_VIRTIO_CONSOLE_H
#define DEVICES_VIRTIO_CONSOLE_H

#include <stdbool.h>
#include <stdint.h>

struct guest_mem;
struct loop;
struct vconsole;
struct virtio_dev;

#define VCONSOLE_MAX_PORTS    4		   /* (4 + 1) * 2 queues = VIRTIO_MAX_QUEUES */
#define VCONSOLE_NAME_MAX     63	   /* bytes of a port name */
#define VCONSOLE_OUT_BUF      (256 * 1024) /* bytes of output held per port */
#define VCONSOLE_FLUSH_MS     1000	   /* vconsole_drain(): give up after this long idle */
#define VCONSOLE_QUEUE_SIZE   128	   /* entries offered per queue */
#define VCONSOLE_CTRL_MSG_LEN 8		   /* sizeof(struct virtio_console_control) */

struct vconsole_port_config {
	const char *name; /* PORT_NAME (copied, <= VCONSOLE_NAME_MAX bytes); NULL: none */
	int out_fd;	  /* guest output goes here (not owned); -1: the port has no output */
	int in_fd;	  /* host input for the guest (not owned); -1: none */
	bool console;	  /* announce as a console port (CONSOLE_PORT: the guest's hvc) */
};

struct vconsole_config {
	unsigned int nr_ports; /* 1..VCONSOLE_MAX_PORTS: max_nr_ports in config space */
	struct vconsole_port_config ports[VCONSOLE_MAX_PORTS];
};

struct vconsole_port_stats {
	bool added;	   /* the guest acknowledged PORT_ADD with PORT_READY(1) */
	bool guest_open;   /* a guest program has the port open */
	bool host_open;	   /* last PORT_OPEN value the device sent */
	uint64_t tx_bytes; /* bytes the guest sent (taken from the transmitq) */
	uint64_t rx_bytes; /* bytes given to the guest (receiveq) */
	uint64_t written;  /* of tx_bytes, written to out_fd */
	uint64_t dropped;  /* of tx_bytes, lost: out_fd failed (EPIPE) or drain gave up */
	uint64_t buffered; /* of tx_bytes, held in the output buffer now */
};

struct vconsole_stats {
	uint64_t err_count; /* guest-caused errors */
	uint64_t features;  /* negotiated */
	struct vconsole_port_stats ports[VCONSOLE_MAX_PORTS];
};

/**
 * vconsole_create() - allocate the device. @gm: guest RAM; @loop: watches host input and stalled
 * output (the device's callbacks run on its thread; NULL: nothing is watched, input is read when
 * poll() says so at the guest's kicks, output written at each kick); @cfg: copied. Returns the
 * device, or NULL with errno EINVAL (nr_ports 0 or above VCONSOLE_MAX_PORTS, a name too long) or
 * ENOMEM. The caller attaches vconsole_virtio_dev() to a transport.
 */
struct vconsole *vconsole_create(struct guest_mem *gm, struct loop *loop,
				 const struct vconsole_config *cfg);

/** vconsole_virtio_dev() - the embedded virtio device, for the transport. */
struct virtio_dev *vconsole_virtio_dev(struct vconsole *vc);

/**
 * vconsole_drain() - at exit, with the vCPUs stopped: take every buffer the guest queued on the
 * ports' transmitqs (its output up to the moment it stopped) and write it to the ports' out_fds,
 * blocking while a descriptor takes bytes and giving up on one after it took nothing for
 * @idle_ms milliseconds (VCONSOLE_FLUSH_MS in vmm). Returns 0 when every output was written,
 * -ETIMEDOUT when some was left (counted as dropped). Thread-safe.
 */
int vconsole_drain(struct vconsole *vc, unsigned int idle_ms);

/** vconsole_get_stats() - consistent snapshot of the counters. Thread-safe. */
void vconsole_get_stats(struct vconsole *vc, struct vconsole_stats *out);

/**
 * vconsole_destroy() - stop watching descriptors, count what is still buffered as dropped (warn
 * once), free. Call vconsole_drain() first to keep the tail; after the transport is detached and
 * with the loop not running. NULL is a no-op.
 */
void vconsole_destroy(struct vconsole *vc);

#endif
