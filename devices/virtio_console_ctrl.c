/*
 * The control protocol of virtio-console (virtio 1.2 §5.3.6.2), both directions: messages the
 * device sends on the control receiveq (PORT_ADD, CONSOLE_PORT, PORT_NAME, PORT_OPEN) and the
 * driver's messages on the control transmitq (DEVICE_READY, PORT_READY, PORT_OPEN).
 */
#include <endian.h>
#include <string.h>

#include <linux/virtio_console.h>

#include "../vmm/util.h"
#include "virtio_console_priv.h"

/* --- control receiveq: device -> driver messages ------------------------------------------ */

/* Put one message (header + @len bytes of @data) in the next control receiveq buffer. */
static bool send_ctrl(struct vconsole *vc, uint32_t id, uint16_t event, uint16_t value,
		      const char *data, size_t len)
{
	uint8_t msg[VCONSOLE_CTRL_MSG_LEN + VCONSOLE_NAME_MAX];
	struct virtio_console_control h = {
		.id = htole32(id), .event = htole16(event), .value = htole16(value)};
	struct vq_chain c;

	memcpy(msg, &h, sizeof(h));
	if (len)
		memcpy(msg + sizeof(h), data, len);
	while (vc_pop(vc, CTRL_RXQ, &c)) {
		if (c.n_out || c.in_len < sizeof(h) + len) {
			vc_guest_err(vc, "control receive buffer not writable or too small, head",
				     c.head);
			vc_complete(vc, CTRL_RXQ, c.head, 0);
			continue;
		}
		vq_copy_to_chain(&c, msg, (uint32_t)(sizeof(h) + len));
		vc_complete(vc, CTRL_RXQ, c.head, (uint32_t)(sizeof(h) + len));
		return true;
	}
	return false;
}

/* One pending message of @p; false when the guest has no control buffer for it yet. */
static bool send_next(struct vc_port *p)
{
	struct vconsole *vc = p->vc;
	unsigned int bit = p->pending & -p->pending; /* lowest: the order of SEND_* */
	bool ok;

	switch (bit) {
	case SEND_ADD:
		ok = send_ctrl(vc, p->id, VIRTIO_CONSOLE_PORT_ADD, 1, NULL, 0);
		p->add_sent |= ok;
		break;
	case SEND_CONSOLE:
		ok = send_ctrl(vc, p->id, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL, 0);
		break;
	case SEND_NAME:
		ok = send_ctrl(vc, p->id, VIRTIO_CONSOLE_PORT_NAME, 1, p->name, strlen(p->name));
		break;
	default:
		ok = send_ctrl(vc, p->id, VIRTIO_CONSOLE_PORT_OPEN, vc_host_connected(p), NULL, 0);
		if (ok)
			p->host_open = vc_host_connected(p);
		break;
	}
	if (ok)
		p->pending &= ~bit;
	return ok;
}

void vc_flush_ctrl(struct vconsole *vc)
{
	if (!vc_usable(vc) || !vc_multiport(vc))
		return;
	for (unsigned int i = 0; i < vc->nr_ports; i++)
		while (vc->ports[i].pending)
			if (!send_next(&vc->ports[i]))
				return; /* resumed when the guest adds control buffers */
}

/* --- control transmitq: driver -> device messages ----------------------------------------- */

static struct vc_port *known_port(struct vconsole *vc, uint32_t id, uint16_t event)
{
	if (id < vc->nr_ports && vc->ports[id].add_sent)
		return &vc->ports[id];
	vc_guest_err(vc,
		     event == VIRTIO_CONSOLE_PORT_READY ? "PORT_READY for an unknown port id"
							: "PORT_OPEN for an unknown port id",
		     id);
	return NULL;
}

static void handle_ctrl(struct vconsole *vc, const struct virtio_console_control *m)
{
	uint32_t id = le32toh(m->id);
	uint16_t event = le16toh(m->event), value = le16toh(m->value);
	struct vc_port *p;

	switch (event) {
	case VIRTIO_CONSOLE_DEVICE_READY:
		if (!value) {
			pr_warn("virtio-console: the guest's driver failed to set up the device");
			break;
		}
		for (unsigned int i = 0; i < vc->nr_ports; i++)
			vc->ports[i].pending |= SEND_ADD;
		break;
	case VIRTIO_CONSOLE_PORT_READY:
		p = known_port(vc, id, event);
		if (!p)
			break;
		if (!value) {
			pr_warn("virtio-console: the guest could not add port %u", id);
			break;
		}
		p->ready = true;
		p->pending |= (p->console ? SEND_CONSOLE : 0) | (p->name[0] ? SEND_NAME : 0) |
			      (vc_host_connected(p) ? SEND_OPEN : 0);
		break;
	case VIRTIO_CONSOLE_PORT_OPEN:
		p = known_port(vc, id, event);
		if (!p)
			break;
		p->guest_open = value != 0;
		vc_port_rx(p); /* starts, or stops watching, input */
		break;
	default:
		vc_guest_err(vc, "unknown control event from the driver", event);
		break;
	}
}

void vc_ctrl_tx(struct vconsole *vc)
{
	struct virtio_console_control m;
	struct vq_chain c;

	while (vc_usable(vc) && vc_pop(vc, CTRL_TXQ, &c)) {
		if (c.n_in || c.out_len != sizeof(m)) {
			vc_guest_err(vc, "control message not 8 device-readable bytes, length",
				     c.out_len + c.in_len);
		} else {
			vq_copy_from_chain(&c, 0, &m, sizeof(m));
			handle_ctrl(vc, &m);
		}
		vc_complete(vc, CTRL_TXQ, c.head, 0);
	}
	vc_flush_ctrl(vc);
}
