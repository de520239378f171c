/* TEMPORARY stand-in until the device save/load lands (helper branch snapdev). */
#include <errno.h>

#include "machine.h"
#include "snapshot/format.h"

int machine_devices_quiesce(struct machine *m)
{
	(void)m;
	return 0;
}

int machine_devices_save(struct machine *m, struct snap_writer *w)
{
	(void)m;
	(void)w;
	return 0;
}

int machine_devices_load(struct machine *m, const struct snap_image *img)
{
	(void)m;
	(void)img;
	return 0;
}
