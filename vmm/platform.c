#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../devices/legacy.h"
#include "../devices/serial.h"
#include "boot/boot.h"
#include "util.h"
#include "vcpu.h"
#include "vm.h"

static struct serial *console;
static int console_fd = -1;

static int create_console(struct vm *vm)
{
	int out = -1, in = -1;

	switch (vm->cfg.console) {
	case CONSOLE_STDIO:
		out = STDOUT_FILENO;
		in = STDIN_FILENO;
		break;
	case CONSOLE_FILE:
		console_fd = open(vm->cfg.console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
				  0644);
		if (console_fd < 0) {
			pr_err("--console file:%s: %s", vm->cfg.console_path, strerror(errno));
			return -errno;
		}
		out = console_fd;
		break;
	case CONSOLE_NONE:
		break;
	}
	console = serial_create(vm, out, in, in >= 0 && isatty(in) && isatty(STDOUT_FILENO));
	return console ? 0 : -ENOMEM;
}

int platform_create(struct vm *vm)
{
	int ret;

	ret = create_console(vm);
	if (!ret)
		ret = i8042_create(vm);
	if (!ret)
		ret = exit_port_create(vm);
	if (ret)
		pr_err("creating platform devices: %s", strerror(-ret));
	return ret;
}

int platform_start(struct vm *vm)
{
	struct boot_entry entry;
	int ret;

	ret = boot_linux(vm, vm->cfg.kernel, vm->cfg.initrd, vm->cfg.cmdline, &entry);
	if (ret)
		return ret;
	ret = vcpu_set_boot_state(&vm->vcpus[0], &entry);
	if (ret) {
		pr_err("setting boot registers: %s", strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&vm->lock);
	vm->state = VM_RUNNING;
	vm->start_ns = now_ns();
	pthread_mutex_unlock(&vm->lock);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		ret = vcpu_start(&vm->vcpus[i]);
		if (ret) {
			pr_err("starting vCPU %u: %s", i, strerror(-ret));
			vm_stop(vm, 2, "vCPU thread creation failed");
			return ret;
		}
	}
	return 0;
}

void platform_destroy(struct vm *vm)
{
	vm_stop(vm, vm->exit_status, "shutting down");
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	serial_destroy(console);
	console = NULL;
	if (console_fd >= 0)
		close(console_fd);
	vm_destroy(vm);
}
