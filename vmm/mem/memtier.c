#include "memtier.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util.h"
#include "memtier_priv.h"

const char *memtier_algo_name(enum cs_algo algo)
{
	return algo == CS_ALGO_ZSTD ? "zstd" : "lz4";
}

/* --- lifecycle and API ----------------------------------------------------------------------- */

int memtier_create(struct guest_mem *gm, const struct memtier_config *cfg, struct memtier **out)
{
	struct memtier *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	t->gm = gm;
	t->cfg = *cfg;
	t->uffd = t->pagemap_fd = t->idle_fd = -1;
	pthread_mutex_init(&t->wlock, NULL);
	pthread_mutex_init(&t->lat_lock, NULL);
	t->nr_chunks = (gm->nr_pages + WSC_CHUNK - 1) / WSC_CHUNK;
	t->registered = calloc(t->nr_chunks, 1);
	t->lat = calloc(LAT_RING, sizeof(*t->lat));
	t->fault_buf = aligned_alloc(PG, PG);
	t->zero_buf = aligned_alloc(PG, PG);
	if (!t->registered || !t->lat || !t->fault_buf || !t->zero_buf) {
		ret = -ENOMEM;
		goto err;
	}
	memset(t->zero_buf, 0, PG);
	ret = cs_store_init(&t->store, gm->nr_pages);
	if (!ret)
		ret = wsc_init(&t->clock, gm->nr_pages);
	if (!ret)
		ret = cs_codec_init(&t->enc, cfg->algo, cfg->level);
	if (!ret)
		ret = cs_codec_init(&t->dec, cfg->algo, cfg->level);
	if (ret)
		goto err;
	ret = uffd_open(true, &t->uffd);
	if (ret) {
		pr_err("compressed tier: userfaultfd with write-protect: %s%s", strerror(-ret),
		       ret == -EPERM ? " (vm.unprivileged_userfaultfd=0: run as root)" : "");
		goto err;
	}
	t->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (!getenv("VMM_MEMTIER_NO_IDLE"))
		t->idle_fd = open("/sys/kernel/mm/page_idle/bitmap", O_RDWR | O_CLOEXEC);
	ret = uffd_thread_start(t->uffd, &mt_fault_ops, t, &t->uthread);
	if (!ret)
		ret = mt_start_worker(t);
	if (ret) {
		pr_err("compressed tier: starting its threads: %s", strerror(-ret));
		goto err;
	}
	pthread_mutex_lock(&gm->lock);
	gm_set_discard_hook(gm, mt_on_discard, t);
	pthread_mutex_unlock(&gm->lock);
	*out = t;
	return 0;
err:
	memtier_destroy(t);
	return ret;
}

void memtier_destroy(struct memtier *t)
{
	if (!t)
		return;
	if (t->worker_started) {
		pthread_mutex_lock(&t->wlock);
		t->stop = true;
		pthread_cond_broadcast(&t->wcond);
		pthread_mutex_unlock(&t->wlock);
		pthread_join(t->worker, NULL);
	}
	uffd_thread_stop(t->uthread);
	if (t->gm->discard_opaque == t) {
		pthread_mutex_lock(&t->gm->lock);
		gm_set_discard_hook(t->gm, NULL, NULL);
		pthread_mutex_unlock(&t->gm->lock);
	}
	/* Closing the fd unregisters every range: later touches fault in ordinary zero pages. */
	if (t->uffd >= 0)
		close(t->uffd);
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	if (t->idle_fd >= 0)
		close(t->idle_fd);
	cs_store_destroy(&t->store);
	wsc_destroy(&t->clock);
	cs_codec_free(&t->enc);
	cs_codec_free(&t->dec);
	for (unsigned int i = 0; i < 2; i++)
		free(t->dirty_bm[i]);
	free(t->registered);
	free(t->lat);
	free(t->fault_buf);
	free(t->zero_buf);
	pthread_mutex_destroy(&t->wlock);
	pthread_mutex_destroy(&t->lat_lock);
	if (t->worker_started) {
		pthread_cond_destroy(&t->wcond);
		pthread_cond_destroy(&t->dcond);
	}
	free(t);
}

int memtier_reclaim(struct memtier *t, uint64_t target_bytes, uint64_t timeout_ms, uint64_t *job)
{
	pthread_mutex_lock(&t->wlock);
	if (t->job_pending || t->job_running || t->stop) {
		pthread_mutex_unlock(&t->wlock);
		return -EBUSY;
	}
	t->job = ++t->next_job;
	t->job_target = target_bytes;
	t->job_timeout_ms = timeout_ms;
	t->job_pending = true;
	*job = t->job;
	pthread_cond_broadcast(&t->wcond);
	pthread_mutex_unlock(&t->wlock);
	return 0;
}

int memtier_reclaim_sync(struct memtier *t, uint64_t target_bytes, uint64_t timeout_ms,
			 struct memtier_result *r)
{
	uint64_t job;
	int ret = memtier_reclaim(t, target_bytes, timeout_ms, &job);

	if (ret)
		return ret;
	pthread_mutex_lock(&t->wlock);
	while (t->done_job < job)
		pthread_cond_wait(&t->dcond, &t->wlock);
	*r = t->last;
	pthread_mutex_unlock(&t->wlock);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void latency_figures(struct memtier *t, struct memtier_stats *out)
{
	uint32_t *v = malloc(LAT_RING * sizeof(*v));
	uint64_t n;

	pthread_mutex_lock(&t->lat_lock);
	n = MIN(t->lat_n, (uint64_t)LAT_RING);
	if (v)
		memcpy(v, t->lat, n * sizeof(*v));
	pthread_mutex_unlock(&t->lat_lock);
	if (!v || !n) {
		free(v);
		return;
	}
	qsort(v, n, sizeof(*v), cmp_u32);
	out->fault_samples = n;
	out->fault_p50_ns = v[(n - 1) * 50 / 100];
	out->fault_p99_ns = v[(n - 1) * 99 / 100];
	out->fault_max_ns = v[n - 1];
	free(v);
}

void memtier_get_stats(struct memtier *t, struct memtier_stats *out)
{
	struct cs_stats cs;

	memset(out, 0, sizeof(*out));
	cs_get_stats(&t->store, &cs);
	out->algo = memtier_algo_name(t->cfg.algo);
	out->stored_pages = cs.compressed_pages + cs.same_pages;
	out->compressed_pages = cs.compressed_pages;
	out->compressed_bytes = cs.compressed_bytes;
	out->store_alloc_bytes = cs.alloc_bytes;
	out->same_filled_pages = cs.same_pages;
	out->zero_pages = cs.zero_pages;
	pthread_mutex_lock(&t->wlock);
	out->incompressible_skipped = t->incomp_total;
	out->shared_skipped = t->shared_total;
	out->evicted_pages = t->evicted_total;
	out->reclaim_runs = t->runs;
	out->reclaim_input_bytes = t->input_total;
	out->reclaim_cpu_ns = t->cpu_total;
	out->wp_faults = t->wp_faults;
	out->busy = t->job_pending || t->job_running || t->limit_running;
	pthread_mutex_unlock(&t->wlock);
	out->faults = __atomic_load_n(&t->faults, __ATOMIC_RELAXED);
	out->faults_stored = __atomic_load_n(&t->faults_stored, __ATOMIC_RELAXED);
	out->faults_zero = __atomic_load_n(&t->faults_zero, __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&t->errors, __ATOMIC_RELAXED);
	out->checksum_errors = __atomic_load_n(&t->csum_errors, __ATOMIC_RELAXED);
	out->registered_bytes = __atomic_load_n(&t->registered_pages, __ATOMIC_RELAXED) * PG;
	out->mem_limit_bytes = t->cfg.mem_limit_bytes;
	out->idle_tracking = t->idle_fd >= 0;
	out->dirty_logging = t->dirty_on;
	latency_figures(t, out);
}
