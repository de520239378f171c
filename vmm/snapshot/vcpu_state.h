/*
 * The KVM state of one vCPU and of the VM's in-kernel devices, for snapshots (issue 14).
 * Saved with the vCPUs parked after a KVM_RUN with immediate_exit (so no port or MMIO access is
 * half done: api.rst "KVM_RUN", immediate_exit), loaded before the vCPU threads start.
 */
#ifndef VMM_SNAPSHOT_VCPU_STATE_H
#define VMM_SNAPSHOT_VCPU_STATE_H

#include <stdint.h>

#include "../state.h"

struct vcpu;
struct vm;

/**
 * vcpu_state_save() - append vCPU @vcpu's state to @o: CPUID (what the guest was given), MP
 * state, regs, sregs, FPU/XSAVE (KVM_GET_XSAVE2 when larger than 4 KiB), XCRs, debug registers,
 * LAPIC, every MSR of KVM_GET_MSR_INDEX_LIST that reads back (sorted by index, so
 * IA32_TSC comes before IA32_TSC_DEADLINE), vCPU events. The vCPU must not be in KVM_RUN.
 * Returns 0 or -errno from the first ioctl that failed (message printed).
 */
int vcpu_state_save(struct vcpu *vcpu, struct state_out *o);

/**
 * vcpu_state_load() - set @vcpu's state from @in in the order KVM needs (api.rst): CPUID,
 * MP state, regs, sregs, XSAVE, XCRs, debug registers, LAPIC, MSRs (IA32_TSC first, moved on
 * by @tsc_advance guest TSC ticks so the guest's TSC-based clocks see the real time that
 * passed), vCPU events last. An MSR this host refuses is skipped with a warning. Returns 0,
 * -EINVAL for a malformed payload or a CPUID this host cannot give (@why names it), or -errno
 * from an ioctl.
 */
int vcpu_state_load(struct vcpu *vcpu, struct state_in *in, uint64_t tsc_advance, char *why,
		    size_t why_len);

/**
 * vm_state_save() - append the in-kernel PIC (master, slave), IOAPIC, PIT (KVM_GET_PIT2) and
 * kvmclock (KVM_GET_CLOCK) state of @vm, and the host's CLOCK_REALTIME in ns, to @o.
 * Returns 0 or -errno.
 */
int vm_state_save(struct vm *vm, struct state_out *o);

/**
 * vm_state_load() - set the PIC, IOAPIC, PIT and kvmclock of @vm from @in. kvmclock is moved on
 * by the real time that passed since the save (@elapsed_ns, from vm_state_elapsed_ns()), so the
 * guest's clock is right after a restore. Returns 0, -EINVAL (malformed), or -errno.
 */
int vm_state_load(struct vm *vm, struct state_in *in, uint64_t elapsed_ns);

/**
 * vm_state_elapsed_ns() - the host CLOCK_REALTIME time since the save recorded in the vm
 * payload @in (0 when the clock went backwards); does not consume @in.
 */
uint64_t vm_state_elapsed_ns(const struct state_in *in);

/**
 * vcpu_kvmclock_ctrl() - tell the guest it was stopped (KVM_KVMCLOCK_CTRL), so its soft lockup
 * watchdog does not fire after a restore. -EINVAL (the guest has no kvmclock) is not an error.
 */
int vcpu_kvmclock_ctrl(struct vcpu *vcpu);

#endif
