/*
 * The firmware ELF loader (vmm/boot/firmware.c) on synthetic images in ordinary memory, no KVM:
 * the entry state it builds, and the hostile images it must refuse (the unit-level twin of
 * tests/kvm/loader.sh, plus headers a patch of a real image cannot easily make).
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/boot/boot.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "boot_images.h"

#define RAM (64 * MiB)

static struct guest_mem gm;
static uint8_t *img;

static void setup(void)
{
	memset(&gm, 0, sizeof(gm));
	cr_assert_eq(gm_init(&gm, RAM, 0), 0);
	img = elf_image(FW_LOAD_GPA, FW_ENTRY_GPA, 0);
	cr_assert_not_null(img);
}

static void teardown(void)
{
	free(img);
	gm_destroy(&gm);
}

TestSuite(boot_firmware, .init = setup, .fini = teardown);

static Elf64_Ehdr *eh(void)
{
	return (Elf64_Ehdr *)img;
}

static Elf64_Phdr *ph(unsigned int i)
{
	return (Elf64_Phdr *)(img + eh()->e_phoff) + i;
}

static int load(size_t len, const char *args)
{
	struct boot_entry e;

	return boot_firmware_image(&gm, "test.elf", img, len, args, &e);
}

Test(boot_firmware, loads_segment_and_builds_the_cpl3_entry)
{
	struct boot_entry e;
	uint8_t *seg = gm_ptr(&gm, FW_LOAD_GPA, ELF_SEG_MEMSZ);
	uint64_t *pml4 = gm_ptr(&gm, BOOT_PML4_GPA, 8);

	memset(seg, 0xee, ELF_SEG_MEMSZ);
	cr_assert_eq(boot_firmware_image(&gm, "test.elf", img, ELF_IMAGE_BYTES, "a b", &e), 0);
	cr_assert_eq(e.mode, BOOT_USER64);
	cr_assert_eq(e.rip, FW_ENTRY_GPA);
	cr_assert_eq(e.rsp, RAM - 64);
	cr_assert_eq(e.rsp % 16, 0);
	cr_assert_eq(e.rdi, RAM);
	cr_assert_eq(e.rsi, BOOT_CMDLINE_GPA);
	cr_assert_eq(e.cr3, BOOT_PML4_GPA);
	cr_assert(*pml4 & 0x4, "page tables carry the user bit");
	cr_assert_str_eq((char *)gm_ptr(&gm, BOOT_CMDLINE_GPA, 1), "a b");
	for (size_t i = 0; i < ELF_SEG_FILESZ; i++)
		cr_assert_eq(seg[i], IMG_PATTERN(ELF_SEG_OFF + i));
	for (size_t i = ELF_SEG_FILESZ; i < ELF_SEG_MEMSZ; i++)
		cr_assert_eq(seg[i], 0);
	/* No argument string: an empty one. */
	cr_assert_eq(boot_firmware_image(&gm, "test.elf", img, ELF_IMAGE_BYTES, NULL, &e), 0);
	cr_assert_str_eq((char *)gm_ptr(&gm, BOOT_CMDLINE_GPA, 1), "");
}

Test(boot_firmware, short_or_foreign_files_are_refused)
{
	cr_assert_eq(load(40, NULL), -ENOEXEC, "shorter than an ELF header");
	cr_assert_eq(load(0, NULL), -ENOEXEC);
	img[EI_CLASS] = ELFCLASS32;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	img[EI_CLASS] = ELFCLASS64;
	img[EI_DATA] = ELFDATA2MSB;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	img[EI_DATA] = ELFDATA2LSB;
	eh()->e_machine = EM_386;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	eh()->e_machine = EM_X86_64;
	eh()->e_type = ET_DYN;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
}

Test(boot_firmware, malformed_program_header_tables_are_refused)
{
	eh()->e_phoff = 0x7fffffffffffffffULL; /* the loader.sh case */
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	eh()->e_phoff = UINT64_MAX - 8; /* wraps */
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	eh()->e_phoff = ELF_IMAGE_BYTES - 8;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	eh()->e_phoff = sizeof(Elf64_Ehdr);
	eh()->e_phnum = 0;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	eh()->e_phnum = 65;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	eh()->e_phnum = 1;
	eh()->e_phentsize = 0;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
}

Test(boot_firmware, dynamic_images_are_refused)
{
	ph(0)->p_type = PT_INTERP;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	ph(0)->p_type = PT_DYNAMIC;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
}

Test(boot_firmware, segments_outside_the_file_or_ram_are_refused)
{
	ph(0)->p_offset = ELF_IMAGE_BYTES - 1;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	ph(0)->p_offset = UINT64_MAX;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	ph(0)->p_offset = ELF_SEG_OFF;
	ph(0)->p_filesz = ELF_SEG_MEMSZ + 1;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	ph(0)->p_filesz = ELF_SEG_FILESZ;
	ph(0)->p_vaddr = FW_LOAD_GPA + 0x1000; /* not identity-mapped */
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	ph(0)->p_vaddr = ph(0)->p_paddr = 0x1000; /* the boot area below 1 MiB */
	eh()->e_entry = 0x1000;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -E2BIG);
	/* Into the stack reserve at the top of low RAM. */
	ph(0)->p_vaddr = ph(0)->p_paddr = RAM - BOOT_FW_STACK_BYTES - 0x1000;
	eh()->e_entry = ph(0)->p_paddr;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -E2BIG);
	ph(0)->p_vaddr = ph(0)->p_paddr = 0x40000000; /* past RAM */
	eh()->e_entry = ph(0)->p_paddr;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -E2BIG);
	ph(0)->p_vaddr = ph(0)->p_paddr = UINT64_MAX - 0x1000; /* paddr + memsz wraps */
	eh()->e_entry = ph(0)->p_paddr;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -E2BIG);
	ph(0)->p_vaddr = ph(0)->p_paddr = FW_LOAD_GPA;
	ph(0)->p_memsz = UINT64_MAX;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -E2BIG);
}

Test(boot_firmware, overlapping_segments_are_refused)
{
	/* A second PT_LOAD (in the slot the PVH note would use) overlapping the first. */
	memcpy(ph(1), ph(0), sizeof(Elf64_Phdr));
	ph(1)->p_vaddr = ph(1)->p_paddr = FW_LOAD_GPA + ELF_SEG_MEMSZ - 1;
	eh()->e_phnum = 2;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	ph(1)->p_vaddr = ph(1)->p_paddr = FW_LOAD_GPA + ELF_SEG_MEMSZ; /* adjacent is fine */
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), 0);
}

Test(boot_firmware, entry_outside_executable_code_is_refused)
{
	eh()->e_entry = FW_LOAD_GPA + ELF_SEG_FILESZ; /* in the bss, not the file image */
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	eh()->e_entry = 0x100;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
	eh()->e_entry = FW_ENTRY_GPA;
	ph(0)->p_flags = PF_R | PF_W;
	cr_assert_eq(load(ELF_IMAGE_BYTES, NULL), -ENOEXEC);
}

Test(boot_firmware, argument_string_and_ram_limits)
{
	static char args[BOOT_CMDLINE_MAX + 1];
	struct guest_mem tiny = {0};
	struct boot_entry e;

	memset(args, 'a', BOOT_CMDLINE_MAX - 1);
	cr_assert_eq(load(ELF_IMAGE_BYTES, args), 0, "the longest string that fits");
	args[BOOT_CMDLINE_MAX - 1] = 'a';
	cr_assert_eq(load(ELF_IMAGE_BYTES, args), -E2BIG);
	cr_assert_eq(gm_init(&tiny, 1 * MiB, 0), 0);
	cr_assert_eq(boot_firmware_image(&tiny, "t", img, ELF_IMAGE_BYTES, NULL, &e), -E2BIG);
	cr_assert_eq(boot_firmware(&tiny, "/nonexistent.elf", NULL, &e), -E2BIG,
		     "RAM is checked first");
	gm_destroy(&tiny);
	cr_assert_eq(boot_firmware(&gm, "/nonexistent.elf", NULL, &e), -ENOENT);
	cr_assert_eq(boot_firmware(&gm, "/tmp", NULL, &e), -EACCES, "a directory");
}
