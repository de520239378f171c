/* The machine: the explicit table of devices a VM gets, and bringing the guest up and down. */
#ifndef VMM_PLATFORM_H
#define VMM_PLATFORM_H

struct vm;

/**
 * platform_create() - create the devices of @vm (serial console, i8042, exit port, PCI bus with
 * the virtio devices its config asks for) and the control socket. Returns 0 or -errno (printed).
 */
int platform_create(struct vm *vm);

/**
 * platform_start() - load the kernel (or firmware), set the boot vCPU's registers and start every
 * vCPU thread; the VM is then running. Returns 0 or -errno (message printed).
 */
int platform_start(struct vm *vm);

/** platform_destroy() - stop the VM if needed, join vCPUs, free devices and the VM. */
void platform_destroy(struct vm *vm);

#endif
