/*
 * libFuzzer target for the boot loaders (vmm/boot): a hostile kernel or firmware file must be
 * loaded or refused with a documented error (vmm run then exits 2), never crash, read outside the
 * image or write outside guest RAM. Also feeds the MP table a fuzzed vCPU and route count.
 * Input: 4-byte header, then the image (and the initrd after the split point).
 *   [0] bit 0: firmware ELF loader (else the Linux loader: bzImage or PVH ELF), bit 1: an initrd
 *   [1..2] little-endian split: image bytes (the rest is the initrd)
 *   [3] vCPUs for the MP table
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "../../vmm/boot/boot.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"

#define RAM (32 * MiB)
#define HDR 4

static struct guest_mem gm;
/* Header bit 4: a guest with RAM above 4 GiB (two regions, e820 and initrd placement around the
 * 3 GiB hole; MAP_NORESERVE, what an input touched is given back after it). */
static struct guest_mem gm_big;
#define RAM_BIG (GM_LOW_RAM_MAX + 16 * MiB)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_level = LOG_QUIET;
	if (gm_init(&gm, RAM, 0) || gm_init(&gm_big, RAM_BIG, 0))
		__builtin_trap();
	return 0;
}

static void check(int ret)
{
	if (ret && ret != -ENOEXEC && ret != -E2BIG && ret != -EFAULT)
		__builtin_trap(); /* an error the loaders do not document */
}

static void check_entry(const struct guest_mem *g, const struct boot_entry *e)
{
	/* The boot structures the entry points at are inside guest RAM. */
	if (e->gdt_gpa != BOOT_GDT_GPA || !gm_ptr(g, e->gdt_gpa, e->gdt_limit + 1ULL))
		__builtin_trap();
	if (e->mode != BOOT_PROT32 && e->cr3 != BOOT_PML4_GPA)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct boot_linux_input in = {.cmdline = "console=ttyS0 reboot=k panic=-1"};
	struct mp_pci_irq pci[4] = {{1, 1, 16}, {2, 2, 17}, {3, 3, 18}, {4, 4, 19}};
	struct boot_entry e;
	struct guest_mem *g;
	size_t split;
	int ret;

	if (size < HDR)
		return 0;
	g = data[0] & 4 ? &gm_big : &gm;
	split = (size_t)data[1] | (size_t)data[2] << 8;
	data += HDR;
	size -= HDR;
	if (!(data[-HDR] & 2) || split > size)
		split = size;
	if (data[-HDR] & 1) {
		ret = boot_firmware_image(g, "fuzz.elf", data, size, "fuzz args", &e);
	} else {
		in.kernel = data;
		in.kernel_len = split;
		in.initrd = (data[-HDR] & 2) ? data + split : NULL;
		in.initrd_len = size - split;
		ret = boot_linux_image(g, &in, &e);
	}
	check(ret);
	if (!ret)
		check_entry(g, &e);
	ret = boot_mptable(g, data[-1], pci, data[-1] % 5);
	if (ret && ret != -ENOSPC)
		__builtin_trap();
	if (g == &gm_big)
		madvise(gm_big.base, gm_big.size, MADV_DONTNEED);
	return 0;
}
