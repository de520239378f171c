/* Snapshot create and restore of a machine (snapshot.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../machine.h"
#include "../util.h"
#include "../vcpu.h"
#include "snapshot.h"
#include "vcpu_state.h"

#define CONFIG_MAGIC 0x43464731u /* "CFG1" */

static void put_str(struct state_out *o, const char *s)
{
	uint32_t n = s ? (uint32_t)strlen(s) : 0;

	state_put_u32(o, n);
	state_put(o, s, n);
}

/* A string of at most @max bytes without NULs, malloc'ed (NULL after an error). */
static char *get_str(struct state_in *in, uint32_t max)
{
	uint32_t n = state_get_u32(in);
	char *s;

	if (n > max || n > in->len - in->off) {
		state_fail(in, "string length");
		return NULL;
	}
	s = calloc(1, n + 1);
	if (!s) {
		in->err = -ENOMEM;
		return NULL;
	}
	state_get(in, s, n);
	if (strlen(s) != n)
		state_fail(in, "NUL in a string");
	return s;
}

static void config_save(const struct machine_config *c, struct state_out *o)
{
	state_put_u32(o, CONFIG_MAGIC);
	state_put_u64(o, c->vm.mem_bytes);
	state_put_u32(o, c->vm.nr_vcpus);
	state_put_bool(o, c->vm.merge);
	state_put_bool(o, c->vm.hugepages);
	state_put_u32(o, c->compress);
	state_put_u32(o, (uint32_t)c->compress_level);
	state_put_u64(o, c->mem_limit_bytes);
	state_put_bool(o, c->balloon.enabled);
	state_put_bool(o, c->balloon.deflate_on_oom);
	state_put_bool(o, c->balloon.free_page_reporting);
	state_put_bool(o, c->balloon.stats);
	state_put_u32(o, c->balloon.stats_period_s);
	state_put_bool(o, c->auto_balloon);
	state_put(o, &c->policy, sizeof(c->policy));
	state_put_bool(o, c->rng.enabled);
	state_put_u64(o, c->rng.rate_bytes_per_s);
	state_put_u64(o, c->rng.burst_bytes);
	state_put_u32(o, c->nr_disks);
	for (unsigned int i = 0; i < c->nr_disks; i++) {
		put_str(o, c->disks[i].path);
		state_put_bool(o, c->disks[i].ro);
		state_put_u32(o, c->disks[i].cache);
		state_put(o, c->disks[i].serial, sizeof(c->disks[i].serial));
		state_put_u32(o, c->disks[i].nr_queues);
	}
	state_put_bool(o, c->vconsole);
	state_put_bool(o, c->await_command);
	state_put_bool(o, c->firmware != NULL);
}

static int config_load(struct snapshot_restore *r, struct machine_config *c, struct state_in *in)
{
	if (state_get_u32(in) != CONFIG_MAGIC)
		return state_fail(in, "config tag");
	c->vm.mem_bytes = state_get_u64(in);
	c->vm.nr_vcpus = state_get_u32(in);
	c->vm.merge = state_get_bool(in);
	c->vm.hugepages = state_get_bool(in);
	c->compress = state_get_u32(in);
	c->compress_level = (int)state_get_u32(in);
	c->mem_limit_bytes = state_get_u64(in);
	c->balloon.enabled = state_get_bool(in);
	c->balloon.deflate_on_oom = state_get_bool(in);
	c->balloon.free_page_reporting = state_get_bool(in);
	c->balloon.stats = state_get_bool(in);
	c->balloon.stats_period_s = state_get_u32(in);
	c->auto_balloon = state_get_bool(in);
	state_get(in, &c->policy, sizeof(c->policy));
	c->rng.enabled = state_get_bool(in);
	c->rng.rate_bytes_per_s = state_get_u64(in);
	c->rng.burst_bytes = state_get_u64(in);
	c->nr_disks = state_get_u32(in);
	if (c->nr_disks > MACHINE_MAX_DISKS)
		return state_fail(in, "disk count");
	for (unsigned int i = 0; i < c->nr_disks && !in->err; i++) {
		r->disk_paths[i] = get_str(in, 4095);
		c->disks[i].path = r->disk_paths[i];
		c->disks[i].ro = state_get_bool(in);
		c->disks[i].cache = state_get_u32(in);
		state_get(in, c->disks[i].serial, sizeof(c->disks[i].serial));
		c->disks[i].serial[sizeof(c->disks[i].serial) - 1] = '\0';
		c->disks[i].nr_queues = state_get_u32(in);
		if (c->disks[i].cache > BLK_CACHE_NONE)
			state_fail(in, "disk cache mode");
	}
	c->vconsole = state_get_bool(in);
	c->await_command = state_get_bool(in);
	if (state_get_bool(in))
		return state_fail(in, "firmware guests cannot be restored");
	if (state_in_end(in))
		return in->err;
	/* The rest is checked by machine_create() as for a command line. */
	if (c->vm.mem_bytes < 64 * MiB || c->vm.mem_bytes % (2 * MiB) || c->vm.nr_vcpus < 1 ||
	    c->vm.nr_vcpus > 254 || c->compress > COMPRESS_ZSTD)
		return state_fail(in, "machine size");
	/* What the command line's parsers would have refused. */
	if (c->auto_balloon && (c->policy.low_pct >= c->policy.high_pct ||
				c->policy.high_pct > 100 || c->policy.period_ms == 0))
		return state_fail(in, "autopilot options");
	if (c->rng.enabled &&
	    (c->rng.rate_bytes_per_s < 1 || c->rng.rate_bytes_per_s > RNG_MAX_RATE))
		return state_fail(in, "rng rate");
	return 0;
}

static int join_path(char *out, size_t n, const char *dir, const char *name)
{
	return (size_t)snprintf(out, n, "%s/%s", dir, name) >= n ? -ENAMETOOLONG : 0;
}

static int save_state(struct machine *m, const char *path, uint64_t *bytes)
{
	struct vm *vm = &m->vm;
	struct snap_writer w;
	struct state_out o;
	struct stat st;
	int ret;

	snap_writer_init(&w);
	state_out_init(&o);
	config_save(&m->cfg, &o);
	snap_add_section(&w, "config", &o);
	state_out_free(&o);
	ret = vm_state_save(vm, &o);
	snap_add_section(&w, "vm", &o);
	state_out_free(&o);
	for (unsigned int i = 0; i < vm->nr_vcpus && !ret; i++) {
		char tag[SNAP_TAG_LEN];

		snprintf(tag, sizeof(tag), "vcpu.%u", i);
		ret = vcpu_state_save(&vm->vcpus[i], &o);
		snap_add_section(&w, tag, &o);
		state_out_free(&o);
	}
	snap_memory_state_save(&vm->gm, &o);
	snap_add_section(&w, "memory", &o);
	state_out_free(&o);
	if (!ret)
		ret = machine_devices_save(m, &w);
	if (ret) {
		state_out_free(&w.out);
		return ret;
	}
	ret = snap_writer_finish(&w, path);
	if (!ret && stat(path, &st) == 0)
		*bytes = (uint64_t)st.st_size;
	return ret;
}

int snapshot_create(struct machine *m, const char *dir, bool stop, struct snapshot_result *r,
		    char *why, size_t why_len)
{
	struct vm *vm = &m->vm;
	struct snapshot_result res = {0};
	char state[4200], mem[4200], tmp[4200];
	uint64_t t0 = now_ns(), tp;
	bool was_running;
	int ret;

	why[0] = '\0';
	if (join_path(state, sizeof(state), dir, "state") ||
	    join_path(mem, sizeof(mem), dir, "memory") ||
	    join_path(tmp, sizeof(tmp), dir, "memory.tmp")) {
		snprintf(why, why_len, "directory path too long");
		return -ENAMETOOLONG;
	}
	/* A --volume image is unlinked and lives only in this process (vmm/volume.h). */
	for (unsigned int i = 0; i < m->cfg.nr_disks; i++) {
		if (!strncmp(m->cfg.disks[i].path, "/proc/self/fd/", 14)) {
			snprintf(why, why_len,
				 "a guest with --volume cannot be snapshotted (its "
				 "image exists only in this process)");
			return -ENOTSUP;
		}
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(why, why_len, "cannot create %s: %s", dir, strerror(errno));
		return ret;
	}
	was_running = vm_get_state(vm) == VM_RUNNING;
	if (was_running && vm_pause(vm) < 0) {
		snprintf(why, why_len, "the VM is not running");
		return -EBUSY;
	}
	if (vm_get_state(vm) != VM_PAUSED) {
		snprintf(why, why_len, "the VM is %s", vm_state_name(vm_get_state(vm)));
		return -EBUSY;
	}
	tp = now_ns();
	ret = machine_devices_quiesce(m);
	if (ret) {
		snprintf(why, why_len, "devices could not be quiesced: %s", strerror(-ret));
		goto out;
	}
	/* The old state goes first: the directory never pairs it with new memory. */
	if (unlink(state) < 0 && errno != ENOENT) {
		ret = -errno;
		snprintf(why, why_len, "%s: %s", state, strerror(errno));
		goto out;
	}
	ret = snap_memory_save(&vm->gm, m->mem_fd, tmp, &res.mem);
	if (!ret && rename(tmp, mem) < 0)
		ret = -errno;
	if (ret) {
		unlink(tmp);
		snprintf(why, why_len, "writing %s: %s", mem, strerror(-ret));
		goto out;
	}
	ret = save_state(m, state, &res.state_bytes);
	if (ret)
		snprintf(why, why_len, "writing %s: %s", state, strerror(-ret));
out:
	res.pause_ns = now_ns() - tp;
	if ((ret || !stop) && was_running)
		vm_resume(vm);
	res.total_ns = now_ns() - t0;
	if (r)
		*r = res;
	return ret;
}

int snapshot_parse_config(struct snapshot_restore *r, struct machine_config *cfg)
{
	struct state_in in;

	if (snap_section_in(&r->img, "config", &in) || config_load(r, cfg, &in))
		return -EINVAL;
	return 0;
}

int snapshot_open(const char *arg, struct snapshot_restore *r, struct machine_config *cfg,
		  char *why, size_t why_len)
{
	char path[4200], reason[512];
	const char *comma = strchr(arg, ',');
	int ret;

	memset(r, 0, sizeof(*r));
	r->mode = SNAP_MEM_PRIVATE;
	if ((size_t)(comma ? comma - arg : (ptrdiff_t)strlen(arg)) >= sizeof(r->dir) || !arg[0] ||
	    arg[0] == ',') {
		snprintf(why, why_len, "--restore '%s': expected DIR[,memory=private|copy]", arg);
		return -EINVAL;
	}
	snprintf(r->dir, sizeof(r->dir), "%.*s",
		 (int)(comma ? comma - arg : (ptrdiff_t)strlen(arg)), arg);
	if (comma) {
		if (!strcmp(comma + 1, "memory=private"))
			r->mode = SNAP_MEM_PRIVATE;
		else if (!strcmp(comma + 1, "memory=copy"))
			r->mode = SNAP_MEM_COPY;
		else {
			snprintf(why, why_len,
				 "--restore: unknown option '%s' (expected memory=private or "
				 "memory=copy)",
				 comma + 1);
			return -EINVAL;
		}
	}
	join_path(path, sizeof(path), r->dir, "state");
	ret = snap_image_load(&r->img, path, reason, sizeof(reason));
	if (ret) {
		snprintf(why, why_len, "cannot restore %s: %s", r->dir, reason);
		return ret;
	}
	ret = snapshot_parse_config(r, cfg);
	if (ret) {
		snprintf(why, why_len, "cannot restore %s: malformed configuration section",
			 r->dir);
		snapshot_close(r);
		return ret;
	}
	if (r->mode == SNAP_MEM_PRIVATE && cfg->compress != COMPRESS_OFF) {
		/* Its userfaultfd needs anonymous memory; the file's clean pages are page cache. */
		pr_info("restore: the compressed tier is off with memory=private (use "
			"--restore DIR,memory=copy for it)");
		cfg->compress = COMPRESS_OFF;
		cfg->mem_limit_bytes = 0;
	}
	return 0;
}

/* Guest TSC ticks in @ns at this vCPU's TSC frequency (KVM_GET_TSC_KHZ). */
static uint64_t tsc_ticks(struct vcpu *vcpu, uint64_t ns)
{
	int khz = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);

	if (khz <= 0)
		return 0;
	return (uint64_t)((unsigned __int128)ns * (unsigned)khz / 1000000u);
}

int snapshot_restore(struct machine *m, struct snapshot_restore *r, char *why, size_t why_len)
{
	struct vm *vm = &m->vm;
	struct state_in in;
	char path[4200];
	uint64_t elapsed;
	int ret;

	snprintf(why, why_len, "malformed snapshot");
	join_path(path, sizeof(path), r->dir, "memory");
	ret = snap_memory_map(&vm->gm, path, r->mode, &m->mem_fd, why, why_len);
	if (ret)
		return ret;
	if (snap_section_in(&r->img, "memory", &in) || snap_memory_state_load(&vm->gm, &in)) {
		snprintf(why, why_len, "malformed memory section");
		return -EINVAL;
	}
	if (snap_section_in(&r->img, "vm", &in)) {
		snprintf(why, why_len, "no vm section");
		return -EINVAL;
	}
	elapsed = vm_state_elapsed_ns(&in);
	ret = vm_state_load(vm, &in, elapsed);
	if (ret) {
		snprintf(why, why_len, "malformed or refused irqchip/PIT/clock state");
		return ret;
	}
	ret = machine_devices_load(m, &r->img);
	if (ret) {
		snprintf(why, why_len, "device state refused (see above)");
		return ret;
	}
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		char tag[SNAP_TAG_LEN];

		snprintf(tag, sizeof(tag), "vcpu.%u", i);
		if (snap_section_in(&r->img, tag, &in)) {
			snprintf(why, why_len, "no state for vCPU %u", i);
			return -EINVAL;
		}
		ret = vcpu_state_load(&vm->vcpus[i], &in, tsc_ticks(&vm->vcpus[i], elapsed), why,
				      why_len);
		if (ret)
			return ret;
		vcpu_kvmclock_ctrl(&vm->vcpus[i]);
	}
	ret = machine_run_vcpus(m);
	if (ret)
		snprintf(why, why_len, "starting the vCPUs: %s", strerror(-ret));
	return ret;
}

void snapshot_close(struct snapshot_restore *r)
{
	snap_image_free(&r->img);
	for (unsigned int i = 0; i < ARRAY_SIZE(r->disk_paths); i++) {
		free(r->disk_paths[i]);
		r->disk_paths[i] = NULL;
	}
}
