/*
 * virtio-console snapshot state (virtio_dev_ops.save/load), one record per configured port in
 * port order (the table grows with the machine's port list): its name (checked against this
 * machine's, so a snapshot restores only onto the same ports), the control protocol state
 * (PORT_ADD sent, PORT_READY, the guest's and the host's PORT_OPEN, control messages still to
 * send) and the chains the port held: a transmit chain half copied out (with how far), and a
 * receive buffer waiting for host input, both walked again from the rings on load. Host-side
 * things are not state: output already in the port's buffer belongs to the process that took
 * it, and input is whatever the restoring process's descriptors give.
 */
#include <errno.h>
#include <string.h>

#include "../vmm/state.h"
#include "../vmm/util.h"
#include "virtio_console_priv.h"

#define SEND_ALL (SEND_ADD | SEND_CONSOLE | SEND_NAME | SEND_OPEN)

static struct vconsole *to_vc(struct virtio_dev *dev)
{
	return (struct vconsole *)dev; /* vdev is the first member */
}

static void port_save(const struct vc_port *p, struct state_out *o)
{
	size_t n = strlen(p->name);

	state_put_u8(o, (uint8_t)n);
	state_put(o, p->name, n);
	state_put_bool(o, p->console);
	state_put_bool(o, p->add_sent);
	state_put_bool(o, p->ready);
	state_put_bool(o, p->guest_open);
	state_put_bool(o, p->host_open);
	state_put_u8(o, (uint8_t)p->pending);
	state_put_bool(o, p->tx_held);
	state_put_u16(o, p->tx_held ? p->tx.head : 0);
	state_put_u32(o, p->tx_held ? p->tx_off : 0);
	state_put_bool(o, p->rx_held);
	state_put_u16(o, p->rx_held ? p->rx.head : 0);
	state_put_u64(o, p->tx_bytes);
	state_put_u64(o, p->rx_bytes);
}

int vc_save(struct virtio_dev *dev, struct state_out *o)
{
	struct vconsole *vc = to_vc(dev);

	state_put_u8(o, (uint8_t)vc->nr_ports);
	for (unsigned int i = 0; i < vc->nr_ports; i++)
		port_save(&vc->ports[i], o);
	return state_out_error(o);
}

static int port_load(struct vconsole *vc, struct vc_port *p, struct state_in *in)
{
	char name[VCONSOLE_NAME_MAX + 1] = "";
	unsigned int len = state_get_u8(in);
	uint16_t tx_head, rx_head;
	uint32_t tx_off;
	bool tx_held, rx_held;

	if (len > VCONSOLE_NAME_MAX)
		return state_fail(in, "virtio-console: port name too long");
	state_get(in, name, len);
	if (state_get_bool(in) != p->console || strcmp(name, p->name))
		return state_fail(in, "virtio-console: ports differ from the machine's");
	p->add_sent = state_get_bool(in);
	p->ready = state_get_bool(in);
	p->guest_open = state_get_bool(in);
	p->host_open = state_get_bool(in);
	p->pending = state_get_u8(in);
	tx_held = state_get_bool(in);
	tx_head = state_get_u16(in);
	tx_off = state_get_u32(in);
	rx_held = state_get_bool(in);
	rx_head = state_get_u16(in);
	p->tx_bytes = state_get_u64(in);
	p->rx_bytes = state_get_u64(in);
	if (state_in_error(in))
		return state_in_error(in);
	if (p->pending & ~SEND_ALL)
		return state_fail(in, "virtio-console: unknown pending control message");
	if (tx_held && (virtio_repop(&vc->vdev, vc_txq(p->id), tx_head, &p->tx) || p->tx.n_in ||
			tx_off > p->tx.out_len))
		return state_fail(in, "virtio-console: held transmit chain not on its ring");
	p->tx_held = tx_held;
	p->tx_off = tx_held ? tx_off : 0;
	if (rx_held && (virtio_repop(&vc->vdev, vc_rxq(p->id), rx_head, &p->rx) || p->rx.n_out))
		return state_fail(in, "virtio-console: held receive buffer not on its ring");
	p->rx_held = rx_held;
	return 0;
}

int vc_load(struct virtio_dev *dev, struct state_in *in)
{
	struct vconsole *vc = to_vc(dev);

	if (state_get_u8(in) != vc->nr_ports)
		return state_fail(in, "virtio-console: number of ports differs");
	for (unsigned int i = 0; i < vc->nr_ports; i++)
		if (port_load(vc, &vc->ports[i], in))
			return state_in_error(in);
	return state_in_error(in);
}
