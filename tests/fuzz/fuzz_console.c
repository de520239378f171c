/*
 * libFuzzer target for virtio-console: random ring contents (data and control queues), random
 * negotiated features and a random sequence of driver and host operations (kicks, config access,
 * host input through a pipe and its end, output into one-page pipes drained or not, the loop
 * dispatched in between, reset, the exit drain), driven through the device's virtio_dev_ops as
 * the transport would (no PCI).
 * Invariants: no port buffers more than VCONSOLE_OUT_BUF bytes; bytes written and dropped never
 * exceed what the guest sent; every control message the device wrote is one whole header.
 * Input: 8-byte header, 64 two-byte operations, then the guest RAM image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ring.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_console.h"
#include "../../vmm/loop.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "fuzz_virtio.h"

/* Two regions: 3 GiB below the PCI hole (MAP_NORESERVE) and 4 MiB from 4 GiB (issue 12). */
#define RAM    (GM_LOW_RAM_MAX + 4 * MiB)
#define WINDOW (64 * KiB) /* the part of RAM the input fills */
#define HDR    8
#define NR_OPS 64

static struct guest_mem gm;
static struct loop *loop;

static void t_signal_used(struct virtio_dev *d, uint16_t qidx)
{
	if (!d || qidx >= VIRTIO_MAX_QUEUES)
		__builtin_trap();
}

static void t_signal_config(struct virtio_dev *d)
{
	d->config_generation++;
}

static const struct virtio_transport_ops transport = {t_signal_used, t_signal_config};

static void negotiate(struct virtio_dev *dev, const uint8_t *h)
{
	/* Raw feature bits, not masked by a transport: includes ones never offered. */
	dev->driver_features =
		(uint64_t)h[1] | (uint64_t)(h[4] & 0x30) << 24 | 1ULL << VIRTIO_F_VERSION_1;
	fz_features_ok(dev, &gm, h, 8);
}

static void drain_pipe(int fd)
{
	uint8_t buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void check(struct vconsole *vc)
{
	struct vconsole_stats st;

	vconsole_get_stats(vc, &st);
	for (unsigned int i = 0; i < VCONSOLE_MAX_PORTS; i++) {
		const struct vconsole_port_stats *p = &st.ports[i];

		if (p->buffered > VCONSOLE_OUT_BUF || p->written + p->buffered > p->tx_bytes)
			__builtin_trap();
	}
}

struct pipes {
	int out[2], err[2], in[2];
};

static int make_pipes(struct pipes *p)
{
	if (pipe2(p->out, O_NONBLOCK | O_CLOEXEC) || pipe2(p->err, O_NONBLOCK | O_CLOEXEC) ||
	    pipe2(p->in, O_NONBLOCK | O_CLOEXEC))
		return -1;
	fcntl(p->out[1], F_SETPIPE_SZ, 4096);
	fcntl(p->err[1], F_SETPIPE_SZ, 4096);
	return 0;
}

static void close_pipes(struct pipes *p)
{
	int *fds[] = {p->out, p->err, p->in};

	for (unsigned int i = 0; i < 3; i++)
		for (unsigned int j = 0; j < 2; j++)
			if (fds[i][j] >= 0)
				close(fds[i][j]);
}

static void run_op(struct vconsole *vc, struct virtio_dev *dev, struct pipes *p, const uint8_t *h,
		   uint8_t op, uint8_t arg, const uint8_t *data, size_t size)
{

	switch (op & 15) {
	case 0:
	case 1:
	case 2:
	case 3:
		dev->ops->queue_notify(dev, arg % (VIRTIO_MAX_QUEUES + 2));
		break;
	case 4:
		fz_config_access(dev, op, arg, true);
		break;
	case 5:
		fz_config_access(dev, op, arg, false);
		break;
	case 6:
		loop_dispatch(loop, 0);
		break;
	case 7:
		drain_pipe(p->out[0]);
		drain_pipe(p->err[0]);
		break;
	case 8:
		if (p->in[1] >= 0 && write(p->in[1], data, MIN((size_t)arg, size)) < 0 &&
		    errno != EAGAIN)
			__builtin_trap();
		break;
	case 9:
		if (p->in[1] >= 0)
			close(p->in[1]);
		p->in[1] = -1;
		break;
	case 10:
		pthread_mutex_lock(&dev->lock);
		virtio_dev_reset(dev);
		pthread_mutex_unlock(&dev->lock);
		break;
	case 11:
		negotiate(dev, h);
		break;
	case 12:
		fz_driver_ok(dev);
		break;
	case 13:
		vconsole_drain(vc, 0); /* nobody may be reading: must not wait */
		break;
	default:
		/* The guest rewrites part of RAM between kicks, as a real one would. */
		memset(gm.base + (uint64_t)arg * 64, op, 64);
		break;
	}
	check(vc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *h = data, *ops = data + HDR;
	struct pipes p = {{-1, -1}, {-1, -1}, {-1, -1}};
	struct vconsole_config cfg = {.nr_ports = 3};
	struct virtio_dev *dev;
	struct vconsole *vc;

	log_level = LOG_QUIET;
	if (!gm.base && gm_init(&gm, RAM, false))
		__builtin_trap();
	if (!loop && !(loop = loop_create()))
		__builtin_trap();
	if (size < HDR + 2 * NR_OPS)
		return 0;
	/* What the last input made the device touch anywhere in RAM is given back (bounded RSS). */
	madvise(gm.base + WINDOW, gm.size - WINDOW, MADV_DONTNEED);
	memset(gm.base, 0, WINDOW);
	memcpy(gm.base, data + HDR + 2 * NR_OPS, MIN(size - HDR - 2 * NR_OPS, WINDOW));
	if (make_pipes(&p)) {
		close_pipes(&p);
		return 0;
	}
	cfg.nr_ports = 1 + h[0] % 3;
	cfg.ports[0] = (struct vconsole_port_config){"vmm.stdout", p.out[1], -1, h[0] & 4};
	cfg.ports[1] = (struct vconsole_port_config){"vmm.stderr", p.err[1], -1, false};
	cfg.ports[2] = (struct vconsole_port_config){"vmm.stdin", -1, p.in[0], false};
	if (h[5] & 1) /* a port that is both output and input */
		cfg.ports[0].in_fd = p.in[0], cfg.nr_ports = 1;
	vc = vconsole_create(&gm, loop, &cfg);
	if (!vc)
		__builtin_trap();
	dev = vconsole_virtio_dev(vc);
	if (h[0] & 8)
		dev->transport = &transport;
	negotiate(dev, h);
	if (!(h[0] & 32))
		fz_driver_ok(dev);
	for (unsigned int i = 0; i < NR_OPS; i++)
		run_op(vc, dev, &p, h, ops[2 * i], ops[2 * i + 1], data, size);
	vconsole_drain(vc, 0);
	vconsole_destroy(vc);
	close_pipes(&p);
	return 0;
}
