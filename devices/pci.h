/*
 * PCI bus 0: host bridge at 00:00.0, configuration mechanism #1 (ports 0xCF8/0xCFC), type-0
 * configuration headers with capability lists and write masks, memory BARs placed in a 32-bit
 * MMIO window, legacy INTx and MSI-X (PCI Local Bus 3.0 §6; PCI 3.0 §6.8.2 for MSI-X).
 *
 * The VMM plays the firmware: BARs are assigned at pci_bar_add() time (the guest may move them),
 * COMMAND starts at 0 and the guest enables decoding. Register layouts come from
 * <linux/pci_regs.h>.
 *
 * Locking: one bus mutex protects every configuration space and the BAR decode state; each
 * device has an interrupt mutex (MSI-X table, PBA, INTx level) that is a leaf. Lock order is
 * bus lock -> device's own lock (e.g. virtio_dev.lock) -> interrupt lock. Device hooks that run
 * under the bus lock say so.
 */
#ifndef DEVICES_PCI_H
#define DEVICES_PCI_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct pci_bus;
struct pci_dev;
struct state_in;
struct state_out;

/* The 32-bit MMIO window BARs are allocated from; it must equal the e820 hole
 * (BOOT_PCI_MMIO_BASE/SIZE, vmm/boot/boot.h). */
#define PCI_MMIO_BASE 0xE0000000ULL
#define PCI_MMIO_SIZE 0x10000000ULL /* 256 MiB */

#define PCI_CONF1_PORT	  0xCF8 /* address register 0xCF8-0xCFB, data 0xCFC-0xCFF */
#define PCI_CONF1_LEN	  8
#define PCI_MAX_SLOTS	  32 /* slot 0 is the host bridge */
#define PCI_INTX_GSI_BASE 16 /* IOAPIC pins 16..23 carry PCI INTx */

/* Host bridge identity (the virtual PCIe host bridge id Cloud Hypervisor and Firecracker use). */
#define PCI_HOST_VENDOR 0x8086
#define PCI_HOST_DEVICE 0x0D57

/* Sentinel for "not decoded" in pci_dev_ops.bar_remap(). */
#define PCI_BAR_UNMAPPED UINT64_MAX

/* pci_bar_add() flags. */
#define PCI_BAR_MEM64	 0x1 /* 64-bit memory BAR (takes two BAR registers) */
#define PCI_BAR_PREFETCH 0x2 /* prefetchable */

/*
 * Interrupt and ioeventfd backend. vm.c fills it with thin wrappers around vm_irq_line(),
 * vm_alloc_gsi(), vm_set_msi_route(), vm_irqfd(), vm_signal_msi() and vm_ioeventfd(); unit tests
 * fill it with fakes. Every hook may be NULL (the feature is then unavailable: INTx is dropped,
 * MSI-X falls back to signal_msi or is dropped, notifications go through MMIO exits).
 * Hooks return 0 or -errno; they are called from vCPU and loop threads, possibly concurrently.
 */
struct pci_irq_ops {
	void *opaque;
	/* Set IOAPIC pin @gsi to @level (1 asserted, 0 deasserted). */
	int (*irq_line)(void *opaque, uint32_t gsi, int level);
	/* A fresh GSI for an MSI route; returns the GSI (>= 0) or -errno. */
	int (*alloc_gsi)(void *opaque);
	/* Route @gsi to MSI message (@addr, @data), or remove the route when !@enable. */
	int (*set_msi_route)(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data, bool enable);
	/* (De)assign eventfd @efd to inject @gsi (KVM_IRQFD). */
	int (*irqfd)(void *opaque, int efd, uint32_t gsi, bool assign);
	/* Inject one MSI directly (fallback when no irqfd could be set up). */
	int (*signal_msi)(void *opaque, uint64_t addr, uint32_t data);
	/* (De)assign @efd to guest MMIO writes of @len bytes (0 = any) at @addr (KVM_IOEVENTFD). */
	int (*ioeventfd)(void *opaque, uint64_t addr, uint32_t len, int efd, bool assign);
};

/* Identity of a device, written into its read-only header fields. */
struct pci_dev_info {
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys_id;
	uint8_t revision;
	uint32_t class_code; /* 24 bits: class << 16 | subclass << 8 | prog-if */
	bool intx;	     /* uses INTA# (interrupt pin 1) */
};

/* Hooks a device gives the bus; @opaque is the pointer passed to pci_dev_add(). */
struct pci_dev_ops {
	/*
	 * Guest access to BAR @bar at byte offset @off (never inside the MSI-X table or PBA, which
	 * the bus emulates). @data holds @len (1..8) little-endian bytes. Called from vCPU threads
	 * without the bus lock, or with it held when reached through a configuration-space window
	 * (pci_bar_access()). Required.
	 */
	void (*bar_access)(void *opaque, unsigned int bar, uint64_t off, void *data, uint32_t len,
			   bool is_write);
	/*
	 * BAR @bar's decoded guest address changed from @old_addr to @new_addr (either may be
	 * PCI_BAR_UNMAPPED: memory decoding off, or the guest moved the BAR). Lets the device move
	 * its ioeventfds. Called with the bus lock held. Optional.
	 */
	void (*bar_remap)(void *opaque, unsigned int bar, uint64_t old_addr, uint64_t new_addr);
	/*
	 * Device-specific configuration registers: called after the generic emulation handled an
	 * access of @len bytes at @off (for reads @data already holds the generic value and may be
	 * overwritten; for writes the write masks were already applied). Bus lock held. Optional.
	 */
	void (*cfg_read)(void *opaque, uint32_t off, void *data, uint32_t len);
	void (*cfg_write)(void *opaque, uint32_t off, const void *data, uint32_t len);
};

/* One INTx route, for the MP table: device @slot's pin @pin (1 = INTA) drives IOAPIC @gsi. */
struct pci_intx_route {
	uint8_t slot, pin, gsi;
};

/**
 * pci_bus_create() - create bus 0 with the host bridge at 00:00.0; register the configuration
 * ports [PCI_CONF1_PORT, +8) on @pio and the whole MMIO window [PCI_MMIO_BASE, +PCI_MMIO_SIZE)
 * on @mmio. @ops is copied; its opaque must outlive the bus. On success *@out owns the bus.
 * Returns 0, -ENOMEM, or -errno from bus_register() (-EEXIST when a range is taken).
 */
int pci_bus_create(struct bus *pio, struct bus *mmio, const struct pci_irq_ops *ops,
		   struct pci_bus **out);

/**
 * pci_bus_destroy() - unregister the ranges, tear down every device's MSI-X irqfds/eventfds and
 * free the bus and its devices. Devices must have released their own resources (e.g.
 * virtio_pci_detach()) first. vCPUs must be stopped. NULL is a no-op.
 */
void pci_bus_destroy(struct pci_bus *pci);

/**
 * pci_dev_add() - put a device in the next free slot (1..31) with a type-0 header built from
 * @info. INTERRUPT_PIN is 1 and INTERRUPT_LINE pci_intx_gsi(slot) when @info->intx.
 * @ops/@opaque: the device's hooks (static table; @opaque outlives the bus).
 * Returns 0 with *@out set (owned by the bus), -ENOSPC when all slots are taken, -ENOMEM.
 */
int pci_dev_add(struct pci_bus *pci, const struct pci_dev_info *info, const struct pci_dev_ops *ops,
		void *opaque, struct pci_dev **out);

/**
 * pci_dev_remove() - take @pdev off the bus and free it (MSI-X irqfds released; its INTx line
 * deasserted). For unwinding a failed device setup and for teardown; vCPUs must not be running.
 * The BAR's window space is not reused. NULL is a no-op.
 */
void pci_dev_remove(struct pci_dev *pdev);

/** pci_dev_slot() - the device's slot number on bus 0 (1..31). */
unsigned int pci_dev_slot(const struct pci_dev *pdev);

/** pci_intx_gsi() - the IOAPIC pin INTA# of @slot drives: 16 + (slot - 1) % 8. */
unsigned int pci_intx_gsi(unsigned int slot);

/**
 * pci_intx_routes() - the INTx routes of every device using INTx, for the MP table (call after
 * all devices are added). Fills at most @max entries of @out. Returns the number of routes
 * (possibly more than @max).
 */
unsigned int pci_intx_routes(struct pci_bus *pci, struct pci_intx_route *out, unsigned int max);

/**
 * pci_bar_add() - declare memory BAR @bar (0..5; 0..4 with PCI_BAR_MEM64) of @size bytes (a
 * power of two, 16 bytes..PCI_MMIO_SIZE) and assign it a naturally aligned (at least 4 KiB)
 * address in the MMIO window. Only before the guest runs.
 * Returns 0, -EINVAL (bad index/size, BAR register taken), -ENOSPC (window full).
 */
int pci_bar_add(struct pci_dev *pdev, unsigned int bar, uint64_t size, unsigned int flags);

/**
 * pci_bar_decoded() - where BAR @bar is decoded right now. Returns true with *@addr set when
 * memory decoding is enabled and the BAR is assigned; false otherwise. Takes the bus lock: do
 * not call from hooks that run under it.
 */
bool pci_bar_decoded(struct pci_dev *pdev, unsigned int bar, uint64_t *addr);

/**
 * pci_bar_access() - perform a BAR access as if the guest made it through memory (MSI-X table and
 * PBA emulated here, everything else to ops->bar_access). For configuration-space windows such
 * as virtio's VIRTIO_PCI_CAP_PCI_CFG. @off + @len must lie inside the BAR (else reads return
 * zeros and writes are dropped). @len is 1..8.
 */
void pci_bar_access(struct pci_dev *pdev, unsigned int bar, uint64_t off, void *data, uint32_t len,
		    bool is_write);

/**
 * pci_add_cap() - append capability @cap of @len bytes (4..; first byte = capability id; the
 * next-pointer byte is filled in) to the capability list, dword aligned, all bytes read-only.
 * Only before the guest runs. Returns the capability's configuration offset (0x40..0xFC), or
 * -EINVAL / -ENOSPC when it does not fit in the 256-byte configuration space.
 */
int pci_add_cap(struct pci_dev *pdev, const void *cap, unsigned int len);

/**
 * pci_cfg_set_writable() - make configuration bytes [@off, @off + @len) guest-writable (for
 * device-specific registers handled by ops->cfg_write). Only before the guest runs; bytes
 * outside the 256-byte space are ignored.
 */
void pci_cfg_set_writable(struct pci_dev *pdev, uint32_t off, uint32_t len);

/**
 * pci_msix_init() - add an MSI-X capability with @nr_vectors (1..2048) vectors whose table lives
 * at byte @table_off and PBA at @pba_off (both 8-byte aligned) of memory BAR @bar (added
 * already, large enough). Each vector gets a GSI, an eventfd and an irqfd through the backend
 * (falling back to signal_msi). All vectors start masked, MSI-X disabled (PCI 3.0 §6.8.2).
 * Returns 0, -EINVAL for bad geometry, -ENOSPC (configuration space full), -ENOMEM.
 */
int pci_msix_init(struct pci_dev *pdev, unsigned int nr_vectors, unsigned int bar,
		  uint32_t table_off, uint32_t pba_off);

/** pci_msix_enabled() - MSI-X Enable bit set by the guest (the function must not use INTx). */
bool pci_msix_enabled(struct pci_dev *pdev);

/** pci_msix_nr_vectors() - table size given to pci_msix_init(), 0 without MSI-X. */
unsigned int pci_msix_nr_vectors(const struct pci_dev *pdev);

/**
 * pci_msix_signal() - raise MSI-X vector @vector: delivered through its irqfd, or, while the
 * vector or the whole function is masked, recorded in the PBA and delivered on unmask.
 * Thread-safe (interrupt lock only).
 * Returns 0 (delivered or pending), -EAGAIN when MSI-X is disabled (the caller uses INTx),
 * -EINVAL for a vector outside the table, -EIO when the backend failed (message logged).
 */
int pci_msix_signal(struct pci_dev *pdev, unsigned int vector);

/**
 * pci_set_irq() - set the device's INTA# level (1 asserted). The IOAPIC pin follows the
 * wired-OR of every device sharing it, gated by COMMAND.INTX_DISABLE and MSI-X enable;
 * STATUS.INTERRUPT shows @level. Thread-safe (interrupt lock only).
 */
void pci_set_irq(struct pci_dev *pdev, int level);

/**
 * pci_ioeventfd() - (de)assign @efd to guest MMIO writes of @len bytes (0 = any) at @addr via the
 * backend. Returns 0, -ENOSYS without a backend hook, or -errno from it.
 */
int pci_ioeventfd(struct pci_dev *pdev, uint64_t addr, uint32_t len, int efd, bool assign);

/** pci_dev_err_count() - guest-caused errors counted on this device (bad MSI-X messages, ...). */
uint64_t pci_dev_err_count(struct pci_dev *pdev);

/**
 * pci_bus_save() - append the bus's snapshot state to @o (issue 14): the conf1 address latch,
 * then for every function (host bridge included, slot order) its slot, its 256-byte
 * configuration space (COMMAND, BAR addresses, MSI-X Message Control, capability windows, ...)
 * and its MSI-X table (address, data, vector control), PBA bits and the message each vector's
 * GSI is routed to. Takes the bus lock and each device's interrupt lock. Returns 0 or -ENOMEM.
 */
int pci_bus_save(struct pci_bus *pci, struct state_out *o);

/**
 * pci_bus_load() - load what pci_bus_save() wrote into @pci, freshly created with the same
 * devices in the same slots (vCPUs not running). @in must hold exactly this state. Validates
 * that the same functions are present, every read-only configuration byte matches (the same
 * device: ids, class, capabilities), the MSI-X table has the same size, vector control has only
 * the mask bit and every routed message is an x86 MSI address. Then re-creates what the guest's
 * writes had done: BAR registers through the size masks, writable bytes through the write
 * masks, BAR decoding on the MMIO bus with each device told (ops->bar_remap: ioeventfds),
 * MSI routes re-pushed through the backend's set_msi_route, INTx disable and MSI-X
 * enable/function mask applied. Returns 0 or -EINVAL (nothing applied when the layout is wrong;
 * a backend failure while re-routing is logged and leaves that vector routed on first use).
 */
int pci_bus_load(struct pci_bus *pci, struct state_in *in);

#endif
