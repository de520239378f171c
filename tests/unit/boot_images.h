/*
 * Synthetic boot images for the loader tests (vmm/boot): a minimal valid bzImage, PVH ELF
 * vmlinux and firmware ELF that each test then breaks in one place, the way tests/kvm/loader.sh
 * patches bytes of a real image. Every builder returns a malloc'd buffer (caller frees).
 */
#ifndef TESTS_UNIT_BOOT_IMAGES_H
#define TESTS_UNIT_BOOT_IMAGES_H

#include <stddef.h>
#include <stdint.h>

#define BZ_SETUP_SECTS	 4
#define BZ_SETUP_BYTES	 ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_PAYLOAD	 0x2000 /* bytes of "protected-mode kernel" after the setup */
#define BZ_INIT_SIZE	 0x10000
#define BZ_HDR_OFF	 0x1f1
#define ELF_IMAGE_BYTES	 0x3000
#define ELF_SEG_OFF	 0x1000 /* file offset of the one PT_LOAD segment */
#define ELF_SEG_FILESZ	 0x1000
#define ELF_SEG_MEMSZ	 0x3000
#define ELF_NOTE_OFF	 0x2000
#define PVH_LOAD_GPA	 0x100000ULL
#define PVH_ENTRY_GPA	 0x100010ULL
#define FW_LOAD_GPA	 0x200000ULL
#define FW_ENTRY_GPA	 0x200000ULL
#define IMG_PATTERN(off) ((uint8_t)((off)*7 + 1)) /* the byte at file offset @off */

/** bz_image() - a bzImage (boot protocol 2.15, 64-bit entry); *@len: its size in bytes. */
uint8_t *bz_image(size_t *len);

/**
 * elf_image() - an ELF64 x86-64 executable with one PT_LOAD at @paddr (PF_R|PF_X, file offset
 * ELF_SEG_OFF, ELF_SEG_FILESZ bytes in the file, ELF_SEG_MEMSZ in memory) entered at @entry, and
 * with @pvh_note a PT_NOTE whose XEN_ELFNOTE_PHYS32_ENTRY note says @entry. ELF_IMAGE_BYTES long.
 */
uint8_t *elf_image(uint64_t paddr, uint64_t entry, int pvh_note);

#endif
