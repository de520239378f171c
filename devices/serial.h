/* 16550A UART (the console): port 0x3f8, IRQ 4. */
#ifndef DEVICES_SERIAL_H
#define DEVICES_SERIAL_H

#include <stdbool.h>

struct bus;
struct loop;
struct serial;

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ	 4

/*
 * What the UART asks of its machine. Called with the device lock held, from the thread that
 * caused it (a vCPU's register access, or the loop thread for host input); none may call back
 * into the device.
 */
struct serial_ops {
	/* Set the interrupt line (SERIAL_COM1_IRQ) to @level (0 or 1). Required. */
	void (*set_irq)(void *opaque, int level);
	/* An output line contained "Kernel panic - not syncing". May be NULL. */
	void (*panic_seen)(void *opaque);
	/* The console escape (Ctrl-A x) was typed: stop the VM with @status. May be NULL. */
	void (*stop)(void *opaque, int status, const char *reason);
	void *opaque;
};

/**
 * serial_create() - a 16550A at COM1 (SERIAL_COM1_PORT) on the port bus @pio, its interrupt
 * raised through @ops->set_irq; @ops is copied. @loop: the event loop that watches host input.
 * @out_fd: where transmitted bytes go (-1 discards them); @in_fd: host input fed to the receiver
 * through the event loop (-1: none), read only while the guest has receive interrupts on (IER.RDI,
 * held for 50 ms), so input written before the guest's driver opened the port is not lost; at EOF
 * a ^D is sent once so a canonical-mode guest reader sees end of file. @escape: input "Ctrl-A x"
 * stops the VM (for a raw-mode terminal). Returns the device or NULL (ENOMEM, or the ports are
 * taken).
 */
struct serial *serial_create(struct bus *pio, struct loop *loop, const struct serial_ops *ops,
			     int out_fd, int in_fd, bool escape);

/**
 * serial_send_sysrq() - deliver a BREAK followed by @key on the receive side: a Linux guest with
 * CONFIG_MAGIC_SYSRQ_SERIAL on this console runs SysRq @key ('e': SIGTERM to every task but init,
 * 'i': SIGKILL). Thread-safe. Returns 0.
 */
int serial_send_sysrq(struct serial *s, char key);

/** serial_destroy() - stop watching input and free the device (after the vCPUs stopped). */
void serial_destroy(struct serial *s);

#endif
