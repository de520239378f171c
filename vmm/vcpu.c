#include "vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exit_stats.h"
#include "util.h"
#include "vcpu_exit.h"
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

static int setup_cpuid(struct vm *vm, struct vcpu *vcpu)
{
	struct kvm_cpuid2 *c;
	bool tsc_deadline;
	int ret = 0;

	/*
	 * KVM emulates the LAPIC's TSC-deadline mode but KVM_GET_SUPPORTED_CPUID does not report it
	 * (api.rst: KVM_CAP_TSC_DEADLINE_TIMER). Without CPUID.1:ECX[24] a guest kernel uses the
	 * LAPIC timer in one-shot mode and first calibrates it against another clock ("APIC timer
	 * disabled due to verification failure" under a busy host): measured 0.44 s of a test host
	 * boot.
	 */
	tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
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
			if (tsc_deadline)
				e->ecx |= 1u << 24; /* TSC-deadline LAPIC timer mode */
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
	vcpu->host_is_pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
	vcpu->stats_fd = -1;
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
	if (vm->cfg.exit_stats) {
		vcpu->stats = calloc(1, sizeof(*vcpu->stats));
		if (!vcpu->stats)
			return -ENOMEM;
		/* Opened here: the vCPU thread's filter has no KVM_GET_STATS_FD (-1: none). */
		vcpu->stats_fd = ioctl(vcpu->fd, KVM_GET_STATS_FD, NULL);
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

/* The exit context's hooks: the VM to stop, the registers and translations of this vCPU. */
static void ctx_stop(void *opaque, int status, const char *reason)
{
	struct vcpu *vcpu = opaque;

	vm_stop(vcpu->vm, status, reason);
}

static int ctx_get_regs(void *opaque, struct kvm_regs *r, struct kvm_sregs *s)
{
	struct vcpu *vcpu = opaque;

	if (ioctl(vcpu->fd, KVM_GET_REGS, r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, s) < 0)
		return -errno;
	return 0;
}

static int ctx_translate(void *opaque, uint64_t gva, uint64_t *gpa)
{
	struct vcpu *vcpu = opaque;
	struct kvm_translation tr = {.linear_address = gva};

	if (ioctl(vcpu->fd, KVM_TRANSLATE, &tr) < 0)
		return -errno;
	if (!tr.valid)
		return -EFAULT;
	*gpa = tr.physical_address;
	return 0;
}

static void init_exit_ctx(struct vcpu *vcpu, struct vcpu_exit_ctx *ctx)
{
	struct vm *vm = vcpu->vm;
	long page = sysconf(_SC_PAGESIZE);

	*ctx = (struct vcpu_exit_ctx){
		.pio = &vm->pio,
		.mmio = &vm->mmio,
		.gm = &vm->gm,
		.run_size = (size_t)vm->vcpu_mmap_size,
		.host_is_pvm = vcpu->host_is_pvm,
		.opaque = vcpu,
		.stats = vcpu->stats,
		.ring_lock = &vm->coalesced_lock,
		.stop = ctx_stop,
		.get_regs = ctx_get_regs,
		.translate = ctx_translate,
	};
	if (vm->coalesced_page) {
		/* vm_coalesce_pio() checked that the page lies inside the mapping. */
		ctx->ring = (struct kvm_coalesced_mmio_ring *)((uint8_t *)vcpu->run +
							       (size_t)vm->coalesced_page * page);
		ctx->ring_max =
			(uint32_t)((page - sizeof(*ctx->ring)) / sizeof(struct kvm_coalesced_mmio));
	}
}

/*
 * Park while the VM is paused; returns false once the VM stopped. Before parking, the exit just
 * handled is completed with a KVM_RUN that has immediate_exit set (api.rst: a port or MMIO read
 * is complete, and the vCPU's state consistent, only after the next KVM_RUN; with immediate_exit
 * KVM finishes it and returns -EINTR without running guest code), so a snapshot taken while
 * paused never holds a half-done instruction.
 */
static bool park_if_paused(struct vcpu *vcpu, const struct vcpu_exit_ctx *ctx)
{
	struct vm *vm = vcpu->vm;
	bool running;

	pthread_mutex_lock(&vm->lock);
	if (vm->pause_req && vm->state != VM_STOPPED) {
		pthread_mutex_unlock(&vm->lock);
		__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		ioctl(vcpu->fd, KVM_RUN, 0);
		__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		vcpu_drain_coalesced(ctx); /* queued port writes done before the state is taken */
		pthread_mutex_lock(&vm->lock);
	}
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
	struct vcpu_exit_ctx ctx;
	sigset_t set;
	char name[16];

	init_exit_ctx(vcpu, &ctx);
	snprintf(name, sizeof(name), "vcpu%u", vcpu->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	while (park_if_paused(vcpu, &ctx)) {
		uint64_t t0;

		vcpu->nr_runs++;
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* Queued writes are done before the vCPU parks (a pause, a
				 * snapshot). */
				vcpu_drain_coalesced(&ctx);
				__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				continue;
			}
			int e = errno;

			pr_err("KVM_RUN on vCPU %u: %s", vcpu->id, strerror(e));
			vm_stop(vm, 1, "KVM_RUN failed");
			break;
		}
		t0 = vcpu->stats ? now_ns() : 0;
		if (vcpu_handle_exit(&ctx, vcpu->run) == VCPU_STOP)
			break;
		if (vcpu->stats)
			vcpu->stats->handling_ns += now_ns() - t0;
	}
	if (vcpu->stats)
		exit_stats_print(vcpu->stats, vcpu->stats_fd, vcpu->id, 16, stderr);
	if (log_level >= LOG_DEBUG) {
		pr_debug("vCPU %u: %llu KVM_RUN calls, last exit reason %u; final registers:",
			 vcpu->id, (unsigned long long)vcpu->nr_runs, vcpu->run->exit_reason);
		vcpu_dump_regs(&ctx);
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
	ret = vmm_thread_create_role(&vcpu->thread, VMM_THREAD_VCPU, vcpu_thread, vcpu);
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
	if (vcpu->stats_fd >= 0)
		close(vcpu->stats_fd);
	vcpu->stats_fd = -1;
	free(vcpu->stats);
	vcpu->stats = NULL;
}
