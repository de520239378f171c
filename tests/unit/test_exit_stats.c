/* --debug exit-stats (vmm/exit_stats.h): counting synthetic exits, the report, KVM's stats fd. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../devices/bus.h"
#include "../../vmm/exit_stats.h"
#include "../../vmm/sandbox.h"
#include "../../vmm/util.h"
#include "../../vmm/vcpu_exit.h"

static struct kvm_run *io_exit(void *page, uint16_t port, uint8_t dir)
{
	struct kvm_run *run = page;

	memset(page, 0, 8192);
	run->exit_reason = KVM_EXIT_IO;
	run->io = (typeof(run->io)){
		.direction = dir, .size = 1, .port = port, .count = 1, .data_offset = 4096};
	return run;
}

static char *report(const struct exit_stats *s, int fd, unsigned int top)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	exit_stats_print(s, fd, 3, top, f);
	fclose(f);
	return buf;
}

static void no_stop(void *opaque, int status, const char *reason)
{
	(void)opaque;
	(void)status;
	(void)reason;
}

/* The dispatcher counts every exit when the context has stats, ports by direction. */
Test(exit_stats, dispatch_counts_ports_mmio_and_reasons)
{
	static uint8_t page[8192] __attribute__((aligned(8)));
	struct exit_stats *s = calloc(1, sizeof(*s));
	struct bus pio = {0}, mmio = {0};
	struct vcpu_exit_ctx ctx = {
		.pio = &pio, .mmio = &mmio, .run_size = sizeof(page), .stop = no_stop, .stats = s};
	struct kvm_run *run;
	char *out;

	for (int i = 0; i < 5; i++)
		vcpu_handle_exit(&ctx, io_exit(page, 0xcf8, KVM_EXIT_IO_OUT));
	for (int i = 0; i < 3; i++)
		vcpu_handle_exit(&ctx, io_exit(page, 0xcfc, KVM_EXIT_IO_IN));
	vcpu_handle_exit(&ctx, io_exit(page, 0xcfc, KVM_EXIT_IO_OUT));
	vcpu_handle_exit(&ctx, io_exit(page, 0x3f8, KVM_EXIT_IO_OUT));
	run = (struct kvm_run *)page;
	memset(page, 0, sizeof(page));
	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = 0xe0000014;
	run->mmio.len = 2;
	run->mmio.is_write = 1;
	vcpu_handle_exit(&ctx, run);
	run->mmio.is_write = 0;
	vcpu_handle_exit(&ctx, run);
	vcpu_handle_exit(&ctx, run);
	run->exit_reason = KVM_EXIT_HLT;
	vcpu_handle_exit(&ctx, run);
	run->exit_reason = 1000; /* unknown: counted as "other", and stops the VM */
	vcpu_handle_exit(&ctx, run);

	cr_assert_eq(s->reasons[KVM_EXIT_IO], 10);
	cr_assert_eq(s->reasons[KVM_EXIT_MMIO], 3);
	cr_assert_eq(s->reasons[KVM_EXIT_HLT], 1);
	cr_assert_eq(s->reasons[EXIT_STATS_REASONS], 1);
	cr_assert_eq(s->port_out[0xcf8], 5);
	cr_assert_eq(s->port_in[0xcfc], 3);
	cr_assert_eq(s->port_out[0xcfc], 1);
	cr_assert_eq(s->nr_mmio, 1);
	cr_assert_eq(s->mmio[0].reads, 2);
	cr_assert_eq(s->mmio[0].writes, 1);

	out = report(s, -1, 2);
	cr_assert(strstr(out, "exit-stats: vcpu 3 userspace-exits 15 "), "%s", out);
	cr_assert(strstr(out, "exit-stats: vcpu 3 reason io 10\n"), "%s", out);
	cr_assert(strstr(out, "exit-stats: vcpu 3 reason hlt 1\n"), "%s", out);
	cr_assert(strstr(out, "exit-stats: vcpu 3 reason other 1\n"), "%s", out);
	/* The two busiest ports only (top 2), busiest first; 0x3f8 (1 access) left out. */
	cr_assert(strstr(out, "port 0xcf8 in 0 out 5\nexit-stats: vcpu 3 port 0xcfc in 3 out 1\n"),
		  "%s", out);
	cr_assert_null(strstr(out, "0x3f8"), "%s", out);
	cr_assert(strstr(out, "exit-stats: vcpu 3 mmio 0xe0000014 read 2 write 1\n"), "%s", out);
	free(out);
	free(s);
}

/* MMIO addresses beyond the table are summed as "other", not dropped or overflowing it. */
Test(exit_stats, mmio_table_overflow_counts_other)
{
	struct exit_stats *s = calloc(1, sizeof(*s));
	struct kvm_run run = {.exit_reason = KVM_EXIT_MMIO};

	for (unsigned int i = 0; i < EXIT_STATS_MMIO + 10; i++) {
		run.mmio.phys_addr = 0x1000 + i * 4;
		exit_stats_count(s, &run);
	}
	cr_assert_eq(s->nr_mmio, EXIT_STATS_MMIO);
	cr_assert_eq(s->mmio_other, 10);
	free(s);
}

/* A stats fd laid out as KVM's (header, descriptors, data): two counters, one instant. */
static int fake_stats_fd(bool truncate)
{
	enum { NAME = 48 };
	struct {
		struct kvm_stats_header h;
		struct {
			struct kvm_stats_desc d;
			char name[NAME];
		} desc[3];
		uint64_t data[3];
	} f = {0};
	static const char *const names[] = {"exits", "pf_taken", "halt_poll_ns"};
	int fd = memfd_create("stats", 0);

	cr_assert_geq(fd, 0);
	f.h.name_size = NAME;
	f.h.num_desc = 3;
	f.h.desc_offset = offsetof(typeof(f), desc);
	f.h.data_offset = offsetof(typeof(f), data);
	for (int i = 0; i < 3; i++) {
		f.desc[i].d.flags = i == 2 ? KVM_STATS_TYPE_INSTANT : KVM_STATS_TYPE_CUMULATIVE;
		f.desc[i].d.size = 1;
		f.desc[i].d.offset = i * 8;
		strcpy(f.desc[i].name, names[i]);
		f.data[i] = 100 + i;
	}
	cr_assert_eq(write(fd, &f, truncate ? offsetof(typeof(f), desc[1]) : sizeof(f)),
		     truncate ? (ssize_t)offsetof(typeof(f), desc[1]) : (ssize_t)sizeof(f));
	return fd;
}

Test(exit_stats, kvm_stats_fd_cumulative_counters_printed)
{
	struct exit_stats *s = calloc(1, sizeof(*s));
	int fd = fake_stats_fd(false);
	char *out = report(s, fd, 4);

	cr_assert(strstr(out, "exit-stats: vcpu 3 kvm exits 100\n"), "%s", out);
	cr_assert(strstr(out, "exit-stats: vcpu 3 kvm pf_taken 101\n"), "%s", out);
	cr_assert_null(strstr(out, "halt_poll_ns"), "an instant value is not a counter: %s", out);
	free(out);
	close(fd);
	free(s);
}

Test(exit_stats, truncated_kvm_stats_fd_refused)
{
	struct exit_stats *s = calloc(1, sizeof(*s));
	int fd = fake_stats_fd(true);
	char *out = report(s, fd, 4);

	cr_assert(strstr(out, "kvm counters unreadable"), "%s", out);
	cr_assert_null(strstr(out, "kvm exits"), "%s", out);
	free(out);
	close(fd);
	free(s);
}

/* MMIO addresses are reported busiest first; ties by address. */
Test(exit_stats, mmio_report_is_ordered)
{
	struct exit_stats *s = calloc(1, sizeof(*s));
	struct kvm_run run = {.exit_reason = KVM_EXIT_MMIO};
	static const uint64_t addrs[] = {0x3000, 0x1000, 0x2000, 0x1000, 0x2000, 0x1000, 0x4000};
	char *out;

	for (unsigned int i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		run.mmio.phys_addr = addrs[i];
		exit_stats_count(s, &run);
	}
	out = report(s, -1, 3);
	cr_assert(strstr(out, "mmio 0x1000 read 3 write 0\nexit-stats: vcpu 3 mmio 0x2000 read 2 "
			      "write 0\nexit-stats: vcpu 3 mmio 0x3000 read 1 write 0\n"),
		  "%s", out);
	cr_assert_null(strstr(out, "0x4000"), "%s", out);
	free(out);
	free(s);
}

/* The report runs on the vCPU thread as it ends, under the vCPU role's seccomp filter. */
struct vcpu_print {
	struct exit_stats *s;
	FILE *f;    /* opened before the filter and unbuffered, as stderr is */
	int kvm_fd; /* opened before the filter, as vcpu_create() opens it */
};

static void *print_on_vcpu(void *arg)
{
	struct vcpu_print *p = arg;

	exit_stats_print(p->s, p->kvm_fd, 0, 16, p->f);
	fflush(p->f);
	return p;
}

Test(exit_stats, report_runs_under_the_vcpu_filter)
{
	struct exit_stats *s = calloc(1, sizeof(*s));
	struct kvm_run run = {.exit_reason = KVM_EXIT_MMIO};
	int st;
	pid_t pid;

	for (unsigned int i = 0; i < EXIT_STATS_MMIO; i++) {
		run.mmio.phys_addr = 0xe0000000 + i * 4;
		exit_stats_count(s, &run);
	}
	for (unsigned int p = 0; p < 65536; p += 7)
		s->port_in[p] = p % 13 + 1;
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct vcpu_print p = {
			.s = s, .f = fopen("/dev/null", "w"), .kvm_fd = fake_stats_fd(false)};
		pthread_t t;
		void *ret = NULL;

		if (!p.f || setvbuf(p.f, NULL, _IONBF, 0) || sandbox_init(SANDBOX_ON) ||
		    vmm_thread_create_role(&t, VMM_THREAD_VCPU, print_on_vcpu, &p))
			_exit(10);
		pthread_join(t, &ret);
		_exit(ret ? 0 : 11);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "the report under the vCPU filter: status 0x%x (159: a forbidden call)", st);
	free(s);
}
