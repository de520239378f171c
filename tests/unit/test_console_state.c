/*
 * virtio-console state across a snapshot (issue 14), on the console test driver: the ports'
 * control state (added, opened by the guest) and a receive buffer the device held waiting for
 * host input survive into a fresh device with the same ports, which fills that very buffer once
 * input comes; a device with other ports refuses the state.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_console.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_console.h"
#include "../../vmm/loop.h"
#include "../../vmm/state.h"
#include "console_driver.h"
#include "fake_driver.h"

TestSuite(console_state, .fini = teardown);

static struct vconsole *fresh(const char *stdin_name)
{
	struct vconsole_config cfg = {.nr_ports = 3};

	cfg.ports[0] = (struct vconsole_port_config){"vmm.stdout", out_pipe[1], -1, false};
	cfg.ports[1] = (struct vconsole_port_config){"vmm.stderr", err_pipe[1], -1, false};
	cfg.ports[2] = (struct vconsole_port_config){stdin_name, -1, in_pipe[0], false};
	struct vconsole *nv = vconsole_create(&gm, loop, &cfg);

	/* The transport offers VERSION_1 on top of the device's features (virtio_pci_attach). */
	if (nv)
		vconsole_virtio_dev(nv)->device_features |= F(VIRTIO_F_VERSION_1);
	return nv;
}

static int load_into(struct vconsole *nv, const struct state_out *o)
{
	struct virtio_dev *d = vconsole_virtio_dev(nv);
	struct state_in in;
	int ret;

	state_in_init(&in, o->data, o->len);
	pthread_mutex_lock(&d->lock);
	ret = virtio_dev_load(d, &in);
	if (!ret)
		ret = state_in_end(&in);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

Test(console_state, open_ports_and_a_held_receive_buffer_survive, .timeout = 30)
{
	const struct virtio_transport_ops *t;
	struct vconsole *nv;
	struct state_out o;
	uint8_t got[64];
	size_t n = 0;
	uint32_t id, len;

	setup_dev(F_MP, -1, false);
	handshake();
	send_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 1);
	post_rx_bufs(1, 4096); /* no input yet: the device holds the buffer */
	cr_assert_not(fake_get_used(&q[6], &id, &len));
	state_out_init(&o);
	dev->device_features |= F(VIRTIO_F_VERSION_1); /* as a transport offers it */
	pthread_mutex_lock(&dev->lock);
	cr_assert_eq(virtio_dev_save(dev, &o), 0);
	pthread_mutex_unlock(&dev->lock);
	t = dev->transport;
	vconsole_destroy(vc);

	nv = fresh("vmm.other");
	cr_assert_not_null(nv);
	cr_assert_eq(load_into(nv, &o), -EINVAL, "another port table");
	vconsole_destroy(nv);

	vc = fresh("vmm.stdin");
	cr_assert_not_null(vc);
	dev = vconsole_virtio_dev(vc);
	dev->transport = t;
	cr_assert_eq(load_into(vc, &o), 0);
	for (unsigned int i = 0; i < NQ; i++)
		q[i].vq = &dev->vqs[i];
	for (unsigned int p = 0; p < 3; p++)
		cr_assert(stats().ports[p].added, "port %u stays added", p);
	cr_assert(stats().ports[2].guest_open);
	cr_assert(stats().ports[2].host_open);

	cr_assert_eq(write(in_pipe[1], "after", 5), 5);
	kick(6); /* the restart notification */
	for (int i = 0; i < 50 && n < 5; i++) {
		loop_dispatch(loop, 20);
		n += rx_take(got + n, sizeof(got) - n);
	}
	cr_assert_eq(n, 5, "the held buffer took the input");
	cr_assert_arr_eq(got, "after", 5);
	expect_no_msg(); /* no PORT_ADD or PORT_OPEN sent again */
	guest_write(0, "out", 3);
	cr_assert_eq(used_count(1), 1, "output still flows on port 0");
	cr_assert_eq(read_pipe(out_pipe[0], got, sizeof(got)), 3);
	cr_assert_arr_eq(got, "out", 3);
	state_out_free(&o);
}
