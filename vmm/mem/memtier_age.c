/*
 * The page-age signals the compressed tier's worker reads: KVM dirty logging (pages the guest
 * wrote), /proc/self/pagemap (present, exclusively mapped, the host PFN) and idle-page tracking
 * (/sys/kernel/mm/page_idle: accessed since the hand last passed). Called on the worker only.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../util.h"
#include "memtier_priv.h"

/* Dirty logging on every RAM slot (slot i = region i, as vm.c maps them), once. */
void mt_dirty_start(struct memtier *t)
{
	struct guest_mem *gm = t->gm;

	if (t->cfg.vm_fd < 0 || t->dirty_on || t->dirty_failed)
		return;
	for (unsigned int i = 0; i < gm->nr_regions; i++) {
		const struct gm_region *r = &gm->regions[i];
		struct kvm_userspace_memory_region mr = {
			.slot = i,
			.flags = KVM_MEM_LOG_DIRTY_PAGES,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uintptr_t)r->hva,
		};

		t->dirty_bm[i] = calloc((r->size / PG + 63) / 64, 8);
		if (!t->dirty_bm[i] || ioctl(t->cfg.vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
			pr_warn("compressed tier: KVM dirty logging unavailable (%s): the clock "
				"goes without it",
				strerror(t->dirty_bm[i] ? errno : ENOMEM));
			t->dirty_failed = true;
			return;
		}
	}
	t->dirty_on = true;
}

/* Pages the guest wrote since the last harvest are referenced. */
void mt_dirty_harvest(struct memtier *t)
{
	struct guest_mem *gm = t->gm;

	if (!t->dirty_on)
		return;
	for (unsigned int i = 0; i < gm->nr_regions; i++) {
		const struct gm_region *r = &gm->regions[i];
		struct kvm_dirty_log dl = {.slot = i, .dirty_bitmap = t->dirty_bm[i]};

		if (ioctl(t->cfg.vm_fd, KVM_GET_DIRTY_LOG, &dl) == 0)
			wsc_ref_bitmap(&t->clock, r->first_pg, t->dirty_bm[i], r->size / PG);
	}
}

void mt_read_pagemap(struct memtier *t, const uint8_t *hva, uint64_t n, uint64_t *pm)
{
	off_t off = (off_t)((uintptr_t)hva / PG * 8);

	if (t->pagemap_fd < 0 || pread(t->pagemap_fd, pm, n * 8, off) != (ssize_t)(n * 8)) {
		/* Unknown: treat pages as exclusive (no KSM skipping). */
		for (uint64_t i = 0; i < n; i++)
			pm[i] = PM_PRESENT | PM_EXCLUSIVE;
	}
}

/* Idle-page tracking: what happened to each present page since it was armed; then re-arm. */
void mt_idle_scan(struct memtier *t, const uint64_t *pm, uint64_t n, int8_t *idle)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t pfn = pm[i] & PM_PFN_MASK, word;
		off_t off = (off_t)(pfn / 64 * 8);

		idle[i] = WSC_IDLE_UNKNOWN;
		if (t->idle_fd < 0 || !(pm[i] & PM_PRESENT) || !pfn)
			continue;
		if (pread(t->idle_fd, &word, 8, off) != 8)
			continue;
		idle[i] = word >> (pfn % 64) & 1 ? WSC_IDLE_IDLE : WSC_IDLE_ACCESSED;
		word = 1ULL << (pfn % 64);
		if (pwrite(t->idle_fd, &word, 8, off) != 8)
			idle[i] = WSC_IDLE_UNKNOWN;
	}
}
