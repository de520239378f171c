/*
 * virtio-console against a hostile or unusual driver (no MULTIPORT, bad control messages and
 * buffers, a broken ring, reset) and bad configurations: every error is counted and the device
 * goes on.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_console.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_console.h"
#include "../../vmm/mem/guest_mem.h"
#include "console_driver.h"
#include "fake_driver.h"

TestSuite(console_hostile, .fini = teardown);

Test(console_hostile, without_multiport_port_zero_is_a_plain_console)
{
	uint8_t got[16];

	setup_dev(0, -1, false);
	guest_write(0, "plain", 5);
	cr_assert_eq(used_count(1), 1);
	cr_assert_eq(read_pipe(out_pipe[0], got, sizeof(got)), 5);
	cr_assert_arr_eq(got, "plain", 5);
	kick(3); /* no control queue without MULTIPORT */
	cr_assert_eq(stats().err_count, 1);
}

/* --- hostile guest -------------------------------------------------------------------------- */

Test(console_hostile, hostile_control_messages_are_counted_and_survived)
{
	uint8_t shortmsg[4] = {0}, longmsg[12] = {0};

	setup_dev(F_MP, -1, false);
	post_ctrl_bufs(16, 4096);
	send_ctrl(1, VIRTIO_CONSOLE_PORT_READY, 1); /* before any PORT_ADD */
	send_ctrl(7, VIRTIO_CONSOLE_PORT_OPEN, 1);  /* no such port */
	send_ctrl(0, 42, 1);			    /* unknown event */
	send_ctrl_raw(shortmsg, sizeof(shortmsg));
	send_ctrl_raw(longmsg, sizeof(longmsg));
	cr_assert_eq(stats().err_count, 5);
	expect_no_msg();
	/* A device-writable control "message" is the wrong direction. */
	fake_add_chain(&q[3], &(struct fake_buf){data_buf(8), 8, true}, 1);
	kick(3);
	cr_assert_eq(stats().err_count, 6);
	/* The device goes on: a proper handshake still works. */
	send_ctrl(BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (uint32_t i = 0; i < 3; i++)
		expect_msg(i, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
}

Test(console_hostile, control_receive_buffer_too_small_or_readable_is_skipped)
{
	uint32_t head, len;

	setup_dev(F_MP, -1, false);
	fake_add_chain(&q[2], &(struct fake_buf){CTRL_BUF, 4, true}, 1);	    /* too small */
	fake_add_chain(&q[2], &(struct fake_buf){CTRL_BUF + 0x1000, 64, false}, 1); /* readable */
	kick(2);
	send_ctrl(BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	cr_assert(fake_get_used(&q[2], &head, &len));
	cr_assert_eq(len, 0);
	cr_assert(fake_get_used(&q[2], &head, &len));
	cr_assert_eq(len, 0);
	cr_assert_eq(stats().err_count, 2);
	post_ctrl_bufs(3, 4096);
	for (uint32_t i = 0; i < 3; i++)
		expect_msg(i, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
}

Test(console_hostile, wrong_direction_data_buffers_are_refused)
{
	uint8_t got[16];

	setup_dev(F_MP, -1, false);
	handshake();
	/* A transmit buffer the device would write into. */
	fake_add_chain(&q[1], &(struct fake_buf){data_buf(16), 16, true}, 1);
	kick(1);
	cr_assert_eq(used_count(1), 1);
	cr_assert_eq(stats().err_count, 1);
	cr_assert_eq(read_pipe(out_pipe[0], got, sizeof(got)), 0, "nothing written");
	/* A receive buffer the device could only read. */
	send_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 1);
	fake_add_chain(&q[6], &(struct fake_buf){data_buf(16), 16, false}, 1);
	kick(6);
	cr_assert_eq(stats().err_count, 2);
	/* And the port still works. */
	guest_write(0, "ok", 2);
	cr_assert_eq(read_pipe(out_pipe[0], got, sizeof(got)), 2);
}

Test(console_hostile, malformed_chain_is_completed_and_the_queue_goes_on)
{
	uint8_t got[16];
	uint32_t head, len;

	setup_dev(F_MP, -1, false);
	handshake();
	/* A descriptor outside guest RAM. */
	fake_set_desc(&q[1], 0, RAM + 0x1000, 16, 0, 0);
	fake_publish(&q[1], 0);
	q[1].next_desc = 1;
	kick(1);
	cr_assert(fake_get_used(&q[1], &head, &len));
	cr_assert_eq(head, 0);
	cr_assert_eq(len, 0);
	cr_assert_eq(stats().err_count, 1);
	guest_write(0, "next", 4);
	cr_assert_eq(read_pipe(out_pipe[0], got, sizeof(got)), 4);
}

Test(console_hostile, avail_index_running_ahead_needs_reset)
{
	setup_dev(F_MP, -1, false);
	handshake();
	fake_set_avail_idx(&q[1], VCONSOLE_QUEUE_SIZE + 5);
	kick(1);
	cr_assert(dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_assert_geq(stats().err_count, 1);
	cr_assert_eq(vconsole_drain(vc, 100), 0, "a broken ring does not hang the drain");
}

Test(console_hostile, reset_forgets_the_ports_and_a_new_handshake_works)
{
	setup_dev(F_MP, -1, false);
	handshake();
	pthread_mutex_lock(&dev->lock);
	virtio_dev_reset(dev);
	pthread_mutex_unlock(&dev->lock);
	cr_assert_not(stats().ports[0].added);
	for (unsigned int i = 0; i < NQ; i++) {
		fake_vq_init(&q[i], &gm, &dev->vqs[i], VCONSOLE_QUEUE_SIZE,
			     RING_BASE + i * 0x10000ULL);
		cr_assert_eq(vq_enable(&dev->vqs[i], &gm, F_MP), 0);
	}
	dev->driver_features = F_MP | F(VIRTIO_F_VERSION_1);
	pthread_mutex_lock(&dev->lock);
	dev->status = VIRTIO_CONFIG_S_DRIVER_OK;
	dev->ops->activate(dev);
	pthread_mutex_unlock(&dev->lock);
	handshake();
}

Test(console_hostile, bad_configs_are_refused)
{
	struct vconsole_config cfg = {.nr_ports = 0};
	char name[VCONSOLE_NAME_MAX + 2];

	cr_assert_null(vconsole_create(&gm, NULL, &cfg));
	cfg.nr_ports = VCONSOLE_MAX_PORTS + 1;
	cr_assert_null(vconsole_create(&gm, NULL, &cfg));
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	cfg.nr_ports = 1;
	cfg.ports[0] = (struct vconsole_port_config){name, -1, -1, false};
	cr_assert_null(vconsole_create(&gm, NULL, &cfg));
	cr_assert_eq(errno, EINVAL);
}
