#include "console_driver.h"

#include <criterion/criterion.h>
#include <endian.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "../../vmm/loop.h"
#include "../../vmm/mem/guest_mem.h"

struct guest_mem gm;
struct loop *loop;
struct vconsole *vc;
struct virtio_dev *dev;
struct fake_vq q[NQ];
int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, in_pipe[2] = {-1, -1};
uint64_t next_data;

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

void kick(unsigned int qidx)
{
	dev->ops->queue_notify(dev, qidx);
}

uint64_t data_buf(uint32_t len)
{
	uint64_t gpa = DATA_BUF + next_data;

	next_data = ALIGN_UP(next_data + len, 64);
	cr_assert_lt(DATA_BUF + next_data, RAM, "test data area exhausted");
	return gpa;
}

/* The device with ports vmm.stdout (pipe), vmm.stderr (pipe), vmm.stdin (@in_fd, or a pipe). */
void setup_dev(uint64_t features, int in_fd, bool console0)
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

void teardown(void)
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

struct vconsole_stats stats(void)
{
	struct vconsole_stats s;

	vconsole_get_stats(vc, &s);
	return s;
}

/* --- the control queues, as Linux uses them ----------------------------------------------- */

/* Linux fill_queue(): page-sized device-writable buffers on the control receiveq. */
void post_ctrl_bufs(unsigned int n, uint32_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		uint16_t head = q[2].next_desc % q[2].size;

		fake_add_chain(&q[2], &(struct fake_buf){CTRL_BUF + 0x1000ULL * head, len, true},
			       1);
	}
	kick(2);
}

/* Linux __send_control_msg(): one 8-byte device-readable buffer on the control transmitq. */
void send_ctrl_raw(const void *msg, uint32_t len)
{
	uint64_t gpa = data_buf(len);
	uint32_t id, ulen;

	gm_write(&gm, gpa, msg, len);
	fake_add_chain(&q[3], &(struct fake_buf){gpa, len, false}, 1);
	kick(3);
	cr_assert(fake_get_used(&q[3], &id, &ulen), "control message not consumed");
}

void send_ctrl(uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_console_control m = {htole32(id), htole16(event), htole16(value)};

	send_ctrl_raw(&m, sizeof(m));
}

/* The next message the device sent, if any. */
bool recv_ctrl(struct msg *m)
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

void expect_msg(uint32_t id, uint16_t event, uint16_t value, const char *data)
{
	struct msg m;

	cr_assert(recv_ctrl(&m), "no control message (expected event %u for port %u)", event, id);
	cr_assert_eq(m.event, event, "port %u: event %u, expected %u", m.id, m.event, event);
	cr_assert_eq(m.id, id);
	cr_assert_eq(m.value, value, "event %u port %u: value %u", event, id, m.value);
	if (data)
		cr_assert_str_eq(m.data, data);
}

void expect_no_msg(void)
{
	struct msg m;

	cr_assert_not(recv_ctrl(&m), "unexpected control message %u for port %u", m.event, m.id);
}

/* Linux's probe and add_port() for every port: the full handshake. */
void handshake(void)
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

void pattern(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((seed + i) * 2654435761u >> 13);
}

/* A write(2) on a port: one device-readable buffer (Linux port_fops_write). */
uint16_t guest_write(unsigned int port, const void *data, uint32_t len)
{
	unsigned int qidx = port ? 3 + 2 * port : 1;
	uint64_t gpa = data_buf(len);
	uint16_t head;

	gm_write(&gm, gpa, data, len);
	head = fake_add_chain(&q[qidx], &(struct fake_buf){gpa, len, false}, 1);
	kick(qidx);
	return head;
}

unsigned int used_count(unsigned int qidx)
{
	uint32_t id, len;
	unsigned int n = 0;

	while (fake_get_used(&q[qidx], &id, &len)) {
		cr_assert_eq(len, 0, "transmit buffers come back with length 0");
		n++;
	}
	return n;
}

size_t read_pipe(int fd, uint8_t *dst, size_t cap)
{
	ssize_t n = read(fd, dst, cap);

	return n > 0 ? (size_t)n : 0;
}

void post_rx_bufs(unsigned int n, uint32_t len)
{
	for (unsigned int i = 0; i < n; i++)
		fake_add_chain(&q[6], &(struct fake_buf){data_buf(len), len, true}, 1);
	kick(6);
}

/* Bytes in the receive buffers the device returned, in order. */
size_t rx_take(uint8_t *dst, size_t cap)
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
