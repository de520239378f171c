/*
 * Linux x86-64 boot protocol (Documentation/arch/x86/boot.rst) and PVH
 * (xen/arch-x86/hvm/start_info.h): load a bzImage or an ELF vmlinux with a PVH entry note, the
 * initrd and the command line into guest RAM, build e820, identity page tables, a GDT and the MP
 * table, and say how to enter.
 */
#ifndef VMM_BOOT_BOOT_H
#define VMM_BOOT_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "../vcpu.h"

struct vm;

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
 * 1 MiB, the reserved PCI/IOAPIC/LAPIC hole, RAM above 4 GiB. Writes up to BOOT_MAX_E820 entries.
 * Returns the number of entries.
 */
unsigned int boot_e820(const struct vm *vm, struct e820_range *out);

/* A PCI INTx routing for the MP table: device @slot's pin @pin (1 = INTA) raises IOAPIC @irq. */
struct mp_pci_irq {
	uint8_t slot, pin, irq;
};

/**
 * boot_mptable() - write the Intel MP 1.4 floating pointer + configuration table at BOOT_EBDA_GPA:
 * one processor entry per vCPU (APIC ID = index), ISA and PCI buses, the IOAPIC (ID nr_vcpus,
 * 0xfec00000), identity ISA IRQ routing, @nr_pci PCI INTx routes, ExtINT on LINT0 and NMI on LINT1.
 * Returns 0, or -ENOSPC when it does not fit in the reserved area.
 */
int boot_mptable(struct vm *vm, const struct mp_pci_irq *pci, unsigned int nr_pci);

/**
 * boot_linux() - load @kernel (bzImage, or ELF vmlinux booted through its PVH note), @initrd
 * (may be NULL) and @cmdline (< BOOT_CMDLINE_MAX bytes) and fill @entry for the boot vCPU.
 * The caller writes the MP table (boot_mptable) once the PCI devices are known.
 * Errors: -ENOENT/-EACCES (unreadable file), -ENOEXEC (neither a bzImage nor an ELF with a PVH
 * note, or too old a boot protocol), -E2BIG (kernel or initrd does not fit in RAM, command line
 * too long). A one-line message saying what to do is printed.
 */
int boot_linux(struct vm *vm, const char *kernel, const char *initrd, const char *cmdline,
	       struct boot_entry *entry);

/* Firmware: the top of low RAM kept for the stack (no PT_LOAD segment may reach into it). */
#define BOOT_FW_STACK_BYTES 0x10000ULL

/**
 * boot_firmware() - load a freestanding ELF64 firmware image (firmware/, see docs/firmware.md):
 * PT_LOAD segments at their physical addresses, identity page tables with the user bit over the
 * first 4 GiB, entry in 64-bit mode at CPL3 with IOPL 3 (port I/O allowed), rsp at the top of
 * low RAM, rdi = guest RAM size in bytes. Fills @entry (mode BOOT_USER64).
 * The argument string @args (NULL: empty) is copied NUL-terminated to
 * BOOT_CMDLINE_GPA (entry->rsi holds that address too).
 * Errors: -ENOENT/-EACCES (unreadable), -ENOEXEC (not an x86-64 ELF64 executable), -E2BIG (a
 * segment outside RAM or overlapping the boot area below 1 MiB, argument string too long).
 */
int boot_firmware(struct vm *vm, const char *path, const char *args, struct boot_entry *entry);

/**
 * boot_gdt() - write the boot GDT for @mode at BOOT_GDT_GPA: 0x10 kernel code (64- or 32-bit),
 * 0x18 kernel data, 0x1b/0x23 user code64/data (BOOT_USER64), 0x28 a 64-bit TSS. Sets the GDT
 * fields of @entry. Returns 0 or -EFAULT.
 */
int boot_gdt(struct vm *vm, struct boot_entry *entry);

/**
 * boot_identity_map() - 4-level page tables at BOOT_PML4_GPA identity-mapping the first 4 GiB with
 * 2 MiB pages (@user: also accessible from CPL3). Sets entry->cr3. Returns 0 or -EFAULT.
 */
int boot_identity_map(struct vm *vm, struct boot_entry *entry, int user);

/**
 * boot_read_file() - read a whole file into a malloc'd buffer (caller frees) of at most @max bytes.
 * Returns 0, -errno from open/read, or -E2BIG.
 */
int boot_read_file(const char *path, size_t max, uint8_t **buf, size_t *len);

#endif
