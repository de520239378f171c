/* The compressed tier's userfaultfd thread: fault-in of stored pages and write-protect faults. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../util.h"
#include "memtier_priv.h"

static void lat_record(struct memtier *t, uint64_t ns)
{
	pthread_mutex_lock(&t->lat_lock);
	t->lat[t->lat_n++ % LAT_RING] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	pthread_mutex_unlock(&t->lat_lock);
}

/* The tier cannot give a page back: say why and stop the VM (once; later failures only log). */
static void stop_vm(struct memtier *t, const char *msg)
{
	inc(&t->errors);
	pr_err("%s", msg);
	if (!__atomic_exchange_n(&t->dead, true, __ATOMIC_SEQ_CST) && t->cfg.fatal)
		t->cfg.fatal(t->cfg.opaque, msg);
}

static void integrity_failure(struct memtier *t, uint64_t idx, int err, const struct cs_entry *e)
{
	char msg[256];

	if (err == -EBADMSG)
		inc(&t->csum_errors);
	snprintf(msg, sizeof(msg),
		 "compressed tier: stored copy of guest page 0x%" PRIx64
		 " failed its integrity check (%s, %s entry, stored crc32c 0x%08x): stopping the "
		 "VM rather than give the guest wrong data",
		 idx_gpa(t->gm, idx), err == -EBADMSG ? "checksum mismatch" : "undecodable blob",
		 e->kind == CS_SAME   ? "same-filled"
		 : e->kind == CS_ZSTD ? "zstd"
				      : "lz4",
		 e->csum);
	stop_vm(t, msg);
}

/*
 * Fill the missing page at @p. gm->lock is held across the UFFDIO_COPY so a balloon discard of the
 * same page cannot slip between taking the entry and installing its content.
 */
static void on_missing(void *opaque, uintptr_t addr, bool write)
{
	struct memtier *t = opaque;
	struct guest_mem *gm = t->gm;
	uint8_t *p = (uint8_t *)addr;
	uint64_t t0 = now_ns(), idx;
	struct cs_entry e;
	int ret = 0;

	if (p < gm->base || p >= gm->base + gm->size) {
		uffd_zeropage(t->uffd, p, PG); /* not guest RAM: cannot be registered */
		return;
	}
	idx = (uint64_t)(p - gm->base) / PG;
	pthread_mutex_lock(&gm->lock);
	if (gm->state[idx] != GM_PAGE_COMPRESSED || !cs_take(&t->store, idx, &e)) {
		/* Never stored (untouched, ballooned, reported): it reads as zeros. */
		if (gm->state[idx] == GM_PAGE_COMPRESSED) {
			inc(&t->errors);
			gm_set_state_locked(gm, idx, GM_PAGE_RESIDENT);
		}
		/* Counted before the fill: the woken thread may read the counters at once. */
		inc(&t->faults_zero);
		inc(&t->faults);
		ret = write ? uffd_copy(t->uffd, p, t->zero_buf, PG)
			    : uffd_zeropage(t->uffd, p, PG);
		goto out;
	}
	ret = cs_decode(&t->dec, idx, &e, t->fault_buf);
	if (ret) {
		gm_set_state_locked(gm, idx, GM_PAGE_RESIDENT);
		pthread_mutex_unlock(&gm->lock);
		integrity_failure(t, idx, ret, &e);
		cs_entry_free(&e);
		/* The VM is stopped and its vCPUs kicked: release the waiter without the data. */
		uffd_zeropage(t->uffd, p, PG);
		return;
	}
	gm_set_state_locked(gm, idx, GM_PAGE_RESIDENT);
	wsc_ref(&t->clock, idx);
	inc(&t->faults_stored);
	inc(&t->faults);
	if (e.kind == CS_SAME && !e.pattern && !write)
		ret = uffd_zeropage(t->uffd, p, PG);
	else
		ret = uffd_copy(t->uffd, p, t->fault_buf, PG);
	cs_entry_free(&e);
out:
	pthread_mutex_unlock(&gm->lock);
	if (ret && ret != -EEXIST) {
		char msg[160];

		snprintf(msg, sizeof(msg),
			 "compressed tier: cannot fill guest page 0x%" PRIx64 ": %s",
			 idx_gpa(gm, idx), strerror(-ret));
		stop_vm(t, msg);
		uffd_wake(t->uffd, p, PG);
		return;
	}
	lat_record(t, now_ns() - t0);
}

/*
 * A write hit a write-protected page. Inside the worker's current batch the worker's un-protect
 * wakes the writer; anywhere else the protection is stale (it cannot be: lift it anyway).
 */
static void on_wp(void *opaque, uintptr_t addr)
{
	struct memtier *t = opaque;
	bool inside;

	pthread_mutex_lock(&t->wlock);
	inside = addr >= t->batch_lo && addr < t->batch_hi;
	t->wp_faults++;
	pthread_mutex_unlock(&t->wlock);
	if (!inside)
		uffd_writeprotect(t->uffd, (void *)addr, PG, false, true);
}

const struct uffd_ops mt_fault_ops = {.missing = on_missing, .wp = on_wp};
