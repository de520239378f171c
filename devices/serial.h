/* 16550A UART (the console): port 0x3f8, IRQ 4. */
#ifndef DEVICES_SERIAL_H
#define DEVICES_SERIAL_H

#include <stdbool.h>

struct bus;
struct loop;
struct serial;

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ	 4
#define SERIAL_OUT_BUF	 (16 * 1024) /* bytes of output held while the console is not read */
#define SERIAL_FLUSH_MS	 1000	     /* serial_destroy() waits this long for the reader */

struct outbuf_stats;
struct state_in;
struct state_out;

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

/* The host side of the UART. */
struct serial_config {
	/*
	 * Where transmitted bytes go (-1 discards them; not owned). Output never blocks: it goes
	 * through an SERIAL_OUT_BUF-byte buffer (devices/outbuf.h). While that buffer has no room
	 * for a FIFO load (16 bytes) the UART withholds LSR.THRE/TEMT and the THR-empty interrupt,
	 * so a driver that waits for THRE (Linux's 8250, in interrupt and console mode) waits, and
	 * the interrupt comes once the reader catches up; a byte written to THR while the buffer is
	 * full anyway is dropped and counted (one warning the first time). When the reader goes
	 * away (EPIPE) output is discarded and the guest runs on. The guest cannot make the VMM
	 * buffer more than SERIAL_OUT_BUF bytes.
	 */
	int out_fd;
	/*
	 * Host input fed to the receiver through the event loop (-1: none), read only once the
	 * guest has had receive interrupts on (IER.RDI) for @rx_settle_ms, so input written before
	 * the guest's driver opened the port is not lost; at EOF a ^D is sent once so a
	 * canonical-mode guest reader sees end of file.
	 */
	int in_fd;
	unsigned int rx_settle_ms; /* 0: SERIAL_RX_SETTLE_MS */
	bool escape;		   /* input "Ctrl-A x" stops the VM (for a raw-mode terminal) */
};

/*
 * Linux's 8250 driver clears the receive FIFO and reads RX once when it opens the port, and sets
 * IER to 0x0f for a moment while probing it: input taken before the guest listened this long
 * would be lost.
 */
#define SERIAL_RX_SETTLE_MS 50

/**
 * serial_create() - a 16550A at COM1 (SERIAL_COM1_PORT) on the port bus @pio, its interrupt
 * raised through @ops->set_irq; @ops and @cfg are copied. @loop: the event loop that watches host
 * input and output. Returns the device or NULL (ENOMEM, or the ports are taken).
 */
struct serial *serial_create(struct bus *pio, struct loop *loop, const struct serial_ops *ops,
			     const struct serial_config *cfg);

/**
 * serial_send_sysrq() - deliver a BREAK followed by @key on the receive side: a Linux guest with
 * CONFIG_MAGIC_SYSRQ_SERIAL on this console runs SysRq @key ('e': SIGTERM to every task but init,
 * 'i': SIGKILL). Thread-safe. Returns 0.
 */
int serial_send_sysrq(struct serial *s, char key);

/**
 * serial_save() - append the UART's snapshot state to @o (issue 14): every register (IER, LCR,
 * MCR, LSR, MSR, SCR, the divisor latch DLL/DLM, FCR), the pending THR-empty interrupt, the
 * received bytes the guest has not read yet, and the current output line (panic detection).
 * Output already passed to the host is not state. Thread-safe. Returns 0 or -ENOMEM.
 */
int serial_save(struct serial *s, struct state_out *o);

/**
 * serial_load() - load what serial_save() wrote into a freshly created @s. @in must hold
 * exactly this state. Validates reserved IER/MCR bits, the FIFO and line sizes and LSR.DR
 * against the FIFO. Then: the interrupt line is driven to the loaded state (ops->set_irq), host
 * input is taken again once IER.RDI has been on for the settle time, and a THR-empty interrupt
 * the old output buffer withheld is raised (this one is empty). Returns 0 or -EINVAL (nothing
 * changed).
 */
int serial_load(struct serial *s, struct state_in *in);

/** serial_get_stats() - the output counters (devices/outbuf.h). Thread-safe. */
void serial_get_stats(struct serial *s, struct outbuf_stats *out);

/**
 * serial_destroy() - stop watching input, write the buffered output (waiting at most
 * SERIAL_FLUSH_MS for the reader, so the tail of the guest's output is not lost at exit), warn
 * when output was dropped, and free the device. Call after the vCPUs stopped, with the loop not
 * running (or from it). NULL is a no-op.
 */
void serial_destroy(struct serial *s);

#endif
