#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "legacy.h"

static void exit_port_io(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	const struct legacy_ops *ops = opaque;
	char reason[64];

	(void)off;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	snprintf(reason, sizeof(reason), "guest exit port: status %u", *(uint8_t *)data);
	ops->stop(ops->opaque, *(uint8_t *)data, reason);
}

int exit_port_create(struct bus *pio, const struct legacy_ops *ops)
{
	return bus_register(pio, EXIT_PORT, 1, exit_port_io, (void *)ops, "exit-port");
}
