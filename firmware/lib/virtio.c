/* Polling virtio 1.2 modern PCI driver with split virtqueues (see virtio.h). */
#include "virtio.h"

#include <stddef.h>

#define CAP_FIELD(pos, field) ((pos) + offsetof(struct virtio_pci_cap, field))

/* Map one vendor capability into @base/@len after checking it lies inside its BAR. */
static int map_cap(struct virtio_dev *d, uint8_t pos, volatile uint8_t **base, uint32_t *len)
{
	const struct pci_func *f = &d->pci;
	uint8_t bar = pci_read8(f, CAP_FIELD(pos, bar));
	uint32_t off = pci_read32(f, CAP_FIELD(pos, offset));
	uint32_t length = pci_read32(f, CAP_FIELD(pos, length));

	if (bar > 5 || !d->bar_size[bar] || (uint64_t)off + length > d->bar_size[bar]) {
		printf("virtio: capability at 0x%x (BAR %u, 0x%x+0x%x) outside BAR of 0x%llx "
		       "bytes\n",
		       pos, bar, off, length,
		       bar > 5 ? 0ULL : (unsigned long long)d->bar_size[bar]);
		return -1;
	}
	*base = (volatile uint8_t *)(uintptr_t)(d->bar_addr[bar] + off);
	*len = length;
	return 0;
}

int virtio_find(struct virtio_dev *d, uint16_t type, unsigned int index)
{
	volatile uint8_t *common = NULL;
	uint32_t len, common_len = 0, isr_len = 0;
	uint8_t pos = 0;

	memset(d, 0, sizeof(*d));
	if (!pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_PCI_MODERN_ID + type, index, &d->pci)) {
		printf("virtio: no device %04x:%04x on bus 0\n", VIRTIO_PCI_VENDOR_ID,
		       VIRTIO_PCI_MODERN_ID + type);
		return -1;
	}
	for (unsigned int bar = 0; bar < 6; bar++) {
		uint32_t lo = pci_read32(&d->pci, PCI_BASE_ADDRESS_0 + 4 * bar);

		pci_bar(&d->pci, bar, &d->bar_addr[bar], &d->bar_size[bar]);
		if ((lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64 &&
		    !(lo & PCI_BASE_ADDRESS_SPACE_IO))
			bar++; /* the upper half of a 64-bit BAR */
	}
	pci_enable(&d->pci);
	while ((pos = pci_next_cap(&d->pci, PCI_CAP_ID_VNDR, pos))) {
		uint8_t type = pci_read8(&d->pci, CAP_FIELD(pos, cfg_type));
		volatile uint8_t *base;

		/* §4.1.4: use the first capability of each type. */
		if (type == VIRTIO_PCI_CAP_COMMON_CFG && !common) {
			if (map_cap(d, pos, &common, &common_len))
				return -1;
		} else if (type == VIRTIO_PCI_CAP_ISR_CFG && !d->isr) {
			if (map_cap(d, pos, &d->isr, &isr_len))
				return -1;
		} else if (type == VIRTIO_PCI_CAP_DEVICE_CFG && !d->device_cfg) {
			if (map_cap(d, pos, &d->device_cfg, &d->device_cfg_len))
				return -1;
		} else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG && !d->notify_base) {
			if (map_cap(d, pos, &base, &len))
				return -1;
			d->notify_base = base;
			d->notify_len = len;
			d->notify_mult =
				pci_read32(&d->pci, pos + offsetof(struct virtio_pci_notify_cap,
								   notify_off_multiplier));
		}
	}
	if (!common || common_len < sizeof(struct virtio_pci_common_cfg) || !d->isr || !isr_len ||
	    !d->notify_base) {
		printf("virtio: %02x.%x lacks a usable common/ISR/notify capability\n", d->pci.dev,
		       d->pci.fn);
		return -1;
	}
	d->common = (volatile struct virtio_pci_common_cfg *)common;
	return 0;
}

uint8_t virtio_status(struct virtio_dev *d)
{
	return d->common->device_status;
}

void virtio_set_status(struct virtio_dev *d, uint8_t status)
{
	d->common->device_status = status;
}

int virtio_reset(struct virtio_dev *d)
{
	uint64_t deadline;

	virtio_set_status(d, 0);
	deadline = fw_deadline(1000);
	while (virtio_status(d) != 0) {
		if (fw_expired(deadline)) {
			printf("virtio: device status stuck at 0x%x after reset\n",
			       virtio_status(d));
			return -1;
		}
		fw_pause();
	}
	for (unsigned int i = 0; i < VIRTIO_FW_MAX_QUEUES; i++)
		d->vq[i].size = 0;
	return 0;
}

int virtio_negotiate(struct virtio_dev *d, uint64_t wanted)
{
	volatile struct virtio_pci_common_cfg *c = d->common;
	uint8_t st;

	if (virtio_reset(d))
		return -1;
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	c->device_feature_select = 0;
	d->device_features = c->device_feature;
	c->device_feature_select = 1;
	d->device_features |= (uint64_t)c->device_feature << 32;
	if (!(d->device_features & (1ULL << VIRTIO_F_VERSION_1))) {
		printf("virtio: device does not offer VIRTIO_F_VERSION_1 (features 0x%llx)\n",
		       (unsigned long long)d->device_features);
		return -1;
	}
	d->features = d->device_features & (wanted | 1ULL << VIRTIO_F_VERSION_1);
	c->guest_feature_select = 0;
	c->guest_feature = (uint32_t)d->features;
	c->guest_feature_select = 1;
	c->guest_feature = (uint32_t)(d->features >> 32);
	st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
	virtio_set_status(d, st);
	if (!(virtio_status(d) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		printf("virtio: device refused features 0x%llx\n", (unsigned long long)d->features);
		return -1;
	}
	return 0;
}

int virtq_setup(struct virtio_dev *d, uint16_t index, uint16_t size)
{
	volatile struct virtio_pci_common_cfg *c = d->common;
	struct virtq *q;
	uint16_t max, noff;
	uint64_t addr;

	if (index >= VIRTIO_FW_MAX_QUEUES)
		return -1;
	q = &d->vq[index];
	c->queue_select = index;
	max = c->queue_size;
	if (!max)
		return -1;
	if (max & (max - 1))
		printf("virtio: queue %u: device offers a queue size of %u, not a power of two\n",
		       index, max);
	while (size > max)
		size >>= 1;
	if (!size)
		return -1;
	if (size != max)
		c->queue_size = size;
	memset(q, 0, sizeof(*q));
	q->index = index;
	q->size = size;
	q->desc = fw_alloc(sizeof(struct vring_desc) * size, FW_PAGE_SIZE);
	q->avail = fw_alloc(sizeof(struct vring_avail) + 2 * size + 2, FW_PAGE_SIZE);
	q->used = fw_alloc(sizeof(struct vring_used) + sizeof(struct vring_used_elem) * size + 2,
			   FW_PAGE_SIZE);
	q->next_free = fw_alloc(2 * size, 8);
	q->chain_len = fw_alloc(2 * size, 8);
	q->inflight = fw_alloc(size, 8);
	for (uint16_t i = 0; i < size; i++)
		q->next_free[i] = i + 1;
	q->nr_free = size;
	q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT; /* we poll */
	addr = (uintptr_t)q->desc;
	c->queue_desc_lo = (uint32_t)addr;
	c->queue_desc_hi = (uint32_t)(addr >> 32);
	addr = (uintptr_t)q->avail;
	c->queue_avail_lo = (uint32_t)addr;
	c->queue_avail_hi = (uint32_t)(addr >> 32);
	addr = (uintptr_t)q->used;
	c->queue_used_lo = (uint32_t)addr;
	c->queue_used_hi = (uint32_t)(addr >> 32);
	c->queue_msix_vector = VIRTIO_MSI_NO_VECTOR;
	noff = c->queue_notify_off;
	if ((uint64_t)noff * d->notify_mult + 2 > d->notify_len) {
		printf("virtio: queue %u notify offset %u x %u outside the notify region (%u)\n",
		       index, noff, d->notify_mult, d->notify_len);
		return -1;
	}
	q->notify = d->notify_base + (uint64_t)noff * d->notify_mult;
	c->queue_enable = 1;
	if (c->queue_enable != 1) {
		printf("virtio: queue %u did not enable\n", index);
		return -1;
	}
	return 0;
}

int virtio_driver_ok(struct virtio_dev *d)
{
	virtio_set_status(d, virtio_status(d) | VIRTIO_CONFIG_S_DRIVER_OK);
	if (virtio_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET) {
		printf("virtio: device needs reset right after DRIVER_OK\n");
		return -1;
	}
	return 0;
}

static void publish(struct virtq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx % q->size] = head;
	q->inflight[head] = 1;
	fw_barrier(); /* x86 keeps stores in order: the entry is visible before the index */
	q->avail_idx++;
	*(volatile uint16_t *)&q->avail->idx = q->avail_idx;
}

int virtq_add(struct virtq *q, const struct virtq_buf *bufs, unsigned int n)
{
	uint16_t head, i;

	if (!n || n > q->nr_free)
		return -1;
	head = i = q->free_head;
	for (unsigned int k = 0; k < n; k++) {
		struct vring_desc *dsc = &q->desc[i];

		dsc->addr = bufs[k].addr;
		dsc->len = bufs[k].len;
		dsc->flags = (bufs[k].write ? VRING_DESC_F_WRITE : 0) |
			     (k + 1 < n ? VRING_DESC_F_NEXT : 0);
		i = q->next_free[i];
		dsc->next = k + 1 < n ? i : 0;
	}
	q->free_head = i;
	q->nr_free -= n;
	q->chain_len[head] = n;
	publish(q, head);
	return head;
}

uint16_t virtq_take_desc(struct virtq *q)
{
	uint16_t i = q->free_head;

	if (!q->nr_free)
		return 0xffff;
	q->free_head = q->next_free[i];
	q->nr_free--;
	return i;
}

void virtq_put_desc(struct virtq *q, uint16_t i)
{
	q->next_free[i] = q->free_head;
	q->free_head = i;
	q->nr_free++;
}

void virtq_publish_raw(struct virtq *q, uint16_t head)
{
	if (head < q->size) {
		publish(q, head);
		return;
	}
	q->avail->ring[q->avail_idx % q->size] = head;
	fw_barrier();
	q->avail_idx++;
	*(volatile uint16_t *)&q->avail->idx = q->avail_idx;
}

void virtq_kick(struct virtq *q)
{
	fw_mb(); /* ring writes before the notification (§2.7.13) */
	mmio_write16(q->notify, q->index);
}

static void free_chain(struct virtq *q, uint16_t head)
{
	uint16_t i = head, n = q->chain_len[head];

	for (uint16_t k = 0; k + 1 < n; k++)
		i = q->desc[i].next;
	q->next_free[i] = q->free_head;
	q->free_head = head;
	q->nr_free += n;
	q->chain_len[head] = 0;
}

bool virtq_get(struct virtq *q, uint32_t *id, uint32_t *len)
{
	uint16_t idx = *(volatile uint16_t *)&q->used->idx;
	struct vring_used_elem e;

	if (idx == q->last_used)
		return false;
	fw_barrier(); /* read the element after the index (x86 keeps loads in order) */
	e = *(volatile struct vring_used_elem *)&q->used->ring[q->last_used % q->size];
	q->last_used++;
	*id = e.id;
	*len = e.len;
	if (e.id >= q->size || !q->inflight[e.id]) {
		q->bad_used++;
		printf("virtio: queue %u: device returned id %u that is not in flight\n", q->index,
		       e.id);
		return true;
	}
	q->inflight[e.id] = 0;
	if (q->chain_len[e.id])
		free_chain(q, (uint16_t)e.id);
	return true;
}

int virtq_wait(struct virtq *q, uint32_t *id, uint32_t *len, uint64_t ms)
{
	uint64_t deadline = fw_deadline(ms);

	while (!virtq_get(q, id, len)) {
		if (fw_expired(deadline))
			return -1;
		fw_pause();
	}
	return 0;
}

uint8_t virtio_generation(struct virtio_dev *d)
{
	return d->common->config_generation;
}

uint8_t virtio_cfg_read(struct virtio_dev *d, uint32_t off, void *buf, uint32_t len)
{
	uint8_t *out = buf, g0, g1;
	unsigned int tries = 0;

	if (!d->device_cfg || off > d->device_cfg_len || len > d->device_cfg_len - off)
		fw_fail("virtio: config read 0x%x+%u outside the %u-byte device configuration", off,
			len, d->device_cfg_len);
	do {
		g0 = virtio_generation(d);
		for (uint32_t i = 0; i < len;) {
			if (!((off + i) & 3) && len - i >= 4) {
				uint32_t v = mmio_read32(d->device_cfg + off + i);

				memcpy(out + i, &v, 4);
				i += 4;
			} else {
				out[i] = mmio_read8(d->device_cfg + off + i);
				i++;
			}
		}
		g1 = virtio_generation(d);
	} while (g0 != g1 && ++tries < 1000);
	return g1;
}

void virtio_cfg_write32(struct virtio_dev *d, uint32_t off, uint32_t v)
{
	if (!d->device_cfg || off > d->device_cfg_len || d->device_cfg_len - off < 4)
		fw_fail("virtio: config write at 0x%x outside the %u-byte device configuration",
			off, d->device_cfg_len);
	mmio_write32(d->device_cfg + off, v);
}
