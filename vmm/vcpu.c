#include "vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"
#include "vm.h"

/* Architectural MSR numbers (Intel SDM vol. 4); no UAPI header carries them. */
#define MSR_IA32_TSC			 0x10
#define MSR_IA32_SYSENTER_CS		 0x174
#define MSR_IA32_SYSENTER_ESP		 0x175
#define MSR_IA32_SYSENTER_EIP		 0x176
#define MSR_IA32_MISC_ENABLE		 0x1a0
#define MSR_IA32_MISC_ENABLE_FAST_STRING 0x1
#define MSR_STAR			 0xc0000081
#define MSR_LSTAR			 0xc0000082
#define MSR_CSTAR			 0xc0000083
#define MSR_SYSCALL_MASK		 0xc0000084
#define MSR_KERNEL_GS_BASE		 0xc0000102

#define CPUID_MAX_ENTRIES 256
#define KICK_SIGNAL	  SIGUSR1
#define APIC_LVT0	  0x350
#define APIC_LVT1	  0x360
#define APIC_MODE_EXTINT  0x7
#define APIC_MODE_NMI	  0x4
#define X86_EFLAGS_IOPL	  0x3000 /* bits 12-13 */

static int setup_cpuid(struct vm *vm, struct vcpu *vcpu)
{
	struct kvm_cpuid2 *c;
	int ret = 0;

	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		ret = -errno;
		pr_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(-ret));
		goto out;
	}
	for (unsigned int i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* APIC ID, logical processor count, and the hypervisor-present bit. */
			e->ebx = (e->ebx & 0x0000ffff) | (vcpu->id << 24) |
				 (MIN(vm->nr_vcpus, 255u) << 16);
			e->ecx |= 1u << 31;
			if (vm->nr_vcpus > 1)
				e->edx |= 1u << 28; /* HTT: the count in ebx[23:16] is valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = vcpu->id; /* x2APIC ID */
			break;
		case 6:
			e->ecx &= ~(1u << 3); /* no energy-perf-bias MSR behind it */
			break;
		}
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0) {
		ret = -errno;
		pr_err("KVM_SET_CPUID2: %s", strerror(-ret));
	}
out:
	free(c);
	return ret;
}

static int setup_msrs(struct vcpu *vcpu)
{
	static const uint32_t zeroed[] = {MSR_IA32_SYSENTER_CS,
					  MSR_IA32_SYSENTER_ESP,
					  MSR_IA32_SYSENTER_EIP,
					  MSR_STAR,
					  MSR_CSTAR,
					  MSR_KERNEL_GS_BASE,
					  MSR_SYSCALL_MASK,
					  MSR_LSTAR,
					  MSR_IA32_TSC};
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[ARRAY_SIZE(zeroed) + 1];
	} m = {0};
	unsigned int n = 0;

	for (; n < ARRAY_SIZE(zeroed); n++)
		m.e[n].index = zeroed[n];
	m.e[n].index = MSR_IA32_MISC_ENABLE;
	m.e[n++].data = MSR_IA32_MISC_ENABLE_FAST_STRING;
	m.hdr.nmsrs = n;
	if (ioctl(vcpu->fd, KVM_SET_MSRS, &m) != (int)n) {
		pr_err("KVM_SET_MSRS on vCPU %u failed", vcpu->id);
		return -EINVAL;
	}
	return 0;
}

static void set_lvt(struct kvm_lapic_state *l, unsigned int reg, uint32_t mode)
{
	uint32_t v;

	memcpy(&v, &l->regs[reg], 4);
	v = (v & ~0x700u) | (mode << 8);
	memcpy(&l->regs[reg], &v, 4);
}

static int setup_lapic(struct vcpu *vcpu)
{
	struct kvm_lapic_state l;

	/* LINT0 carries the 8259 (ExtINT), LINT1 NMI: what the MP table describes. */
	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	set_lvt(&l, APIC_LVT0, APIC_MODE_EXTINT);
	set_lvt(&l, APIC_LVT1, APIC_MODE_NMI);
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &l) < 0)
		return -errno;
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned int id)
{
	int ret;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (vcpu->fd < 0) {
		ret = -errno;
		pr_err("KVM_CREATE_VCPU %u: %s", id, strerror(-ret));
		return ret;
	}
	vcpu->run = mmap(NULL, vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		ret = -errno;
		vcpu->run = NULL;
		pr_err("mapping vCPU %u's kvm_run: %s", id, strerror(-ret));
		return ret;
	}
	ret = setup_cpuid(vm, vcpu);
	if (!ret)
		ret = setup_msrs(vcpu);
	if (!ret)
		ret = setup_lapic(vcpu);
	return ret;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64, bool db,
		    uint8_t dpl)
{
	*s = (struct kvm_segment){.base = 0,
				  .limit = 0xffffffff,
				  .selector = sel,
				  .type = type,
				  .present = 1,
				  .dpl = dpl,
				  .db = db,
				  .s = 1,
				  .l = code64,
				  .g = 1};
}

int vcpu_set_boot_state(struct vcpu *vcpu, const struct boot_entry *be)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {.rflags = 2};
	struct kvm_segment data;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.gdt.base = be->gdt_gpa;
	sregs.gdt.limit = be->gdt_limit;
	switch (be->mode) {
	case BOOT_LONG64:
		set_seg(&sregs.cs, 0x10, 0xb, true, false, 0);
		set_seg(&data, 0x18, 0x3, false, true, 0);
		sregs.cr3 = be->cr3;
		sregs.cr4 = 0x20;	/* PAE */
		sregs.cr0 = 0x80050033; /* PG WP NE ET MP PE */
		sregs.efer = 0x500;	/* LME LMA */
		regs.rsi = be->rsi;
		break;
	case BOOT_USER64:
		set_seg(&sregs.cs, 0x1b, 0xb, true, false, 3);
		set_seg(&data, 0x23, 0x3, false, true, 3);
		sregs.cr3 = be->cr3;
		sregs.cr4 = 0x20;
		sregs.cr0 = 0x80050033;
		sregs.efer = 0x500;
		regs.rflags = 0x3002; /* IOPL 3: port I/O from CPL3 */
		regs.rsp = be->rsp;
		regs.rdi = be->rdi;
		regs.rsi = be->rsi;
		break;
	case BOOT_PROT32:
		set_seg(&sregs.cs, 0x10, 0xb, false, true, 0);
		set_seg(&data, 0x18, 0x3, false, true, 0);
		sregs.cr0 = 0x11; /* PE ET, no paging (PVH entry state) */
		sregs.cr4 = 0;
		sregs.efer = 0;
		regs.rbx = be->rbx;
		break;
	default:
		return -EINVAL;
	}
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	/* A busy TSS at 0x28 (see boot_gdt): VM entry checks want a usable TR. */
	sregs.tr = (struct kvm_segment){
		.base = 0, .limit = 0x67, .selector = 0x28, .type = 11, .present = 1};
	regs.rip = be->rip;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

static void kick_handler(int sig)
{
	(void)sig;
}

void vcpu_kick(struct vcpu *vcpu)
{
	if (!vcpu->run)
		return;
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (vcpu->thread_started)
		pthread_kill(vcpu->thread, KICK_SIGNAL);
}

static void dump_regs(int fd)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (fd < 0 || ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &s) < 0)
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

static void handle_io(struct vm *vm, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (bus_access(&vm->pio, run->io.port, data, run->io.size, write) == 0)
			continue;
		if (!write)
			memset(data, 0xff, run->io.size);
		if (run->io.port != 0x80 && first_time(run->io.port))
			pr_info("unhandled port %s 0x%x (%u bytes)", write ? "write" : "read",
				run->io.port, run->io.size);
	}
}

static void handle_mmio(struct vm *vm, struct kvm_run *run)
{
	uint32_t len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	if (bus_access(&vm->mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write) ==
	    0)
		return;
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
	if (first_time(run->mmio.phys_addr | (1ULL << 63)))
		pr_info("unhandled MMIO %s 0x%llx (%u bytes)",
			run->mmio.is_write ? "write" : "read",
			(unsigned long long)run->mmio.phys_addr, len);
}

static bool host_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
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
static void diagnose_shutdown(struct vm *vm, int fd)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_translation tr;
	uint8_t code[15];
	size_t n = sizeof(code);
	uint64_t gpa;

	if (fd < 0 || ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &s) < 0)
		return;
	if (s.cs.dpl != 3 || (r.rflags & X86_EFLAGS_IOPL) != 0)
		return;
	tr = (struct kvm_translation){.linear_address = r.rip};
	gpa = ioctl(fd, KVM_TRANSLATE, &tr) == 0 && tr.valid ? tr.physical_address : r.rip;
	while (n && gm_read(&vm->gm, gpa, code, n) < 0)
		n--; /* the instruction may end at the top of RAM */
	if (!x86_is_port_insn(code, n))
		return;
	if (host_is_pvm())
		pr_err("this /dev/kvm (PVM) ignores IOPL: port I/O from CPL3 firmware faults "
		       "(rflags IOPL 0 at a port instruction, rip 0x%llx); run firmware inside the "
		       "nested test host (tests/testhost/run.sh)",
		       (unsigned long long)r.rip);
	else
		pr_err("the guest faulted on port I/O at CPL3 with IOPL 0 (rip 0x%llx): this "
		       "/dev/kvm does not honour IOPL for CPL3 code",
		       (unsigned long long)r.rip);
}

enum vcpu_action vcpu_handle_exit(struct vm *vm, struct kvm_run *run, int vcpu_fd)
{
	char msg[200];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(vm, run);
		return VCPU_CONTINUE;
	case KVM_EXIT_MMIO:
		handle_mmio(vm, run);
		return VCPU_CONTINUE;
	case KVM_EXIT_INTR:
		return VCPU_CONTINUE;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; ours halts in the kernel. */
		return VCPU_CONTINUE;
	case KVM_EXIT_SHUTDOWN:
		pr_err("guest triple fault (KVM_EXIT_SHUTDOWN): the guest reset itself after a "
		       "fatal CPU exception");
		diagnose_shutdown(vm, vcpu_fd);
		dump_regs(vcpu_fd);
		vm_stop(vm, 1, "triple fault");
		return VCPU_STOP;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(msg, sizeof(msg), "KVM_EXIT_FAIL_ENTRY, hardware reason 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		pr_err("%s", msg);
		dump_regs(vcpu_fd);
		vm_stop(vm, 1, msg);
		return VCPU_STOP;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(msg, sizeof(msg), "KVM internal error, suberror %u%s",
			 run->internal.suberror,
			 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
				 ? " (instruction emulation failed)"
				 : "");
		pr_err("%s", msg);
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && host_is_pvm())
			pr_err("this host's /dev/kvm is PVM (kvm_pvm): it emulates guest kernel "
			       "code "
			       "and cannot run XSAVE-family instructions, so it cannot boot Linux; "
			       "run on hardware KVM or inside the nested test host "
			       "(tests/testhost/run.sh)");
		dump_regs(vcpu_fd);
		vm_stop(vm, 1, msg);
		return VCPU_STOP;
	case KVM_EXIT_SYSTEM_EVENT:
		vm_stop(vm, 0, "guest system event (reset/shutdown)");
		return VCPU_STOP;
	default:
		snprintf(msg, sizeof(msg), "unexpected KVM exit reason %u", run->exit_reason);
		pr_err("%s", msg);
		dump_regs(vcpu_fd);
		vm_stop(vm, 1, msg);
		return VCPU_STOP;
	}
}

/* Park while the VM is paused; returns false once the VM stopped. */
static bool park_if_paused(struct vm *vm)
{
	bool running;

	pthread_mutex_lock(&vm->lock);
	if (vm->pause_req && vm->state != VM_STOPPED) {
		vm->parked++;
		pthread_cond_broadcast(&vm->cond);
		while (vm->pause_req && vm->state != VM_STOPPED)
			pthread_cond_wait(&vm->cond, &vm->lock);
		vm->parked--;
	}
	running = vm->state != VM_STOPPED;
	pthread_mutex_unlock(&vm->lock);
	return running;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	sigset_t set;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", vcpu->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	while (park_if_paused(vm)) {
		vcpu->nr_runs++;
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				continue;
			}
			int e = errno;

			pr_err("KVM_RUN on vCPU %u: %s", vcpu->id, strerror(e));
			vm_stop(vm, 1, "KVM_RUN failed");
			break;
		}
		if (vcpu_handle_exit(vm, vcpu->run, vcpu->fd) == VCPU_STOP)
			break;
	}
	if (log_level >= LOG_DEBUG) {
		pr_debug("vCPU %u: %llu KVM_RUN calls, last exit reason %u; final registers:",
			 vcpu->id, (unsigned long long)vcpu->nr_runs, vcpu->run->exit_reason);
		dump_regs(vcpu->fd);
	}
	return NULL;
}

int vcpu_start(struct vcpu *vcpu)
{
	static bool handler_installed;
	struct sigaction sa = {.sa_handler = kick_handler};
	int ret;

	if (!handler_installed) {
		sigemptyset(&sa.sa_mask);
		sigaction(KICK_SIGNAL, &sa, NULL);
		handler_installed = true;
	}
	ret = vmm_thread_create(&vcpu->thread, vcpu_thread, vcpu);
	if (ret)
		return -ret;
	vcpu->thread_started = true;
	return 0;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->thread_started)
		pthread_join(vcpu->thread, NULL);
	vcpu->thread_started = false;
	if (vcpu->run)
		munmap(vcpu->run, vcpu->vm->vcpu_mmap_size);
	vcpu->run = NULL;
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->fd = -1;
}
