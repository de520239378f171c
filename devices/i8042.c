#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bus.h"
#include "legacy.h"

static void i8042_io(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	const struct legacy_ops *ops = opaque;
	uint8_t v = *(uint8_t *)data;

	if (!is_write) {
		/* Output buffer empty, input buffer empty: the controller is always idle. */
		memset(data, 0, len);
		return;
	}
	if (off == I8042_CMD_PORT - I8042_DATA_PORT && v == I8042_CMD_RESET) {
		if (ops->panicked && ops->panicked(ops->opaque))
			ops->stop(ops->opaque, 1,
				  "guest kernel panic (see the console output above)");
		else
			ops->stop(ops->opaque, 0, "guest reset (reboot)");
	}
}

int i8042_create(struct bus *pio, const struct legacy_ops *ops)
{
	return bus_register(pio, I8042_DATA_PORT, I8042_CMD_PORT - I8042_DATA_PORT + 1, i8042_io,
			    (void *)ops, "i8042");
}
