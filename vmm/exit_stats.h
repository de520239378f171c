/*
 * Exit statistics of a vCPU (--debug exit-stats): what the guest makes the VMM do. Counts the
 * exits that reach userspace by kvm_run exit reason, port I/O by port and direction, MMIO by
 * address and direction, and the time spent handling them; beside them KVM's own per-vCPU
 * counters (the binary stats fd, Documentation/virt/kvm/api.rst "KVM_GET_STATS_FD"), which
 * also count the exits KVM handles in the kernel (LAPIC timer, HLT, MSRs, nested page faults).
 * Off by default: the exit path then only tests a NULL pointer.
 */
#ifndef VMM_EXIT_STATS_H
#define VMM_EXIT_STATS_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>

#define EXIT_STATS_REASONS 64 /* kvm_run exit reasons counted one by one; above: one slot */
#define EXIT_STATS_MMIO	   64 /* distinct MMIO addresses counted; the rest as "other" */

struct exit_stats_mmio {
	uint64_t addr; /* guest-physical */
	uint32_t reads, writes;
};

struct exit_stats {
	uint64_t reasons[EXIT_STATS_REASONS + 1];
	uint32_t port_in[65536], port_out[65536];
	struct exit_stats_mmio mmio[EXIT_STATS_MMIO];
	unsigned int nr_mmio;
	uint64_t mmio_other;
	uint64_t handling_ns; /* in userspace between KVM_RUN returning and the next KVM_RUN */
};

/**
 * exit_stats_count() - count the exit @run describes (its reason; for KVM_EXIT_IO the port and
 * direction, once per exit whatever io.count; for KVM_EXIT_MMIO the address and direction) in
 * @s. Reads only fields KVM wrote; never fails.
 */
void exit_stats_count(struct exit_stats *s, const struct kvm_run *run);

/** exit_stats_reason_name() - "io", "mmio", "hlt"... for a kvm_run exit reason, else NULL. */
const char *exit_stats_reason_name(uint32_t reason);

/**
 * exit_stats_print() - write @s of vCPU @vcpu to @f, one "exit-stats: vcpu N ..." line per
 * figure: the total and handling time, each reason seen, the @top busiest ports and MMIO
 * addresses (reads and writes), then the cumulative counters of KVM's stats fd @kvm_stats_fd
 * that are not zero (skipped when @kvm_stats_fd < 0 or it cannot be read).
 */
void exit_stats_print(const struct exit_stats *s, int kvm_stats_fd, unsigned int vcpu,
		      unsigned int top, FILE *f);

/**
 * exit_stats_kvm_read() - the cumulative counters of a KVM binary stats fd @fd (read with
 * pread, so the fd's offset is irrelevant): calls @fn with each counter's name and value (the
 * first element of arrays; histograms skipped). Returns the number of counters or -errno
 * (-EINVAL for a header or descriptor that leaves the file or a name without a terminator).
 */
int exit_stats_kvm_read(int fd, void (*fn)(void *opaque, const char *name, uint64_t value),
			void *opaque);

#endif
