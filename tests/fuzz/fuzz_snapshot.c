/*
 * libFuzzer target for the snapshot state parser (vmm/snapshot/): a state file is untrusted
 * input. Parsing any file must never crash, read out of bounds or leak; a section that parses
 * must be within its limits.
 * Input: byte 0 selects the mode.
 *  - even: the rest is a whole state file for snap_image_parse() (checksums must match, so
 *    this mostly explores the header and section framing).
 *  - odd: the rest is cut into sections (1 byte tag choice, 2 bytes length, payload) that are
 *    written with valid framing and checksums, so the loaders behind them are reached: the
 *    machine configuration (snapshot_parse_config), the page state map, the in-kernel state and
 *    a vCPU's state (their ioctls then fail on fd -1: only parsing is exercised).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/machine.h"
#include "../../vmm/snapshot/snapshot.h"
#include "../../vmm/snapshot/vcpu_state.h"
#include "../../vmm/util.h"
#include "../../vmm/vcpu.h"
#include "../../vmm/vm.h"

static const char *const tags[] = {"config", "memory", "vm", "vcpu.0", "dev.serial", "end", "x"};

static void load_all(struct snapshot_restore *r)
{
	struct machine_config cfg = {0};
	static struct guest_mem gm;
	static struct vm vm = {.kvm_fd = -1, .vm_fd = -1};
	static struct vcpu vcpu = {.fd = -1};
	struct state_in in;
	char why[256];

	if (!gm.state) {
		/* A state map only: the loader never touches RAM. */
		gm.nr_pages = 4096;
		gm.size = gm.nr_pages * GM_PAGE_SIZE;
		gm.state = calloc(gm.nr_pages, 1);
		pthread_mutex_init(&gm.lock, NULL);
		vcpu.vm = &vm;
	}
	snapshot_parse_config(r, &cfg);
	snapshot_close(r);
	if (snap_section_in(&r->img, "memory", &in) == 0)
		snap_memory_state_load(&gm, &in);
	if (snap_section_in(&r->img, "vm", &in) == 0) {
		vm_state_elapsed_ns(&in);
		vm_state_load(&vm, &in, 0);
	}
	if (snap_section_in(&r->img, "vcpu.0", &in) == 0)
		vcpu_state_load(&vcpu, &in, 0, why, sizeof(why));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct snapshot_restore r;
	struct snap_writer w;
	char why[256];

	log_level = LOG_QUIET;
	if (size < 1)
		return 0;
	if (!(data[0] & 1)) {
		if (snap_image_parse(&r.img, data + 1, size - 1, why, sizeof(why)) == 0) {
			load_all(&r);
			snap_image_free(&r.img);
		}
		return 0;
	}
	snap_writer_init(&w);
	for (size_t off = 1; off + 3 <= size;) {
		size_t n = (size_t)(data[off + 1] | data[off + 2] << 8);
		struct state_out o;

		state_out_init(&o);
		n = MIN(n, size - off - 3);
		state_put(&o, data + off + 3, n);
		snap_add_section(&w, tags[data[off] % ARRAY_SIZE(tags)], &o);
		state_out_free(&o);
		off += 3 + n;
	}
	if (snap_writer_close(&w) == 0 &&
	    snap_image_parse(&r.img, w.out.data, w.out.len, why, sizeof(why)) == 0) {
		load_all(&r);
		snap_image_free(&r.img);
	}
	state_out_free(&w.out);
	return 0;
}
