/*
 * virtio-blk snapshot state (virtio_dev_ops.save/load). The image path and options come from the
 * configuration the restoring process was given; the state only checks that the disk the guest
 * sees is the same (capacity, block size, queues, read-only) and carries the counters. Requests
 * are never in flight here: blk_quiesce() completed them first.
 */
#include <errno.h>

#include "../vmm/state.h"
#include "../vmm/util.h"
#include "virtio_blk_priv.h"

static struct blk *to_blk(struct virtio_dev *dev)
{
	return (struct blk *)dev; /* vdev is the first member */
}

int blk_save(struct virtio_dev *dev, struct state_out *o)
{
	struct blk *b = to_blk(dev);
	const struct blk_counters *c = &b->c;

	for (unsigned int i = 0; i < b->cfg.nr_queues; i++)
		if (b->q[i] && (b->q[i]->inflight_sqes || b->q[i]->queued))
			return -EBUSY; /* blk_quiesce() first */
	state_put_u64(o, b->capacity);
	state_put_u32(o, b->blk_size);
	state_put_u16(o, (uint16_t)b->cfg.nr_queues);
	state_put_bool(o, b->cfg.ro);
	state_put_u64(o, c->reads);
	state_put_u64(o, c->writes);
	state_put_u64(o, c->flushes);
	state_put_u64(o, c->discards);
	state_put_u64(o, c->write_zeroes);
	state_put_u64(o, c->get_ids);
	state_put_u64(o, c->bytes_read);
	state_put_u64(o, c->bytes_written);
	state_put_u64(o, c->unsupported);
	state_put_u64(o, c->rejected);
	state_put_u64(o, c->io_errors);
	return state_out_error(o);
}

int blk_load(struct virtio_dev *dev, struct state_in *in)
{
	struct blk *b = to_blk(dev);
	struct blk_counters *c = &b->c;
	uint64_t capacity = state_get_u64(in);
	uint32_t blk_size = state_get_u32(in);
	uint16_t nr_queues = state_get_u16(in);
	bool ro = state_get_bool(in);

	if (state_in_error(in))
		return state_in_error(in);
	if (capacity != b->capacity || blk_size != b->blk_size || nr_queues != b->cfg.nr_queues ||
	    ro != b->cfg.ro) {
		pr_err("virtio-blk %s: the disk differs from the snapshot's (%llu sectors of %u "
		       "bytes, %u queues%s; snapshot %llu, %u, %u%s)",
		       b->cfg.path, (unsigned long long)b->capacity, b->blk_size, b->cfg.nr_queues,
		       b->cfg.ro ? ", read-only" : "", (unsigned long long)capacity, blk_size,
		       nr_queues, ro ? ", read-only" : "");
		return state_fail(in, "virtio-blk: another disk");
	}
	c->reads = state_get_u64(in);
	c->writes = state_get_u64(in);
	c->flushes = state_get_u64(in);
	c->discards = state_get_u64(in);
	c->write_zeroes = state_get_u64(in);
	c->get_ids = state_get_u64(in);
	c->bytes_read = state_get_u64(in);
	c->bytes_written = state_get_u64(in);
	c->unsupported = state_get_u64(in);
	c->rejected = state_get_u64(in);
	c->io_errors = state_get_u64(in);
	return state_in_error(in);
}
