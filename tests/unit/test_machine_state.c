/*
 * machine_devices_quiesce/save/load (vmm/machine_state.c) on a machine assembled from the state
 * rig's devices and a UART (no KVM needed: the device layer is all they touch): a state file
 * written by one machine restores into a fresh one, whose rng queue then serves a request; a
 * missing section, a section of a device this machine lacks, and a malformed payload are each
 * refused with -EINVAL.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../devices/serial.h"
#include "../../vmm/machine.h"
#include "../../vmm/snapshot/format.h"
#include "state_rig.h"

#define RINGS 0x100000ULL
#define BUFS  0x400000ULL

static struct rig a, b;
static struct machine ma, mb;
static struct bus upa, upb;
static char path[64];

static void nop_irq(void *opaque, int level)
{
	(void)opaque, (void)level;
}

static void machine_of(struct machine *m, struct rig *r, struct bus *uart_bus)
{
	struct serial_ops ops = {.set_irq = nop_irq};
	struct serial_config cfg = {.out_fd = -1, .in_fd = -1};

	memset(m, 0, sizeof(*m));
	bus_init(uart_bus, "pio");
	m->console = serial_create(uart_bus, NULL, &ops, &cfg);
	cr_assert_not_null(m->console);
	m->pci = r->pci;
	m->rng = r->rng;
	m->balloon = r->bal;
}

static void setup(void)
{
	memset(&rig_gm, 0, sizeof(rig_gm));
	cr_assert_eq(gm_init(&rig_gm, RIG_RAM, false), 0);
	snprintf(path, sizeof(path), "/tmp/vmm-machine-state-%d", getpid());
}

static void teardown(void)
{
	unlink(path);
	gm_destroy(&rig_gm);
}

TestSuite(machine_state, .init = setup, .fini = teardown);

/* The running machine: rng queue used once, then saved into @path. */
static void snapshot(struct fake_vq *q)
{
	struct fake_buf buf = {BUFS, 64, true};
	struct snap_writer w;
	uint32_t id, len;

	rig_up(&a, NULL);
	machine_of(&ma, &a, &upa);
	rig_driver_up(&a, RIG_RNG, 0, 1, q, RINGS);
	fake_add_chain(q, &buf, 1);
	rig_kick(&a, RIG_RNG, 0);
	cr_assert(fake_get_used(q, &id, &len));
	cr_assert_eq(machine_devices_quiesce(&ma), 0);
	snap_writer_init(&w);
	cr_assert_eq(machine_devices_save(&ma, &w), 0);
	cr_assert_eq(snap_writer_finish(&w, path), 0);
	serial_destroy(ma.console);
	rig_down(&a);
	rig_up(&b, NULL);
	machine_of(&mb, &b, &upb);
}

static void load_image(struct snap_image *img)
{
	char why[128];

	cr_assert_eq(snap_image_load(img, path, why, sizeof(why)), 0, "%s", why);
}

/* Rewrite @path keeping the sections of @img except @drop, adding @extra (NULL: none). */
static void rewrite(const struct snap_image *img, const char *drop, const char *extra,
		    const char *corrupt)
{
	struct snap_writer w;

	snap_writer_init(&w);
	for (unsigned int i = 0; i < img->nr_sections; i++) {
		const struct snap_section *s = &img->sections[i];
		struct state_out o;

		if (!strcmp(s->tag, "end") || (drop && !strcmp(s->tag, drop)))
			continue;
		state_out_init(&o);
		state_put(&o, s->data, s->len);
		if (corrupt && !strcmp(s->tag, corrupt))
			o.data[o.len / 2] ^= 0xff; /* dev.pci: a read-only byte of slot 1 */
		cr_assert_eq(snap_add_section(&w, s->tag, &o), 0);
		state_out_free(&o);
	}
	if (extra) {
		struct state_out o;

		state_out_init(&o);
		state_put_u8(&o, 0);
		cr_assert_eq(snap_add_section(&w, extra, &o), 0);
		state_out_free(&o);
	}
	cr_assert_eq(snap_writer_finish(&w, path), 0);
}

Test(machine_state, a_saved_machine_restores_and_its_queue_works)
{
	struct fake_vq q[1];
	struct fake_buf buf = {BUFS + 64, 64, true};
	struct snap_image img;
	struct state_in in;
	uint32_t id, len;
	uint16_t head;

	snapshot(q);
	load_image(&img);
	const char *want[] = {"dev.serial", "dev.pci", "dev.balloon", "dev.rng"};
	for (unsigned int i = 0; i < 4; i++)
		cr_assert_eq(snap_section_in(&img, want[i], &in), 0, "section %s", want[i]);
	cr_assert_eq(machine_devices_load(&mb, &img), 0);
	q[0].vq = &rig_vdev(&b, RIG_RNG)->vqs[0];
	head = fake_add_chain(q, &buf, 1);
	rig_kick(&b, RIG_RNG, 0);
	cr_assert(fake_get_used(q, &id, &len));
	cr_assert_eq(id, head);
	cr_assert_eq(fake_used_idx(q), 2);
	snap_image_free(&img);
	serial_destroy(mb.console);
	rig_down(&b);
}

Test(machine_state, missing_foreign_or_malformed_sections_are_refused)
{
	struct fake_vq q[1];
	struct snap_image img, bad;

	snapshot(q);
	load_image(&img);
	rewrite(&img, "dev.rng", NULL, NULL);
	load_image(&bad);
	cr_assert_eq(machine_devices_load(&mb, &bad), -EINVAL, "no dev.rng");
	snap_image_free(&bad);
	rewrite(&img, NULL, "dev.blk.0", NULL);
	load_image(&bad);
	cr_assert_eq(machine_devices_load(&mb, &bad), -EINVAL, "a disk this machine lacks");
	snap_image_free(&bad);
	rewrite(&img, NULL, NULL, "dev.pci");
	load_image(&bad);
	cr_assert_eq(machine_devices_load(&mb, &bad), -EINVAL, "malformed dev.pci");
	snap_image_free(&bad);
	rewrite(&img, NULL, NULL, NULL);
	load_image(&bad);
	cr_assert_eq(machine_devices_load(&mb, &bad), 0, "the unchanged sections load");
	snap_image_free(&bad);
	snap_image_free(&img);
	serial_destroy(mb.console);
	rig_down(&b);
}
