/* KVM vCPU and in-kernel device state for snapshots (vcpu_state.h; KVM api.rst section 4). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "../util.h"
#include "../vcpu.h"
#include "../vm.h"
#include "vcpu_state.h"

#define CPUID_MAX 256
#define MSR_MAX	  1024
#define MSR_TSC	  0x10

/* One KVM struct as u32 size + bytes; the load refuses another size (another ABI). */
static void put_blob(struct state_out *o, const void *p, uint32_t n)
{
	state_put_u32(o, n);
	state_put(o, p, n);
}

static int get_blob(struct state_in *in, void *p, uint32_t n, const char *what)
{
	if (state_get_u32(in) != n)
		return state_fail(in, what);
	return state_get(in, p, n);
}

static int xsave_size(struct vm *vm)
{
	int n = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return n > (int)sizeof(struct kvm_xsave) ? n : (int)sizeof(struct kvm_xsave);
}

static struct kvm_msr_list *msr_index_list(struct vm *vm)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *l;

	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return NULL;
	if (probe.nmsrs == 0 || probe.nmsrs > MSR_MAX)
		return NULL;
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return NULL;
	l->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* One vCPU's KVM state, as saved and loaded (the variable-size parts allocated). */
struct vcpu_kvm {
	struct kvm_cpuid2 *cpuid; /* room for CPUID_MAX entries */
	struct kvm_msrs *msrs;	  /* room for MSR_MAX entries */
	struct kvm_xsave *xsave;  /* xs bytes (KVM_CAP_XSAVE2) */
	int xs;
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
};

static void vk_free(struct vcpu_kvm *k)
{
	free(k->cpuid);
	free(k->msrs);
	free(k->xsave);
}

/* Returns 0, or -ENOMEM (then vk_free() is still safe). */
static int vk_alloc(struct vm *vm, struct vcpu_kvm *k)
{
	memset(k, 0, sizeof(*k));
	k->xs = xsave_size(vm);
	k->cpuid = calloc(1, sizeof(*k->cpuid) + CPUID_MAX * sizeof(k->cpuid->entries[0]));
	k->msrs = calloc(1, sizeof(*k->msrs) + MSR_MAX * sizeof(k->msrs->entries[0]));
	k->xsave = calloc(1, (size_t)k->xs);
	return k->cpuid && k->msrs && k->xsave ? 0 : -ENOMEM;
}

int vcpu_state_save(struct vcpu *vcpu, struct state_out *o)
{
	struct vm *vm = vcpu->vm;
	struct kvm_msr_list *list = msr_index_list(vm);
	struct vcpu_kvm k;
	int ret = -ENOMEM;
	unsigned int n = 0;
	const char *what = "";

	if (vk_alloc(vm, &k) || !list)
		goto out;
	k.cpuid->nent = CPUID_MAX;
#define GET(req, arg)                              \
	do {                                       \
		what = #req;                       \
		if (ioctl(vcpu->fd, req, arg) < 0) \
			goto fail;                 \
	} while (0)
	GET(KVM_GET_CPUID2, k.cpuid);
	GET(KVM_GET_MP_STATE, &k.mp);
	GET(KVM_GET_REGS, &k.regs);
	GET(KVM_GET_SREGS, &k.sregs);
	GET(k.xs > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, k.xsave);
	GET(KVM_GET_XCRS, &k.xcrs);
	GET(KVM_GET_DEBUGREGS, &k.dregs);
	GET(KVM_GET_LAPIC, &k.lapic);
	GET(KVM_GET_VCPU_EVENTS, &k.events);
#undef GET
	qsort(list->indices, list->nmsrs, sizeof(list->indices[0]), cmp_u32);
	for (unsigned int i = 0; i < list->nmsrs; i++) {
		/* One at a time: KVM_GET_MSRS stops at the first MSR it cannot read. */
		struct {
			struct kvm_msrs h;
			struct kvm_msr_entry e;
		} one = {.h.nmsrs = 1, .e.index = list->indices[i]};

		if (ioctl(vcpu->fd, KVM_GET_MSRS, &one) == 1)
			k.msrs->entries[n++] = one.e;
	}
	state_put_u32(o, k.cpuid->nent);
	state_put(o, k.cpuid->entries, k.cpuid->nent * sizeof(k.cpuid->entries[0]));
	put_blob(o, &k.mp, sizeof(k.mp));
	put_blob(o, &k.regs, sizeof(k.regs));
	put_blob(o, &k.sregs, sizeof(k.sregs));
	put_blob(o, k.xsave, (uint32_t)k.xs);
	put_blob(o, &k.xcrs, sizeof(k.xcrs));
	put_blob(o, &k.dregs, sizeof(k.dregs));
	put_blob(o, &k.lapic, sizeof(k.lapic));
	state_put_u32(o, n);
	state_put(o, k.msrs->entries, n * sizeof(k.msrs->entries[0]));
	put_blob(o, &k.events, sizeof(k.events));
	ret = state_out_error(o);
	goto out;
fail:
	ret = -errno;
	pr_err("snapshot: %s on vCPU %u: %s", what, vcpu->id, strerror(errno));
out:
	vk_free(&k);
	free(list);
	return ret;
}

/* Leaves/registers whose feature bits the guest may rely on; the host must offer them all. */
static const struct {
	uint32_t fn, idx;
	int reg;       /* 0 eax 1 ebx 2 ecx 3 edx */
	uint32_t ours; /* bits vcpu.c sets itself, not from the host */
} feature_regs[] = {
	{1, 0, 2, 1u << 31 | 1u << 24},
	{1, 0, 3, 1u << 28},
	{7, 0, 1, 0},
	{7, 0, 2, 0},
	{7, 0, 3, 0},
	{0xd, 1, 0, 0},
	{0x80000001, 0, 2, 0},
	{0x80000001, 0, 3, 0},
};

static uint32_t reg_of(const struct kvm_cpuid_entry2 *e, int reg)
{
	return reg == 0 ? e->eax : reg == 1 ? e->ebx : reg == 2 ? e->ecx : e->edx;
}

static const struct kvm_cpuid_entry2 *find_leaf(const struct kvm_cpuid2 *c, uint32_t fn,
						uint32_t idx)
{
	for (unsigned int i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn &&
		    (!(c->entries[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ||
		     c->entries[i].index == idx))
			return &c->entries[i];
	return NULL;
}

/* Can this host give the guest the CPUID it had? Vendor equal, features a subset. */
static int check_cpuid(struct vm *vm, const struct kvm_cpuid2 *saved, char *why, size_t why_len)
{
	struct kvm_cpuid2 *host = calloc(1, sizeof(*host) + CPUID_MAX * sizeof(host->entries[0]));
	const struct kvm_cpuid_entry2 *a, *b;
	int ret = 0;

	if (!host)
		return -ENOMEM;
	host->nent = CPUID_MAX;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, host) < 0) {
		ret = -errno;
		goto out;
	}
	a = find_leaf(saved, 0, 0);
	b = find_leaf(host, 0, 0);
	if (!a || !b || a->ebx != b->ebx || a->ecx != b->ecx || a->edx != b->edx) {
		snprintf(why, why_len,
			 "incompatible CPU: the snapshot was taken on another vendor");
		ret = -EINVAL;
		goto out;
	}
	for (unsigned int i = 0; i < ARRAY_SIZE(feature_regs); i++) {
		uint32_t want, have;

		a = find_leaf(saved, feature_regs[i].fn, feature_regs[i].idx);
		b = find_leaf(host, feature_regs[i].fn, feature_regs[i].idx);
		want = a ? reg_of(a, feature_regs[i].reg) & ~feature_regs[i].ours : 0;
		have = b ? reg_of(b, feature_regs[i].reg) : 0;
		if (want & ~have) {
			snprintf(
				why, why_len,
				"incompatible CPU: this host lacks CPUID leaf 0x%x.%u %s bits 0x%x "
				"the snapshot's guest uses",
				feature_regs[i].fn, feature_regs[i].idx,
				(const char *[]){"eax", "ebx", "ecx", "edx"}[feature_regs[i].reg],
				want & ~have);
			ret = -EINVAL;
			goto out;
		}
	}
out:
	free(host);
	return ret;
}

int vcpu_state_load(struct vcpu *vcpu, struct state_in *in, uint64_t tsc_advance, char *why,
		    size_t why_len)
{
	struct vm *vm = vcpu->vm;
	struct vcpu_kvm k;
	int ret = -ENOMEM;
	uint32_t n;
	const char *what = "";

	snprintf(why, why_len, "malformed vCPU %u state", vcpu->id);
	if (vk_alloc(vm, &k))
		goto out;
	n = state_get_u32(in);
	if (n == 0 || n > CPUID_MAX)
		state_fail(in, "CPUID entry count");
	k.cpuid->nent = n;
	state_get(in, k.cpuid->entries, (size_t)MIN(n, CPUID_MAX) * sizeof(k.cpuid->entries[0]));
	get_blob(in, &k.mp, sizeof(k.mp), "mp_state size");
	get_blob(in, &k.regs, sizeof(k.regs), "regs size");
	get_blob(in, &k.sregs, sizeof(k.sregs), "sregs size");
	/* An XSAVE area of another size is another CPU's layout. */
	get_blob(in, k.xsave, (uint32_t)k.xs, "xsave size");
	get_blob(in, &k.xcrs, sizeof(k.xcrs), "xcrs size");
	get_blob(in, &k.dregs, sizeof(k.dregs), "debugregs size");
	get_blob(in, &k.lapic, sizeof(k.lapic), "lapic size");
	n = state_get_u32(in);
	if (n > MSR_MAX)
		state_fail(in, "MSR count");
	state_get(in, k.msrs->entries, (size_t)MIN(n, MSR_MAX) * sizeof(k.msrs->entries[0]));
	get_blob(in, &k.events, sizeof(k.events), "vcpu_events size");
	ret = state_in_end(in);
	if (ret)
		goto out;
	if (k.mp.mp_state > KVM_MP_STATE_AP_RESET_HOLD || k.xcrs.nr_xcrs > KVM_MAX_XCRS) {
		ret = -EINVAL;
		goto out;
	}
	ret = check_cpuid(vm, k.cpuid, why, why_len);
	if (ret)
		goto out;
	for (uint32_t i = 0; i < n; i++)
		if (k.msrs->entries[i].index == MSR_TSC)
			k.msrs->entries[i].data += tsc_advance;
	k.events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
#define SET(req, arg)                              \
	do {                                       \
		what = #req;                       \
		if (ioctl(vcpu->fd, req, arg) < 0) \
			goto fail;                 \
	} while (0)
	SET(KVM_SET_CPUID2, k.cpuid);
	SET(KVM_SET_MP_STATE, &k.mp);
	SET(KVM_SET_REGS, &k.regs);
	SET(KVM_SET_SREGS, &k.sregs);
	SET(KVM_SET_XSAVE, k.xsave);
	/* A host CPU without XSAVE reads 0 XCRs and refuses to set any. */
	if (k.xcrs.nr_xcrs)
		SET(KVM_SET_XCRS, &k.xcrs);
	SET(KVM_SET_DEBUGREGS, &k.dregs);
	SET(KVM_SET_LAPIC, &k.lapic);
	for (uint32_t i = 0; i < n; i++) {
		struct {
			struct kvm_msrs h;
			struct kvm_msr_entry e;
		} one = {.h.nmsrs = 1, .e = k.msrs->entries[i]};

		if (ioctl(vcpu->fd, KVM_SET_MSRS, &one) != 1)
			pr_info("restore: MSR 0x%x not accepted by this host, skipped",
				one.e.index);
	}
	SET(KVM_SET_VCPU_EVENTS, &k.events);
#undef SET
	why[0] = '\0';
	ret = 0;
	goto out;
fail:
	ret = -errno;
	snprintf(why, why_len, "%s on vCPU %u: %s", what, vcpu->id, strerror(errno));
out:
	vk_free(&k);
	return ret;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int vm_state_save(struct vm *vm, struct state_out *o)
{
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock = {0};

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			goto fail;
		put_blob(o, &chip, sizeof(chip));
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0 || ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		goto fail;
	put_blob(o, &pit, sizeof(pit));
	state_put_u64(o, clock.clock);
	state_put_u64(o, realtime_ns());
	return state_out_error(o);
fail:
	pr_err("snapshot: saving the in-kernel irqchip/PIT/clock: %s", strerror(errno));
	return -errno;
}

uint64_t vm_state_elapsed_ns(const struct state_in *in)
{
	struct state_in c = *in;
	uint64_t saved, now = realtime_ns();

	/* 3 irqchips and the PIT, then the kvmclock, then the realtime stamp. */
	if (c.len < 16 || c.err)
		return 0;
	c.off = c.len - 8;
	saved = state_get_u64(&c);
	return now > saved ? now - saved : 0;
}

int vm_state_load(struct vm *vm, struct state_in *in, uint64_t elapsed_ns)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock = {0};

	for (int i = 0; i < 3; i++) {
		get_blob(in, &chip[i], sizeof(chip[i]), "irqchip size");
		if (chip[i].chip_id != (uint32_t)i)
			state_fail(in, "irqchip id");
	}
	get_blob(in, &pit, sizeof(pit), "pit size");
	clock.clock = state_get_u64(in);
	state_get_u64(in);
	if (state_in_end(in))
		return -EINVAL;
	for (int i = 0; i < 3; i++)
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip[i]) < 0)
			goto fail;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		goto fail;
	clock.clock += elapsed_ns;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		goto fail;
	return 0;
fail:
	pr_err("restore: setting the in-kernel irqchip/PIT/clock: %s", strerror(errno));
	return -errno;
}

int vcpu_kvmclock_ctrl(struct vcpu *vcpu)
{
	if (ioctl(vcpu->fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}
