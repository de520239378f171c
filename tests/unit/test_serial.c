/*
 * The 16550A console (devices/serial.c) without KVM: a real port bus, a real event loop and real
 * pipes. Output must never block a vCPU or the loop, whoever reads (or does not read) the other
 * end: it goes through a bounded buffer (issue 12, item 5).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <linux/serial_reg.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "../../devices/bus.h"
#include "../../devices/outbuf.h"
#include "../../devices/serial.h"
#include "../../vmm/loop.h"
#include "../../vmm/util.h"

#define COM1 SERIAL_COM1_PORT

static struct {
	struct bus pio;
	struct loop *loop;
	struct serial *s;
	int pipe[2];
	int irq, stops;
} t;

static void set_irq(void *opaque, int level)
{
	(void)opaque;
	t.irq = level;
}

static void setup(void)
{
	memset(&t, 0, sizeof(t));
	bus_init(&t.pio, "pio");
	t.loop = loop_create();
	cr_assert_not_null(t.loop);
	cr_assert_eq(pipe2(t.pipe, O_CLOEXEC), 0);
	signal(SIGPIPE, SIG_IGN); /* as the VMM, which blocks it: EPIPE instead */
}

static void teardown(void)
{
	serial_destroy(t.s);
	if (t.pipe[0] >= 0)
		close(t.pipe[0]);
	if (t.pipe[1] >= 0)
		close(t.pipe[1]);
	loop_destroy(t.loop);
}

TestSuite(serial, .init = setup, .fini = teardown);

static void create(int out_fd)
{
	const struct serial_ops ops = {.set_irq = set_irq};

	t.s = serial_create(&t.pio, t.loop, &ops,
			    &(struct serial_config){.out_fd = out_fd, .in_fd = -1});
	cr_assert_not_null(t.s);
}

static void outb(unsigned int reg, uint8_t v)
{
	cr_assert_eq(bus_access(&t.pio, COM1 + reg, &v, 1, true), 0);
}

static uint8_t inb(unsigned int reg)
{
	uint8_t v = 0;

	cr_assert_eq(bus_access(&t.pio, COM1 + reg, &v, 1, false), 0);
	return v;
}

#define FLOOD (1024 * 1024)

static uint8_t flood_byte(unsigned int i)
{
	return (uint8_t)('a' + i % 26);
}

/* The guest writes @n bytes to THR without looking at LSR (the worst a guest can do). */
static void flood(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		outb(UART_TX, flood_byte(i));
}

static struct outbuf_stats stats(void)
{
	struct outbuf_stats st;

	serial_get_stats(t.s, &st);
	return st;
}

static void *run_loop(void *arg)
{
	loop_run(arg);
	return NULL;
}

static void stop_loop(void *opaque)
{
	loop_stop(opaque);
}

/* A guest writing 1 MiB to a console pipe nobody reads: every THR write returns (a blocking
 * write under the device lock used to hang this vCPU, and vm.pause with it). The timeout only
 * turns such a hang into a failure. */
Test(serial, output_to_a_pipe_nobody_reads_never_blocks, .timeout = 60)
{
	struct outbuf_stats st;

	create(t.pipe[1]);
	flood(FLOOD);
	st = stats();
	cr_assert_eq(st.buffered, SERIAL_OUT_BUF, "the buffer is bounded");
	cr_assert_geq(st.written, 4096, "the pipe took what it holds");
	cr_assert_leq(st.written, 1024 * 1024);
	cr_assert_eq(st.written + st.buffered + st.dropped, FLOOD, "every byte accounted for");
	cr_assert_eq(inb(UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT), 0,
		     "THR not empty while the buffer is full: a driver that checks waits");
	cr_assert_eq(fcntl(t.pipe[1], F_GETFL) & O_NONBLOCK, 0,
		     "the caller's descriptor untouched");
}

/* Meanwhile the loop thread runs on: a timer still fires while the console is stuck. */
Test(serial, the_loop_runs_while_the_console_is_stuck, .timeout = 60)
{
	pthread_t loop_thread;

	create(t.pipe[1]);
	cr_assert_eq(pthread_create(&loop_thread, NULL, run_loop, t.loop), 0);
	flood(FLOOD);
	cr_assert_geq(loop_add_timer(t.loop, 10, false, stop_loop, t.loop), 0);
	cr_assert_eq(pthread_join(loop_thread, NULL), 0);
	cr_assert_eq(stats().buffered, SERIAL_OUT_BUF);
}

/* Once the reader catches up, the loop writes the rest in order and THR-empty comes back. */
Test(serial, a_slow_reader_gets_every_accepted_byte_in_order, .timeout = 60)
{
	struct outbuf_stats st;
	pthread_t loop_thread;
	uint8_t *got = malloc(FLOOD);
	size_t n = 0, want;

	cr_assert_not_null(got);
	create(t.pipe[1]);
	outb(UART_IER, UART_IER_THRI);
	flood(FLOOD);
	st = stats();
	want = st.written + st.buffered;
	cr_assert_eq(t.irq, 0, "no THR-empty interrupt while the buffer is full");
	cr_assert_eq(pthread_create(&loop_thread, NULL, run_loop, t.loop), 0);
	while (n < want) {
		ssize_t r = read(t.pipe[0], got + n, want - n);

		cr_assert_gt(r, 0);
		n += (size_t)r;
	}
	/* Bytes arrive in the order written; the dropped ones are a gap at the end. */
	for (size_t i = 0; i < want; i++)
		cr_assert_eq(got[i], flood_byte((unsigned int)i), "byte %zu", i);
	cr_assert_eq(stats().buffered, 0);
	cr_assert_eq(stats().written, want);
	cr_assert(inb(UART_LSR) & UART_LSR_THRE, "THR empty again");
	cr_assert_eq(t.irq, 1, "the THR-empty interrupt the driver waits for");
	cr_assert_geq(loop_add_timer(t.loop, 1, false, stop_loop, t.loop), 0);
	cr_assert_eq(pthread_join(loop_thread, NULL), 0);
	free(got);
}

static void *drain(void *arg)
{
	static uint8_t buf[256 * 1024];
	size_t *n = arg;
	ssize_t r;

	while ((r = read(t.pipe[0], buf, sizeof(buf))) > 0)
		*n += (size_t)r;
	return NULL;
}

/* At exit the buffer is written out: a reader that starts late still gets the tail. */
Test(serial, destroy_flushes_the_tail, .timeout = 60)
{
	struct outbuf_stats st;
	pthread_t reader;
	size_t n = 0;

	create(t.pipe[1]);
	flood(200 * 1024);
	st = stats();
	cr_assert_eq(st.buffered, SERIAL_OUT_BUF);
	cr_assert_eq(pthread_create(&reader, NULL, drain, &n), 0);
	serial_destroy(t.s);
	t.s = NULL;
	close(t.pipe[1]);
	t.pipe[1] = -1;
	cr_assert_eq(pthread_join(reader, NULL), 0);
	cr_assert_eq(n, st.written + st.buffered, "the pipe got everything accepted");
}

/* Nobody ever reads: destroy gives up after SERIAL_FLUSH_MS instead of hanging the exit. */
Test(serial, destroy_does_not_wait_for_a_reader_that_never_comes, .timeout = 60)
{
	create(t.pipe[1]);
	flood(200 * 1024);
	serial_destroy(t.s);
	t.s = NULL;
}

/* The reader went away: output is discarded, the guest runs on, THR stays empty. */
Test(serial, a_closed_reader_ends_output, .timeout = 60)
{
	create(t.pipe[1]);
	close(t.pipe[0]);
	t.pipe[0] = -1;
	flood(FLOOD);
	cr_assert(inb(UART_LSR) & UART_LSR_THRE);
	cr_assert_eq(stats().buffered, 0);
}

/* A regular file takes every byte at once; THRE never drops. */
Test(serial, a_regular_file_gets_everything)
{
	FILE *f = tmpfile();
	char buf[64];

	cr_assert_not_null(f);
	create(fileno(f));
	for (unsigned int i = 0; i < 1000; i++) {
		outb(UART_TX, flood_byte(i));
		cr_assert(inb(UART_LSR) & UART_LSR_THRE);
	}
	cr_assert_eq(stats().written, 1000);
	cr_assert_eq(pread(fileno(f), buf, 26, 26), 26);
	cr_assert_eq(memcmp(buf, "abcdefghijklmnopqrstuvwxyz", 26), 0);
	serial_destroy(t.s);
	t.s = NULL;
	fclose(f);
}

/* A stream socket nobody reads (stdout handed over by a supervisor): never blocks either. */
Test(serial, a_socket_nobody_reads_never_blocks, .timeout = 60)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	create(sv[0]);
	flood(4 * FLOOD);
	cr_assert_eq(stats().buffered, SERIAL_OUT_BUF);
	cr_assert_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
	serial_destroy(t.s);
	t.s = NULL;
	close(sv[0]);
	close(sv[1]);
}
