/*
 * The KVM VM: irqchip, PIT, guest RAM and its memory slots, interrupt routing, the port and MMIO
 * buses, the vCPUs, the event loop and the lifecycle (created -> running <-> paused -> stopped).
 * It knows no device: the machine (machine.h) puts devices on its buses.
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../devices/bus.h"
#include "mem/guest_mem.h"

struct loop;
struct vcpu;

enum vm_state { VM_CREATED, VM_RUNNING, VM_PAUSED, VM_STOPPED };

struct vm_config {
	uint64_t mem_bytes; /* guest RAM, bytes */
	unsigned int nr_vcpus;
	bool merge;	 /* MADV_MERGEABLE */
	bool hugepages;	 /* MADV_HUGEPAGE on guest RAM (else MADV_NOHUGEPAGE) */
	bool exit_stats; /* --debug exit-stats: count exits, print them as each vCPU ends */
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

	/* Coalesced writes (vm_coalesce_pio): the ring's page in each kvm_run mapping, or 0. */
	unsigned int coalesced_page;
	pthread_mutex_t coalesced_lock;

	/* GSI routing: entries 0..23 are the IOAPIC pins, MSI routes follow. */
	void *routing; /* struct kvm_irq_routing with VM_MAX_GSI entries */
	uint32_t next_gsi;

	/* Event sink (the control socket); may be NULL. Called from any thread. */
	void (*event_fn)(void *opaque, const char *event, const char *data_json);
	void *event_opaque;
};

/**
 * vm_create() - open /dev/kvm, create the VM with irqchip + PIT, map @cfg->mem_bytes of RAM,
 * register the memory slots, create the event loop and @cfg->nr_vcpus vCPUs (not started).
 * Does not load a kernel or create devices. On failure everything is released again.
 * Returns 0 or -errno with a message already printed.
 */
int vm_create(struct vm *vm, const struct vm_config *cfg);

/** vm_destroy() - release everything vm_create() acquired (joins vCPU threads). Idempotent. */
void vm_destroy(struct vm *vm);

/**
 * vm_stop() - end the VM with process exit status @status; @reason is logged. The first call wins.
 * Thread-safe; vCPU threads are kicked out of KVM_RUN. Returns true for the call that stopped the
 * VM, false when it was already stopped.
 */
bool vm_stop(struct vm *vm, int status, const char *reason);

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
 * vm_coalesce_pio() - let KVM queue the guest's writes to ports [@port, @port + @len) in the
 * coalesced ring instead of exiting (KVM_REGISTER_COALESCED_MMIO with pio = 1); the vCPUs drain
 * the ring before handling any exit (vcpu_drain_coalesced()), so only ports whose writes take
 * effect at the next access qualify (a latch like the PCI CONFIG_ADDRESS register). Call before
 * the vCPUs start. Returns 0, -EOPNOTSUPP without KVM_CAP_COALESCED_PIO (the writes keep
 * exiting), or -errno.
 */
int vm_coalesce_pio(struct vm *vm, uint16_t port, uint32_t len);

/**
 * vm_ioeventfd() - (de)assign eventfd @efd to be signalled by guest writes of @len bytes
 * (0 = any length) at @addr (MMIO when @mmio, else port I/O) (KVM_IOEVENTFD). Returns 0 or -errno.
 */
int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, int efd, bool mmio, bool assign);

#endif
