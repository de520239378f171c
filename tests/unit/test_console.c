/*
 * virtio-console driven through its virtio_dev_ops by the fake driver (no PCI), as Linux's
 * drivers/char/virtio_console.c drives it: the control handshake (§5.3.6.2), port output byte-exact
 * through pipes (incl. a full buffer and back-pressure), stdin, the exit drain, and hostile cases.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ring.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_console.h"
#include "../../vmm/loop.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "console_driver.h"
#include "fake_driver.h"

TestSuite(console, .fini = teardown);

Test(console, handshake_names_and_opens_every_port)
{
	setup_dev(F_MP, -1, false);
	handshake();
	for (unsigned int i = 0; i < 3; i++) {
		cr_assert(stats().ports[i].added);
		cr_assert(stats().ports[i].host_open);
		cr_assert_not(stats().ports[i].guest_open);
	}
	cr_assert_eq(stats().err_count, 0);
}

Test(console, config_space_says_three_ports_and_is_read_only)
{
	struct virtio_console_config cfg;
	uint32_t zero = 0;

	setup_dev(F_MP, -1, false);
	pthread_mutex_lock(&dev->lock);
	dev->ops->config_read(dev, 0, &cfg, sizeof(cfg));
	dev->ops->config_write(dev, 8, &zero, 4);
	pthread_mutex_unlock(&dev->lock);
	cr_assert_eq(le32toh(cfg.max_nr_ports), 3);
	cr_assert_eq(stats().err_count, 1, "a config write is a guest error");
}

Test(console, console_port_is_announced_before_its_name)
{
	setup_dev(F_MP, -1, true);
	post_ctrl_bufs(8, 4096);
	send_ctrl(BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (uint32_t i = 0; i < 3; i++)
		expect_msg(i, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
	send_ctrl(0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_msg(0, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
	expect_msg(0, VIRTIO_CONSOLE_PORT_NAME, 1, "vmm.stdout");
	expect_msg(0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
}

/* Messages wait for control buffers: none are lost when the guest gives them one at a time. */
Test(console, control_messages_wait_for_receive_buffers)
{
	setup_dev(F_MP, -1, false);
	send_ctrl(BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_no_msg();
	for (uint32_t i = 0; i < 3; i++) {
		post_ctrl_bufs(1, 4096);
		expect_msg(i, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
	}
	post_ctrl_bufs(1, 4096);
	expect_no_msg();
}

Test(console, output_is_byte_exact_and_streams_separate)
{
	static uint8_t a[40000], b[3000], got[65536];
	size_t n = 0;

	setup_dev(F_MP, -1, false);
	handshake();
	pattern(a, sizeof(a), 1);
	pattern(b, sizeof(b), 99);
	/* A chain of several buffers, then a second write. */
	{
		uint64_t g1 = data_buf(100), g2 = data_buf(sizeof(a) - 100);
		struct fake_buf bufs[2] = {{g1, 100, false}, {g2, sizeof(a) - 100, false}};

		gm_write(&gm, g1, a, 100);
		gm_write(&gm, g2, a + 100, sizeof(a) - 100);
		fake_add_chain(&q[1], bufs, 2);
		kick(1);
	}
	guest_write(1, b, sizeof(b));
	cr_assert_eq(used_count(1), 1);
	cr_assert_eq(used_count(5), 1);
	while (n < sizeof(a)) {
		size_t r = read_pipe(out_pipe[0], got + n, sizeof(got) - n);

		if (!r)
			loop_dispatch(loop, 100);
		n += r;
	}
	cr_assert_eq(n, sizeof(a));
	cr_assert_arr_eq(got, a, sizeof(a));
	cr_assert_eq(read_pipe(err_pipe[0], got, sizeof(got)), sizeof(b));
	cr_assert_arr_eq(got, b, sizeof(b));
	cr_assert_eq(stats().ports[0].tx_bytes, sizeof(a));
	cr_assert_eq(stats().ports[1].tx_bytes, sizeof(b));
	cr_assert_eq(stats().err_count, 0);
}

/*
 * Nobody reads: the device takes what the pipe and its buffer hold, then leaves the rest in the
 * ring (the guest's writer waits); once the reader catches up every byte arrives, none dropped.
 */
Test(console, full_buffer_applies_back_pressure_and_drops_nothing, .timeout = 30)
{
	enum { CHUNK = 32768, N = 20 };
	static uint8_t data[CHUNK * N], got[CHUNK * N];
	unsigned int used;
	size_t n = 0;

	setup_dev(F_MP, -1, false);
	fcntl(out_pipe[1], F_SETPIPE_SZ, 4096);
	handshake();
	pattern(data, sizeof(data), 7);
	for (unsigned int i = 0; i < N; i++)
		guest_write(0, data + i * CHUNK, CHUNK);
	used = used_count(1);
	cr_assert_lt(used, N, "the device took more than its buffer holds");
	cr_assert_geq((uint64_t)used * CHUNK, VCONSOLE_OUT_BUF - CHUNK, "it took too little");
	cr_assert_leq(stats().ports[0].buffered, VCONSOLE_OUT_BUF);
	while (n < sizeof(data)) {
		size_t r = read_pipe(out_pipe[0], got + n, sizeof(got) - n);

		if (!r)
			loop_dispatch(loop, 100);
		n += r;
	}
	cr_assert_arr_eq(got, data, sizeof(data));
	cr_assert_eq(used + used_count(1), N, "every buffer returned once its bytes are out");
	cr_assert_eq(stats().ports[0].dropped, 0);
	cr_assert_eq(stats().ports[0].written, sizeof(data));
}

struct slow_reader {
	int fd;
	size_t n;
	uint8_t *buf;
	size_t cap;
};

static void *slow_read(void *arg)
{
	struct slow_reader *r = arg;
	int fl = fcntl(r->fd, F_GETFL);

	fcntl(r->fd, F_SETFL, fl & ~O_NONBLOCK);
	usleep(200000); /* starts late, then reads in small bites */
	for (;;) {
		ssize_t k = read(r->fd, r->buf + r->n, MIN(r->cap - r->n, (size_t)4096));

		if (k <= 0)
			return NULL;
		r->n += (size_t)k;
		usleep(1000);
	}
}

/* At exit the whole tail goes out to a slow reader: the drain waits while it makes progress. */
Test(console, drain_at_exit_writes_the_tail_to_a_slow_reader, .timeout = 60)
{
	enum { CHUNK = 32768, N = 24 };
	static uint8_t data[CHUNK * N], got[CHUNK * N + 1];
	struct slow_reader r = {.buf = got, .cap = sizeof(got)};
	pthread_t t;

	setup_dev(F_MP, -1, false);
	handshake();
	pattern(data, sizeof(data), 3);
	for (unsigned int i = 0; i < N; i++)
		guest_write(0, data + i * CHUNK, CHUNK);
	cr_assert_lt(used_count(1), N, "precondition: part of the output is still in the ring");
	r.fd = out_pipe[0];
	cr_assert_eq(pthread_create(&t, NULL, slow_read, &r), 0);
	cr_assert_eq(vconsole_drain(vc, 1000), 0);
	close(out_pipe[1]);
	out_pipe[1] = -1;
	vconsole_destroy(vc); /* the device's reopen of the pipe goes too: the reader sees EOF */
	vc = NULL;
	pthread_join(t, NULL);
	cr_assert_eq(r.n, sizeof(data));
	cr_assert_arr_eq(got, data, sizeof(data));
}

Test(console, drain_gives_up_on_a_reader_that_never_reads, .timeout = 30)
{
	static uint8_t data[32768];
	uint64_t t0;

	setup_dev(F_MP, -1, false);
	handshake();
	for (unsigned int i = 0; i < 16; i++)
		guest_write(0, data, sizeof(data));
	t0 = now_ns();
	cr_assert_eq(vconsole_drain(vc, 100), -ETIMEDOUT);
	cr_assert_lt(now_ns() - t0, 2000000000ULL, "bounded wait");
}

/* --- stdin --------------------------------------------------------------------------------- */

Test(console, stdin_reaches_the_guest_only_once_opened_then_eof, .timeout = 30)
{
	uint8_t got[256];
	size_t n = 0;

	setup_dev(F_MP, -1, false);
	handshake();
	post_rx_bufs(4, 4096);
	cr_assert_eq(write(in_pipe[1], "hello ", 6), 6);
	loop_dispatch(loop, 50);
	cr_assert_eq(rx_take(got, sizeof(got)), 0, "data before the guest opened the port");
	send_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 1);
	cr_assert(stats().ports[2].guest_open);
	cr_assert_eq(write(in_pipe[1], "world", 5), 5);
	for (int i = 0; i < 50 && n < 11; i++) {
		loop_dispatch(loop, 20);
		n += rx_take(got + n, sizeof(got) - n);
	}
	cr_assert_eq(n, 11);
	cr_assert_arr_eq(got, "hello world", 11);
	expect_no_msg();
	close(in_pipe[1]);
	in_pipe[1] = -1;
	for (int i = 0; i < 10; i++)
		loop_dispatch(loop, 20);
	expect_msg(2, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL); /* end of input */
	cr_assert_not(stats().ports[2].host_open);
	cr_assert_eq(stats().ports[2].rx_bytes, 11);
}

Test(console, stdin_from_a_regular_file_fills_buffers_as_they_come)
{
	static uint8_t data[10000], got[10000];
	char path[] = "/tmp/vmm-console-test-XXXXXX";
	int fd = mkstemp(path);
	size_t n;

	cr_assert_geq(fd, 0);
	unlink(path);
	pattern(data, sizeof(data), 5);
	cr_assert_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	lseek(fd, 0, SEEK_SET);
	setup_dev(F_MP, fd, false);
	handshake();
	send_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 1);
	post_rx_bufs(2, 4096);
	n = rx_take(got, sizeof(got));
	cr_assert_eq(n, 8192, "two buffers, two reads");
	expect_no_msg();
	post_rx_bufs(2, 4096);
	n += rx_take(got + n, sizeof(got) - n);
	cr_assert_eq(n, sizeof(data));
	cr_assert_arr_eq(got, data, sizeof(data));
	expect_msg(2, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
	close(fd);
}

/* --- without MULTIPORT: port 0 alone, a plain console -------------------------------------- */
