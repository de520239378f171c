/*
 * virtio-pci internals shared by devices/virtio_pci.c (interrupts, notifications, BAR 0, the
 * PCI_CFG window, attach/detach) and devices/virtio_pci_common.c (the common configuration
 * structure, virtio 1.2 §4.1.4.3). Nothing else includes this header.
 */
#ifndef DEVICES_VIRTIO_PCI_PRIV_H
#define DEVICES_VIRTIO_PCI_PRIV_H

#include <endian.h>
#include <linux/virtio_pci.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "virtio.h"

struct loop;
struct pci_dev;

#define CC(f)	  offsetof(struct virtio_pci_common_cfg, f)
#define NO_VECTOR VIRTIO_MSI_NO_VECTOR

struct vp_queue {
	uint16_t size;	 /* queue_size as the driver sees it: max at reset, may be lowered */
	uint16_t vector; /* queue_msix_vector */
	uint64_t desc, driver, device;
};

struct vp_notify {
	struct virtio_pci *vp;
	uint16_t qidx;
	int fd;		    /* eventfd, -1 without a loop */
	uint64_t ioeventfd; /* address registered with KVM, or PCI_BAR_UNMAPPED */
};

struct virtio_pci {
	struct virtio_dev *dev;
	struct pci_dev *pdev;
	struct loop *loop;
	uint16_t nq;

	/* Protected by dev->lock. */
	uint32_t dfselect, gfselect;
	uint16_t queue_sel, config_vector;
	uint8_t isr;
	bool activated;
	uint32_t early_mask; /* queues kicked before DRIVER_OK: replayed after activate */
	uint32_t again_mask; /* without a loop: queues whose device asked for notify_again */
	struct vp_queue q[VIRTIO_MAX_QUEUES];

	/* Protected by the PCI bus lock (configuration-space hooks). */
	struct vp_notify notify[VIRTIO_MAX_QUEUES];
	unsigned int cfg_cap; /* offset of the VIRTIO_PCI_CAP_PCI_CFG capability */
	uint8_t cfg_win[sizeof(struct virtio_pci_cfg_cap)]; /* its guest-written bytes */
};

static inline void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static inline uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static inline uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static inline void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static inline bool overlaps(uint64_t off, uint64_t len, uint64_t start, uint64_t n)
{
	return off < start + n && start < off + len;
}

/*
 * vp_common_image() - the common configuration structure as the driver reads it now, into @img
 * (VIRTIO_PCI_COMMON_CFG_SIZE bytes). Caller holds dev->lock.
 */
void vp_common_image(struct virtio_pci *vp, uint8_t *img);

/*
 * vp_common_write() - the driver writes @len bytes at @off of the common configuration. Caller
 * holds dev->lock. Returns the mask of queues whose early kicks are to be replayed (after
 * DRIVER_OK), 0 for none.
 */
uint32_t vp_common_write(struct virtio_pci *vp, uint32_t off, const void *data, uint32_t len);

/* vp_reset() - the driver's reset (status 0): device and transport registers. Caller holds
 * dev->lock. */
void vp_reset(struct virtio_pci *vp);

/* vp_reset_regs() - the transport's half of vp_reset(): offered features recomputed, every
 * register to its reset value, ISR and INTx cleared; the device is not touched. dev->lock. */
void vp_reset_regs(struct virtio_pci *vp);

/* vp_is_transport() - is @dev attached to this transport (dev->transport is ours)? */
bool vp_is_transport(const struct virtio_dev *dev);

#endif
