/*
 * libFuzzer target for the i8042 reset line and the exit port (devices/legacy.h) behind the real
 * port bus: random accesses of 1, 2 and 4 bytes around ports 0x60-0x64 and 0x501, with the
 * console's panic flag flipped in between. Invariants: a stop happens exactly for a write of
 * 0xfe to port 0x64 (status 1 after a panic, else 0) or any write to 0x501 (status = the byte),
 * reads return 0, and nothing else answers on those ports.
 * Input: 3-byte operations (port offset from 0x5e / 0x4ff, value, flags: bit 0 write, bits 1-2
 * width, bit 3 exit-port window, bit 4 toggle the panic flag).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../devices/bus.h"
#include "../../devices/legacy.h"
#include "../../vmm/util.h"

static struct bus pio;
static struct legacy_ops ops;
static bool panicked;
static int stops, last_status;

static void stop(void *opaque, int status, const char *reason)
{
	(void)opaque;
	if (!reason)
		__builtin_trap();
	stops++;
	last_status = status;
}

static bool is_panicked(void *opaque)
{
	(void)opaque;
	return panicked;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_level = LOG_QUIET;
	bus_init(&pio, "pio");
	ops = (struct legacy_ops){.stop = stop, .panicked = is_panicked};
	if (i8042_create(&pio, &ops) || exit_port_create(&pio, &ops))
		__builtin_trap();
	if (i8042_create(&pio, &ops) == 0) /* the ports are taken now */
		__builtin_trap();
	return 0;
}

/* Which device covers [port, port + len), as the bus sees it. */
static int owner(uint64_t port, uint32_t len)
{
	if (port >= I8042_DATA_PORT && port + len <= I8042_CMD_PORT + 1)
		return 1;
	if (port == EXIT_PORT && len == 1)
		return 2;
	return 0;
}

static void one(const uint8_t *op)
{
	static const uint32_t widths[4] = {1, 2, 4, 1};
	bool write = op[2] & 1, exitwin = op[2] & 8;
	uint32_t len = widths[(op[2] >> 1) & 3];
	uint64_t port = (exitwin ? EXIT_PORT - 2 : I8042_DATA_PORT - 2) + op[0] % 12;
	uint8_t data[4];
	int before = stops, who = owner(port, len), ret;

	if (op[2] & 16)
		panicked = !panicked;
	memset(data, op[1], sizeof(data));
	ret = bus_access(&pio, port, data, len, write);
	if ((ret == 0) != (who != 0))
		__builtin_trap(); /* answered where no device is, or silent where one is */
	if (ret)
		return;
	if (!write) {
		for (uint32_t i = 0; i < len; i++)
			if (data[i])
				__builtin_trap();
		if (stops != before)
			__builtin_trap();
		return;
	}
	if (who == 2) {
		if (stops != before + 1 || last_status != op[1])
			__builtin_trap();
	} else if (port == I8042_CMD_PORT && op[1] == I8042_CMD_RESET) {
		if (stops != before + 1 || last_status != (panicked ? 1 : 0))
			__builtin_trap();
	} else if (stops != before) {
		__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	panicked = false;
	for (size_t i = 0; i + 3 <= size; i += 3)
		one(data + i);
	return 0;
}
