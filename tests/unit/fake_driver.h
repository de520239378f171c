/*
 * A fake virtio driver for unit tests: lays out a split virtqueue's rings inside guest RAM
 * (struct guest_mem), adds descriptor chains as a guest driver would and reads the used ring.
 * Devices are then driven through their virtio_dev_ops directly, without a transport.
 */
#ifndef TESTS_UNIT_FAKE_DRIVER_H
#define TESTS_UNIT_FAKE_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "../../devices/virtqueue.h"
#include "../../vmm/mem/guest_mem.h"

struct fake_vq {
	struct guest_mem *gm;
	struct virtqueue *vq; /* the device's view, configured by fake_vq_init() */
	uint16_t size;
	uint64_t desc, avail, used; /* ring GPAs */
	uint16_t next_desc;	    /* next descriptor to hand out (bump allocator, wraps) */
	uint16_t avail_idx;	    /* driver's avail->idx */
	uint16_t last_used;	    /* next used ring entry to read */
};

struct fake_buf {
	uint64_t gpa;
	uint32_t len; /* bytes */
	bool write;   /* device-writable */
};

/* Bytes of desc + avail + used rings for @size entries, including the event_idx fields. */
uint64_t fake_vq_ring_bytes(uint16_t size);

/**
 * fake_vq_init() - zero [@base, @base + fake_vq_ring_bytes(@size)) and lay the three rings out
 * there (16/2/4-byte aligned), then set @vq's size and ring GPAs. Does not call vq_enable().
 */
void fake_vq_init(struct fake_vq *f, struct guest_mem *gm, struct virtqueue *vq, uint16_t size,
		  uint64_t base);

/** fake_set_desc() - write descriptor @idx raw (hostile tests). */
void fake_set_desc(struct fake_vq *f, uint16_t idx, uint64_t addr, uint32_t len, uint16_t flags,
		   uint16_t next);

/** fake_publish() - put @head in the avail ring and publish avail->idx (release). */
void fake_publish(struct fake_vq *f, uint16_t head);

/** fake_set_avail_idx() - write avail->idx directly (hostile tests). */
void fake_set_avail_idx(struct fake_vq *f, uint16_t idx);

/** fake_add_chain() - add a chain of @n buffers (linked with NEXT) and publish it. Returns head. */
uint16_t fake_add_chain(struct fake_vq *f, const struct fake_buf *bufs, unsigned int n);

/**
 * fake_add_indirect() - write @n descriptors for @bufs as an indirect table at @table_gpa, add one
 * INDIRECT descriptor pointing at it and publish it. Returns the head.
 */
uint16_t fake_add_indirect(struct fake_vq *f, uint64_t table_gpa, const struct fake_buf *bufs,
			   unsigned int n);

/** fake_get_used() - next used element, if any: true with *@id and *@len set. */
bool fake_get_used(struct fake_vq *f, uint32_t *id, uint32_t *len);

/** fake_used_idx() - the device's used->idx as the driver sees it. */
uint16_t fake_used_idx(const struct fake_vq *f);

/** fake_set_used_event()/fake_set_avail_flags() - event_idx field and VRING_AVAIL_F_* flags. */
void fake_set_used_event(struct fake_vq *f, uint16_t v);
void fake_set_avail_flags(struct fake_vq *f, uint16_t flags);

/** fake_avail_event() - the device's avail_event (used->ring[size]). */
uint16_t fake_avail_event(const struct fake_vq *f);

#endif
