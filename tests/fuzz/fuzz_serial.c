/*
 * libFuzzer target for the 16550A console (devices/serial.c) behind the real port bus: random
 * register reads and writes of every width (DLAB, FIFO control, loopback, interrupt enables),
 * SysRq injection, host input through a pipe, and console output into a one-page pipe that is
 * drained, or not, at the fuzzer's choice, with the event loop dispatched in between.
 * Invariants: the output buffer never holds more than SERIAL_OUT_BUF bytes, THRE is set exactly
 * when a FIFO load fits, the interrupt line only takes 0/1, and only the Ctrl-A x escape stops.
 * Input: [0] flags (bit 0: escape on), then 2-byte operations (op, value):
 *   op bits 0-2: register or special; bits 3-4: 0 write, 1 read, 2 write @value as 2/4 bytes,
 *   3 special: 0 SysRq @value, 1 drain @value * 64 bytes, 2 dispatch the loop, 3 host input
 *   (@value bytes), 4 the panic line through THR, 5 wait for the receive settle timer (once:
 *   1 ms here instead of SERIAL_RX_SETTLE_MS).
 */
#include <fcntl.h>
#include <linux/serial_reg.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "../../devices/bus.h"
#include "../../devices/outbuf.h"
#include "../../devices/serial.h"
#include "../../vmm/loop.h"
#include "../../vmm/util.h"

static int irq_level, stops;
static bool escape;

static void set_irq(void *opaque, int level)
{
	(void)opaque;
	if (level != 0 && level != 1)
		__builtin_trap();
	irq_level = level;
}

static void stop(void *opaque, int status, const char *reason)
{
	(void)opaque;
	if (!escape || status != 130 || !reason)
		__builtin_trap();
	stops++;
}

static void panic_seen(void *opaque)
{
	(void)opaque;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_level = LOG_QUIET;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static uint8_t port_rw(struct bus *pio, unsigned int reg, uint8_t v, uint32_t len, bool write)
{
	uint8_t data[4] = {v, v, v, v};

	/* All eight registers are the UART's; an access running past them is no one's. */
	if (bus_access(pio, SERIAL_COM1_PORT + reg, data, len, write) != 0 && reg + len <= 8)
		__builtin_trap();
	return data[0];
}

static void check(struct serial *s, struct bus *pio)
{
	struct outbuf_stats st;
	uint8_t lsr;

	serial_get_stats(s, &st);
	if (st.buffered > SERIAL_OUT_BUF)
		__builtin_trap();
	lsr = port_rw(pio, UART_LSR, 0, 1, false);
	if (!!(lsr & UART_LSR_THRE) != (SERIAL_OUT_BUF - st.buffered >= 16 || st.buffered == 0))
		__builtin_trap();
}

static void special(struct serial *s, struct bus *pio, struct loop *loop, int out[2], int in[2],
		    uint8_t which, uint8_t v, bool *settled)
{
	static const char panic[] = "Kernel panic - not syncing: fuzz\n";
	uint8_t buf[16384];

	switch (which) {
	case 0:
		serial_send_sysrq(s, (char)v);
		break;
	case 1:
		if (read(out[0], buf, MIN(sizeof(buf), (size_t)v * 64 + 1)) < 0) {
			/* nothing there: EAGAIN */
		}
		break;
	case 2:
		loop_dispatch(loop, 0);
		break;
	case 3:
		memset(buf, v, MIN((size_t)v + 1, sizeof(buf)));
		if (write(in[1], buf, (size_t)v + 1) < 0) {
			/* the input pipe is full */
		}
		break;
	case 4:
		for (size_t i = 0; i < sizeof(panic) - 1; i++)
			port_rw(pio, UART_TX, (uint8_t)panic[i], 1, true);
		break;
	case 5:
		if (!*settled) /* the receive settle timer (1 ms here), once per input */
			loop_dispatch(loop, 5);
		*settled = true;
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct serial_ops ops = {.set_irq = set_irq, .panic_seen = panic_seen, .stop = stop};
	int out[2] = {-1, -1}, in[2] = {-1, -1};
	struct loop *loop;
	struct serial *s;
	struct bus pio;
	bool settled = false;

	if (size < 1)
		return 0;
	escape = data[0] & 1;
	loop = loop_create();
	if (!loop || pipe2(out, O_CLOEXEC | O_NONBLOCK) || pipe2(in, O_CLOEXEC | O_NONBLOCK))
		__builtin_trap();
	fcntl(out[1], F_SETPIPE_SZ, 4096);
	fcntl(out[1], F_SETFL, 0); /* the VMM's stdout: blocking */
	bus_init(&pio, "pio");
	s = serial_create(
		&pio, loop, &ops,
		&(struct serial_config){
			.out_fd = out[1], .in_fd = in[0], .rx_settle_ms = 1, .escape = escape});
	if (!s)
		__builtin_trap();
	for (size_t i = 1; i + 1 < size; i += 2) {
		uint8_t op = data[i], v = data[i + 1], reg = op & 7;

		switch ((op >> 3) & 3) {
		case 0:
			port_rw(&pio, reg, v, 1, true);
			break;
		case 1:
			port_rw(&pio, reg, v, 1, false);
			break;
		case 2:
			port_rw(&pio, reg, v, (op & 0x20) ? 4 : 2, (op & 0x40) != 0);
			break;
		default:
			special(s, &pio, loop, out, in, reg, v, &settled);
			break;
		}
		check(s, &pio);
	}
	close(out[0]); /* the reader goes: the flush at destroy ends at once (EPIPE) */
	serial_destroy(s);
	close(out[1]);
	close(in[0]);
	close(in[1]);
	loop_destroy(loop);
	return 0;
}
