#include "exit_stats.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static const char *const reason_names[] = {
	[KVM_EXIT_UNKNOWN] = "unknown",
	[KVM_EXIT_EXCEPTION] = "exception",
	[KVM_EXIT_IO] = "io",
	[KVM_EXIT_HYPERCALL] = "hypercall",
	[KVM_EXIT_DEBUG] = "debug",
	[KVM_EXIT_HLT] = "hlt",
	[KVM_EXIT_MMIO] = "mmio",
	[KVM_EXIT_IRQ_WINDOW_OPEN] = "irq_window_open",
	[KVM_EXIT_SHUTDOWN] = "shutdown",
	[KVM_EXIT_FAIL_ENTRY] = "fail_entry",
	[KVM_EXIT_INTR] = "intr",
	[KVM_EXIT_SET_TPR] = "set_tpr",
	[KVM_EXIT_TPR_ACCESS] = "tpr_access",
	[KVM_EXIT_NMI] = "nmi",
	[KVM_EXIT_INTERNAL_ERROR] = "internal_error",
	[KVM_EXIT_SYSTEM_EVENT] = "system_event",
	[KVM_EXIT_IOAPIC_EOI] = "ioapic_eoi",
	[KVM_EXIT_X86_RDMSR] = "rdmsr",
	[KVM_EXIT_X86_WRMSR] = "wrmsr",
};

const char *exit_stats_reason_name(uint32_t reason)
{
	return reason < ARRAY_SIZE(reason_names) ? reason_names[reason] : NULL;
}

void exit_stats_count(struct exit_stats *s, const struct kvm_run *run)
{
	uint32_t reason = run->exit_reason;

	s->reasons[MIN(reason, (uint32_t)EXIT_STATS_REASONS)]++;
	if (reason == KVM_EXIT_IO) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			s->port_out[run->io.port]++;
		else
			s->port_in[run->io.port]++;
	} else if (reason == KVM_EXIT_MMIO) {
		unsigned int i;

		for (i = 0; i < s->nr_mmio && s->mmio[i].addr != run->mmio.phys_addr; i++)
			;
		if (i == s->nr_mmio && s->nr_mmio < EXIT_STATS_MMIO)
			s->mmio[s->nr_mmio++].addr = run->mmio.phys_addr;
		if (i == s->nr_mmio)
			s->mmio_other++;
		else if (run->mmio.is_write)
			s->mmio[i].writes++;
		else
			s->mmio[i].reads++;
	}
}

static uint64_t port_total(const struct exit_stats *s, unsigned int port)
{
	return (uint64_t)s->port_in[port] + s->port_out[port];
}

/*
 * The reports run on the vCPU thread under its seccomp filter: no qsort() (glibc's may call
 * sysinfo(2) for a large array), only selections over the counters.
 */

/* Does (n, key) come before (bn, bkey) in (count descending, key ascending) order? */
static bool before(uint64_t n, uint64_t key, uint64_t bn, uint64_t bkey)
{
	return n > bn || (n == bn && key < bkey);
}

/* The @top busiest ports, most accesses first: @top passes over the 65536 counters. */
static void print_ports(const struct exit_stats *s, unsigned int vcpu, unsigned int top, FILE *f)
{
	uint64_t last_n = UINT64_MAX, last_port = 0;

	for (unsigned int k = 0; k < top; k++) {
		uint64_t best_n = 0, best = 0;

		for (unsigned int p = 0; p < 65536; p++) {
			uint64_t n = port_total(s, p);

			/* After the previous pick in the order, and before the best so far. */
			if (n && before(last_n, last_port, n, p) &&
			    (!best_n || before(n, p, best_n, best))) {
				best_n = n;
				best = p;
			}
		}
		if (!best_n)
			return;
		fprintf(f, "exit-stats: vcpu %u port 0x%x in %u out %u\n", vcpu, (unsigned int)best,
			s->port_in[best], s->port_out[best]);
		last_n = best_n;
		last_port = best;
	}
}

static uint64_t mmio_total(const struct exit_stats_mmio *m)
{
	return (uint64_t)m->reads + m->writes;
}

static void print_mmio(const struct exit_stats *s, unsigned int vcpu, unsigned int top, FILE *f)
{
	struct exit_stats_mmio m[EXIT_STATS_MMIO];
	unsigned int nr = MIN(s->nr_mmio, (unsigned int)EXIT_STATS_MMIO);

	/* Insertion sort of at most EXIT_STATS_MMIO entries. */
	for (unsigned int i = 0; i < nr; i++) {
		unsigned int j = i;

		while (j > 0 && before(mmio_total(&s->mmio[i]), s->mmio[i].addr,
				       mmio_total(&m[j - 1]), m[j - 1].addr)) {
			m[j] = m[j - 1];
			j--;
		}
		m[j] = s->mmio[i];
	}
	for (unsigned int i = 0; i < nr && i < top; i++)
		fprintf(f, "exit-stats: vcpu %u mmio 0x%" PRIx64 " read %u write %u\n", vcpu,
			m[i].addr, m[i].reads, m[i].writes);
	if (s->mmio_other)
		fprintf(f, "exit-stats: vcpu %u mmio other %" PRIu64 "\n", vcpu, s->mmio_other);
}

struct kvm_print {
	FILE *f;
	unsigned int vcpu;
};

static void print_kvm_counter(void *opaque, const char *name, uint64_t value)
{
	struct kvm_print *p = opaque;

	if (value)
		fprintf(p->f, "exit-stats: vcpu %u kvm %s %" PRIu64 "\n", p->vcpu, name, value);
}

void exit_stats_print(const struct exit_stats *s, int kvm_stats_fd, unsigned int vcpu,
		      unsigned int top, FILE *f)
{
	struct kvm_print kp = {.f = f, .vcpu = vcpu};
	uint64_t total = 0;

	for (unsigned int r = 0; r <= EXIT_STATS_REASONS; r++)
		total += s->reasons[r];
	fprintf(f, "exit-stats: vcpu %u userspace-exits %" PRIu64 " handling-us %" PRIu64 "\n",
		vcpu, total, s->handling_ns / 1000);
	for (unsigned int r = 0; r <= EXIT_STATS_REASONS; r++) {
		const char *name = r < EXIT_STATS_REASONS ? exit_stats_reason_name(r) : "other";

		if (!s->reasons[r])
			continue;
		if (name)
			fprintf(f, "exit-stats: vcpu %u reason %s %" PRIu64 "\n", vcpu, name,
				s->reasons[r]);
		else
			fprintf(f, "exit-stats: vcpu %u reason %u %" PRIu64 "\n", vcpu, r,
				s->reasons[r]);
	}
	print_ports(s, vcpu, top, f);
	print_mmio(s, vcpu, top, f);
	if (kvm_stats_fd >= 0 && exit_stats_kvm_read(kvm_stats_fd, print_kvm_counter, &kp) < 0)
		fprintf(f, "exit-stats: vcpu %u kvm counters unreadable\n", vcpu);
}

int exit_stats_kvm_read(int fd, void (*fn)(void *opaque, const char *name, uint64_t value),
			void *opaque)
{
	struct kvm_stats_header h;
	size_t dsize;
	char *descs;
	int n = 0;

	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EINVAL;
	if (h.name_size == 0 || h.name_size > 4096 || h.num_desc > 4096)
		return -EINVAL;
	dsize = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = malloc(dsize * h.num_desc);
	if (!descs)
		return -ENOMEM;
	if (pread(fd, descs, dsize * h.num_desc, h.desc_offset) != (ssize_t)(dsize * h.num_desc)) {
		free(descs);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (struct kvm_stats_desc *)(descs + i * dsize);
		uint64_t v;

		if (!memchr(d->name, 0, h.name_size)) {
			n = -EINVAL;
			break;
		}
		if ((d->flags & KVM_STATS_TYPE_MASK) != KVM_STATS_TYPE_CUMULATIVE || d->size < 1)
			continue;
		if (pread(fd, &v, sizeof(v), (off_t)h.data_offset + d->offset) != sizeof(v)) {
			n = -EINVAL;
			break;
		}
		fn(opaque, d->name, v);
		n++;
	}
	free(descs);
	return n;
}
