#include "boot_images.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/boot/boot.h"

static void fill_pattern(uint8_t *buf, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		buf[i] = IMG_PATTERN(i);
}

uint8_t *bz_image(size_t *len)
{
	struct setup_header h = {0};
	uint8_t *img;

	*len = BZ_SETUP_BYTES + BZ_PAYLOAD;
	img = calloc(1, *len);
	if (!img)
		return NULL;
	fill_pattern(img, BZ_SETUP_BYTES, *len);
	h.setup_sects = BZ_SETUP_SECTS;
	h.boot_flag = 0xaa55;
	h.header = 0x53726448; /* "HdrS" */
	h.version = 0x020f;
	h.xloadflags = XLF_KERNEL_64;
	h.syssize = BZ_PAYLOAD / 16;
	h.init_size = BZ_INIT_SIZE;
	h.cmdline_size = 2047;
	h.initrd_addr_max = 0x7fffffff;
	memcpy(img + BZ_HDR_OFF, &h, sizeof(h));
	return img;
}

static void put_note(uint8_t *img, uint64_t entry)
{
	Elf64_Nhdr nh = {.n_namesz = 4, .n_descsz = 4, .n_type = XEN_ELFNOTE_PHYS32_ENTRY};
	uint32_t e = (uint32_t)entry;

	memcpy(img + ELF_NOTE_OFF, &nh, sizeof(nh));
	memcpy(img + ELF_NOTE_OFF + sizeof(nh), "Xen", 4);
	memcpy(img + ELF_NOTE_OFF + sizeof(nh) + 4, &e, 4);
}

uint8_t *elf_image(uint64_t paddr, uint64_t entry, int pvh_note)
{
	Elf64_Ehdr eh = {
		.e_ident = {ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB,
			    EV_CURRENT},
		.e_type = ET_EXEC,
		.e_machine = EM_X86_64,
		.e_version = EV_CURRENT,
		.e_entry = entry,
		.e_phoff = sizeof(Elf64_Ehdr),
		.e_ehsize = sizeof(Elf64_Ehdr),
		.e_phentsize = sizeof(Elf64_Phdr),
		.e_phnum = pvh_note ? 2 : 1,
	};
	Elf64_Phdr ph[2] = {
		{.p_type = PT_LOAD,
		 .p_flags = PF_R | PF_X,
		 .p_offset = ELF_SEG_OFF,
		 .p_vaddr = paddr,
		 .p_paddr = paddr,
		 .p_filesz = ELF_SEG_FILESZ,
		 .p_memsz = ELF_SEG_MEMSZ,
		 .p_align = 0x1000},
		{.p_type = PT_NOTE, .p_offset = ELF_NOTE_OFF, .p_filesz = 20, .p_align = 4},
	};
	uint8_t *img = calloc(1, ELF_IMAGE_BYTES);

	if (!img)
		return NULL;
	memcpy(img, &eh, sizeof(eh));
	memcpy(img + eh.e_phoff, ph, eh.e_phnum * sizeof(ph[0]));
	fill_pattern(img, ELF_SEG_OFF, ELF_SEG_OFF + ELF_SEG_FILESZ);
	if (pvh_note)
		put_note(img, entry);
	return img;
}
