/*
 * Loading a Linux kernel: bzImage through the 64-bit boot protocol (boot.rst, "64-bit boot
 * protocol"), or an ELF vmlinux through its PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY).
 */
#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mem/guest_mem.h"
#include "../util.h"
#include "boot.h"

#define KERNEL_MAX_BYTES (256 * MiB)
#define SETUP_HDR_OFF	 0x1f1
#define HDRS_MAGIC	 0x53726448 /* "HdrS" */
#define MIN_PROTOCOL	 0x020c	    /* 2.12: XLF_KERNEL_64 */

static uint64_t low_ram_end(const struct guest_mem *gm)
{
	return gm->regions[0].gpa + gm->regions[0].size;
}

/* @max: the kernel's limit in bytes including the NUL (boot.rst cmdline_size + 1). */
static int load_cmdline(struct guest_mem *gm, const char *cmdline, uint64_t max)
{
	size_t len = strlen(cmdline) + 1;

	if (len > max || len > BOOT_CMDLINE_MAX) {
		pr_err("kernel command line is %zu bytes; this kernel accepts at most %llu",
		       len - 1, (unsigned long long)MIN(max, (uint64_t)BOOT_CMDLINE_MAX) - 1);
		return -E2BIG;
	}
	return gm_write(gm, BOOT_CMDLINE_GPA, cmdline, len);
}

/* Place the initrd as high as possible under @max_addr, above @kernel_end. */
static int load_initrd(struct guest_mem *gm, const struct boot_linux_input *in, uint64_t kernel_end,
		       uint64_t max_addr, uint64_t *gpa, uint64_t *size)
{
	uint64_t len = in->initrd_len, top = MIN(low_ram_end(gm), max_addr + 1), start;

	start = len < top ? ALIGN_DOWN(top - len, GM_PAGE_SIZE) : 0;
	if (len >= top || start < kernel_end) {
		pr_err("initrd %s (%llu MiB) does not fit in guest RAM below %llu MiB next to the "
		       "kernel: use a larger --mem",
		       in->initrd_name ?: "(memory)", (unsigned long long)(len / MiB),
		       (unsigned long long)(top / MiB));
		return -E2BIG;
	}
	*gpa = start;
	*size = len;
	return gm_write(gm, start, in->initrd, len);
}

static int boot_bzimage(struct guest_mem *gm, const struct boot_linux_input *in,
			struct boot_entry *e)
{
	const uint8_t *img = in->kernel;
	size_t len = in->kernel_len;
	struct boot_params *bp;
	struct setup_header hdr;
	struct e820_range map[BOOT_MAX_E820];
	uint64_t setup_bytes, kernel_end, rd_gpa = 0, rd_size = 0;
	unsigned int n;
	int ret;

	memcpy(&hdr, img + SETUP_HDR_OFF, sizeof(hdr));
	if (hdr.version < MIN_PROTOCOL || !(hdr.xloadflags & XLF_KERNEL_64)) {
		pr_err("bzImage boot protocol %u.%02u has no 64-bit entry (need 2.12+)",
		       hdr.version >> 8, hdr.version & 0xff);
		return -ENOEXEC;
	}
	setup_bytes = ((uint64_t)(hdr.setup_sects ? hdr.setup_sects : 4) + 1) * 512;
	if (setup_bytes >= len || setup_bytes + (uint64_t)hdr.syssize * 16 > len) {
		/* syssize: the protected-mode kernel's size in 16-byte units (boot.rst) */
		pr_err("bzImage is truncated: %zu bytes, its header says %llu", len,
		       (unsigned long long)(setup_bytes + (uint64_t)hdr.syssize * 16));
		return -ENOEXEC;
	}
	kernel_end = BOOT_KERNEL_GPA + MAX(len - setup_bytes, (uint64_t)hdr.init_size);
	if (kernel_end > low_ram_end(gm)) {
		pr_err("kernel needs %llu MiB of RAM to decompress: use a larger --mem",
		       (unsigned long long)(kernel_end / MiB + 1));
		return -E2BIG;
	}
	ret = gm_write(gm, BOOT_KERNEL_GPA, img + setup_bytes, len - setup_bytes);
	if (ret)
		return ret;
	if (in->initrd) {
		ret = load_initrd(gm, in, kernel_end, hdr.initrd_addr_max, &rd_gpa, &rd_size);
		if (ret)
			return ret;
	}
	ret = load_cmdline(gm, in->cmdline,
			   hdr.cmdline_size ? (uint64_t)hdr.cmdline_size + 1 : 256);
	if (ret)
		return ret;

	bp = gm_ptr(gm, BOOT_ZERO_PAGE_GPA, sizeof(*bp));
	if (!bp)
		return -EFAULT;
	memset(bp, 0, sizeof(*bp));
	bp->hdr = hdr;
	bp->hdr.type_of_loader = 0xff;
	bp->hdr.loadflags |= CAN_USE_HEAP | LOADED_HIGH;
	bp->hdr.heap_end_ptr = 0xfe00;
	bp->hdr.vid_mode = 0xffff;
	bp->hdr.cmd_line_ptr = (uint32_t)BOOT_CMDLINE_GPA;
	bp->ext_cmd_line_ptr = 0;
	bp->hdr.ramdisk_image = (uint32_t)rd_gpa;
	bp->hdr.ramdisk_size = (uint32_t)rd_size;
	bp->ext_ramdisk_image = (uint32_t)(rd_gpa >> 32);
	bp->ext_ramdisk_size = (uint32_t)(rd_size >> 32);
	n = boot_e820(gm, map);
	for (unsigned int i = 0; i < n; i++)
		bp->e820_table[i] = (struct boot_e820_entry){map[i].addr, map[i].size, map[i].type};
	bp->e820_entries = (uint8_t)n;

	e->mode = BOOT_LONG64;
	e->rip = BOOT_KERNEL_GPA + 0x200; /* startup_64 */
	e->rsi = BOOT_ZERO_PAGE_GPA;
	ret = boot_identity_map(gm, e, 0);
	return ret ? ret : boot_gdt(gm, e);
}

/* Program header @i; the caller checked that the table lies inside the image. */
static Elf64_Phdr phdr(const uint8_t *img, const Elf64_Ehdr *eh, unsigned int i)
{
	Elf64_Phdr ph;

	memcpy(&ph, img + eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
	return ph;
}

/* The PVH entry point from the ELF notes, or 0. Notes may sit at any offset: copied, not cast. */
static uint64_t pvh_entry(const uint8_t *img, size_t len, const Elf64_Ehdr *eh)
{
	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph = phdr(img, eh, i);
		uint64_t off = ph.p_offset, end;

		if (ph.p_type != PT_NOTE || __builtin_add_overflow(off, ph.p_filesz, &end) ||
		    end > len)
			continue;
		while (off + sizeof(Elf64_Nhdr) <= end) {
			Elf64_Nhdr nh;
			uint64_t name, desc, next;

			memcpy(&nh, img + off, sizeof(nh));
			name = off + sizeof(nh);
			desc = name + ALIGN_UP((uint64_t)nh.n_namesz, 4);
			next = desc + ALIGN_UP((uint64_t)nh.n_descsz, 4);
			if (next > end)
				break;
			if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
			    !memcmp(img + name, "Xen", 4) && nh.n_descsz >= 4) {
				uint32_t entry;

				memcpy(&entry, img + desc, 4);
				return entry;
			}
			off = next;
		}
	}
	return 0;
}

static int check_elf(const uint8_t *img, size_t len, Elf64_Ehdr *eh)
{
	uint64_t ph_end;

	memcpy(eh, img, sizeof(*eh));
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    __builtin_add_overflow(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr),
				   &ph_end) ||
	    ph_end > len) {
		pr_err("ELF kernel is not a valid x86-64 ELF64 image");
		return -ENOEXEC;
	}
	return 0;
}

/* Copy every PT_LOAD segment to its physical address; *@kernel_end: the highest end. */
static int load_segments(struct guest_mem *gm, const uint8_t *img, size_t len, const Elf64_Ehdr *eh,
			 uint64_t *kernel_end)
{
	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph = phdr(img, eh, i);
		uint64_t fend, mend;
		uint8_t *dst;

		if (ph.p_type != PT_LOAD)
			continue;
		if (__builtin_add_overflow(ph.p_offset, ph.p_filesz, &fend) || fend > len ||
		    ph.p_filesz > ph.p_memsz ||
		    __builtin_add_overflow(ph.p_paddr, ph.p_memsz, &mend)) {
			pr_err("ELF kernel: a PT_LOAD segment lies outside the file");
			return -ENOEXEC;
		}
		dst = gm_ptr(gm, ph.p_paddr, ph.p_memsz);
		if (!dst || mend > low_ram_end(gm)) {
			pr_err("kernel segment at 0x%llx (%llu KiB) is outside guest RAM: use a "
			       "larger --mem",
			       (unsigned long long)ph.p_paddr,
			       (unsigned long long)(ph.p_memsz / KiB));
			return -E2BIG;
		}
		memcpy(dst, img + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		*kernel_end = MAX(*kernel_end, mend);
	}
	return 0;
}

static int boot_pvh(struct guest_mem *gm, const struct boot_linux_input *in, struct boot_entry *e)
{
	struct e820_range map[BOOT_MAX_E820];
	struct hvm_start_info *si;
	struct hvm_memmap_table_entry *mm;
	struct hvm_modlist_entry *mod;
	uint64_t entry, kernel_end = 0, rd_gpa, rd_size;
	Elf64_Ehdr eh;
	unsigned int n;
	int ret;

	ret = check_elf(in->kernel, in->kernel_len, &eh);
	if (ret)
		return ret;
	entry = pvh_entry(in->kernel, in->kernel_len, &eh);
	if (!entry) {
		pr_err("ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): build it with "
		       "CONFIG_PVH=y, or boot the bzImage");
		return -ENOEXEC;
	}
	ret = load_segments(gm, in->kernel, in->kernel_len, &eh, &kernel_end);
	if (!ret)
		ret = load_cmdline(gm, in->cmdline, BOOT_CMDLINE_MAX);
	if (ret)
		return ret;

	si = gm_ptr(gm, BOOT_PVH_INFO_GPA, 0x1000);
	if (!si)
		return -EFAULT;
	memset(si, 0, 0x1000);
	mm = (void *)((uint8_t *)si + 0x100);
	mod = (void *)((uint8_t *)si + 0x800);
	*si = (struct hvm_start_info){.magic = PVH_MAGIC,
				      .version = 1,
				      .cmdline_paddr = BOOT_CMDLINE_GPA,
				      .memmap_paddr = BOOT_PVH_INFO_GPA + 0x100};
	n = boot_e820(gm, map);
	for (unsigned int i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_table_entry){map[i].addr, map[i].size, map[i].type, 0};
	si->memmap_entries = n;
	if (in->initrd) {
		ret = load_initrd(gm, in, ALIGN_UP(kernel_end, GM_PAGE_SIZE), 0xffffffffULL,
				  &rd_gpa, &rd_size);
		if (ret)
			return ret;
		*mod = (struct hvm_modlist_entry){.paddr = rd_gpa, .size = rd_size};
		si->nr_modules = 1;
		si->modlist_paddr = BOOT_PVH_INFO_GPA + 0x800;
	}
	e->mode = BOOT_PROT32;
	e->rip = entry;
	e->rbx = BOOT_PVH_INFO_GPA;
	return boot_gdt(gm, e);
}

int boot_linux_image(struct guest_mem *gm, const struct boot_linux_input *in, struct boot_entry *e)
{
	const uint8_t *img = in->kernel;
	size_t len = in->kernel_len;
	uint32_t magic = 0;

	memset(e, 0, sizeof(*e));
	if (len > SETUP_HDR_OFF + sizeof(struct setup_header))
		memcpy(&magic, img + 0x202, 4);
	if (magic == HDRS_MAGIC && img[0x1fe] == 0x55 && img[0x1ff] == 0xaa)
		return boot_bzimage(gm, in, e);
	if (len >= sizeof(Elf64_Ehdr) && !memcmp(img, ELFMAG, SELFMAG))
		return boot_pvh(gm, in, e);
	pr_err("%s is neither a bzImage nor an ELF vmlinux: pass a Linux kernel image "
	       "(arch/x86/boot/bzImage or vmlinux)",
	       in->kernel_name ?: "the kernel");
	return -ENOEXEC;
}

int boot_linux(struct guest_mem *gm, const char *kernel, const char *initrd, const char *cmdline,
	       struct boot_entry *e)
{
	struct boot_linux_input in = {
		.cmdline = cmdline, .kernel_name = kernel, .initrd_name = initrd};
	uint8_t *img = NULL, *rd = NULL;
	int ret;

	ret = boot_read_file(kernel, KERNEL_MAX_BYTES, &img, &in.kernel_len);
	if (ret) {
		pr_err("cannot read kernel %s: %s", kernel,
		       ret == -E2BIG ? "larger than 256 MiB" : strerror(-ret));
		return ret;
	}
	if (initrd) {
		ret = boot_read_file(initrd, 4 * GiB, &rd, &in.initrd_len);
		if (ret) {
			pr_err("cannot read initrd %s: %s", initrd, strerror(-ret));
			goto out;
		}
		in.initrd = rd;
	}
	in.kernel = img;
	ret = boot_linux_image(gm, &in, e);
out:
	free(rd);
	free(img);
	return ret;
}
