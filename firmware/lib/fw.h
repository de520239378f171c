/*
 * The firmware runtime: freestanding, no libc, runs at CPL3 in 64-bit mode with IOPL 3 on an
 * identity map (GPA == VA) of the first 4 GiB; interrupts stay off (docs/firmware.md).
 */
#ifndef FW_FW_H
#define FW_FW_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FW_PAGE_SIZE	  4096ULL
#define FW_MIB		  (1024ULL * 1024)
#define FW_LOW_RAM_MAX	  0xC0000000ULL /* RAM above this lives at 4 GiB and is not mapped */
#define FW_ARGS_GPA	  0x20000ULL	/* BOOT_CMDLINE_GPA: the argument string */
#define FW_ARGS_MAX	  2048
#define FW_STACK_BYTES	  0x10000ULL /* BOOT_FW_STACK_BYTES: top of low RAM, the stack */
#define FW_EXIT_PORT	  0x501
#define FW_COM1		  0x3f8
#define FW_ALIGN_UP(x, a) (((x) + (a)-1) & ~((uint64_t)(a)-1))
#define FW_ARRAY_SIZE(a)  (sizeof(a) / sizeof((a)[0]))
#define FW_MIN(a, b)	  ((a) < (b) ? (a) : (b))

/* ---- port I/O, barriers, TSC ----------------------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

/* Full barrier without SSE (CR4.OSFXSR is off; a locked RMW orders everything on x86). */
static inline void fw_mb(void)
{
	__asm__ volatile("lock; addl $0, (%%rsp)" : : : "memory", "cc");
}

static inline void fw_barrier(void)
{
	__asm__ volatile("" : : : "memory");
}

static inline void fw_pause(void)
{
	__asm__ volatile("pause" : : : "memory");
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

/* MMIO: one access of exactly the given width (KVM emulates the faulting instruction). */
static inline uint8_t mmio_read8(const volatile void *p)
{
	return *(const volatile uint8_t *)p;
}

static inline uint16_t mmio_read16(const volatile void *p)
{
	return *(const volatile uint16_t *)p;
}

static inline uint32_t mmio_read32(const volatile void *p)
{
	return *(const volatile uint32_t *)p;
}

static inline void mmio_write8(volatile void *p, uint8_t v)
{
	*(volatile uint8_t *)p = v;
}

static inline void mmio_write16(volatile void *p, uint16_t v)
{
	*(volatile uint16_t *)p = v;
}

static inline void mmio_write32(volatile void *p, uint32_t v)
{
	*(volatile uint32_t *)p = v;
}

/* ---- runtime (lib/runtime.c) ------------------------------------------------------------------
 */

/* Guest RAM in bytes (rdi at entry) and the end of the identity-mapped low RAM. */
extern uint64_t fw_ram_bytes, fw_low_ram_end;

/** main() - the program; its return value is the exit status. */
int main(void);

/** fw_exit() - write @status to the exit port (the VMM exits with it); never returns. */
__attribute__((noreturn)) void fw_exit(int status);

/** fw_fail() - print "FAIL: <message>" and exit with status 1. */
__attribute__((noreturn, format(printf, 1, 2))) void fw_fail(const char *fmt, ...);

/**
 * fw_alloc() - @size bytes aligned to @align (a power of two), zeroed, from the free RAM between
 * the image and the stack. Never freed. Fails the program when RAM runs out.
 */
void *fw_alloc(uint64_t size, uint64_t align);

/** fw_mem_left() - bytes fw_alloc() can still hand out (at page alignment). */
uint64_t fw_mem_left(void);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

/* ---- console (lib/print.c) ------------------------------------------------------------------- */

/** uart_init() - COM1 8N1, FIFO on, interrupts off. Called before main(). */
void uart_init(void);

/** uart_putc() - one byte to COM1, waiting for LSR.THRE (bounded: drops the byte if stuck). */
void uart_putc(char c);

/**
 * printf() - formatted output to COM1: %d %i %u %x %X %s %c %p %%, length modifiers l ll z,
 * flags '-' and '0', a width. Returns the number of bytes written.
 */
__attribute__((format(printf, 1, 2))) int printf(const char *fmt, ...);
int vprintf(const char *fmt, va_list ap);

/** snprintf() - the same into @buf (always NUL-terminated when @size > 0). */
__attribute__((format(printf, 3, 4))) int snprintf(char *buf, size_t size, const char *fmt, ...);

/* ---- arguments (lib/args.c) --------------------------------------------------------------------
 */

/*
 * The argument string is "key=value key2=value2 flag" (vmm run --firmware F --cmdline "..."),
 * read from FW_ARGS_GPA at start. A program may compile in defaults with FW_DEFAULT_ARGS.
 */
/** fw_arg_u64() - value of @key as a decimal or 0x-hex number, @def when absent or malformed. */
uint64_t fw_arg_u64(const char *key, uint64_t def);

/** fw_arg_str() - value of @key (a pointer into the parsed copy), @def when absent. */
const char *fw_arg_str(const char *key, const char *def);

/** fw_args() - the whole argument string as given. */
const char *fw_args(void);

/* ---- time (lib/time.c) ----------------------------------------------------------------------- */

/**
 * fw_tsc_hz() - TSC frequency measured once against PIT channel 2 (10 ms), 0 when the PIT does
 * not answer. Under nested virtualization this is the guest's view; compare ratios only.
 */
uint64_t fw_tsc_hz(void);

/** fw_deadline() - TSC value @ms milliseconds from now (assumes 3 GHz if uncalibrated). */
uint64_t fw_deadline(uint64_t ms);

/** fw_expired() - true once rdtsc() passed @deadline. */
static inline bool fw_expired(uint64_t deadline)
{
	return (int64_t)(rdtsc() - deadline) >= 0;
}

/** fw_cycles_to_us() - microseconds in @cycles, 0 when the TSC rate is unknown. */
uint64_t fw_cycles_to_us(uint64_t cycles);

/* ---- checksums and pseudo-random numbers -------------------------------------------------------
 */

/** fw_hash64() - a 64-bit checksum of @len bytes, chainable through @seed (FNV-1a over words). */
uint64_t fw_hash64(const void *buf, size_t len, uint64_t seed);

/** fw_rand() - xorshift64* step on *@state (non-zero). */
static inline uint64_t fw_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

#endif
