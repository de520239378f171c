/*
 * vCPU exit dispatch, testable without KVM: vcpu_handle_exit() works on a struct kvm_run the
 * caller provides and a small context (the buses, guest RAM, and callbacks for what needs the VM
 * or the vCPU fd), so unit tests and fuzzers feed it synthetic exits.
 *
 * What KVM guarantees about the exits handled here (Documentation/virt/kvm/api.rst, "kvm_run";
 * arch/x86/kvm/x86.c): KVM_EXIT_IO data lives in the page after struct kvm_run
 * (data_offset = KVM_PIO_PAGE_OFFSET * page size) and size * count stays within that page;
 * size is 1, 2 or 4; KVM_EXIT_MMIO len is at most 8 (sizeof mmio.data). These are validated
 * anyway (the kvm_run page is shared memory and /dev/kvm need not be upstream KVM): an exit that
 * breaks them is refused, never followed, and stops the VM as a KVM failure.
 */
#ifndef VMM_VCPU_EXIT_H
#define VMM_VCPU_EXIT_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;
struct exit_stats;
struct guest_mem;

struct vcpu_exit_ctx {
	struct bus *pio, *mmio;	    /* port I/O and MMIO dispatch */
	const struct guest_mem *gm; /* instruction bytes for the shutdown diagnosis; may be NULL */
	size_t run_size;  /* bytes mapped at the kvm_run (KVM_GET_VCPU_MMAP_SIZE): I/O data bound */
	bool host_is_pvm; /* /dev/kvm is PVM (/sys/module/kvm_pvm): messages name it */
	void *opaque;	  /* passed to every hook */
	struct exit_stats *stats; /* every exit counted here (exit_stats.h); NULL: not counted */
	/* KVM's coalesced MMIO/PIO ring (in the kvm_run mapping, shared by every vCPU of the VM)
	 * and its entry count (KVM_COALESCED_MMIO_MAX for the page size); NULL: none. */
	struct kvm_coalesced_mmio_ring *ring;
	uint32_t ring_max;
	pthread_mutex_t *ring_lock; /* serializes draining across vCPUs */
	/* Stop the VM: the process exits with @status; @reason is logged. Required. */
	void (*stop)(void *opaque, int status, const char *reason);
	/* The vCPU's registers (KVM_GET_REGS/SREGS): 0 or -errno. NULL: none (no diagnosis/dump).
	 */
	int (*get_regs)(void *opaque, struct kvm_regs *regs, struct kvm_sregs *sregs);
	/* Guest-virtual @gva to guest-physical (KVM_TRANSLATE): 0 or -errno. NULL: identity. */
	int (*translate)(void *opaque, uint64_t gva, uint64_t *gpa);
};

/* What the run loop does after an exit. */
enum vcpu_action { VCPU_CONTINUE, VCPU_STOP };

/**
 * vcpu_handle_exit() - dispatch one KVM exit described by @run (@ctx->run_size bytes): port I/O
 * (1, 2 or 4 bytes, string I/O with count > 1) and MMIO (1 to 8 bytes) through the buses, an
 * unhandled read returning all-ones; INTR and HLT continue; SHUTDOWN (triple fault), FAIL_ENTRY,
 * INTERNAL_ERROR, an unknown reason and a malformed I/O or MMIO exit stop the VM with status 1
 * and a message (and the registers when @ctx->get_regs gives them); SYSTEM_EVENT stops it with
 * status 0. Returns VCPU_CONTINUE or VCPU_STOP (the VM was stopped through @ctx->stop).
 */
enum vcpu_action vcpu_handle_exit(const struct vcpu_exit_ctx *ctx, struct kvm_run *run);

/**
 * vcpu_drain_coalesced() - perform the writes KVM queued in @ctx->ring without an exit
 * (KVM_REGISTER_COALESCED_MMIO zones, api.rst "KVM_CAP_COALESCED_PIO"), oldest first, through
 * the port or MMIO bus, and free their slots. vcpu_handle_exit() calls it first, so a later
 * access (the read of 0xCFC after a queued write of 0xCF8) sees them done; the run loop calls it
 * after an interrupted KVM_RUN. Ring indices at or above @ctx->ring_max stop the drain (the page
 * is KVM's; nothing is followed outside it); entries longer than 8 bytes are skipped. No-op
 * without a ring.
 */
void vcpu_drain_coalesced(const struct vcpu_exit_ctx *ctx);

/* vcpu_diagnose_shutdown() results. */
enum vcpu_diag {
	VCPU_DIAG_NONE, /* nothing more to say than "triple fault" */
	VCPU_DIAG_IOPL, /* CPL3 with IOPL 0 at a port instruction: /dev/kvm ignores IOPL */
};

/**
 * vcpu_diagnose_shutdown() - explain a triple fault when the registers allow: firmware entered at
 * CPL3 with IOPL 3 that faulted at CPL3 with IOPL 0 on a port instruction means this /dev/kvm
 * ignores IOPL (../shared/environment.md, state 3; PVM named when @ctx->host_is_pvm). Prints the
 * explanation and returns VCPU_DIAG_IOPL, else returns VCPU_DIAG_NONE silently. Reads the
 * instruction through @ctx->translate and @ctx->gm (an instruction ending at the top of RAM is
 * read as far as RAM goes).
 */
enum vcpu_diag vcpu_diagnose_shutdown(const struct vcpu_exit_ctx *ctx);

/** vcpu_dump_regs() - print the main registers to stderr, when @ctx->get_regs gives them. */
void vcpu_dump_regs(const struct vcpu_exit_ctx *ctx);

/**
 * x86_is_port_insn() - do the @len bytes at @code start with a port I/O instruction (IN/OUT with
 * an immediate or DX port, INS/OUTS), after legacy prefixes and a REX prefix? Used to explain a
 * CPL3 triple fault on a /dev/kvm that ignores IOPL (Intel SDM vol. 2, "IN", "OUT", "INS",
 * "OUTS"). Pure: no KVM needed.
 */
bool x86_is_port_insn(const uint8_t *code, size_t len);

#endif
