#include "serial.h"

#include <errno.h>
#include <linux/serial_reg.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../vmm/loop.h"
#include "../vmm/state.h"
#include "../vmm/util.h"
#include "bus.h"
#include "outbuf.h"

#define RX_FIFO_SIZE 4096
#define CTRL_A	     0x01
#define CTRL_D	     0x04
#define PANIC_MARK   "Kernel panic - not syncing"
#define TX_FIFO	     16 /* bytes the 16550A's driver writes per THR-empty (its FIFO) */

struct serial {
	struct bus *pio;
	struct loop *loop;
	struct serial_ops ops;
	pthread_mutex_t lock;
	struct outbuf *out; /* host side of the transmitter (bounded, never blocks) */
	bool tx_full;	    /* THRE was withheld: raise the THR-empty interrupt once it drains */
	bool warned_full;
	int in_fd;
	bool in_watched, in_eof, in_is_file, escape, saw_ctrl_a;
	bool listening, settle_armed; /* RDI has been on for settle_ms; its timer is armed */
	unsigned int settle_ms;
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thr_ipending;
	int irq_level;
	uint8_t rx[RX_FIFO_SIZE];
	unsigned int rx_head, rx_count;
	char line[160]; /* the current output line, to notice a kernel panic */
	unsigned int line_len;
};

static uint8_t pending_iir(struct serial *s)
{
	if ((s->ier & UART_IER_RLSI) && (s->lsr & UART_LSR_BRK_ERROR_BITS))
		return UART_IIR_RLSI;
	if ((s->ier & UART_IER_RDI) && (s->lsr & UART_LSR_DR))
		return UART_IIR_RDI;
	if ((s->ier & UART_IER_THRI) && s->thr_ipending)
		return UART_IIR_THRI;
	if ((s->ier & UART_IER_MSI) && (s->msr & UART_MSR_ANY_DELTA))
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

/* The line follows "an interrupt is pending", so every new cause after a clear is an edge. */
static void update_irq(struct serial *s)
{
	int level = pending_iir(s) != UART_IIR_NO_INT;

	if (level != s->irq_level) {
		s->irq_level = level;
		s->ops.set_irq(s->ops.opaque, level);
	}
}

static void input_ready(void *opaque, int fd, uint32_t events);

/* Removed rather than masked while off: epoll reports EPOLLHUP of a closed pipe even with no
 * events asked for. */
static void watch_input(struct serial *s, bool on)
{
	on = on && s->listening;
	if (s->in_fd < 0 || s->in_eof || s->in_is_file || s->in_watched == on)
		return;
	s->in_watched = on;
	if (on)
		loop_add_fd(s->loop, s->in_fd, EPOLLIN, input_ready, s);
	else
		loop_del_fd(s->loop, s->in_fd);
}

static void rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_count == RX_FIFO_SIZE)
		return;
	s->rx[(s->rx_head + s->rx_count++) % RX_FIFO_SIZE] = c;
	s->lsr |= UART_LSR_DR;
}

static uint8_t rx_pop(struct serial *s)
{
	uint8_t c;

	if (!s->rx_count)
		return 0;
	c = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % RX_FIFO_SIZE;
	if (!--s->rx_count)
		s->lsr &= ~UART_LSR_DR;
	return c;
}

static void note_output(struct serial *s, uint8_t c)
{
	if (c == '\n' || s->line_len == sizeof(s->line) - 1) {
		s->line[s->line_len] = '\0';
		if (strstr(s->line, PANIC_MARK) && s->ops.panic_seen)
			s->ops.panic_seen(s->ops.opaque);
		s->line_len = 0;
	} else {
		s->line[s->line_len++] = (char)c;
	}
}

/* The transmitter is empty (THRE) while the output buffer has room for a FIFO load. */
static bool tx_ready(const struct serial *s)
{
	return outbuf_room(s->out) >= TX_FIFO;
}

static void transmit(struct serial *s, uint8_t c)
{
	if (s->mcr & UART_MCR_LOOP) {
		rx_push(s, c);
		return;
	}
	note_output(s, c);
	if (outbuf_put(s->out, &c, 1) == 0 && !s->warned_full) {
		s->warned_full = true;
		pr_warn("console: nobody reads the console output fast enough: its %u KiB buffer "
			"is "
			"full, guest output is dropped",
			SERIAL_OUT_BUF / 1024);
	}
}

/* The loop thread: the console's descriptor takes bytes again. */
static void output_ready(void *opaque)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	outbuf_flush(s->out);
	if (s->tx_full && tx_ready(s)) {
		s->tx_full = false;
		s->thr_ipending = true;
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

/* Regular files and /dev/null cannot be polled: read them as the guest drains the FIFO. */
static void refill_from_file(struct serial *s)
{
	uint8_t buf[256];
	ssize_t n;

	if (!s->in_is_file || s->in_eof || !s->listening ||
	    s->rx_count > RX_FIFO_SIZE - sizeof(buf))
		return;
	n = read(s->in_fd, buf, sizeof(buf));
	if (n <= 0) {
		rx_push(s, CTRL_D);
		s->in_eof = true;
		return;
	}
	for (ssize_t i = 0; i < n; i++)
		rx_push(s, buf[i]);
}

static uint8_t reg_read(struct serial *s, unsigned int off)
{
	uint8_t v;

	switch (off) {
	case UART_RX:
		if (s->lcr & UART_LCR_DLAB)
			return s->dll;
		v = rx_pop(s);
		if (s->rx_count < RX_FIFO_SIZE / 2)
			watch_input(s, true);
		refill_from_file(s);
		return v;
	case UART_IER:
		return (s->lcr & UART_LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR:
		v = pending_iir(s);
		if (v == UART_IIR_THRI)
			s->thr_ipending = false; /* reading IIR clears a THRE interrupt */
		return v | ((s->fcr & UART_FCR_ENABLE_FIFO) ? 0xc0 : 0);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		v = s->lsr;
		if (!tx_ready(s))
			v &= ~(UART_LSR_THRE | UART_LSR_TEMT); /* the guest's driver waits */
		s->lsr &= ~UART_LSR_BRK_ERROR_BITS;
		return v;
	case UART_MSR:
		if (s->mcr & UART_MCR_LOOP) {
			/* Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (8250 probe). */
			return ((s->mcr & UART_MCR_DTR) ? UART_MSR_DSR : 0) |
			       ((s->mcr & UART_MCR_RTS) ? UART_MSR_CTS : 0) |
			       ((s->mcr & UART_MCR_OUT1) ? UART_MSR_RI : 0) |
			       ((s->mcr & UART_MCR_OUT2) ? UART_MSR_DCD : 0);
		}
		v = s->msr;
		s->msr &= ~UART_MSR_ANY_DELTA;
		return v;
	default:
		return s->scr;
	}
}

static void settle_done(void *opaque)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	s->settle_armed = false;
	if (s->ier & UART_IER_RDI) {
		s->listening = true;
		watch_input(s, s->rx_count < RX_FIFO_SIZE / 2);
		refill_from_file(s);
		update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
}

/* The guest turned receive interrupts on or off: take host input only while they are on. */
static void rx_enable(struct serial *s, bool on)
{
	if (!on) {
		watch_input(s, false);
		s->listening = false;
	} else if (!s->listening && !s->settle_armed && s->in_fd >= 0) {
		s->settle_armed = loop_add_timer(s->loop, s->settle_ms, false, settle_done, s) >= 0;
	}
}

static void reg_write(struct serial *s, unsigned int off, uint8_t v)
{
	switch (off) {
	case UART_TX:
		if (s->lcr & UART_LCR_DLAB) {
			s->dll = v;
			break;
		}
		transmit(s, v);
		/* Passed to the output buffer: the holding register is empty again, unless the
		 * buffer is full (then once it drains). */
		s->thr_ipending = tx_ready(s);
		s->tx_full = !s->thr_ipending;
		break;
	case UART_IER:
		if (s->lcr & UART_LCR_DLAB) {
			s->dlm = v;
			break;
		}
		if (!(s->ier & UART_IER_THRI) && (v & UART_IER_THRI)) {
			s->thr_ipending = tx_ready(s);
			s->tx_full = !s->thr_ipending;
		}
		s->ier = v & 0x0f;
		rx_enable(s, s->ier & UART_IER_RDI);
		break;
	case UART_FCR:
		s->fcr = v;
		if (v & UART_FCR_CLEAR_RCVR) {
			s->rx_count = 0;
			s->lsr &= ~UART_LSR_DR;
		}
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default:
		break; /* LSR/MSR are read-only */
	}
}

static void serial_io(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	struct serial *s = opaque;
	uint8_t *b = data;

	pthread_mutex_lock(&s->lock);
	if (is_write)
		reg_write(s, (unsigned int)off, b[0]);
	else
		b[0] = reg_read(s, (unsigned int)off);
	if (len > 1)
		memset(b + 1, is_write ? 0 : 0xff, len - 1);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void input_ready(void *opaque, int fd, uint32_t events)
{
	struct serial *s = opaque;
	uint8_t buf[256];
	ssize_t n;

	(void)events;
	pthread_mutex_lock(&s->lock);
	if (!s->in_watched || s->rx_count == RX_FIFO_SIZE) {
		/* Unwatched since this event was fetched; a read of 0 bytes would look like EOF. */
		pthread_mutex_unlock(&s->lock);
		return;
	}
	n = read(fd, buf, MIN(sizeof(buf), (size_t)(RX_FIFO_SIZE - s->rx_count)));
	if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
		/* End of host input: tell a canonical-mode reader with one ^D, then stop. */
		rx_push(s, CTRL_D);
		watch_input(s, false);
		s->in_eof = true;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (s->escape && s->saw_ctrl_a && (buf[i] == 'x' || buf[i] == 'X')) {
			pthread_mutex_unlock(&s->lock);
			if (s->ops.stop)
				s->ops.stop(s->ops.opaque, 130, "console escape Ctrl-A x");
			return;
		}
		s->saw_ctrl_a = s->escape && buf[i] == CTRL_A && !s->saw_ctrl_a;
		if (!s->saw_ctrl_a)
			rx_push(s, buf[i]);
	}
	if (s->rx_count == RX_FIFO_SIZE)
		watch_input(s, false); /* back-pressure: resume when the guest drains the FIFO */
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

int serial_send_sysrq(struct serial *s, char key)
{
	pthread_mutex_lock(&s->lock);
	/* A break arrives as a NUL character with LSR.BI set; the next character is the key. */
	s->rx_count = 0;
	rx_push(s, 0);
	rx_push(s, (uint8_t)key);
	s->lsr |= UART_LSR_BI;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

struct serial *serial_create(struct bus *pio, struct loop *loop, const struct serial_ops *ops,
			     const struct serial_config *cfg)
{
	struct serial *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->pio = pio;
	s->loop = loop;
	s->ops = *ops;
	pthread_mutex_init(&s->lock, NULL);
	s->out = outbuf_create(cfg->out_fd, SERIAL_OUT_BUF, loop, output_ready, s);
	if (!s->out) {
		free(s);
		return NULL;
	}
	s->in_fd = -1;
	s->escape = cfg->escape;
	s->settle_ms = cfg->rx_settle_ms ? cfg->rx_settle_ms : SERIAL_RX_SETTLE_MS;
	s->lsr = UART_LSR_TEMT | UART_LSR_THRE;
	s->msr = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	s->mcr = UART_MCR_OUT2;
	if (bus_register(pio, SERIAL_COM1_PORT, 8, serial_io, s, "serial") < 0) {
		outbuf_destroy(s->out, 0);
		free(s);
		return NULL;
	}
	if (cfg->in_fd >= 0) {
		/* Only probe whether epoll takes it: input is watched once the guest listens. */
		int ret = loop_add_fd(loop, cfg->in_fd, EPOLLIN, input_ready, s);

		if (ret == 0) {
			loop_del_fd(loop, cfg->in_fd);
			s->in_fd = cfg->in_fd;
		} else if (ret == -EPERM) {
			s->in_fd = cfg->in_fd;
			s->in_is_file = true;
		}
	}
	return s;
}

int serial_save(struct serial *s, struct state_out *o)
{
	pthread_mutex_lock(&s->lock);
	state_put_u8(o, s->ier);
	state_put_u8(o, s->lcr);
	state_put_u8(o, s->mcr);
	state_put_u8(o, s->lsr);
	state_put_u8(o, s->msr);
	state_put_u8(o, s->scr);
	state_put_u8(o, s->dll);
	state_put_u8(o, s->dlm);
	state_put_u8(o, s->fcr);
	state_put_bool(o, s->thr_ipending);
	state_put_bool(o, s->tx_full);
	state_put_u16(o, (uint16_t)s->rx_count);
	for (unsigned int i = 0; i < s->rx_count; i++)
		state_put_u8(o, s->rx[(s->rx_head + i) % RX_FIFO_SIZE]);
	state_put_u8(o, (uint8_t)s->line_len);
	state_put(o, s->line, s->line_len);
	pthread_mutex_unlock(&s->lock);
	return state_out_error(o);
}

int serial_load(struct serial *s, struct state_in *in)
{
	uint8_t r[9], rx[RX_FIFO_SIZE], line[sizeof(s->line)];
	bool thr_ipending, tx_full;
	unsigned int rx_count, line_len;

	state_get(in, r, sizeof(r));
	thr_ipending = state_get_bool(in);
	tx_full = state_get_bool(in);
	rx_count = state_get_u16(in);
	if (rx_count > RX_FIFO_SIZE)
		return state_fail(in, "serial: receive FIFO over its size");
	state_get(in, rx, rx_count);
	line_len = state_get_u8(in);
	if (line_len >= sizeof(line))
		return state_fail(in, "serial: output line over its size");
	state_get(in, line, line_len);
	if (r[0] & ~0x0fu)
		return state_fail(in, "serial: IER has reserved bits");
	if (r[2] & ~0x1fu)
		return state_fail(in, "serial: MCR has reserved bits");
	if (!(r[3] & UART_LSR_DR) != !rx_count)
		return state_fail(in, "serial: LSR.DR disagrees with the receive FIFO");
	if (state_in_end(in))
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	s->ier = r[0], s->lcr = r[1], s->mcr = r[2], s->lsr = r[3], s->msr = r[4];
	s->scr = r[5], s->dll = r[6], s->dlm = r[7], s->fcr = r[8];
	s->thr_ipending = thr_ipending;
	s->tx_full = tx_full;
	memcpy(s->rx, rx, rx_count);
	s->rx_head = 0;
	s->rx_count = rx_count;
	memcpy(s->line, line, line_len);
	s->line_len = line_len;
	/* This output buffer is empty: a THR-empty interrupt withheld for the old one is due. */
	if (s->tx_full && tx_ready(s)) {
		s->tx_full = false;
		s->thr_ipending = true;
	}
	rx_enable(s, s->ier & UART_IER_RDI); /* host input, after the settle time, as on a write */
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void serial_get_stats(struct serial *s, struct outbuf_stats *out)
{
	pthread_mutex_lock(&s->lock);
	outbuf_get_stats(s->out, out);
	pthread_mutex_unlock(&s->lock);
}

void serial_destroy(struct serial *s)
{
	uint64_t dropped;

	if (!s)
		return;
	if (s->in_watched)
		loop_del_fd(s->loop, s->in_fd);
	bus_unregister(s->pio, SERIAL_COM1_PORT);
	dropped = outbuf_destroy(s->out, SERIAL_FLUSH_MS);
	if (dropped)
		pr_warn("console: %llu bytes of guest output were dropped (nobody read them)",
			(unsigned long long)dropped);
	free(s);
}
