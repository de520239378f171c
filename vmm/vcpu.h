/* vCPU threads: CPUID/MSR/LAPIC setup and the KVM_RUN loop; exit dispatch is vcpu_exit.h. */
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
	bool host_is_pvm; /* /sys/module/kvm_pvm exists: read at creation, not in the sandbox */
	struct exit_stats *stats; /* --debug exit-stats (vm_config.exit_stats), else NULL */
	int stats_fd;		  /* KVM_GET_STATS_FD of the vCPU with stats, else -1 */
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

#endif
