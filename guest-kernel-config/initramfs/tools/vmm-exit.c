// SPDX-License-Identifier: GPL-2.0
/*
 * vmm-exit N: stop the VM with exit status N (0-255).
 *
 * Writes the byte N to I/O port 0x501, the vmm's exit port: the write stops the VM and the vmm
 * process exits with status N. The write uses ioperm()+outb, or /dev/port (the kernel does the
 * outb) when the kernel has no ioperm() (CONFIG_X86_IOPL_IOPERM is off in tinyconfig kernels) or
 * the outb faults: under KVM nested on QEMU's TCG-emulated SVM (the test host), a user-mode outb
 * allowed by the TSS I/O bitmap raises #GP (SIGSEGV). Under another hypervisor (QEMU without
 * isa-debug-exit) the write does nothing, so fall back to the kernel's reboot(2): power off when
 * the kernel can (ACPI), otherwise a reboot, which QEMU's -no-reboot turns into an exit. Power off
 * without a pm_power_off handler only halts the CPU and would hang the VM, hence the ACPI check.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/reboot.h>
#include <termios.h>
#include <unistd.h>

#define VMM_EXIT_PORT 0x501

/* Let the UART send everything queued so far: the VM stops the moment the port is written. */
static void drain_console(void)
{
	int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_NONBLOCK);

	for (int i = 0; i <= 2; i++) {
		if (isatty(i))
			tcdrain(i);
	}
	if (fd >= 0) {
		tcdrain(fd);
		close(fd);
	}
}

static sigjmp_buf outb_fault;

static void on_fault(int sig)
{
	siglongjmp(outb_fault, sig);
}

/* ioperm() + outb; returns -1 if either is unavailable or the outb faulted. */
static int outb_user(unsigned short port, unsigned char val)
{
	struct sigaction sa = {.sa_handler = on_fault}, old_segv, old_bus;
	int ret = -1;

	if (ioperm(port, 1, 1) < 0)
		return -1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	if (sigsetjmp(outb_fault, 1) == 0) {
		outb(val, port);
		ret = 0;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	return ret;
}

static int port_write(unsigned short port, unsigned char val)
{
	int fd, err;

	if (outb_user(port, val) == 0)
		return 0;
	fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	err = pwrite(fd, &val, 1, port) == 1 ? 0 : -1;
	close(fd);
	return err;
}

int main(int argc, char **argv)
{
	char *end;
	long status = 0;

	if (argc > 2 || (argc == 2 && !strcmp(argv[1], "-h"))) {
		fprintf(stderr, "usage: vmm-exit [STATUS 0-255]\n");
		return 2;
	}
	if (argc == 2) {
		errno = 0;
		status = strtol(argv[1], &end, 0);
		if (errno || *end || end == argv[1] || status < 0 || status > 255) {
			fprintf(stderr, "vmm-exit: bad status '%s'\n", argv[1]);
			return 2;
		}
	}

	sync();
	drain_console();
	if (port_write(VMM_EXIT_PORT, (unsigned char)status) < 0)
		fprintf(stderr, "vmm-exit: cannot write port 0x%x: %s\n", VMM_EXIT_PORT,
			strerror(errno));

	/* Still running: not our vmm. */
	if (access("/sys/firmware/acpi", F_OK) == 0)
		reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	fprintf(stderr, "vmm-exit: reboot: %s\n", strerror(errno));
	return 1;
}
