#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../vmm/vm.h"
#include "legacy.h"

static void exit_port_io(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	struct vm *vm = opaque;
	char reason[64];

	(void)off;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	snprintf(reason, sizeof(reason), "guest exit port: status %u", *(uint8_t *)data);
	vm_stop(vm, *(uint8_t *)data, reason);
}

int exit_port_create(struct vm *vm)
{
	return bus_register(&vm->pio, EXIT_PORT, 1, exit_port_io, vm, "exit-port");
}
