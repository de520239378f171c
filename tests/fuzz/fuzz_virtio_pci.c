/*
 * libFuzzer target for the PCI bus and the virtio PCI transport: random sequences of
 * configuration-space accesses (through ports 0xCF8/0xCFC), BAR and MMIO-window accesses of
 * random widths and offsets, guest RAM pokes and device-side interrupts against a dummy device
 * that drains its queues like a real one.
 *
 * Input: 12-byte records { op, width, offset (le16), value (le64) }.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "../../devices/bus.h"
#include "../../devices/pci.h"
#include "../../devices/virtio.h"
#include "../../devices/virtio_pci.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"

/* Two regions: 3 GiB below the PCI hole (MAP_NORESERVE) and 4 MiB from 4 GiB (issue 12). */
#define RAM (GM_LOW_RAM_MAX + 4 * MiB)

struct fdev {
	struct virtio_dev vdev;
	uint8_t cfg[8];
};

static uint64_t f_features(struct virtio_dev *d)
{
	(void)d;
	return 1ULL << 0 | 1ULL << 29; /* a device bit and VIRTIO_RING_F_EVENT_IDX */
}

static void f_cfg_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	if (off + len > sizeof(((struct fdev *)d)->cfg))
		__builtin_trap();
	memcpy(data, ((struct fdev *)d)->cfg + off, len);
}

static void f_cfg_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
	if (off + len > sizeof(((struct fdev *)d)->cfg))
		__builtin_trap();
	memcpy(((struct fdev *)d)->cfg + off, data, len);
}

static void f_notify(struct virtio_dev *d, uint16_t q)
{
	struct vq_chain c;
	int n = 0, ret;

	pthread_mutex_lock(&d->lock);
	while (d->vqs[q].ready && n++ < 64 && (ret = vq_pop(&d->vqs[q], &c)) != 0) {
		if (ret == -EIO)
			break;
		if (ret < 0 && ret != -EINVAL)
			break;
		virtio_complete(d, q, c.head, ret < 0 ? 0 : c.in_len);
	}
	pthread_mutex_unlock(&d->lock);
}

static const struct virtio_dev_ops f_ops = {
	.name = "fuzz",
	.device_id = VIRTIO_ID_BALLOON,
	.max_queues = 3,
	.max_queue_size = 64,
	.config_size = 8,
	.get_features = f_features,
	.config_read = f_cfg_read,
	.config_write = f_cfg_write,
	.queue_notify = f_notify,
};

static int nr_gsi;

static int b_line(void *o, uint32_t gsi, int level)
{
	(void)o, (void)level;
	if (gsi < PCI_INTX_GSI_BASE || gsi >= PCI_INTX_GSI_BASE + 8)
		__builtin_trap();
	return 0;
}

static int b_gsi(void *o)
{
	(void)o;
	return 24 + nr_gsi++;
}

static int b_route(void *o, uint32_t gsi, uint64_t addr, uint32_t data, bool en)
{
	(void)o, (void)gsi, (void)addr, (void)data, (void)en;
	return 0;
}

static int b_irqfd(void *o, int efd, uint32_t gsi, bool assign)
{
	(void)o, (void)efd, (void)gsi, (void)assign;
	return 0;
}

static int b_msi(void *o, uint64_t addr, uint32_t data)
{
	(void)o, (void)addr, (void)data;
	return 0;
}

static const struct pci_irq_ops b_ops = {
	.irq_line = b_line,
	.alloc_gsi = b_gsi,
	.set_msi_route = b_route,
	.irqfd = b_irqfd,
	.signal_msi = b_msi,
};

static struct guest_mem gm;
static struct bus pio, mmio;
static struct fdev fd;
static unsigned int slot;

static void conf(unsigned int reg, void *v, uint32_t len, bool w)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);

	bus_access(&pio, 0xcf8, &a, 4, true);
	bus_access(&pio, 0xcfc + (reg & 3), v, len, w);
}

static void conf32(unsigned int reg, uint32_t v)
{
	conf(reg, &v, 4, true);
}

static void bar_wr(uint64_t bar, uint64_t off, uint64_t v, uint32_t len)
{
	bus_access(&mmio, bar + off, &v, len, true);
}

/* A well-behaved driver's bring-up, so the random ops start from interesting states. */
static void bring_up(uint64_t bar, uint64_t v)
{
	conf32(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	bar_wr(bar, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	bar_wr(bar, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
	       1);
	bar_wr(bar, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	bar_wr(bar, VIRTIO_PCI_COMMON_GF, 1, 4);
	bar_wr(bar, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	bar_wr(bar, VIRTIO_PCI_COMMON_GF, (uint32_t)v & 0x20000001u, 4);
	bar_wr(bar, VIRTIO_PCI_COMMON_STATUS, 0xb, 1);
	for (uint16_t q = 0; q < f_ops.max_queues; q++) {
		uint64_t base = 0x1000 + 0x4000ULL * q;

		bar_wr(bar, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
		bar_wr(bar, VIRTIO_PCI_COMMON_Q_SIZE, 16, 2);
		bar_wr(bar, VIRTIO_PCI_COMMON_Q_MSIX, q + 1, 2);
		bar_wr(bar, VIRTIO_PCI_COMMON_Q_DESCLO, base, 8);
		bar_wr(bar, VIRTIO_PCI_COMMON_Q_AVAILLO, base + 0x1000, 8);
		bar_wr(bar, VIRTIO_PCI_COMMON_Q_USEDLO, base + 0x2000, 8);
		bar_wr(bar, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	}
	bar_wr(bar, VIRTIO_PCI_COMMON_STATUS, 0xf, 1);
	if (v & 0x100) {
		unsigned int pos;
		uint8_t b = 0;

		conf(PCI_CAPABILITY_LIST, &b, 1, false);
		for (int ttl = 48; ttl-- && b >= 0x40;) {
			uint8_t id = 0;

			pos = b;
			conf(pos, &id, 1, false);
			if (id == PCI_CAP_ID_MSIX) {
				conf32(pos, (uint32_t)PCI_MSIX_FLAGS_ENABLE << 16);
				break;
			}
			conf(pos + 1, &b, 1, false);
		}
		for (int i = 0; i < f_ops.max_queues + 1; i++) {
			bar_wr(bar, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * i, 0xfee00000u, 4);
			bar_wr(bar, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * i + 12, 0, 4);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t widths[] = {1, 2, 4, 8};
	struct pci_bus *pci;
	uint64_t bar;

	if (!gm.base && gm_init(&gm, RAM, false))
		__builtin_trap();
	memset(gm.base, 0, 1 * MiB); /* the rings live here; the rest is given back */
	madvise(gm.base + 1 * MiB, gm.size - 1 * MiB, MADV_DONTNEED);
	nr_gsi = 0;
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	if (pci_bus_create(&pio, &mmio, &b_ops, &pci))
		__builtin_trap();
	memset(&fd, 0, sizeof(fd));
	virtio_dev_init(&fd.vdev, &f_ops, &gm);
	if (virtio_pci_attach(pci, &fd.vdev, NULL))
		__builtin_trap();
	slot = pci_dev_slot(virtio_pci_dev(&fd.vdev));
	bar = PCI_MMIO_BASE; /* the first BAR the window hands out */

	for (; size >= 12; data += 12, size -= 12) {
		uint8_t op = data[0];
		uint32_t len = widths[data[1] & 3];
		uint16_t off = (uint16_t)(data[2] | data[3] << 8);
		uint64_t v;

		memcpy(&v, data + 4, 8);
		switch (op % 12) {
		case 0: /* raw port I/O on the configuration ports */
			bus_access(&pio, PCI_CONF1_PORT + off % 8, &v, len, data[1] & 4);
			break;
		case 1: /* configuration write to our function (or slot 0 / a random slot) */
		case 2: {
			unsigned int s = slot;

			if (data[1] & 0x40)
				slot = (data[1] >> 3) & 0x1f;
			conf(off & 0xff, &v, len > 4 ? 4 : len, op % 12 == 1);
			slot = s;
			break;
		}
		case 3: /* BAR access where the BAR was first placed */
		case 4:
			bus_access(&mmio, bar + off % VIRTIO_PCI_BAR_SIZE, &v, len, op % 12 == 3);
			break;
		case 5: /* anywhere in the MMIO window */
			bus_access(&mmio, PCI_MMIO_BASE + v % PCI_MMIO_SIZE, &v, len, data[1] & 4);
			break;
		case 6: /* common configuration, the busiest region */
			bus_access(&mmio, bar + off % 0x40, &v, len, data[1] & 4);
			break;
		case 7: /* notify */
			bus_access(&mmio, bar + VIRTIO_PCI_NOTIFY_OFF + off % 16, &v, len, true);
			break;
		case 8: /* the guest writes RAM (ring contents) */
			memcpy(gm.base + (off * 8ULL) % RAM, &v, 8);
			break;
		case 9: /* device-side interrupts */
			pthread_mutex_lock(&fd.vdev.lock);
			if (off & 1)
				fd.vdev.transport->signal_config(&fd.vdev);
			else
				fd.vdev.transport->signal_used(&fd.vdev, (uint16_t)(v % 3));
			pthread_mutex_unlock(&fd.vdev.lock);
			break;
		case 10:
			bring_up(bar, v);
			break;
		case 11: /* MSI-X table and PBA */
			bus_access(&mmio, bar + VIRTIO_PCI_MSIX_TABLE_OFF + off % 0x2000, &v, len,
				   data[1] & 4);
			break;
		}
	}
	virtio_pci_detach(&fd.vdev);
	pci_bus_destroy(pci);
	return 0;
}
