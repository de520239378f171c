/* vCPU threads: CPUID/MSR/LAPIC setup, the KVM_RUN loop and exit dispatch. */
#ifndef VMM_VCPU_H
#define VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/boot.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int id; /* also the APIC ID */
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	uint64_t nr_runs; /* KVM_RUN calls (debug figure) */
};

/**
 * vcpu_create() - KVM_CREATE_VCPU @id, map its kvm_run, set CPUID (KVM_GET_SUPPORTED_CPUID with
 * the hypervisor bit, APIC ID @id, KVM paravirt leaves), boot MSRs and LAPIC LINT0=ExtINT,
 * LINT1=NMI. Returns 0 or -errno (message printed).
 */
int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned int id);

/** vcpu_set_boot_state() - registers for @entry on the boot vCPU. Returns 0 or -errno. */
int vcpu_set_boot_state(struct vcpu *vcpu, const struct boot_entry *entry);

/** vcpu_start() - start the vCPU thread running KVM_RUN. Returns 0 or -errno. */
int vcpu_start(struct vcpu *vcpu);

/** vcpu_kick() - make the vCPU leave KVM_RUN soon (immediate_exit + signal). Thread-safe. */
void vcpu_kick(struct vcpu *vcpu);

/** vcpu_destroy() - join the thread (after vm_stop) and release the vCPU. */
void vcpu_destroy(struct vcpu *vcpu);

/* What the run loop does after an exit. */
enum vcpu_action { VCPU_CONTINUE, VCPU_STOP };

/**
 * vcpu_handle_exit() - dispatch one KVM exit described by @run (port I/O and MMIO through the
 * vm's buses; shutdown, internal errors and failed entries stop the VM with a message).
 * A pure function of (@vm, @run) apart from device side effects, so tests can feed it synthetic
 * exits. @vcpu_fd is used only to dump registers (may be -1).
 */
enum vcpu_action vcpu_handle_exit(struct vm *vm, struct kvm_run *run, int vcpu_fd);

/**
 * x86_is_port_insn() - do the @len bytes at @code start with a port I/O instruction (IN/OUT with
 * an immediate or DX port, INS/OUTS), after legacy prefixes and a REX prefix? Used to explain a
 * CPL3 triple fault on a /dev/kvm that ignores IOPL (Intel SDM vol. 2, "IN", "OUT", "INS",
 * "OUTS"). Pure: no KVM needed.
 */
bool x86_is_port_insn(const uint8_t *code, size_t len);

#endif
