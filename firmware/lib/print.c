/* COM1 output and a small printf (16550A registers: PC16550D data sheet). */
#include "fw.h"

#define UART_THR      0 /* transmit holding (DLAB 0) */
#define UART_IER      1
#define UART_FCR      2
#define UART_LCR      3
#define UART_MCR      4
#define UART_LSR      5
#define UART_LSR_THRE 0x20

void uart_init(void)
{
	outb(FW_COM1 + UART_IER, 0);	/* no interrupts */
	outb(FW_COM1 + UART_LCR, 0x03); /* 8N1, DLAB 0: the VMM ignores the baud rate */
	outb(FW_COM1 + UART_FCR, 0x07); /* FIFO on, both cleared */
	outb(FW_COM1 + UART_MCR, 0x03); /* DTR RTS */
}

void uart_putc(char c)
{
	/* Bounded: a wedged UART must not hang the test; the byte is dropped instead. */
	for (unsigned int i = 0; i < 1000000; i++) {
		if (inb(FW_COM1 + UART_LSR) & UART_LSR_THRE) {
			outb(FW_COM1 + UART_THR, (uint8_t)c);
			return;
		}
		fw_pause();
	}
}

struct sink {
	char *buf; /* NULL: the UART */
	size_t size, len;
};

static void put(struct sink *s, char c)
{
	if (!s->buf)
		uart_putc(c);
	else if (s->len + 1 < s->size)
		s->buf[s->len] = c;
	s->len++;
}

static void put_num(struct sink *s, uint64_t v, unsigned int base, bool upper, bool neg, int width,
		    bool zero, bool left)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0, len;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	len = n + neg;
	if (neg && zero)
		put(s, '-');
	for (; !left && width > len; width--)
		put(s, zero ? '0' : ' ');
	if (neg && !zero)
		put(s, '-');
	while (n)
		put(s, tmp[--n]);
	for (; left && width > len; width--)
		put(s, ' ');
}

static void put_str(struct sink *s, const char *str, int width, bool left)
{
	int len = (int)strlen(str);

	for (; !left && width > len; width--)
		put(s, ' ');
	while (*str)
		put(s, *str++);
	for (; left && width > len; width--)
		put(s, ' ');
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		bool zero = false, left = false;
		int width = 0, lng = 0;
		uint64_t u;
		int64_t d;

		if (*fmt != '%') {
			put(s, *fmt);
			continue;
		}
		for (fmt++; *fmt == '0' || *fmt == '-'; fmt++)
			*fmt == '0' ? (zero = true) : (left = true);
		for (; *fmt >= '0' && *fmt <= '9'; fmt++)
			width = width * 10 + (*fmt - '0');
		for (; *fmt == 'l' || *fmt == 'z'; fmt++)
			lng = *fmt == 'z' ? 2 : lng + 1;
		switch (*fmt) {
		case 'd':
		case 'i':
			d = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(s, d < 0 ? -(uint64_t)d : (uint64_t)d, 10, false, d < 0, width,
				zero, left);
			break;
		case 'u':
		case 'x':
		case 'X':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			put_num(s, u, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width, zero, left);
			break;
		case 'p':
			put(s, '0');
			put(s, 'x');
			put_num(s, (uintptr_t)va_arg(ap, void *), 16, false, false, width, zero,
				left);
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);

			put_str(s, str ? str : "(null)", width, left);
			break;
		}
		case 'c':
			put(s, (char)va_arg(ap, int));
			break;
		case '%':
			put(s, '%');
			break;
		case '\0':
			return;
		default:
			put(s, '%');
			put(s, *fmt);
		}
	}
}

int vprintf(const char *fmt, va_list ap)
{
	struct sink s = {0};

	format(&s, fmt, ap);
	return (int)s.len;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	struct sink s = {.buf = buf, .size = size};
	va_list ap;

	va_start(ap, fmt);
	format(&s, fmt, ap);
	va_end(ap);
	if (size)
		buf[s.len < size ? s.len : size - 1] = '\0';
	return (int)s.len;
}
