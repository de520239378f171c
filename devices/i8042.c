#include <stdbool.h>
#include <string.h>

#include "../vmm/util.h"
#include "../vmm/vm.h"
#include "legacy.h"

static void i8042_io(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	struct vm *vm = opaque;
	uint8_t v = *(uint8_t *)data;

	if (!is_write) {
		/* Output buffer empty, input buffer empty: the controller is always idle. */
		memset(data, 0, len);
		return;
	}
	if (off == I8042_CMD_PORT - I8042_DATA_PORT && v == I8042_CMD_RESET) {
		if (vm->guest_panicked)
			vm_stop(vm, 1, "guest kernel panic (see the console output above)");
		else
			vm_stop(vm, 0, "guest reset (reboot)");
	}
}

int i8042_create(struct vm *vm)
{
	return bus_register(&vm->pio, I8042_DATA_PORT, I8042_CMD_PORT - I8042_DATA_PORT + 1,
			    i8042_io, vm, "i8042");
}
