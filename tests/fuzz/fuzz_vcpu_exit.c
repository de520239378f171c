/*
 * libFuzzer target for vCPU exit dispatch (vmm/vcpu_exit.h) on a synthetic kvm_run: any exit
 * reason, any port I/O geometry (size, count, data offset: string I/O and offsets that point
 * outside the kvm_run mapping must be refused, not followed), any MMIO length, and the registers
 * the shutdown diagnosis reads. The kvm_run buffer is exactly RUN_SIZE bytes, so AddressSanitizer
 * catches any access past the mapping.
 * Input: [0] exit reason, [1..32] the exit's union (io / mmio / internal / fail_entry fields),
 * [33] cs.dpl, [34..41] rflags, [42..49] rip, then bytes for the port I/O data page.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../devices/bus.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "../../vmm/vcpu_exit.h"

#define RUN_SIZE (3 * 4096)
#define PIO_OFF	 4096
#define UNION	 32
#define HDR	 (1 + UNION + 1 + 8 + 8)

static struct bus pio, mmio;
static struct guest_mem gm;
static struct kvm_regs regs;
static struct kvm_sregs sregs;
static unsigned int stops;

static void dev_io(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	(void)opaque;
	if (len == 0 || len > 8)
		__builtin_trap(); /* the dispatcher must never hand a device such an access */
	if (!is_write)
		memset(data, (int)off, len);
}

static void stop(void *opaque, int status, const char *reason)
{
	(void)opaque;
	if (!reason || (status != 0 && status != 1))
		__builtin_trap();
	stops++;
}

static int get_regs(void *opaque, struct kvm_regs *r, struct kvm_sregs *s)
{
	(void)opaque;
	*r = regs;
	*s = sregs;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t out_dx[] = {0x66, 0xef};

	(void)argc;
	(void)argv;
	log_level = LOG_QUIET;
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	if (bus_register(&pio, 0x3f8, 8, dev_io, NULL, "dev") ||
	    bus_register(&pio, 0x60, 5, dev_io, NULL, "dev") ||
	    bus_register(&mmio, 0xd0000000ULL, 0x1000, dev_io, NULL, "dev") ||
	    gm_init(&gm, 16 * MiB, 0) || gm_write(&gm, 0x200000, out_dx, sizeof(out_dx)))
		__builtin_trap();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcpu_exit_ctx ctx = {.pio = &pio,
				    .mmio = &mmio,
				    .gm = &gm,
				    .run_size = RUN_SIZE,
				    .host_is_pvm = size & 1,
				    .stop = stop,
				    .get_regs = get_regs};
	struct kvm_run *run;
	enum vcpu_action a;
	unsigned int before = stops;

	if (size < HDR)
		return 0;
	run = calloc(1, RUN_SIZE);
	if (!run)
		return 0;
	run->exit_reason = data[0];
	memcpy(&run->io, data + 1, UNION);
	sregs.cs.dpl = data[1 + UNION] & 3;
	memcpy(&regs.rflags, data + 2 + UNION, 8);
	memcpy(&regs.rip, data + 10 + UNION, 8);
	memcpy((uint8_t *)run + PIO_OFF, data + HDR, MIN(size - HDR, (size_t)(RUN_SIZE - PIO_OFF)));
	a = vcpu_handle_exit(&ctx, run);
	if ((a == VCPU_STOP) != (stops == before + 1))
		__builtin_trap(); /* VCPU_STOP exactly when the VM was stopped */
	free(run);
	return 0;
}
