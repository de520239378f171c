/*
 * The Linux loaders (vmm/boot/linux.c) on synthetic images in ordinary memory, no KVM: a bzImage
 * through the 64-bit boot protocol and an ELF vmlinux through its PVH note, then the same images
 * made hostile (truncated, bad offsets, huge sizes): each must be refused with -ENOEXEC or
 * -E2BIG, never followed.
 */
#include <asm/bootparam.h>
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../vmm/boot/boot.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "boot_images.h"

#define RAM	(64 * MiB)
#define CMDLINE "console=ttyS0 quiet"

static struct guest_mem gm;

static void setup(void)
{
	memset(&gm, 0, sizeof(gm));
	cr_assert_eq(gm_init(&gm, RAM, 0), 0);
}

static void teardown(void)
{
	gm_destroy(&gm);
}

TestSuite(boot_linux, .init = setup, .fini = teardown);

static int load(const uint8_t *img, size_t len, const uint8_t *rd, size_t rd_len,
		struct boot_entry *e)
{
	struct boot_linux_input in = {.kernel = img,
				      .kernel_len = len,
				      .initrd = rd,
				      .initrd_len = rd_len,
				      .cmdline = CMDLINE,
				      .kernel_name = "test-kernel",
				      .initrd_name = "test-initrd"};

	return boot_linux_image(&gm, &in, e);
}

static struct setup_header *hdr(uint8_t *img)
{
	return (struct setup_header *)(img + BZ_HDR_OFF);
}

Test(boot_linux, bzimage_loads_kernel_initrd_cmdline_and_zero_page)
{
	static uint8_t rd[3 * 4096 + 5];
	struct boot_entry e;
	struct boot_params *bp;
	size_t len;
	uint8_t *img = bz_image(&len), *k = gm_ptr(&gm, BOOT_KERNEL_GPA, BZ_PAYLOAD);
	uint64_t rd_gpa;

	memset(rd, 0x5a, sizeof(rd));
	cr_assert_eq(load(img, len, rd, sizeof(rd), &e), 0);
	cr_assert_eq(e.mode, BOOT_LONG64);
	cr_assert_eq(e.rip, BOOT_KERNEL_GPA + 0x200);
	cr_assert_eq(e.rsi, BOOT_ZERO_PAGE_GPA);
	cr_assert_eq(e.cr3, BOOT_PML4_GPA);
	cr_assert_eq(e.gdt_gpa, BOOT_GDT_GPA);
	for (size_t i = 0; i < BZ_PAYLOAD; i++)
		cr_assert_eq(k[i], IMG_PATTERN(BZ_SETUP_BYTES + i), "kernel byte %zu", i);
	cr_assert_str_eq((char *)gm_ptr(&gm, BOOT_CMDLINE_GPA, 1), CMDLINE);

	bp = gm_ptr(&gm, BOOT_ZERO_PAGE_GPA, sizeof(*bp));
	cr_assert_eq(bp->hdr.type_of_loader, 0xff);
	cr_assert(bp->hdr.loadflags & LOADED_HIGH);
	cr_assert_eq(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_GPA);
	/* The initrd sits page-aligned at the top of RAM, above the kernel's init_size. */
	rd_gpa = bp->hdr.ramdisk_image | (uint64_t)bp->ext_ramdisk_image << 32;
	cr_assert_eq(bp->hdr.ramdisk_size, sizeof(rd));
	cr_assert_eq(rd_gpa % GM_PAGE_SIZE, 0);
	cr_assert_leq(rd_gpa + sizeof(rd), RAM);
	cr_assert_gt(rd_gpa + sizeof(rd), RAM - GM_PAGE_SIZE);
	cr_assert_geq(rd_gpa, BOOT_KERNEL_GPA + BZ_INIT_SIZE);
	cr_assert_eq(memcmp(gm_ptr(&gm, rd_gpa, sizeof(rd)), rd, sizeof(rd)), 0);
	cr_assert_eq(bp->e820_entries, 5);
	cr_assert_eq(bp->e820_table[2].addr, BOOT_HIMEM_GPA);
	cr_assert_eq(bp->e820_table[2].size, RAM - BOOT_HIMEM_GPA);
	free(img);
}

Test(boot_linux, bzimage_initrd_respects_initrd_addr_max)
{
	static uint8_t rd[8192];
	struct boot_entry e;
	size_t len;
	uint8_t *img = bz_image(&len);
	struct boot_params *bp = gm_ptr(&gm, BOOT_ZERO_PAGE_GPA, sizeof(*bp));

	hdr(img)->initrd_addr_max = 32 * MiB - 1;
	cr_assert_eq(load(img, len, rd, sizeof(rd), &e), 0);
	cr_assert_eq(bp->hdr.ramdisk_image, 32 * MiB - sizeof(rd));
	/* No room at all below the limit next to the kernel. */
	hdr(img)->initrd_addr_max = BOOT_KERNEL_GPA + BZ_INIT_SIZE;
	cr_assert_eq(load(img, len, rd, sizeof(rd), &e), -E2BIG);
	hdr(img)->initrd_addr_max = 0;
	cr_assert_eq(load(img, len, rd, sizeof(rd), &e), -E2BIG);
	free(img);
}

Test(boot_linux, bzimage_initrd_larger_than_ram_is_refused)
{
	struct boot_entry e;
	size_t len;
	uint8_t *img = bz_image(&len);

	/* The length alone is checked before anything is copied: no buffer that large is needed. */
	cr_assert_eq(load(img, len, img, RAM + 1, &e), -E2BIG);
	cr_assert_eq(load(img, len, img, SIZE_MAX, &e), -E2BIG);
	free(img);
}

Test(boot_linux, bzimage_old_protocol_or_no_64bit_entry_is_refused)
{
	struct boot_entry e;
	size_t len;
	uint8_t *img = bz_image(&len);

	hdr(img)->version = 0x020b;
	cr_assert_eq(load(img, len, NULL, 0, &e), -ENOEXEC);
	hdr(img)->version = 0x020f;
	hdr(img)->xloadflags = 0;
	cr_assert_eq(load(img, len, NULL, 0, &e), -ENOEXEC);
	free(img);
}

Test(boot_linux, bzimage_truncated_or_lying_sizes_are_refused)
{
	struct boot_entry e;
	size_t len;
	uint8_t *img = bz_image(&len);

	cr_assert_eq(load(img, len - 1, NULL, 0, &e), -ENOEXEC, "syssize says more than the file");
	cr_assert_eq(load(img, BZ_SETUP_BYTES, NULL, 0, &e), -ENOEXEC, "setup only");
	cr_assert_eq(load(img, BZ_HDR_OFF + sizeof(struct setup_header), NULL, 0, &e), -ENOEXEC,
		     "cut inside the header");
	hdr(img)->syssize = 0xffffffff;
	cr_assert_eq(load(img, len, NULL, 0, &e), -ENOEXEC);
	hdr(img)->syssize = BZ_PAYLOAD / 16;
	hdr(img)->setup_sects = 0xff; /* the setup would be 128 KiB: past the end */
	cr_assert_eq(load(img, len, NULL, 0, &e), -ENOEXEC);
	hdr(img)->setup_sects = BZ_SETUP_SECTS;
	hdr(img)->init_size = 0xffffffff; /* needs 4 GiB to decompress */
	cr_assert_eq(load(img, len, NULL, 0, &e), -E2BIG);
	free(img);
}

Test(boot_linux, bzimage_command_line_limits)
{
	static char long_cmd[BOOT_CMDLINE_MAX + 1];
	struct boot_linux_input in = {.cmdline = long_cmd};
	struct boot_entry e;
	size_t len;
	uint8_t *img = bz_image(&len);

	in.kernel = img;
	in.kernel_len = len;
	hdr(img)->cmdline_size = 10; /* shorter than CMDLINE */
	cr_assert_eq(load(img, len, NULL, 0, &e), -E2BIG);
	/* The largest cmdline_size must not wrap to a limit of 0 bytes. */
	hdr(img)->cmdline_size = 0xffffffff;
	cr_assert_eq(load(img, len, NULL, 0, &e), 0);
	memset(long_cmd, 'x', BOOT_CMDLINE_MAX);
	cr_assert_eq(boot_linux_image(&gm, &in, &e), -E2BIG, "our own limit still holds");
	free(img);
}

Test(boot_linux, neither_bzimage_nor_elf_is_refused)
{
	static const uint8_t text[] = "root:x:0:0:root:/root:/bin/sh\n";
	struct boot_entry e;
	size_t len;
	uint8_t *img = bz_image(&len);

	cr_assert_eq(load(text, sizeof(text), NULL, 0, &e), -ENOEXEC);
	cr_assert_eq(load(text, 0, NULL, 0, &e), -ENOEXEC);
	img[0x1fe] = 0; /* boot flag gone */
	cr_assert_eq(load(img, len, NULL, 0, &e), -ENOEXEC);
	free(img);
}

static Elf64_Phdr *ph(uint8_t *img, unsigned int i)
{
	return (Elf64_Phdr *)(img + ((Elf64_Ehdr *)img)->e_phoff) + i;
}

Test(boot_linux, pvh_loads_segments_start_info_and_initrd)
{
	static uint8_t rd[5000];
	struct boot_entry e;
	uint8_t *img = elf_image(PVH_LOAD_GPA, PVH_ENTRY_GPA, 1), *seg;
	struct hvm_start_info *si = gm_ptr(&gm, BOOT_PVH_INFO_GPA, sizeof(*si));
	struct hvm_memmap_table_entry *mm;
	struct hvm_modlist_entry *mod;

	memset(gm_ptr(&gm, PVH_LOAD_GPA, ELF_SEG_MEMSZ), 0xee, ELF_SEG_MEMSZ); /* stale RAM */
	memset(rd, 0xa5, sizeof(rd));
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, rd, sizeof(rd), &e), 0);
	cr_assert_eq(e.mode, BOOT_PROT32);
	cr_assert_eq(e.rip, PVH_ENTRY_GPA);
	cr_assert_eq(e.rbx, BOOT_PVH_INFO_GPA);
	seg = gm_ptr(&gm, PVH_LOAD_GPA, ELF_SEG_MEMSZ);
	for (size_t i = 0; i < ELF_SEG_FILESZ; i++)
		cr_assert_eq(seg[i], IMG_PATTERN(ELF_SEG_OFF + i));
	for (size_t i = ELF_SEG_FILESZ; i < ELF_SEG_MEMSZ; i++)
		cr_assert_eq(seg[i], 0, "bss byte %zu zeroed", i);
	cr_assert_eq(si->magic, PVH_MAGIC);
	cr_assert_eq(si->version, 1);
	cr_assert_eq(si->cmdline_paddr, BOOT_CMDLINE_GPA);
	cr_assert_str_eq((char *)gm_ptr(&gm, BOOT_CMDLINE_GPA, 1), CMDLINE);
	cr_assert_eq(si->memmap_entries, 5);
	mm = gm_ptr(&gm, si->memmap_paddr, 5 * sizeof(*mm));
	cr_assert_eq(mm[0].addr, 0);
	cr_assert_eq(mm[0].type, BOOT_E820_RAM);
	cr_assert_eq(si->nr_modules, 1);
	mod = gm_ptr(&gm, si->modlist_paddr, sizeof(*mod));
	cr_assert_eq(mod->size, sizeof(rd));
	cr_assert_geq(mod->paddr, PVH_LOAD_GPA + ELF_SEG_MEMSZ);
	cr_assert_eq(memcmp(gm_ptr(&gm, mod->paddr, sizeof(rd)), rd, sizeof(rd)), 0);
	free(img);
}

Test(boot_linux, pvh_program_headers_at_an_odd_offset_are_read)
{
	static uint8_t img2[ELF_IMAGE_BYTES + 0x200];
	struct boot_entry e;
	uint8_t *img = elf_image(PVH_LOAD_GPA, PVH_ENTRY_GPA, 1);

	/* Move the table to offset 0x2101 (unaligned): a loader that casts would misread it. */
	memcpy(img2, img, ELF_IMAGE_BYTES);
	memcpy(img2 + 0x2101, img + 64, 2 * sizeof(Elf64_Phdr));
	((Elf64_Ehdr *)img2)->e_phoff = 0x2101;
	cr_assert_eq(load(img2, sizeof(img2), NULL, 0, &e), 0);
	cr_assert_eq(e.rip, PVH_ENTRY_GPA);
	free(img);
}

Test(boot_linux, pvh_without_entry_note_is_refused)
{
	struct boot_entry e;
	uint8_t *img = elf_image(PVH_LOAD_GPA, PVH_ENTRY_GPA, 0);

	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	free(img);
	img = elf_image(PVH_LOAD_GPA, PVH_ENTRY_GPA, 1);
	((Elf64_Nhdr *)(img + ELF_NOTE_OFF))->n_namesz =
		0xfffffff0; /* note runs past its segment */
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	free(img);
	img = elf_image(PVH_LOAD_GPA, PVH_ENTRY_GPA, 1);
	ph(img, 1)->p_offset = UINT64_MAX - 8; /* note segment offset wraps */
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	free(img);
}

Test(boot_linux, pvh_bad_headers_are_refused)
{
	struct boot_entry e;
	uint8_t *img = elf_image(PVH_LOAD_GPA, PVH_ENTRY_GPA, 1);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;

	cr_assert_eq(load(img, sizeof(Elf64_Ehdr) + 10, NULL, 0, &e), -ENOEXEC, "truncated table");
	eh->e_phoff = UINT64_MAX - 16; /* phoff + table wraps around */
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_phnum = 0xffff;
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	eh->e_phnum = 2;
	eh->e_phentsize = 32;
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_machine = EM_386;
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	free(img);
}

Test(boot_linux, pvh_bad_segments_are_refused)
{
	struct boot_entry e;
	uint8_t *img = elf_image(PVH_LOAD_GPA, PVH_ENTRY_GPA, 1);

	ph(img, 0)->p_offset = ELF_IMAGE_BYTES; /* file bytes past the end */
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	ph(img, 0)->p_offset = UINT64_MAX;
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	ph(img, 0)->p_offset = ELF_SEG_OFF;
	ph(img, 0)->p_filesz = ELF_SEG_MEMSZ + 1; /* more in the file than in memory */
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	ph(img, 0)->p_filesz = ELF_SEG_FILESZ;
	ph(img, 0)->p_paddr = UINT64_MAX - 0x1000; /* paddr + memsz wraps */
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -ENOEXEC);
	ph(img, 0)->p_paddr = RAM - 0x1000; /* runs past the end of RAM */
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -E2BIG);
	ph(img, 0)->p_paddr = PVH_LOAD_GPA;
	ph(img, 0)->p_memsz = 1ULL << 40; /* 1 TiB of bss */
	cr_assert_eq(load(img, ELF_IMAGE_BYTES, NULL, 0, &e), -E2BIG);
	free(img);
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	fclose(f);
}

Test(boot_linux, files_are_read_or_refused)
{
	char dir[] = "/tmp/vmm-boot.XXXXXX", k[64], rd[64];
	struct boot_entry e;
	size_t len;
	uint8_t *img = bz_image(&len);

	cr_assert_not_null(mkdtemp(dir));
	snprintf(k, sizeof(k), "%s/bzImage", dir);
	snprintf(rd, sizeof(rd), "%s/initrd", dir);
	write_file(k, img, len);
	write_file(rd, "initrd", 6);
	cr_assert_eq(boot_linux(&gm, k, rd, CMDLINE, &e), 0);
	cr_assert_eq(
		((struct boot_params *)gm_ptr(&gm, BOOT_ZERO_PAGE_GPA, 4096))->hdr.ramdisk_size, 6);
	cr_assert_eq(boot_linux(&gm, dir, NULL, CMDLINE, &e), -EISDIR);
	cr_assert_eq(boot_linux(&gm, "/nonexistent/bzImage", NULL, CMDLINE, &e), -ENOENT);
	cr_assert_eq(boot_linux(&gm, k, "/nonexistent/initrd", CMDLINE, &e), -ENOENT);
	unlink(k);
	unlink(rd);
	rmdir(dir);
	free(img);
}
