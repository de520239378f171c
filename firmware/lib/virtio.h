/*
 * A polling virtio 1.2 driver for the modern PCI transport (virtio 1.2 §4.1) with split
 * virtqueues (§2.7) in firmware memory: no interrupts, no event index, no indirect descriptors.
 * Layouts come from <linux/virtio_pci.h>, <linux/virtio_ring.h> and <linux/virtio_config.h>.
 * The ring structures are public so hostile tests can write raw (malformed) descriptors.
 */
#ifndef FW_VIRTIO_H
#define FW_VIRTIO_H

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include "pci.h"

#define VIRTIO_PCI_VENDOR_ID 0x1af4
#define VIRTIO_PCI_MODERN_ID 0x1040 /* + device id (§4.1.2.1) */
#define VIRTIO_FW_MAX_QUEUES 8

/* A split virtqueue (§2.7): descriptor table, driver (avail) and device (used) areas. */
struct virtq {
	uint16_t index, size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	volatile void *notify; /* this queue's notification address */
	uint16_t avail_idx;    /* next avail->idx to publish */
	uint16_t last_used;    /* next used->idx to consume */
	uint16_t free_head, nr_free;
	uint16_t *next_free; /* free list links, one per descriptor */
	uint16_t *chain_len; /* descriptors in the chain whose head is the index */
	uint8_t *inflight;   /* per head: published and not yet returned */
	uint32_t bad_used;   /* used elements naming a head that was not in flight */
};

struct virtio_dev {
	struct pci_func pci;
	uint64_t bar_addr[6], bar_size[6];
	volatile struct virtio_pci_common_cfg *common;
	volatile uint8_t *isr;
	volatile uint8_t *device_cfg;
	uint32_t device_cfg_len;
	volatile uint8_t *notify_base;
	uint32_t notify_len, notify_mult;
	uint64_t device_features, features; /* offered, negotiated */
	struct virtq vq[VIRTIO_FW_MAX_QUEUES];
};

/* One buffer of a chain for virtq_add(). */
struct virtq_buf {
	uint64_t addr;
	uint32_t len;
	bool write; /* device-writable */
};

/**
 * virtio_find() - find the @index'th modern virtio PCI function of virtio device type @type,
 * enable memory decoding and bus mastering, and map its common, ISR, device and notify
 * capabilities (§4.1.4), checking each lies inside its BAR. Returns 0, or -1 with a message.
 */
int virtio_find(struct virtio_dev *d, uint16_t type, unsigned int index);

/** virtio_status() / virtio_set_status() - the device status register (§2.1). */
uint8_t virtio_status(struct virtio_dev *d);
void virtio_set_status(struct virtio_dev *d, uint8_t status);

/** virtio_reset() - write 0 and wait (bounded) until the device reads back 0 (§4.1.4.3.2). */
int virtio_reset(struct virtio_dev *d);

/**
 * virtio_negotiate() - reset, ACKNOWLEDGE, DRIVER, read the offered features, accept
 * @wanted & offered plus VIRTIO_F_VERSION_1 (required), set FEATURES_OK and check it stuck
 * (§3.1.1). Returns 0 with d->features set, or -1 with a message.
 */
int virtio_negotiate(struct virtio_dev *d, uint64_t wanted);

/**
 * virtq_setup() - set up queue @index with min(@size, device maximum) entries (@size a power of
 * two) in freshly allocated firmware memory and enable it. Returns 0, or -1 when the queue does
 * not exist (queue_size 0) or would not enable.
 */
int virtq_setup(struct virtio_dev *d, uint16_t index, uint16_t size);

/** virtio_driver_ok() - set DRIVER_OK; returns 0, or -1 when the device flags NEEDS_RESET. */
int virtio_driver_ok(struct virtio_dev *d);

/**
 * virtq_add() - publish a chain of @n buffers (device-readable ones first) and return its head,
 * or -1 when too few descriptors are free. Does not notify.
 */
int virtq_add(struct virtq *q, const struct virtq_buf *bufs, unsigned int n);

/**
 * virtq_take_desc() / virtq_put_desc() - borrow one descriptor from the free list for a raw
 * chain (0xffff when none is free) and give it back once the chain came back.
 */
uint16_t virtq_take_desc(struct virtq *q);
void virtq_put_desc(struct virtq *q, uint16_t i);

/** virtq_kick() - notify the device about queue @q (after a full barrier). */
void virtq_kick(struct virtq *q);

/**
 * virtq_get() - consume one used element if there is one: returns true with *@id and *@len,
 * and puts the chain's descriptors back on the free list (ids the driver never published are
 * reported and not freed).
 */
bool virtq_get(struct virtq *q, uint32_t *id, uint32_t *len);

/**
 * virtq_wait() - poll for one used element until @ms milliseconds pass. Returns 0 with *@id and
 * *@len, or -1 on timeout.
 */
int virtq_wait(struct virtq *q, uint32_t *id, uint32_t *len, uint64_t ms);

/**
 * virtq_publish_raw() - put head @head in the avail ring as is (for hostile tests: no
 * validation, no free-list bookkeeping) and advance avail->idx.
 */
void virtq_publish_raw(struct virtq *q, uint16_t head);

/**
 * virtio_cfg_read() - read @len bytes of device configuration at @off into @buf with 32/16/8-bit
 * accesses, retried until config_generation is stable (§4.1.4.3.1). Returns the generation.
 */
uint8_t virtio_cfg_read(struct virtio_dev *d, uint32_t off, void *buf, uint32_t len);

/** virtio_cfg_write32() - write a 32-bit little-endian device configuration field. */
void virtio_cfg_write32(struct virtio_dev *d, uint32_t off, uint32_t v);

/** virtio_generation() - the current config_generation. */
uint8_t virtio_generation(struct virtio_dev *d);

#endif
