/* Small legacy platform devices: the i8042 reset line and the guest exit port. */
#ifndef DEVICES_LEGACY_H
#define DEVICES_LEGACY_H

#include <stdbool.h>

struct bus;

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT	0x64
#define I8042_CMD_RESET 0xfe
#define EXIT_PORT	0x501 /* a byte written here ends the VM: vmm exits with that value */

/*
 * What these devices ask of their machine. Called from the vCPU thread that made the access, with
 * no device lock held (the devices keep no state).
 */
struct legacy_ops {
	/* Stop the VM: the process exits with @status; @reason is logged. Required. */
	void (*stop)(void *opaque, int status, const char *reason);
	/* Has the console shown a kernel panic? NULL: never. */
	bool (*panicked)(void *opaque);
	void *opaque;
};

/**
 * i8042_create() - the part of an i8042 controller Linux needs, at ports 0x60-0x64 of @pio:
 * status reads as idle, and the reset command (0xfe to port 0x64, "reboot=k") stops the VM with
 * status 0, or 1 when @ops->panicked says the console showed a kernel panic. @ops is the
 * caller's and must outlive the registration (the bus). Returns 0 or -errno from bus_register()
 * (-EEXIST, -ENOSPC).
 */
int i8042_create(struct bus *pio, const struct legacy_ops *ops);

/**
 * exit_port_create() - the one-byte exit port at EXIT_PORT of @pio: a write of value N stops the
 * VM through @ops->stop and the vmm process exits with status N. Reads return 0. @ops as for
 * i8042_create(). Returns 0 or -errno as i8042_create().
 */
int exit_port_create(struct bus *pio, const struct legacy_ops *ops);

#endif
