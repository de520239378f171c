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
#include "fake_driver.h"

#define RAM	  (64 * MiB)
#define RING_BASE 0x100000ULL /* queue i's rings at RING_BASE + i * 0x10000 */
#define CTRL_BUF  0x200000ULL /* control receive buffers: one 4 KiB page per descriptor head */
#define DATA_BUF  0x400000ULL /* data buffers, bump-allocated */
#define F(bit)	  (1ULL << (bit))
#define F_MP	  F(VIRTIO_CONSOLE_F_MULTIPORT)
#define NQ	  8
#define BAD_ID	  VIRTIO_CONSOLE_BAD_ID

static struct guest_mem gm;
static struct loop *loop;
static struct vconsole *vc;
static struct virtio_dev *dev;
static struct fake_vq q[NQ];
static int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, in_pipe[2] = {-1, -1};
static uint64_t next_data;

static void t_signal_used(struct virtio_dev *d, uint16_t qidx)
{
	(void)d;
	(void)qidx;
}

static void t_signal_config(struct virtio_dev *d)
{
	d->config_generation++;
}

static const struct virtio_transport_ops transport = {
	.signal_used = t_signal_used,
	.signal_config = t_signal_config,
};

static void kick(unsigned int qidx)
{
	dev->ops->queue_notify(dev, qidx);
}

static uint64_t data_buf(uint32_t len)
{
	uint64_t gpa = DATA_BUF + next_data;

	next_data = ALIGN_UP(next_data + len, 64);
	cr_assert_lt(DATA_BUF + next_data, RAM, "test data area exhausted");
	return gpa;
}

/* The device with ports vmm.stdout (pipe), vmm.stderr (pipe), vmm.stdin (@in_fd, or a pipe). */
static void setup_dev(uint64_t features, int in_fd, bool console0)
{
	struct vconsole_config cfg = {.nr_ports = 3};

	cr_assert_eq(gm_init(&gm, RAM, false), 0);
	loop = loop_create();
	cr_assert_not_null(loop);
	cr_assert_eq(pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK), 0);
	cr_assert_eq(pipe2(err_pipe, O_CLOEXEC | O_NONBLOCK), 0);
	if (in_fd < 0) {
		cr_assert_eq(pipe2(in_pipe, O_CLOEXEC), 0);
		in_fd = in_pipe[0];
	}
	cfg.ports[0] = (struct vconsole_port_config){"vmm.stdout", out_pipe[1], -1, console0};
	cfg.ports[1] = (struct vconsole_port_config){"vmm.stderr", err_pipe[1], -1, false};
	cfg.ports[2] = (struct vconsole_port_config){"vmm.stdin", -1, in_fd, false};
	vc = vconsole_create(&gm, loop, &cfg);
	cr_assert_not_null(vc);
	dev = vconsole_virtio_dev(vc);
	dev->transport = &transport;
	dev->driver_features = features | F(VIRTIO_F_VERSION_1);
	dev->status =
		VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
	for (unsigned int i = 0; i < NQ; i++) {
		fake_vq_init(&q[i], &gm, &dev->vqs[i], VCONSOLE_QUEUE_SIZE,
			     RING_BASE + i * 0x10000ULL);
		cr_assert_eq(vq_enable(&dev->vqs[i], &gm, dev->driver_features), 0);
	}
	pthread_mutex_lock(&dev->lock);
	dev->status |= VIRTIO_CONFIG_S_DRIVER_OK;
	cr_assert_eq(dev->ops->activate(dev), 0);
	pthread_mutex_unlock(&dev->lock);
}

static void teardown(void)
{
	vconsole_destroy(vc);
	vc = NULL;
	if (loop)
		loop_destroy(loop);
	loop = NULL;
	for (int i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
		if (in_pipe[i] >= 0)
			close(in_pipe[i]);
		out_pipe[i] = err_pipe[i] = in_pipe[i] = -1;
	}
	if (gm.base)
		gm_destroy(&gm);
	next_data = 0;
}

TestSuite(console, .fini = teardown);

static struct vconsole_stats stats(void)
{
	struct vconsole_stats s;

	vconsole_get_stats(vc, &s);
	return s;
}

/* --- the control queues, as Linux uses them ----------------------------------------------- */

/* Linux fill_queue(): page-sized device-writable buffers on the control receiveq. */
static void post_ctrl_bufs(unsigned int n, uint32_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		uint16_t head = q[2].next_desc % q[2].size;

		fake_add_chain(&q[2], &(struct fake_buf){CTRL_BUF + 0x1000ULL * head, len, true},
			       1);
	}
	kick(2);
}

/* Linux __send_control_msg(): one 8-byte device-readable buffer on the control transmitq. */
static void send_ctrl_raw(const void *msg, uint32_t len)
{
	uint64_t gpa = data_buf(len);
	uint32_t id, ulen;

	gm_write(&gm, gpa, msg, len);
	fake_add_chain(&q[3], &(struct fake_buf){gpa, len, false}, 1);
	kick(3);
	cr_assert(fake_get_used(&q[3], &id, &ulen), "control message not consumed");
}

static void send_ctrl(uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_console_control m = {htole32(id), htole16(event), htole16(value)};

	send_ctrl_raw(&m, sizeof(m));
}

struct msg {
	uint32_t id;
	uint16_t event, value;
	char data[128];
};

/* The next message the device sent, if any. */
static bool recv_ctrl(struct msg *m)
{
	struct virtio_console_control h;
	uint32_t head, len;

	if (!fake_get_used(&q[2], &head, &len))
		return false;
	cr_assert_geq(len, sizeof(h));
	cr_assert_lt(len, sizeof(h) + sizeof(m->data));
	gm_read(&gm, CTRL_BUF + 0x1000ULL * head, &h, sizeof(h));
	memset(m, 0, sizeof(*m));
	gm_read(&gm, CTRL_BUF + 0x1000ULL * head + sizeof(h), m->data, len - sizeof(h));
	m->id = le32toh(h.id);
	m->event = le16toh(h.event);
	m->value = le16toh(h.value);
	return true;
}

static void expect_msg(uint32_t id, uint16_t event, uint16_t value, const char *data)
{
	struct msg m;

	cr_assert(recv_ctrl(&m), "no control message (expected event %u for port %u)", event, id);
	cr_assert_eq(m.event, event, "port %u: event %u, expected %u", m.id, m.event, event);
	cr_assert_eq(m.id, id);
	cr_assert_eq(m.value, value, "event %u port %u: value %u", event, id, m.value);
	if (data)
		cr_assert_str_eq(m.data, data);
}

static void expect_no_msg(void)
{
	struct msg m;

	cr_assert_not(recv_ctrl(&m), "unexpected control message %u for port %u", m.event, m.id);
}

/* Linux's probe and add_port() for every port: the full handshake. */
static void handshake(void)
{
	static const char *names[] = {"vmm.stdout", "vmm.stderr", "vmm.stdin"};

	post_ctrl_bufs(32, 4096);
	send_ctrl(BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (uint32_t i = 0; i < 3; i++)
		expect_msg(i, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
	expect_no_msg();
	for (uint32_t i = 0; i < 3; i++) {
		send_ctrl(i, VIRTIO_CONSOLE_PORT_READY, 1);
		expect_msg(i, VIRTIO_CONSOLE_PORT_NAME, 1, names[i]);
		expect_msg(i, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	}
	expect_no_msg();
}

/* --- data ---------------------------------------------------------------------------------- */

static void pattern(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((seed + i) * 2654435761u >> 13);
}

/* A write(2) on a port: one device-readable buffer (Linux port_fops_write). */
static uint16_t guest_write(unsigned int port, const void *data, uint32_t len)
{
	unsigned int qidx = port ? 3 + 2 * port : 1;
	uint64_t gpa = data_buf(len);
	uint16_t head;

	gm_write(&gm, gpa, data, len);
	head = fake_add_chain(&q[qidx], &(struct fake_buf){gpa, len, false}, 1);
	kick(qidx);
	return head;
}

static unsigned int used_count(unsigned int qidx)
{
	uint32_t id, len;
	unsigned int n = 0;

	while (fake_get_used(&q[qidx], &id, &len)) {
		cr_assert_eq(len, 0, "transmit buffers come back with length 0");
		n++;
	}
	return n;
}

static size_t read_pipe(int fd, uint8_t *dst, size_t cap)
{
	ssize_t n = read(fd, dst, cap);

	return n > 0 ? (size_t)n : 0;
}

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

static void post_rx_bufs(unsigned int n, uint32_t len)
{
	for (unsigned int i = 0; i < n; i++)
		fake_add_chain(&q[6], &(struct fake_buf){data_buf(len), len, true}, 1);
	kick(6);
}

/* Bytes in the receive buffers the device returned, in order. */
static size_t rx_take(uint8_t *dst, size_t cap)
{
	uint32_t head, len;
	size_t n = 0;

	while (fake_get_used(&q[6], &head, &len)) {
		struct vring_desc d;

		gm_read(&gm, q[6].desc + 16ULL * head, &d, sizeof(d));
		cr_assert_leq(n + len, cap);
		gm_read(&gm, le64toh(d.addr), dst + n, len);
		n += len;
	}
	return n;
}

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

Test(console, without_multiport_port_zero_is_a_plain_console)
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

Test(console, hostile_control_messages_are_counted_and_survived)
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

Test(console, control_receive_buffer_too_small_or_readable_is_skipped)
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

Test(console, wrong_direction_data_buffers_are_refused)
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

Test(console, malformed_chain_is_completed_and_the_queue_goes_on)
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

Test(console, avail_index_running_ahead_needs_reset)
{
	setup_dev(F_MP, -1, false);
	handshake();
	fake_set_avail_idx(&q[1], VCONSOLE_QUEUE_SIZE + 5);
	kick(1);
	cr_assert(dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_assert_geq(stats().err_count, 1);
	cr_assert_eq(vconsole_drain(vc, 100), 0, "a broken ring does not hang the drain");
}

Test(console, reset_forgets_the_ports_and_a_new_handshake_works)
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

Test(console, bad_configs_are_refused)
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
