/* Small legacy platform devices: the i8042 reset line and the guest exit port. */
#ifndef DEVICES_LEGACY_H
#define DEVICES_LEGACY_H

struct vm;

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT	0x64
#define I8042_CMD_RESET 0xfe
#define EXIT_PORT	0x501 /* a byte written here ends the VM: vmm exits with that value */

/**
 * i8042_create() - the part of an i8042 controller Linux needs: status reads as idle, and the
 * reset command (0xfe to port 0x64, "reboot=k") stops the VM with status 0, or 1 when the console
 * showed a kernel panic. Returns 0 or -errno.
 */
int i8042_create(struct vm *vm);

/**
 * exit_port_create() - the one-byte exit port at EXIT_PORT (I/O space): a write of value N stops
 * the VM and the vmm process exits with status N. Reads return 0. Returns 0 or -errno.
 */
int exit_port_create(struct vm *vm);

#endif
