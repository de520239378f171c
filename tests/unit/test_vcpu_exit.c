/*
 * vCPU exit dispatch (vmm/vcpu_exit.h) on synthetic exits, no KVM: a kvm_run in ordinary memory,
 * real port and MMIO buses with a recording device, and fake hooks for stop, registers and
 * address translation. Covers port I/O in/out of 1, 2 and 4 bytes and string I/O, MMIO of every
 * length, malformed exits (refused, never followed), HLT, SHUTDOWN with the IOPL diagnosis,
 * INTERNAL_ERROR, FAIL_ENTRY, SYSTEM_EVENT and an unknown reason.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../devices/bus.h"
#include "../../vmm/mem/guest_mem.h"
#include "../../vmm/util.h"
#include "../../vmm/vcpu_exit.h"

#define RUN_SIZE  (3 * 4096)
#define PIO_OFF	  4096 /* where KVM puts port I/O data (KVM_PIO_PAGE_OFFSET) */
#define DEV_PORT  0x100
#define DEV_MMIO  0xd0000000ULL
#define RAM	  (16 * MiB)
#define MAX_CALLS 16

struct call {
	uint64_t off;
	uint32_t len;
	bool write;
	uint8_t data[8];
};

static struct {
	struct bus pio, mmio;
	struct guest_mem gm;
	struct kvm_run *run;
	struct vcpu_exit_ctx ctx;
	struct call calls[MAX_CALLS];
	unsigned int nr_calls, nr_stops;
	int status;
	char reason[256];
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	bool have_regs;
	int64_t translate_delta; /* gpa = gva + delta */
} t;

/* The recording device: reads return 0xa0 + the byte's offset. */
static void dev_io(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	struct call *c = &t.calls[t.nr_calls % MAX_CALLS];

	(void)opaque;
	t.nr_calls++;
	*c = (struct call){.off = off, .len = len, .write = is_write};
	if (is_write) {
		memcpy(c->data, data, MIN(len, 8u));
		return;
	}
	for (uint32_t i = 0; i < len; i++)
		((uint8_t *)data)[i] = (uint8_t)(0xa0 + off + i);
}

static void fake_stop(void *opaque, int status, const char *reason)
{
	(void)opaque;
	t.nr_stops++;
	t.status = status;
	snprintf(t.reason, sizeof(t.reason), "%s", reason);
}

static int fake_regs(void *opaque, struct kvm_regs *r, struct kvm_sregs *s)
{
	(void)opaque;
	if (!t.have_regs)
		return -EIO;
	*r = t.regs;
	*s = t.sregs;
	return 0;
}

static int fake_translate(void *opaque, uint64_t gva, uint64_t *gpa)
{
	(void)opaque;
	*gpa = gva + t.translate_delta;
	return 0;
}

static void setup(void)
{
	memset(&t, 0, sizeof(t));
	bus_init(&t.pio, "pio");
	bus_init(&t.mmio, "mmio");
	cr_assert_eq(bus_register(&t.pio, DEV_PORT, 8, dev_io, NULL, "dev"), 0);
	cr_assert_eq(bus_register(&t.mmio, DEV_MMIO, 0x1000, dev_io, NULL, "dev"), 0);
	cr_assert_eq(gm_init(&t.gm, RAM, 0), 0);
	t.run = calloc(1, RUN_SIZE);
	cr_assert_not_null(t.run);
	t.ctx = (struct vcpu_exit_ctx){.pio = &t.pio,
				       .mmio = &t.mmio,
				       .gm = &t.gm,
				       .run_size = RUN_SIZE,
				       .stop = fake_stop,
				       .get_regs = fake_regs,
				       .translate = fake_translate};
}

static void teardown(void)
{
	free(t.run);
	gm_destroy(&t.gm);
}

TestSuite(vcpu_exit, .init = setup, .fini = teardown);

static uint8_t *pio_data(void)
{
	return (uint8_t *)t.run + PIO_OFF;
}

static enum vcpu_action io(uint8_t dir, uint16_t port, uint8_t size, uint32_t count)
{
	t.run->exit_reason = KVM_EXIT_IO;
	t.run->io.direction = dir;
	t.run->io.port = port;
	t.run->io.size = size;
	t.run->io.count = count;
	t.run->io.data_offset = PIO_OFF;
	return vcpu_handle_exit(&t.ctx, t.run);
}

static enum vcpu_action mmio(uint64_t addr, uint32_t len, bool write)
{
	t.run->exit_reason = KVM_EXIT_MMIO;
	t.run->mmio.phys_addr = addr;
	t.run->mmio.len = len;
	t.run->mmio.is_write = write;
	return vcpu_handle_exit(&t.ctx, t.run);
}

/* Run @fn with stderr captured into @buf. */
static void capture_stderr(void (*fn)(void), char *buf, size_t cap)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	size_t n;

	cr_assert(tmp && saved >= 0);
	fflush(stderr);
	dup2(fileno(tmp), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, cap - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
}

Test(vcpu_exit, port_out_of_1_2_4_bytes)
{
	static const uint8_t v[4] = {0x11, 0x22, 0x33, 0x44};

	for (uint8_t size = 1; size <= 4; size *= 2) {
		memcpy(pio_data(), v, sizeof(v));
		cr_assert_eq(io(KVM_EXIT_IO_OUT, DEV_PORT + 2, size, 1), VCPU_CONTINUE);
		cr_assert_eq(t.calls[t.nr_calls - 1].off, 2);
		cr_assert_eq(t.calls[t.nr_calls - 1].len, size);
		cr_assert(t.calls[t.nr_calls - 1].write);
		cr_assert_eq(memcmp(t.calls[t.nr_calls - 1].data, v, size), 0);
	}
	cr_assert_eq(t.nr_calls, 3);
	cr_assert_eq(t.nr_stops, 0);
}

Test(vcpu_exit, port_in_of_1_2_4_bytes)
{
	for (uint8_t size = 1; size <= 4; size *= 2) {
		memset(pio_data(), 0, 8);
		cr_assert_eq(io(KVM_EXIT_IO_IN, DEV_PORT + 4, size, 1), VCPU_CONTINUE);
		for (uint8_t i = 0; i < size; i++)
			cr_assert_eq(pio_data()[i], 0xa4 + i);
		cr_assert_eq(pio_data()[size], 0, "nothing written past the access");
	}
	cr_assert_eq(t.nr_stops, 0);
}

Test(vcpu_exit, string_out_and_in)
{
	for (unsigned int i = 0; i < 8; i++)
		pio_data()[i] = (uint8_t)(i + 1);
	/* rep outsw, count 4: four 2-byte writes of consecutive data. */
	cr_assert_eq(io(KVM_EXIT_IO_OUT, DEV_PORT, 2, 4), VCPU_CONTINUE);
	cr_assert_eq(t.nr_calls, 4);
	for (unsigned int i = 0; i < 4; i++) {
		cr_assert_eq(t.calls[i].len, 2);
		cr_assert_eq(t.calls[i].data[0], 2 * i + 1);
		cr_assert_eq(t.calls[i].data[1], 2 * i + 2);
	}
	/* rep insd, count 3: three reads land one after another. */
	memset(pio_data(), 0, 16);
	cr_assert_eq(io(KVM_EXIT_IO_IN, DEV_PORT, 4, 3), VCPU_CONTINUE);
	for (unsigned int i = 0; i < 12; i++)
		cr_assert_eq(pio_data()[i], 0xa0 + i % 4);
	cr_assert_eq(pio_data()[12], 0);
	/* The largest string KVM makes: the whole data page. */
	cr_assert_eq(io(KVM_EXIT_IO_OUT, DEV_PORT, 4, 1024), VCPU_CONTINUE);
	cr_assert_eq(t.nr_stops, 0);
}

Test(vcpu_exit, unhandled_ports_read_all_ones)
{
	memset(pio_data(), 0, 16);
	cr_assert_eq(io(KVM_EXIT_IO_IN, 0x3000, 2, 3), VCPU_CONTINUE);
	for (unsigned int i = 0; i < 6; i++)
		cr_assert_eq(pio_data()[i], 0xff);
	cr_assert_eq(pio_data()[6], 0);
	cr_assert_eq(io(KVM_EXIT_IO_OUT, 0x3000, 1, 1), VCPU_CONTINUE);
	cr_assert_eq(t.nr_calls, 0);
	cr_assert_eq(t.nr_stops, 0);
}

static void expect_refused(const char *what)
{
	cr_assert_eq(t.nr_calls, 0, "%s: no device saw it", what);
	cr_assert_eq(t.nr_stops, 1, "%s: the VM stopped", what);
	cr_assert_eq(t.status, 1, "%s", what);
	cr_assert(strstr(t.reason, "malformed"), "%s: %s", what, t.reason);
	t.nr_stops = 0;
}

Test(vcpu_exit, malformed_port_exits_are_refused)
{
	cr_assert_eq(io(KVM_EXIT_IO_OUT, DEV_PORT, 3, 1), VCPU_STOP);
	expect_refused("size 3");
	cr_assert_eq(io(KVM_EXIT_IO_OUT, DEV_PORT, 8, 1), VCPU_STOP);
	expect_refused("size 8");
	cr_assert_eq(io(KVM_EXIT_IO_IN, DEV_PORT, 1, 0), VCPU_STOP);
	expect_refused("count 0");
	cr_assert_eq(io(2, DEV_PORT, 1, 1), VCPU_STOP);
	expect_refused("direction 2");
	cr_assert_eq(io(KVM_EXIT_IO_IN, DEV_PORT, 4, 2049), VCPU_STOP);
	expect_refused("string past the mapping");
	cr_assert_eq(io(KVM_EXIT_IO_IN, DEV_PORT, 4, UINT32_MAX), VCPU_STOP);
	expect_refused("huge count");

	t.run->io.data_offset = RUN_SIZE; /* starts at the end */
	t.run->io.size = 1;
	t.run->io.count = 1;
	t.run->io.direction = KVM_EXIT_IO_IN;
	cr_assert_eq(vcpu_handle_exit(&t.ctx, t.run), VCPU_STOP);
	expect_refused("data at the end of the mapping");
	t.run->io.data_offset = UINT64_MAX - 1; /* offset + bytes wraps */
	cr_assert_eq(vcpu_handle_exit(&t.ctx, t.run), VCPU_STOP);
	expect_refused("wrapping offset");
	t.run->io.data_offset = 8; /* inside struct kvm_run itself */
	cr_assert_eq(vcpu_handle_exit(&t.ctx, t.run), VCPU_STOP);
	expect_refused("data over the kvm_run header");
	t.run->io.data_offset = RUN_SIZE - 1; /* the last byte: fine */
	cr_assert_eq(vcpu_handle_exit(&t.ctx, t.run), VCPU_CONTINUE);
}

Test(vcpu_exit, mmio_of_every_length)
{
	for (uint32_t len = 1; len <= 8; len++) {
		memset(t.run->mmio.data, 0x5c, 8);
		cr_assert_eq(mmio(DEV_MMIO + 0x10, len, true), VCPU_CONTINUE);
		cr_assert_eq(t.calls[t.nr_calls - 1].len, len);
		cr_assert_eq(t.calls[t.nr_calls - 1].off, 0x10);
		cr_assert_eq(t.calls[t.nr_calls - 1].data[len - 1], 0x5c);
		memset(t.run->mmio.data, 0, 8);
		cr_assert_eq(mmio(DEV_MMIO + 0x20, len, false), VCPU_CONTINUE);
		cr_assert_eq(t.run->mmio.data[len - 1], (uint8_t)(0xa0 + 0x20 + len - 1));
		if (len < 8)
			cr_assert_eq(t.run->mmio.data[len], 0);
	}
	cr_assert_eq(t.nr_calls, 16);
	memset(t.run->mmio.data, 0, 8);
	cr_assert_eq(mmio(0x1000, 4, false), VCPU_CONTINUE, "unhandled");
	cr_assert_eq(memcmp(t.run->mmio.data, "\xff\xff\xff\xff\0", 5), 0);
	cr_assert_eq(t.nr_stops, 0);
}

Test(vcpu_exit, malformed_mmio_lengths_are_refused)
{
	cr_assert_eq(mmio(DEV_MMIO, 9, false), VCPU_STOP);
	expect_refused("len 9");
	cr_assert_eq(mmio(DEV_MMIO, UINT32_MAX, true), VCPU_STOP);
	expect_refused("len 4 GiB");
	cr_assert_eq(mmio(DEV_MMIO, 0, false), VCPU_STOP);
	expect_refused("len 0");
}

Test(vcpu_exit, hlt_and_intr_continue)
{
	t.run->exit_reason = KVM_EXIT_HLT;
	cr_assert_eq(vcpu_handle_exit(&t.ctx, t.run), VCPU_CONTINUE);
	t.run->exit_reason = KVM_EXIT_INTR;
	cr_assert_eq(vcpu_handle_exit(&t.ctx, t.run), VCPU_CONTINUE);
	cr_assert_eq(t.nr_stops, 0);
}

static char out[4096];

static void run_exit(void)
{
	cr_assert_eq(vcpu_handle_exit(&t.ctx, t.run), VCPU_STOP);
}

/* Firmware state at the fault: CPL3, IOPL 0, rip at @code placed at GPA @gpa. */
static void cpl3_fault_at(uint64_t gpa, const uint8_t *code, size_t len, uint64_t rflags)
{
	cr_assert_eq(gm_write(&t.gm, gpa, code, len), 0);
	t.have_regs = true;
	t.sregs.cs.dpl = 3;
	t.regs.rflags = rflags;
	t.regs.rip = gpa - t.translate_delta;
	t.run->exit_reason = KVM_EXIT_SHUTDOWN;
}

Test(vcpu_exit, shutdown_is_a_triple_fault)
{
	t.run->exit_reason = KVM_EXIT_SHUTDOWN;
	capture_stderr(run_exit, out, sizeof(out));
	cr_assert_eq(t.status, 1);
	cr_assert_str_eq(t.reason, "triple fault");
	cr_assert(strstr(out, "guest triple fault (KVM_EXIT_SHUTDOWN)"), "%s", out);
	cr_assert_null(strstr(out, "IOPL"), "no registers, no diagnosis: %s", out);
	cr_assert_eq(vcpu_diagnose_shutdown(&t.ctx), VCPU_DIAG_NONE);
}

Test(vcpu_exit, shutdown_on_a_port_insn_at_cpl3_names_pvm_ignoring_iopl)
{
	static const uint8_t out_dx_al[] = {0xee};

	t.ctx.host_is_pvm = true;
	t.translate_delta = 0x1000; /* the instruction is read at the translated address */
	cpl3_fault_at(0x201027, out_dx_al, sizeof(out_dx_al), 0x10046);
	capture_stderr(run_exit, out, sizeof(out));
	cr_assert_str_eq(t.reason, "triple fault");
	cr_assert(strstr(out, "this /dev/kvm (PVM) ignores IOPL"), "%s", out);
	cr_assert(strstr(out, "rip=0000000000200027"), "registers dumped: %s", out);
	t.ctx.host_is_pvm = false;
	capture_stderr(run_exit, out, sizeof(out));
	cr_assert(strstr(out, "does not honour IOPL for CPL3 code"), "%s", out);
	cr_assert_eq(vcpu_diagnose_shutdown(&t.ctx), VCPU_DIAG_IOPL);
}

Test(vcpu_exit, shutdown_diagnosis_needs_cpl3_iopl0_and_a_port_insn)
{
	static const uint8_t rep_outsb[] = {0xf3, 0x6e}, mov[] = {0x48, 0x89, 0xc7};

	cpl3_fault_at(0x300000, rep_outsb, sizeof(rep_outsb), 0x3002); /* IOPL 3 */
	cr_assert_eq(vcpu_diagnose_shutdown(&t.ctx), VCPU_DIAG_NONE);
	cpl3_fault_at(0x300000, rep_outsb, sizeof(rep_outsb), 0x2);
	cr_assert_eq(vcpu_diagnose_shutdown(&t.ctx), VCPU_DIAG_IOPL);
	t.sregs.cs.dpl = 0; /* a kernel's fault */
	cr_assert_eq(vcpu_diagnose_shutdown(&t.ctx), VCPU_DIAG_NONE);
	cpl3_fault_at(0x300000, mov, sizeof(mov), 0x2);
	cr_assert_eq(vcpu_diagnose_shutdown(&t.ctx), VCPU_DIAG_NONE);
	/* An instruction in the last byte of RAM is read as far as RAM goes. */
	cpl3_fault_at(RAM - 1, (const uint8_t *)"\xec", 1, 0x2);
	cr_assert_eq(vcpu_diagnose_shutdown(&t.ctx), VCPU_DIAG_IOPL);
	t.regs.rip = 1ULL << 40; /* outside RAM: nothing to read */
	cr_assert_eq(vcpu_diagnose_shutdown(&t.ctx), VCPU_DIAG_NONE);
	t.ctx.gm = NULL;
	cr_assert_eq(vcpu_diagnose_shutdown(&t.ctx), VCPU_DIAG_NONE);
}

Test(vcpu_exit, internal_error_names_pvm_emulation)
{
	t.run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	t.run->internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
	t.ctx.host_is_pvm = true;
	capture_stderr(run_exit, out, sizeof(out));
	cr_assert_eq(t.status, 1);
	cr_assert_str_eq(t.reason, "KVM internal error, suberror 1 (instruction emulation failed)");
	cr_assert(strstr(out, "this host's /dev/kvm is PVM"), "%s", out);
	t.ctx.host_is_pvm = false;
	t.run->internal.suberror = 3;
	capture_stderr(run_exit, out, sizeof(out));
	cr_assert_str_eq(t.reason, "KVM internal error, suberror 3");
	cr_assert_null(strstr(out, "PVM"), "%s", out);
}

Test(vcpu_exit, fail_entry_system_event_and_unknown_reasons_stop)
{
	t.run->exit_reason = KVM_EXIT_FAIL_ENTRY;
	t.run->fail_entry.hardware_entry_failure_reason = 0x80000021;
	capture_stderr(run_exit, out, sizeof(out));
	cr_assert_eq(t.status, 1);
	cr_assert_str_eq(t.reason, "KVM_EXIT_FAIL_ENTRY, hardware reason 0x80000021");

	t.run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
	run_exit();
	cr_assert_eq(t.status, 0);
	cr_assert_str_eq(t.reason, "guest system event (reset/shutdown)");

	t.run->exit_reason = 999;
	capture_stderr(run_exit, out, sizeof(out));
	cr_assert_eq(t.status, 1);
	cr_assert_str_eq(t.reason, "unexpected KVM exit reason 999");
	cr_assert(strstr(out, "unexpected KVM exit reason 999"), "%s", out);
	cr_assert_eq(t.nr_stops, 3);
}
