/*
 * hostile: a malicious balloon driver. Every malformed buffer must still come back through the
 * used ring with length 0 (virtio 1.2 §2.7.8; design.md: the guest blocks until it does), the
 * device must not act on it, and the VMM must survive and keep working, after a reset if the
 * ring itself was broken. Cases: PFNs outside RAM, descriptors outside RAM or wrapping around,
 * device-writable inflate buffers, lengths not a multiple of 4, empty and oversized buffers,
 * descriptor loops and out-of-range next/head indices, malformed indirect tables, readable
 * reporting buffers, a queue size that is not a power of two, rings outside RAM, a notify
 * before DRIVER_OK, stray notifies and config writes, and avail->idx running past the ring.
 * Ends with "hostile: PASS" (exit 0) or "FAIL: ..." (exit 1).
 */
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>

#include "virtio.h"

#define WAIT_MS	   2000
#define DATA_PAGES 64
#define QUEUE_SIZE 64
#define BAD_GPA	   0xfffffffff000ULL /* far above RAM (and above 4 GiB) */

static struct virtio_dev dev;
static struct virtq *inflate_q, *deflate_q, *report_q;
static unsigned int failures, cases;
static uint8_t *data;		  /* DATA_PAGES pages holding a pattern */
static uint32_t *pfn_array;	  /* scratch for PFN lists */
static struct vring_desc *itable; /* scratch indirect table */

static void fail_case(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_case(const char *name, const char *fmt, ...)
{
	va_list ap;

	failures++;
	printf("hostile: %-24s FAIL: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static uint32_t data_pfn(unsigned int i)
{
	return (uint32_t)(((uintptr_t)data >> 12) + i);
}

static void fill_data(void)
{
	for (unsigned int i = 0; i < DATA_PAGES; i++)
		*(volatile uint64_t *)(data + i * FW_PAGE_SIZE) = 0xda7a000000000000ULL | i;
}

/* Pages of the data area that lost their pattern (the host discarded them). */
static unsigned int data_lost(void)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < DATA_PAGES; i++)
		n += *(volatile uint64_t *)(data + i * FW_PAGE_SIZE) != (0xda7a000000000000ULL | i);
	return n;
}

static uint16_t take(struct virtq *q)
{
	uint16_t i = virtq_take_desc(q);

	if (i == 0xffff)
		fw_fail("hostile: out of descriptors on queue %u", q->index);
	return i;
}

static void set_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/*
 * Publish @head (raw), kick, and require it back with length 0. @descs (@n of them) go back to
 * the free list afterwards. Returns true when the buffer came back as it should.
 */
static bool expect_back(const char *name, struct virtq *q, uint16_t head, const uint16_t *descs,
			unsigned int n)
{
	uint32_t id, len;
	bool ok = true;

	cases++;
	virtq_publish_raw(q, head);
	virtq_kick(q);
	if (virtq_wait(q, &id, &len, WAIT_MS)) {
		fail_case(name, "buffer %u never came back (the guest would block forever)", head);
		/* Leave the descriptors allocated: the device may still own them. */
		return false;
	}
	if (id != head) {
		fail_case(name, "used id %u, published head %u", id, head);
		ok = false;
	} else if (len != 0) {
		fail_case(name, "used length %u, expected 0", len);
		ok = false;
	} else {
		printf("hostile: %-24s ok (returned, length 0)\n", name);
	}
	for (unsigned int i = 0; i < n; i++)
		virtq_put_desc(q, descs[i]);
	return ok;
}

/* One direct descriptor as a whole chain. */
static bool one_desc(const char *name, struct virtq *q, uint64_t addr, uint32_t len, uint16_t flags)
{
	uint16_t d = take(q);

	set_desc(&q->desc[d], addr, len, flags, 0);
	return expect_back(name, q, d, &d, 1);
}

/* ---- the cases ---------------------------------------------------------------------------------
 */

static void case_pfns_outside_ram(void)
{
	pfn_array[0] = 0xffffffff;
	pfn_array[1] = (uint32_t)(fw_ram_bytes >> 12);	     /* first PFN past RAM */
	pfn_array[2] = (uint32_t)(0xE0000000ULL >> 12);	     /* the PCI hole */
	pfn_array[3] = (uint32_t)(FW_LOW_RAM_MAX >> 12) + 1; /* the hole under 4 GiB */
	one_desc("pfns-outside-ram", inflate_q, (uintptr_t)pfn_array, 16, 0);
	one_desc("deflate-never-inflated", deflate_q, (uintptr_t)pfn_array, 16, 0);
}

static void case_bad_addresses(void)
{
	one_desc("desc-outside-ram", inflate_q, BAD_GPA, 1024, 0);
	one_desc("desc-in-mmio-bar", inflate_q, dev.bar_addr[0], 64, 0);
	one_desc("desc-wraps-around", inflate_q, 0xffffffffffffff00ULL, 0x200, 0);
	one_desc("desc-ends-past-ram", inflate_q, fw_low_ram_end - 8, 64, 0);
	one_desc("desc-len-4g", inflate_q, (uintptr_t)pfn_array, 0xffffffff, 0);
}

static void case_writable_inflate(void)
{
	unsigned int lost;

	fill_data();
	for (unsigned int i = 0; i < 8; i++)
		pfn_array[i] = data_pfn(i);
	one_desc("inflate-device-writable", inflate_q, (uintptr_t)pfn_array, 32,
		 VRING_DESC_F_WRITE);
	lost = data_lost();
	if (lost)
		fail_case("inflate-device-writable",
			  "the device discarded %u pages of a "
			  "malformed buffer",
			  lost);
	if (pfn_array[0] != data_pfn(0))
		fail_case("inflate-device-writable", "the device wrote into the buffer");
}

static void case_lengths(void)
{
	for (unsigned int i = 0; i < 4; i++)
		pfn_array[i] = data_pfn(i);
	one_desc("len-not-multiple-of-4", inflate_q, (uintptr_t)pfn_array, 10, 0);
	one_desc("len-zero", inflate_q, (uintptr_t)pfn_array, 0, 0);
	one_desc("len-1024-pfns", inflate_q, (uintptr_t)pfn_array, 4096, 0);
}

static void case_chains(void)
{
	struct virtq *q = inflate_q;
	uint16_t d[3];

	pfn_array[0] = data_pfn(0);
	d[0] = take(q);
	d[1] = take(q);
	set_desc(&q->desc[d[0]], (uintptr_t)pfn_array, 4, VRING_DESC_F_NEXT, d[1]);
	set_desc(&q->desc[d[1]], (uintptr_t)pfn_array, 4, VRING_DESC_F_NEXT, d[0]);
	expect_back("desc-loop", q, d[0], d, 2);

	d[0] = take(q);
	set_desc(&q->desc[d[0]], (uintptr_t)pfn_array, 4, VRING_DESC_F_NEXT, d[0]);
	expect_back("desc-self-loop", q, d[0], d, 1);

	d[0] = take(q);
	set_desc(&q->desc[d[0]], (uintptr_t)pfn_array, 4, VRING_DESC_F_NEXT, 0xffff);
	expect_back("next-out-of-range", q, d[0], d, 1);

	/* Readable after writable breaks §2.7.4.2. */
	d[0] = take(q);
	d[1] = take(q);
	set_desc(&q->desc[d[0]], (uintptr_t)pfn_array, 4, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
		 d[1]);
	set_desc(&q->desc[d[1]], (uintptr_t)pfn_array, 4, 0, 0);
	expect_back("readable-after-writable", q, d[0], d, 2);
}

static void case_indirect(void)
{
	struct virtq *q = inflate_q;

	if (!(dev.features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC))) {
		printf("hostile: indirect descriptors not offered: skipping those cases\n");
		return;
	}
	pfn_array[0] = data_pfn(0);
	set_desc(&itable[0], (uintptr_t)pfn_array, 4, 0, 0);
	one_desc("indirect-valid", q, (uintptr_t)itable, 16, VRING_DESC_F_INDIRECT);
	one_desc("indirect-table-outside", q, BAD_GPA, 64, VRING_DESC_F_INDIRECT);
	one_desc("indirect-len-24", q, (uintptr_t)itable, 24, VRING_DESC_F_INDIRECT);
	one_desc("indirect-len-0", q, (uintptr_t)itable, 0, VRING_DESC_F_INDIRECT);
	one_desc("indirect-and-next", q, (uintptr_t)itable, 16,
		 VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT);
	set_desc(&itable[0], (uintptr_t)itable, 16, VRING_DESC_F_INDIRECT, 0);
	one_desc("indirect-nested", q, (uintptr_t)itable, 16, VRING_DESC_F_INDIRECT);
	set_desc(&itable[0], (uintptr_t)pfn_array, 4, VRING_DESC_F_NEXT, 1);
	set_desc(&itable[1], (uintptr_t)pfn_array, 4, VRING_DESC_F_NEXT, 0);
	one_desc("indirect-loop", q, (uintptr_t)itable, 32, VRING_DESC_F_INDIRECT);
	set_desc(&itable[0], (uintptr_t)pfn_array, 4, VRING_DESC_F_NEXT, 7);
	one_desc("indirect-next-past-end", q, (uintptr_t)itable, 32, VRING_DESC_F_INDIRECT);
	set_desc(&itable[0], BAD_GPA, 4, 0, 0);
	one_desc("indirect-entry-outside", q, (uintptr_t)itable, 16, VRING_DESC_F_INDIRECT);
}

static void case_reporting(void)
{
	if (!report_q)
		return;
	fill_data();
	one_desc("report-device-readable", report_q, (uintptr_t)data, 16 * FW_PAGE_SIZE, 0);
	if (data_lost())
		fail_case("report-device-readable", "the device discarded pages of a malformed "
						    "report");
	one_desc("report-outside-ram", report_q, BAD_GPA, 1 << 20, VRING_DESC_F_WRITE);
}

/* A head index past the ring cannot be returned; the next, valid buffer must still work. */
static void case_bad_head(void)
{
	struct virtq *q = inflate_q;
	uint32_t id, len;
	uint16_t d = take(q);

	cases++;
	virtq_publish_raw(q, q->size + 3);
	pfn_array[0] = data_pfn(0);
	set_desc(&q->desc[d], (uintptr_t)pfn_array, 4, 0, 0);
	virtq_publish_raw(q, d);
	virtq_kick(q);
	for (;;) {
		if (virtq_wait(q, &id, &len, WAIT_MS)) {
			fail_case("head-out-of-range", "the valid buffer after it never came back");
			return;
		}
		if (id == d)
			break;
		/* A device may report the bad head itself; virtq_get already logged it. */
		q->bad_used = 0;
	}
	virtq_put_desc(q, d);
	printf("hostile: %-24s ok (next buffer returned, length %u)\n", "head-out-of-range", len);
}

/* Stray notifications and config writes: ignored, the device keeps working. */
static void case_stray(void)
{
	struct virtio_balloon_config c;

	cases++;
	mmio_write16(dev.notify_base + dev.notify_len - 2, 0x7fff); /* no such queue */
	mmio_write16(inflate_q->notify, 0x1234);		    /* a bogus value */
	virtio_cfg_write32(&dev, 0, 0x12345678);		    /* num_pages is read-only */
	virtio_cfg_read(&dev, 0, &c, 8);
	if (c.num_pages == 0x12345678)
		fail_case("config-write-num-pages", "the driver could change num_pages");
	else
		printf("hostile: %-24s ok (num_pages stays %u)\n", "stray-notify-and-config",
		       c.num_pages);
}

/* A valid inflate + deflate of the whole data area: the device still works. */
static void sanity(const char *name)
{
	struct virtq_buf b = {(uintptr_t)pfn_array, DATA_PAGES * 4, false};
	uint32_t id, len;
	unsigned int lost;
	int head;

	cases++;
	fill_data();
	for (unsigned int i = 0; i < DATA_PAGES; i++)
		pfn_array[i] = data_pfn(i);
	head = virtq_add(inflate_q, &b, 1);
	virtq_kick(inflate_q);
	if (virtq_wait(inflate_q, &id, &len, WAIT_MS) || id != (uint32_t)head || len) {
		fail_case(name, "a valid inflate buffer did not come back properly");
		return;
	}
	lost = data_lost();
	head = virtq_add(deflate_q, &b, 1);
	virtq_kick(deflate_q);
	if (virtq_wait(deflate_q, &id, &len, WAIT_MS) || id != (uint32_t)head || len) {
		fail_case(name, "a valid deflate buffer did not come back properly");
		return;
	}
	printf("hostile: %-24s ok (inflate/deflate work; %u of %u pages discarded)\n", name, lost,
	       DATA_PAGES);
}

/* ---- setup phases ------------------------------------------------------------------------------
 */

static void negotiate(void)
{
	uint64_t want = 1ULL << VIRTIO_BALLOON_F_REPORTING | 1ULL << VIRTIO_RING_F_INDIRECT_DESC |
			1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;

	if (virtio_negotiate(&dev, want))
		fw_fail("hostile: feature negotiation failed");
}

/* Register-level abuse before any queue is live; ends with a reset. */
static void register_cases(void)
{
	volatile struct virtio_pci_common_cfg *c = dev.common;
	uint16_t max;

	negotiate();
	c->queue_select = 0;
	max = c->queue_size;
	cases++;
	c->queue_size = 100;
	if (c->queue_size == 100)
		printf("hostile: %-24s note: the device accepted queue_size 100 (the driver broke "
		       "§2.7; unspecified)\n",
		       "queue-size-not-pow2");
	else
		printf("hostile: %-24s ok (rejected, queue_size stays %u)\n", "queue-size-not-pow2",
		       c->queue_size);

	cases++;
	c->queue_size = max;
	c->queue_desc_lo = (uint32_t)BAD_GPA;
	c->queue_desc_hi = (uint32_t)(BAD_GPA >> 32);
	c->queue_avail_lo = (uint32_t)BAD_GPA;
	c->queue_avail_hi = (uint32_t)(BAD_GPA >> 32);
	c->queue_used_lo = (uint32_t)BAD_GPA;
	c->queue_used_hi = (uint32_t)(BAD_GPA >> 32);
	c->queue_enable = 1;
	printf("hostile: %-24s ok (queue_enable reads %u, status 0x%x)\n", "rings-outside-ram",
	       c->queue_enable, virtio_status(&dev));
	mmio_write16(dev.notify_base, 0); /* kick the broken queue */
	if (virtio_reset(&dev))
		fw_fail("hostile: the device did not reset after the register cases");
}

static void live_setup(void)
{
	struct virtq_buf b = {(uintptr_t)pfn_array, 4, false};
	uint32_t id, len;
	uint16_t q = 0;
	int head;

	negotiate();
	if (virtq_setup(&dev, q, QUEUE_SIZE))
		fw_fail("hostile: inflate queue unavailable");
	inflate_q = &dev.vq[q++];
	if (virtq_setup(&dev, q, QUEUE_SIZE))
		fw_fail("hostile: deflate queue unavailable");
	deflate_q = &dev.vq[q++];
	if (dev.features & (1ULL << VIRTIO_BALLOON_F_REPORTING)) {
		if (virtq_setup(&dev, q, 32))
			fw_fail("hostile: reporting queue unavailable");
		report_q = &dev.vq[q++];
	}
	/* §3.1.1: the driver must not notify before DRIVER_OK; the buffer must still return. */
	cases++;
	pfn_array[0] = data_pfn(0);
	head = virtq_add(inflate_q, &b, 1);
	virtq_kick(inflate_q);
	if (virtio_driver_ok(&dev))
		fw_fail("hostile: the device refused DRIVER_OK after an early notify");
	virtq_kick(inflate_q);
	if (virtq_wait(inflate_q, &id, &len, WAIT_MS) || id != (uint32_t)head || len)
		fail_case("notify-before-driver-ok",
			  "the buffer did not come back after DRIVER_OK");
	else
		printf("hostile: %-24s ok (returned after DRIVER_OK)\n", "notify-before-driver-ok");
	/* Give the page back before the data checks below rely on it. */
	head = virtq_add(deflate_q, &b, 1);
	virtq_kick(deflate_q);
	virtq_wait(deflate_q, &id, &len, WAIT_MS);
}

/* avail->idx more than a ring ahead: the ring is broken; the device needs a reset. */
static void case_avail_runaway(void)
{
	struct virtq *q = inflate_q;
	uint32_t id, len;

	cases++;
	q->avail_idx += q->size + 5;
	*(volatile uint16_t *)&q->avail->idx = q->avail_idx;
	virtq_kick(q);
	if (!virtq_wait(q, &id, &len, 200))
		printf("hostile: %-24s note: the device returned id %u\n", "avail-idx-runaway", id);
	/* virtio 1.2 §2.1.2: the device says so with DEVICE_NEEDS_RESET. */
	if (!(virtio_status(&dev) & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		fail_case("avail-idx-runaway", "no NEEDS_RESET after a broken ring (status 0x%x)",
			  virtio_status(&dev));
		return;
	}
	printf("hostile: %-24s ok (VMM alive, status 0x%x: NEEDS_RESET)\n", "avail-idx-runaway",
	       virtio_status(&dev));
}

int main(void)
{
	if (virtio_find(&dev, VIRTIO_ID_BALLOON, 0))
		fw_fail("hostile: no virtio-balloon found");
	data = fw_alloc(DATA_PAGES * FW_PAGE_SIZE, FW_PAGE_SIZE);
	pfn_array = fw_alloc(FW_PAGE_SIZE * 2, FW_PAGE_SIZE);
	itable = fw_alloc(FW_PAGE_SIZE, FW_PAGE_SIZE);

	register_cases();
	live_setup();
	case_pfns_outside_ram();
	case_bad_addresses();
	case_writable_inflate();
	case_lengths();
	case_chains();
	case_indirect();
	case_reporting();
	case_bad_head();
	case_stray();
	sanity("sanity-after-abuse");
	if (virtio_status(&dev) & VIRTIO_CONFIG_S_NEEDS_RESET)
		fail_case("device-status", "NEEDS_RESET after recoverable errors (0x%x)",
			  virtio_status(&dev));

	case_avail_runaway();
	if (virtio_reset(&dev))
		fw_fail("hostile: the device did not reset after a broken ring");
	report_q = NULL;
	live_setup();
	sanity("sanity-after-reset");

	printf("hostile: %u cases, %u failed\n", cases, failures);
	if (failures)
		fw_fail("hostile: %u cases failed", failures);
	printf("hostile: PASS\n");
	return 0;
}
