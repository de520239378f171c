/*
 * Linux x86-64 boot protocol (Documentation/arch/x86/boot.rst) and PVH
 * (xen/arch-x86/hvm/start_info.h): load a bzImage or an ELF vmlinux with a PVH entry note, the
 * initrd and the command line into guest RAM, build e820, identity page tables, a GDT and the MP
 * table, and say how to enter.
 *
 * The loaders know no VM: they write into a struct guest_mem (vmm/mem/guest_mem.h) through its
 * bounds-checked accessors and return a struct boot_entry the vCPU code turns into registers, so
 * they run (and are unit-tested and fuzzed) on plain memory without KVM. Every image is
 * validated; a malformed one gives -ENOEXEC or -E2BIG and a message, never a crash.
 */
#ifndef VMM_BOOT_BOOT_H
#define VMM_BOOT_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct guest_mem;

/* How the boot vCPU enters the guest. */
enum boot_mode {
	BOOT_LONG64, /* Linux 64-bit boot protocol: paging on, CPL0, rsi = boot_params */
	BOOT_PROT32, /* PVH: 32-bit protected mode, paging off, rbx = hvm_start_info */
	BOOT_USER64, /* firmware: 64-bit CPL3 with IOPL 3 */
};

struct boot_entry {
	enum boot_mode mode;
	uint64_t rip;	  /* entry point, GPA */
	uint64_t rsi;	  /* BOOT_LONG64: boot_params GPA; BOOT_USER64: argument string GPA */
	uint64_t rbx;	  /* BOOT_PROT32: start_info GPA */
	uint64_t rsp;	  /* BOOT_USER64: initial stack */
	uint64_t rdi;	  /* BOOT_USER64: first argument (guest RAM bytes) */
	uint64_t cr3;	  /* page tables (LONG64/USER64) */
	uint64_t gdt_gpa; /* GDT base, limit gdt_limit */
	uint16_t gdt_limit;
};

/* Fixed guest-physical layout of boot data (all below 640 KiB or at 1 MiB). */
#define BOOT_GDT_GPA	   0x500ULL
#define BOOT_PVH_INFO_GPA  0x6000ULL
#define BOOT_ZERO_PAGE_GPA 0x7000ULL
#define BOOT_PML4_GPA	   0x9000ULL /* PML4, PDPT and 4 PDs: 0x9000-0xefff */
#define BOOT_CMDLINE_GPA   0x20000ULL
#define BOOT_CMDLINE_MAX   2048
#define BOOT_EBDA_GPA	   0x9fc00ULL /* reserved from here to 1 MiB; MP table lives here */
#define BOOT_KERNEL_GPA	   0x100000ULL
#define BOOT_HIMEM_GPA	   0x100000ULL

/* The 32-bit PCI MMIO window (BARs), reserved in e820; between RAM and the IOAPIC. */
#define BOOT_PCI_MMIO_BASE 0xe0000000ULL
#define BOOT_PCI_MMIO_SIZE 0x10000000ULL

/* One contiguous guest-physical range of the e820 map. */
struct e820_range {
	uint64_t addr, size;
	uint32_t type; /* BOOT_E820_RAM (1) or BOOT_E820_RESERVED (2) */
};
#define BOOT_MAX_E820	   8
#define BOOT_E820_RAM	   1 /* ACPI address range types (ACPI 6.5 §15) */
#define BOOT_E820_RESERVED 2

/**
 * boot_e820() - the guest's memory map: RAM below 640 KiB, the reserved EBDA/BIOS area, RAM from
 * 1 MiB, the reserved PCI/IOAPIC/LAPIC hole, RAM above 4 GiB, from the regions of @gm (at least
 * 1 MiB of RAM). Writes up to BOOT_MAX_E820 entries to @out. Returns the number of entries.
 */
unsigned int boot_e820(const struct guest_mem *gm, struct e820_range *out);

/* A PCI INTx routing for the MP table: device @slot's pin @pin (1 = INTA) raises IOAPIC @irq. */
struct mp_pci_irq {
	uint8_t slot, pin, irq;
};

/**
 * boot_mptable() - write the Intel MP 1.4 floating pointer + configuration table into @gm at
 * BOOT_EBDA_GPA: one processor entry per vCPU (@nr_vcpus, APIC ID = index), ISA and PCI buses, the
 * IOAPIC (ID @nr_vcpus, 0xfec00000), identity ISA IRQ routing, @nr_pci PCI INTx routes from @pci,
 * ExtINT on LINT0 and NMI on LINT1. Returns 0, or -ENOSPC when it does not fit in the reserved
 * area (more than 254 vCPUs, too many routes, or no RAM there).
 */
int boot_mptable(struct guest_mem *gm, unsigned int nr_vcpus, const struct mp_pci_irq *pci,
		 unsigned int nr_pci);

/* PVH start info, version 1 (xen/include/public/arch-x86/hvm/start_info.h); not a Linux UAPI. */
#define PVH_MAGIC		 0x336ec578 /* hvm_start_info.magic */
#define XEN_ELFNOTE_PHYS32_ENTRY 18	    /* the ELF note (name "Xen") holding the 32-bit entry */
struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};
struct hvm_memmap_table_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

/* A Linux kernel, its initrd and command line, already in host memory. */
struct boot_linux_input {
	const uint8_t *kernel;		       /* the bzImage or ELF vmlinux image */
	size_t kernel_len;		       /* bytes */
	const uint8_t *initrd;		       /* NULL: none */
	size_t initrd_len;		       /* bytes */
	const char *cmdline;		       /* NUL-terminated, < BOOT_CMDLINE_MAX bytes */
	const char *kernel_name, *initrd_name; /* for messages (may be NULL) */
};

/**
 * boot_linux_image() - load @in->kernel (bzImage through the 64-bit boot protocol, or an ELF
 * vmlinux through its PVH note), the initrd (placed as high as the kernel allows) and the command
 * line into @gm, write the zero page or PVH start info with the e820 map, page tables and GDT, and
 * fill @entry for the boot vCPU. The caller writes the MP table (boot_mptable) once the PCI
 * devices are known. Errors: -ENOEXEC (neither a bzImage nor an ELF with a PVH note, too old a
 * boot protocol, a truncated image, a segment outside the file), -E2BIG (kernel or initrd does not
 * fit in RAM, command line too long), -EFAULT (RAM too small for the boot area). A one-line
 * message saying what to do is printed.
 */
int boot_linux_image(struct guest_mem *gm, const struct boot_linux_input *in,
		     struct boot_entry *entry);

/**
 * boot_linux() - read @kernel and @initrd (may be NULL) and boot_linux_image() them with
 * @cmdline. Errors: those of boot_linux_image(), and -ENOENT/-EACCES/-EISDIR (unreadable file),
 * -E2BIG (kernel above 256 MiB, initrd above 4 GiB).
 */
int boot_linux(struct guest_mem *gm, const char *kernel, const char *initrd, const char *cmdline,
	       struct boot_entry *entry);

/* Firmware: the top of low RAM kept for the stack (no PT_LOAD segment may reach into it). */
#define BOOT_FW_STACK_BYTES 0x10000ULL

/**
 * boot_firmware_image() - load the freestanding ELF64 firmware image @img (@len bytes; @path
 * names it in messages; firmware/, see docs/firmware.md) into @gm: PT_LOAD segments at their
 * physical addresses, identity page tables with the user bit over the first 4 GiB, entry in
 * 64-bit mode at CPL3 with IOPL 3 (port I/O allowed), rsp at the top of low RAM, rdi = guest RAM
 * size in bytes. Fills @entry (mode BOOT_USER64). The argument string @args (NULL: empty) is
 * copied NUL-terminated to BOOT_CMDLINE_GPA (entry->rsi holds that address too).
 * Errors: -ENOEXEC (not an x86-64 ELF64 static executable, malformed program headers), -E2BIG
 * (RAM too small, a segment outside low RAM or overlapping the boot area below 1 MiB, argument
 * string too long).
 */
int boot_firmware_image(struct guest_mem *gm, const char *path, const uint8_t *img, size_t len,
			const char *args, struct boot_entry *entry);

/**
 * boot_firmware() - read the firmware file @path (at most the size of low RAM) and
 * boot_firmware_image() it. Errors: those of boot_firmware_image(), -ENOENT/-EACCES
 * (unreadable, a directory or not a regular file), -E2BIG (larger than RAM).
 */
int boot_firmware(struct guest_mem *gm, const char *path, const char *args,
		  struct boot_entry *entry);

/**
 * boot_gdt() - write the boot GDT for @entry->mode into @gm at BOOT_GDT_GPA: 0x10 kernel code (64-
 * or 32-bit), 0x18 kernel data, 0x1b/0x23 user code64/data (BOOT_USER64), 0x28 a 64-bit TSS. Sets
 * the GDT fields of @entry. Returns 0 or -EFAULT.
 */
int boot_gdt(struct guest_mem *gm, struct boot_entry *entry);

/**
 * boot_identity_map() - 4-level page tables in @gm at BOOT_PML4_GPA identity-mapping the first 4
 * GiB with 2 MiB pages (@user: also accessible from CPL3). Sets entry->cr3. Returns 0 or -EFAULT.
 */
int boot_identity_map(struct guest_mem *gm, struct boot_entry *entry, int user);

/**
 * boot_read_file() - read a whole file into a malloc'd buffer (caller frees) of at most @max bytes.
 * Returns 0, -errno from open/read, or -E2BIG.
 */
int boot_read_file(const char *path, size_t max, uint8_t **buf, size_t *len);

#endif
