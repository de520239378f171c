/*
 * The devices' part of a snapshot (issue 14; machine.h): one section per device of the machine's
 * device table, saved on the loop thread with the vCPUs paused and loaded into a machine freshly
 * created from the same configuration. The order matters on load: the UART, then the PCI bus
 * (configuration spaces: BAR decoding and ioeventfds, MSI-X tables and routes), then each virtio
 * function (transport, common and device state), and last every ready queue is notified once so
 * work the snapshot left in the rings goes on. The i8042 and the exit port keep no state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../devices/pci.h"
#include "../devices/serial.h"
#include "../devices/virtio_balloon.h"
#include "../devices/virtio_blk.h"
#include "../devices/virtio_console.h"
#include "../devices/virtio_pci.h"
#include "../devices/virtio_rng.h"
#include "machine.h"
#include "snapshot/format.h"
#include "state.h"
#include "util.h"

#define MAX_DEVS (2 + 3 + MACHINE_MAX_DISKS)

struct dev_entry {
	char tag[SNAP_TAG_LEN];
	int (*save)(void *obj, struct state_out *o);
	int (*load)(void *obj, struct state_in *in);
	void *obj;
	struct virtio_dev *vdev; /* virtio functions: restarted after every load */
};

static int serial_save_fn(void *obj, struct state_out *o)
{
	return serial_save(obj, o);
}

static int serial_load_fn(void *obj, struct state_in *in)
{
	return serial_load(obj, in);
}

static int pci_save_fn(void *obj, struct state_out *o)
{
	return pci_bus_save(obj, o);
}

static int pci_load_fn(void *obj, struct state_in *in)
{
	return pci_bus_load(obj, in);
}

static int virtio_save_fn(void *obj, struct state_out *o)
{
	return virtio_pci_save(obj, o);
}

static int virtio_load_fn(void *obj, struct state_in *in)
{
	return virtio_pci_load(obj, in);
}

static void add_virtio(struct dev_entry *e, unsigned int *n, const char *tag, struct virtio_dev *d)
{
	e[*n] = (struct dev_entry){
		.save = virtio_save_fn, .load = virtio_load_fn, .obj = d, .vdev = d};
	snprintf(e[*n].tag, sizeof(e[*n].tag), "%s", tag);
	(*n)++;
}

/* The device table in load order. Returns the number of entries. */
static unsigned int dev_table(struct machine *m, struct dev_entry *e)
{
	unsigned int n = 0;

	if (m->console)
		e[n++] = (struct dev_entry){"dev.serial", serial_save_fn, serial_load_fn,
					    m->console, NULL};
	if (m->pci)
		e[n++] = (struct dev_entry){"dev.pci", pci_save_fn, pci_load_fn, m->pci, NULL};
	if (m->balloon)
		add_virtio(e, &n, "dev.balloon", balloon_virtio_dev(m->balloon));
	if (m->rng)
		add_virtio(e, &n, "dev.rng", rng_virtio_dev(m->rng));
	for (unsigned int i = 0; i < MACHINE_MAX_DISKS; i++) {
		char tag[SNAP_TAG_LEN];

		if (!m->disks[i])
			continue;
		snprintf(tag, sizeof(tag), "dev.blk.%u", i);
		add_virtio(e, &n, tag, blk_virtio_dev(m->disks[i]));
	}
	if (m->vconsole)
		add_virtio(e, &n, "dev.vconsole", vconsole_virtio_dev(m->vconsole));
	return n;
}

int machine_devices_quiesce(struct machine *m)
{
	int ret = 0;

	if (m->balloon)
		balloon_quiesce(m->balloon);
	for (unsigned int i = 0; i < MACHINE_MAX_DISKS; i++)
		if (m->disks[i] && blk_quiesce(m->disks[i]))
			ret = -ETIMEDOUT;
	return ret;
}

int machine_devices_save(struct machine *m, struct snap_writer *w)
{
	struct dev_entry e[MAX_DEVS];
	unsigned int n = dev_table(m, e);

	for (unsigned int i = 0; i < n; i++) {
		struct state_out o;
		int ret;

		state_out_init(&o);
		ret = e[i].save(e[i].obj, &o);
		if (!ret)
			ret = snap_add_section(w, e[i].tag, &o);
		state_out_free(&o);
		if (ret) {
			pr_err("snapshot: saving %s: %s", e[i].tag, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* A "dev." section this machine has no device for: the snapshot is of another machine. */
static const char *stray_section(const struct snap_image *img, const struct dev_entry *e,
				 unsigned int n)
{
	for (unsigned int s = 0; s < img->nr_sections; s++) {
		const char *tag = img->sections[s].tag;
		bool known = false;

		if (strncmp(tag, "dev.", 4))
			continue;
		for (unsigned int i = 0; i < n && !known; i++)
			known = !strcmp(tag, e[i].tag);
		if (!known)
			return tag;
	}
	return NULL;
}

int machine_devices_load(struct machine *m, const struct snap_image *img)
{
	struct dev_entry e[MAX_DEVS];
	unsigned int n = dev_table(m, e);
	const char *stray = stray_section(img, e, n);

	if (stray) {
		pr_err("restore: section %s has no device in this machine", stray);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct state_in in;

		if (snap_section_in(img, e[i].tag, &in)) {
			pr_err("restore: the snapshot has no section %s", e[i].tag);
			return -EINVAL;
		}
		if (e[i].load(e[i].obj, &in)) {
			pr_err("restore: section %s is malformed or does not fit this machine",
			       e[i].tag);
			return -EINVAL;
		}
	}
	for (unsigned int i = 0; i < n; i++)
		if (e[i].vdev)
			virtio_pci_restart_queues(e[i].vdev);
	return 0;
}
