/*
 * flood: a hostile balloon driver that keeps the inflate and deflate queues full for secs=S
 * seconds (0: forever), republishing the same 256-PFN buffer as fast as the device consumes it
 * and kicking after each refill, as a vCPU that never stops would. The PFNs are every other page
 * of a scratch area, so no two merge into one range: each buffer costs the device 256 discards.
 * With mode=idle it only spins for the same time (the baseline: the vCPU is just as busy).
 * tests/kvm/flood.sh measures control-socket round trips meanwhile (issue 12 item 4).
 * Prints "flood: flooding" when it starts, then "flood: PASS" once the device returned every
 * buffer after the flood stopped (exit 0), or "FAIL: ..." (exit 1).
 */
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>

#include "virtio.h"

const char fw_default_args[] = "mode=flood secs=10";

#define QSIZE	     256
#define PFNS	     256 /* Linux VIRTIO_BALLOON_ARRAY_PFNS_MAX */
#define SCRATCH_PAGS (2 * PFNS)
#define DRAIN_MS     30000

static struct virtio_dev dev;

/* Publish head 0 until QSIZE are in flight; true when anything was published. */
static bool refill(struct virtq *q, uint64_t *published)
{
	uint16_t used = *(volatile uint16_t *)&q->used->idx;
	bool any = false;

	while ((uint16_t)(q->avail_idx - used) < q->size) {
		q->avail->ring[q->avail_idx % q->size] = 0;
		q->avail_idx++;
		(*published)++;
		any = true;
	}
	if (any) {
		fw_barrier();
		*(volatile uint16_t *)&q->avail->idx = q->avail_idx;
	}
	return any;
}

static bool drained(struct virtq *q)
{
	return *(volatile uint16_t *)&q->used->idx == q->avail_idx;
}

int main(void)
{
	const char *mode = fw_arg_str("mode", "flood");
	uint64_t secs = fw_arg_u64("secs", 10), published = 0, rounds = 0, deadline;
	bool flood = !strcmp(mode, "flood");
	uint8_t *scratch;
	uint32_t *pfns;
	struct virtq *q[2];

	if (!flood && strcmp(mode, "idle"))
		fw_fail("flood: mode must be flood or idle, not '%s'", mode);
	if (virtio_find(&dev, VIRTIO_ID_BALLOON, 0))
		fw_fail("flood: no virtio-balloon found");
	if (virtio_negotiate(&dev, 0))
		fw_fail("flood: feature negotiation failed");
	for (uint16_t i = 0; i < 2; i++) {
		if (virtq_setup(&dev, i, QSIZE))
			fw_fail("flood: queue %u unavailable", i);
		q[i] = &dev.vq[i];
	}
	if (virtio_driver_ok(&dev))
		fw_fail("flood: DRIVER_OK refused");
	scratch = fw_alloc(SCRATCH_PAGS * FW_PAGE_SIZE, FW_PAGE_SIZE);
	pfns = fw_alloc(PFNS * sizeof(*pfns), FW_PAGE_SIZE);
	for (unsigned int i = 0; i < PFNS; i++)
		pfns[i] = (uint32_t)(((uintptr_t)scratch >> 12) + 2 * i);
	/* Descriptor 0 of each queue: the one buffer, published again and again. */
	for (unsigned int i = 0; i < 2; i++) {
		q[i]->desc[0].addr = (uintptr_t)pfns;
		q[i]->desc[0].len = PFNS * sizeof(*pfns);
		q[i]->desc[0].flags = 0;
		q[i]->desc[0].next = 0;
	}
	printf("flood: %s for %llu s (0: forever), %u queues of %u, %u PFNs per buffer\n", mode,
	       (unsigned long long)secs, 2, q[0]->size, PFNS);
	printf("flood: flooding\n");
	deadline = fw_deadline(secs * 1000);
	while (!secs || !fw_expired(deadline)) {
		rounds++;
		for (unsigned int i = 0; flood && i < 2; i++)
			if (refill(q[i], &published))
				virtq_kick(q[i]);
		fw_pause();
	}
	printf("flood: stopped after %llu rounds, %llu buffers published\n",
	       (unsigned long long)rounds, (unsigned long long)published);
	deadline = fw_deadline(DRAIN_MS);
	while (!drained(q[0]) || !drained(q[1])) {
		if (fw_expired(deadline))
			fw_fail("flood: the device did not return every buffer within %u ms "
				"(used %u/%u, %u/%u)",
				DRAIN_MS, q[0]->used->idx, q[0]->avail_idx, q[1]->used->idx,
				q[1]->avail_idx);
		fw_pause();
	}
	printf("flood: PASS\n");
	return 0;
}
