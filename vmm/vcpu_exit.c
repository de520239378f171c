#include "vcpu_exit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../devices/bus.h"
#include "exit_stats.h"
#include "mem/guest_mem.h"
#include "util.h"

#define X86_EFLAGS_IOPL 0x3000 /* bits 12-13 */

void vcpu_dump_regs(const struct vcpu_exit_ctx *ctx)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (!ctx->get_regs || ctx->get_regs(ctx->opaque, &r, &s) < 0)
		return;
	fprintf(stderr,
		"vmm:   rip=%016llx rsp=%016llx rflags=%08llx rax=%016llx rbx=%016llx\n"
		"vmm:   rcx=%016llx rdx=%016llx rsi=%016llx rdi=%016llx\n"
		"vmm:   cr0=%08llx cr3=%016llx cr4=%08llx efer=%llx cs=%04x (dpl %u, l %u)\n",
		r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, s.cr0, s.cr3,
		s.cr4, s.efer, s.cs.selector, s.cs.dpl, s.cs.l);
}

/* Unhandled port/MMIO accesses are logged once per address (the guest probes a lot). */
static bool first_time(uint64_t addr)
{
	static uint64_t seen[256];
	static unsigned int nr;
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	bool first = true;

	pthread_mutex_lock(&lock);
	for (unsigned int i = 0; i < nr; i++)
		if (seen[i] == addr)
			first = false;
	if (first && nr < ARRAY_SIZE(seen))
		seen[nr++] = addr;
	else if (first)
		first = false; /* table full: stay quiet */
	pthread_mutex_unlock(&lock);
	return first;
}

/* A KVM failure, not a guest action: say what was wrong, show the registers, stop. */
static enum vcpu_action fail(const struct vcpu_exit_ctx *ctx, const char *msg)
{
	pr_err("%s", msg);
	vcpu_dump_regs(ctx);
	ctx->stop(ctx->opaque, 1, msg);
	return VCPU_STOP;
}

/* The data of a port I/O exit: inside the mapping, after struct kvm_run (see vcpu_exit.h). */
static uint8_t *io_data(const struct vcpu_exit_ctx *ctx, struct kvm_run *run)
{
	uint64_t bytes = (uint64_t)run->io.size * run->io.count, end;

	if ((run->io.size != 1 && run->io.size != 2 && run->io.size != 4) || !run->io.count ||
	    (run->io.direction != KVM_EXIT_IO_IN && run->io.direction != KVM_EXIT_IO_OUT) ||
	    run->io.data_offset < sizeof(*run) ||
	    __builtin_add_overflow(run->io.data_offset, bytes, &end) || end > ctx->run_size)
		return NULL;
	return (uint8_t *)run + run->io.data_offset;
}

static enum vcpu_action handle_io(const struct vcpu_exit_ctx *ctx, struct kvm_run *run)
{
	uint8_t *data = io_data(ctx, run);
	bool write = run->io.direction == KVM_EXIT_IO_OUT;
	char msg[200];

	if (!data) {
		snprintf(msg, sizeof(msg),
			 "KVM reported a malformed port I/O exit (port 0x%x, size %u, count %u, "
			 "direction %u, data offset %llu of %zu bytes): refused",
			 run->io.port, run->io.size, run->io.count, run->io.direction,
			 (unsigned long long)run->io.data_offset, ctx->run_size);
		return fail(ctx, msg);
	}
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (bus_access(ctx->pio, run->io.port, data, run->io.size, write) == 0)
			continue;
		if (!write)
			memset(data, 0xff, run->io.size);
		if (run->io.port != 0x80 && first_time(run->io.port))
			pr_info("unhandled port %s 0x%x (%u bytes)", write ? "write" : "read",
				run->io.port, run->io.size);
	}
	return VCPU_CONTINUE;
}

static enum vcpu_action handle_mmio(const struct vcpu_exit_ctx *ctx, struct kvm_run *run)
{
	uint32_t len = run->mmio.len;
	char msg[160];

	if (len == 0 || len > sizeof(run->mmio.data)) {
		snprintf(msg, sizeof(msg),
			 "KVM reported a malformed MMIO exit (0x%llx, %u bytes): refused",
			 (unsigned long long)run->mmio.phys_addr, len);
		return fail(ctx, msg);
	}
	if (bus_access(ctx->mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write) ==
	    0)
		return VCPU_CONTINUE;
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
	if (first_time(run->mmio.phys_addr | (1ULL << 63)))
		pr_info("unhandled MMIO %s 0x%llx (%u bytes)",
			run->mmio.is_write ? "write" : "read",
			(unsigned long long)run->mmio.phys_addr, len);
	return VCPU_CONTINUE;
}

bool x86_is_port_insn(const uint8_t *code, size_t len)
{
	size_t i = 0;

	/* Legacy prefixes (operand/address size, rep, segment overrides), then at most one REX. */
	while (i < len &&
	       (code[i] == 0x66 || code[i] == 0x67 || code[i] == 0xf2 || code[i] == 0xf3 ||
		code[i] == 0x2e || code[i] == 0x36 || code[i] == 0x3e || code[i] == 0x26 ||
		code[i] == 0x64 || code[i] == 0x65))
		i++;
	if (i < len && (code[i] & 0xf0) == 0x40)
		i++;
	if (i >= len)
		return false;
	/* in/out imm8 (e4-e7), in/out dx (ec-ef), ins/outs (6c-6f). */
	return (code[i] >= 0xe4 && code[i] <= 0xe7) || (code[i] >= 0xec && code[i] <= 0xef) ||
	       (code[i] >= 0x6c && code[i] <= 0x6f);
}

/*
 * A triple fault of firmware started at CPL3 with IOPL 3 (BOOT_USER64) that faulted at CPL3 with
 * IOPL 0 on a port instruction: this PVM /dev/kvm ignores IOPL (environment.md, state 3). Say so
 * instead of leaving the reader with the registers.
 */
enum vcpu_diag vcpu_diagnose_shutdown(const struct vcpu_exit_ctx *ctx)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	uint8_t code[15];
	size_t n = sizeof(code);
	uint64_t gpa;

	if (!ctx->get_regs || !ctx->gm || ctx->get_regs(ctx->opaque, &r, &s) < 0)
		return VCPU_DIAG_NONE;
	if (s.cs.dpl != 3 || (r.rflags & X86_EFLAGS_IOPL) != 0)
		return VCPU_DIAG_NONE;
	if (!ctx->translate || ctx->translate(ctx->opaque, r.rip, &gpa) < 0)
		gpa = r.rip;
	while (n && gm_read(ctx->gm, gpa, code, n) < 0)
		n--; /* the instruction may end at the top of RAM */
	if (!x86_is_port_insn(code, n))
		return VCPU_DIAG_NONE;
	if (ctx->host_is_pvm)
		pr_err("this /dev/kvm (PVM) ignores IOPL: port I/O from CPL3 firmware faults "
		       "(rflags IOPL 0 at a port instruction, rip 0x%llx); run firmware inside the "
		       "nested test host (tests/testhost/run.sh)",
		       (unsigned long long)r.rip);
	else
		pr_err("the guest faulted on port I/O at CPL3 with IOPL 0 (rip 0x%llx): this "
		       "/dev/kvm does not honour IOPL for CPL3 code",
		       (unsigned long long)r.rip);
	return VCPU_DIAG_IOPL;
}

void vcpu_drain_coalesced(const struct vcpu_exit_ctx *ctx)
{
	struct kvm_coalesced_mmio_ring *r = ctx->ring;
	uint32_t first;

	if (!r)
		return;
	pthread_mutex_lock(ctx->ring_lock);
	first = __atomic_load_n(&r->first, __ATOMIC_RELAXED);
	for (;;) {
		/* KVM fills an entry, then publishes it by moving last (virt/kvm/coalesced_mmio.c).
		 */
		uint32_t last = __atomic_load_n(&r->last, __ATOMIC_ACQUIRE);
		struct kvm_coalesced_mmio *e;

		if (first == last || first >= ctx->ring_max || last >= ctx->ring_max)
			break;
		e = &r->coalesced_mmio[first];
		if (e->len && e->len <= sizeof(e->data))
			bus_access(e->pio ? ctx->pio : ctx->mmio, e->phys_addr, e->data, e->len,
				   true);
		first = (first + 1) % ctx->ring_max;
		__atomic_store_n(&r->first, first, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(ctx->ring_lock);
}

enum vcpu_action vcpu_handle_exit(const struct vcpu_exit_ctx *ctx, struct kvm_run *run)
{
	char msg[200];

	vcpu_drain_coalesced(ctx);
	if (ctx->stats)
		exit_stats_count(ctx->stats, run);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return handle_io(ctx, run);
	case KVM_EXIT_MMIO:
		return handle_mmio(ctx, run);
	case KVM_EXIT_INTR:
		return VCPU_CONTINUE;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; ours halts in the kernel. */
		return VCPU_CONTINUE;
	case KVM_EXIT_SHUTDOWN:
		pr_err("guest triple fault (KVM_EXIT_SHUTDOWN): the guest reset itself after a "
		       "fatal CPU exception");
		vcpu_diagnose_shutdown(ctx);
		vcpu_dump_regs(ctx);
		ctx->stop(ctx->opaque, 1, "triple fault");
		return VCPU_STOP;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(msg, sizeof(msg), "KVM_EXIT_FAIL_ENTRY, hardware reason 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return fail(ctx, msg);
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(msg, sizeof(msg), "KVM internal error, suberror %u%s",
			 run->internal.suberror,
			 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
				 ? " (instruction emulation failed)"
				 : "");
		pr_err("%s", msg);
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && ctx->host_is_pvm)
			pr_err("this host's /dev/kvm is PVM (kvm_pvm): it emulates guest kernel "
			       "code "
			       "and cannot run XSAVE-family instructions, so it cannot boot Linux; "
			       "run on hardware KVM or inside the nested test host "
			       "(tests/testhost/run.sh)");
		vcpu_dump_regs(ctx);
		ctx->stop(ctx->opaque, 1, msg);
		return VCPU_STOP;
	case KVM_EXIT_SYSTEM_EVENT:
		ctx->stop(ctx->opaque, 0, "guest system event (reset/shutdown)");
		return VCPU_STOP;
	default:
		snprintf(msg, sizeof(msg), "unexpected KVM exit reason %u", run->exit_reason);
		return fail(ctx, msg);
	}
}
