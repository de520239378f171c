/*
 * The KVM VM: irqchip, PIT, memory slots, interrupt routing, device table and lifecycle
 * (created -> running <-> paused -> stopped).
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../devices/bus.h"
#include "../devices/virtio_balloon.h"
#include "mem/guest_mem.h"

struct loop;
struct vcpu;
struct pci_bus;
struct balloon;
struct control;
struct memtier;

/* The 32-bit PCI MMIO window (BARs), reserved in e820; between RAM and the IOAPIC. */
#define VM_PCI_MMIO_BASE 0xe0000000ULL
#define VM_PCI_MMIO_SIZE 0x10000000ULL

enum vm_state { VM_CREATED, VM_RUNNING, VM_PAUSED, VM_STOPPED };

enum console_mode { CONSOLE_STDIO, CONSOLE_NONE, CONSOLE_FILE };

/* The compressed tier (vmm/mem/memtier.h); main.c defaults to lz4. */
enum vm_compress { VM_COMPRESS_OFF, VM_COMPRESS_LZ4, VM_COMPRESS_ZSTD };

struct vm_config {
	uint64_t mem_bytes; /* guest RAM, bytes */
	unsigned int nr_vcpus;
	const char *kernel;   /* bzImage or ELF vmlinux (PVH) */
	const char *initrd;   /* may be NULL */
	const char *cmdline;  /* full kernel command line */
	const char *firmware; /* ELF firmware image instead of a kernel, or NULL */
	bool merge;	      /* MADV_MERGEABLE */
	bool hugepages;	      /* MADV_HUGEPAGE on guest RAM (else MADV_NOHUGEPAGE) */
	enum vm_compress compress;
	int compress_level;	  /* zstd level / lz4 acceleration, 0: default */
	uint64_t mem_limit_bytes; /* --mem-limit: resident guest RAM ceiling, 0: none */
	enum console_mode console;
	const char *console_path; /* CONSOLE_FILE */
	const char *control_path; /* control socket, or NULL */
	struct balloon_config balloon;
};

#define VM_MAX_GSI 256

struct vm {
	struct vm_config cfg;
	int kvm_fd, vm_fd;
	int vcpu_mmap_size;
	struct guest_mem gm;
	struct bus pio, mmio;
	struct loop *loop;
	unsigned int nr_vcpus;
	struct vcpu *vcpus;

	pthread_mutex_t lock; /* state, exit fields, routing table */
	pthread_cond_t cond;
	enum vm_state state;
	int exit_status; /* process exit status once stopped */
	char exit_reason[256];
	uint64_t start_ns;
	bool pause_req;	     /* vCPUs park when set */
	unsigned int parked; /* vCPUs currently parked */
	bool guest_panicked; /* the console showed a kernel panic (vm_set_panicked) */

	/* GSI routing: entries 0..23 are the IOAPIC pins, MSI routes follow. */
	void *routing; /* struct kvm_irq_routing with VM_MAX_GSI entries */
	uint32_t next_gsi;

	struct pci_bus *pci;
	struct balloon *balloon;
	struct control *control;
	struct memtier *memtier; /* NULL with --compress=off */

	/* Event sink (the control socket); may be NULL. Called from any thread. */
	void (*event_fn)(void *opaque, const char *event, const char *data_json);
	void *event_opaque;
};

/**
 * vm_create() - open /dev/kvm, create the VM with irqchip + PIT, map @cfg->mem_bytes of RAM,
 * register memory slots and the platform devices. Does not load a kernel or start vCPUs.
 * Returns 0 or -errno with a message already printed.
 */
int vm_create(struct vm *vm, const struct vm_config *cfg);

/** vm_destroy() - release everything vm_create() and later setup acquired. */
void vm_destroy(struct vm *vm);

/**
 * vm_stop() - end the VM with process exit status @status; @reason is logged. The first call wins.
 * Thread-safe; vCPU threads are kicked out of KVM_RUN.
 */
void vm_stop(struct vm *vm, int status, const char *reason);

/**
 * vm_request_guest_shutdown() - ask the guest to shut down by itself (a reboot/power request the
 * guest acts on, e.g. the i8042 Ctrl-Alt-Del scancode); the VM then stops through the guest's own
 * reset/shutdown path. Does not wait. Used by the control socket's vm.shutdown, which stops the
 * VM hard with vm_stop() when the guest has not stopped within its timeout.
 * Returns 0 when a request was delivered to the guest, -ENOTSUP when this VM has no way to ask.
 */
int vm_request_guest_shutdown(struct vm *vm);

/** vm_pause()/vm_resume() - stop/restart all vCPUs; return once they are parked/running.
 * Return 0, -EBUSY when not in the right state (running / paused). */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);

/** vm_set_panicked() - record that the guest's console showed a kernel panic. Thread-safe. */
void vm_set_panicked(struct vm *vm);

/** vm_panicked() - has the guest's console shown a kernel panic? Thread-safe (locked read). */
bool vm_panicked(struct vm *vm);

/** vm_get_state() - current lifecycle state (locked read). */
enum vm_state vm_get_state(struct vm *vm);

/** vm_state_name() - "created", "running", "paused", "stopped". */
const char *vm_state_name(enum vm_state s);

/**
 * vm_emit_event() - forward event @event with JSON object text @data_json to vm->event_fn.
 * Thread-safe; no-op when no sink is set.
 */
void vm_emit_event(struct vm *vm, const char *event, const char *data_json);

/** vm_irq_line() - set legacy IRQ @irq (IOAPIC pin / PIC line) to @level. Returns 0 or -errno. */
int vm_irq_line(struct vm *vm, uint32_t irq, int level);

/** vm_alloc_gsi() - a fresh GSI for an MSI route. Returns the GSI or -ENOSPC. */
int vm_alloc_gsi(struct vm *vm);

/**
 * vm_set_msi_route() - route @gsi to the MSI message (@addr, @data) (PCI 3.0 MSI-X table entry),
 * or remove the route when @enable is false; pushes the table with KVM_SET_GSI_ROUTING.
 * Returns 0 or -errno.
 */
int vm_set_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data, bool enable);

/**
 * vm_signal_msi() - inject one MSI (@addr, @data) directly (KVM_SIGNAL_MSI). Returns 0 or -errno.
 */
int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data);

/** vm_irqfd() - (de)assign eventfd @efd to inject @gsi (KVM_IRQFD). Returns 0 or -errno. */
int vm_irqfd(struct vm *vm, int efd, uint32_t gsi, bool assign);

/**
 * vm_ioeventfd() - (de)assign eventfd @efd to be signalled by guest writes of @len bytes
 * (0 = any length) at @addr (MMIO when @mmio, else port I/O) (KVM_IOEVENTFD). Returns 0 or -errno.
 */
int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, int efd, bool mmio, bool assign);

#endif
