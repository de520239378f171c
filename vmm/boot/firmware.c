/*
 * Loading a freestanding firmware image (firmware/, docs/firmware.md): a static ELF64 executable
 * whose PT_LOAD segments go to their physical addresses, entered at CPL3 in 64-bit mode.
 */
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../mem/guest_mem.h"
#include "../util.h"
#include "boot.h"

#define FW_MAX_PHDRS 64

static uint64_t low_ram_end(const struct guest_mem *gm)
{
	return gm->regions[0].gpa + gm->regions[0].size;
}

static int check_ehdr(const char *path, const uint8_t *img, size_t len, Elf64_Ehdr *eh)
{
	uint64_t ph_bytes, ph_end;

	if (len < sizeof(*eh)) {
		pr_err("firmware %s: too short for an ELF header (%zu bytes)", path, len);
		return -ENOEXEC;
	}
	memcpy(eh, img, sizeof(*eh));
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_ident[EI_VERSION] != EV_CURRENT ||
	    eh->e_machine != EM_X86_64 || eh->e_version != EV_CURRENT) {
		pr_err("firmware %s: not a little-endian x86-64 ELF64 file", path);
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC) {
		pr_err("firmware %s: ELF type %u is not a static executable (link with -static "
		       "-no-pie, see docs/firmware.md)",
		       path, eh->e_type);
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > FW_MAX_PHDRS ||
	    __builtin_mul_overflow((uint64_t)eh->e_phnum, sizeof(Elf64_Phdr), &ph_bytes) ||
	    __builtin_add_overflow(eh->e_phoff, ph_bytes, &ph_end) || ph_end > len) {
		pr_err("firmware %s: malformed program header table", path);
		return -ENOEXEC;
	}
	return 0;
}

/* One PT_LOAD: inside the file, identity-mapped, between 1 MiB and the stack reserve. */
static int check_load(const struct guest_mem *gm, const char *path, size_t len,
		      const Elf64_Phdr *ph)
{
	uint64_t file_end, mem_end, limit = low_ram_end(gm) - BOOT_FW_STACK_BYTES;

	if (ph->p_filesz > ph->p_memsz ||
	    __builtin_add_overflow(ph->p_offset, ph->p_filesz, &file_end) || file_end > len) {
		pr_err("firmware %s: a PT_LOAD segment lies outside the file", path);
		return -ENOEXEC;
	}
	if (ph->p_vaddr != ph->p_paddr) {
		pr_err("firmware %s: segment at virtual 0x%llx is linked for physical 0x%llx; "
		       "firmware runs identity-mapped (VA == PA)",
		       path, (unsigned long long)ph->p_vaddr, (unsigned long long)ph->p_paddr);
		return -ENOEXEC;
	}
	if (ph->p_paddr < BOOT_HIMEM_GPA) {
		pr_err("firmware %s: segment at 0x%llx overlaps the boot area below 1 MiB: link it "
		       "at 0x200000 (firmware/firmware.ld)",
		       path, (unsigned long long)ph->p_paddr);
		return -E2BIG;
	}
	if (__builtin_add_overflow(ph->p_paddr, ph->p_memsz, &mem_end) || mem_end > limit) {
		pr_err("firmware %s: segment [0x%llx, +0x%llx) does not fit in low RAM below "
		       "0x%llx (RAM top minus the stack): use a larger --mem",
		       path, (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz,
		       (unsigned long long)limit);
		return -E2BIG;
	}
	return 0;
}

static bool overlaps(const Elf64_Phdr *a, const Elf64_Phdr *b)
{
	return a->p_paddr < b->p_paddr + b->p_memsz && b->p_paddr < a->p_paddr + a->p_memsz;
}

/* Validate every program header into @loads (PT_LOAD with a non-empty image only). */
static int check_phdrs(const struct guest_mem *gm, const char *path, const uint8_t *img, size_t len,
		       const Elf64_Ehdr *eh, Elf64_Phdr *loads, unsigned int *nr_loads)
{
	bool entry_ok = false;
	unsigned int n = 0;
	int ret;

	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, img + eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_INTERP || ph.p_type == PT_DYNAMIC) {
			pr_err("firmware %s: dynamically linked; firmware must be static", path);
			return -ENOEXEC;
		}
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		ret = check_load(gm, path, len, &ph);
		if (ret)
			return ret;
		for (unsigned int j = 0; j < n; j++) {
			if (overlaps(&ph, &loads[j])) {
				pr_err("firmware %s: PT_LOAD segments overlap", path);
				return -ENOEXEC;
			}
		}
		if ((ph.p_flags & PF_X) && eh->e_entry >= ph.p_paddr &&
		    eh->e_entry - ph.p_paddr < ph.p_filesz)
			entry_ok = true;
		loads[n++] = ph;
	}
	if (!entry_ok) {
		pr_err("firmware %s: entry point 0x%llx is not inside an executable segment", path,
		       (unsigned long long)eh->e_entry);
		return -ENOEXEC;
	}
	*nr_loads = n;
	return 0;
}

static int load_args(struct guest_mem *gm, const char *path, const char *args)
{
	size_t len = strlen(args) + 1;

	if (len > BOOT_CMDLINE_MAX) {
		pr_err("firmware %s: argument string is %zu bytes, at most %u fit", path, len - 1,
		       BOOT_CMDLINE_MAX - 1);
		return -E2BIG;
	}
	return gm_write(gm, BOOT_CMDLINE_GPA, args, len);
}

int boot_firmware_image(struct guest_mem *gm, const char *path, const uint8_t *img, size_t len,
			const char *args, struct boot_entry *e)
{
	Elf64_Phdr loads[FW_MAX_PHDRS];
	unsigned int nr_loads = 0;
	Elf64_Ehdr eh;
	int ret;

	if (low_ram_end(gm) < BOOT_HIMEM_GPA + BOOT_FW_STACK_BYTES) {
		pr_err("firmware %s: guest RAM too small", path);
		return -E2BIG;
	}
	ret = check_ehdr(path, img, len, &eh);
	if (!ret)
		ret = check_phdrs(gm, path, img, len, &eh, loads, &nr_loads);
	for (unsigned int i = 0; !ret && i < nr_loads; i++) {
		const Elf64_Phdr *ph = &loads[i];
		uint8_t *dst = gm_ptr(gm, ph->p_paddr, ph->p_memsz);

		if (!dst) /* check_load() already bounded it; a hole in RAM would land here */
			return -E2BIG;
		memcpy(dst, img + ph->p_offset, ph->p_filesz);
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	}
	if (!ret)
		ret = load_args(gm, path, args ? args : "");
	if (ret)
		return ret;

	memset(e, 0, sizeof(*e));
	e->mode = BOOT_USER64;
	e->rip = eh.e_entry;
	e->rsp = low_ram_end(gm) - 64; /* 16-byte aligned, a little headroom above */
	e->rdi = gm->size;
	e->rsi = BOOT_CMDLINE_GPA;
	ret = boot_identity_map(gm, e, 1);
	return ret ? ret : boot_gdt(gm, e);
}

int boot_firmware(struct guest_mem *gm, const char *path, const char *args, struct boot_entry *e)
{
	uint8_t *img;
	size_t len;
	int ret;

	if (low_ram_end(gm) < BOOT_HIMEM_GPA + BOOT_FW_STACK_BYTES) {
		pr_err("firmware %s: guest RAM too small", path);
		return -E2BIG;
	}
	ret = boot_read_file(path, low_ram_end(gm), &img, &len);
	if (ret) {
		pr_err("cannot read firmware %s: %s", path,
		       ret == -E2BIG ? "larger than guest RAM" : strerror(-ret));
		return ret == -EISDIR || ret == -EINVAL ? -EACCES : ret;
	}
	ret = boot_firmware_image(gm, path, img, len, args, e);
	free(img);
	return ret;
}
