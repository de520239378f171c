/* Start-up, exit, the bump allocator and the few string functions the compiler may call. */
#include "fw.h"

uint64_t fw_ram_bytes, fw_low_ram_end;

extern char _end[]; /* firmware.ld: end of the loaded image (bss included) */

static uint64_t heap_next, heap_end;

void args_init(void);
void fw_start(uint64_t ram_bytes) __attribute__((noreturn, used));

void fw_start(uint64_t ram_bytes)
{
	fw_ram_bytes = ram_bytes;
	fw_low_ram_end = ram_bytes < FW_LOW_RAM_MAX ? ram_bytes : FW_LOW_RAM_MAX;
	heap_next = FW_ALIGN_UP((uint64_t)(uintptr_t)_end, FW_PAGE_SIZE);
	heap_end = fw_low_ram_end - FW_STACK_BYTES;
	uart_init();
	args_init();
	printf("fw: ram %llu MiB, image 0x200000-0x%llx, free %llu MiB, args '%s'\n",
	       (unsigned long long)(ram_bytes / FW_MIB), (unsigned long long)heap_next,
	       (unsigned long long)(fw_mem_left() / FW_MIB), fw_args());
	fw_exit(main());
}

void fw_exit(int status)
{
	outb(FW_EXIT_PORT, (uint8_t)status);
	/* The VMM stops the vCPU at that exit; spin (at CPL3, hlt would fault) until it does. */
	for (;;)
		fw_pause();
}

void fw_fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fw_exit(1);
}

void *fw_alloc(uint64_t size, uint64_t align)
{
	uint64_t start = FW_ALIGN_UP(heap_next, align);

	if (start > heap_end || size > heap_end - start)
		fw_fail("out of memory: %llu bytes wanted, %llu left (give the VM more --mem)",
			(unsigned long long)size, (unsigned long long)fw_mem_left());
	heap_next = start + size;
	memset((void *)(uintptr_t)start, 0, size);
	return (void *)(uintptr_t)start;
}

uint64_t fw_mem_left(void)
{
	uint64_t start = FW_ALIGN_UP(heap_next, FW_PAGE_SIZE);

	return start < heap_end ? heap_end - start : 0;
}

/*
 * The compiler may turn loops into calls to these: keep them simple and out of its reach
 * (firmware.mk builds with -fno-tree-loop-distribute-patterns).
 */
void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	uint64_t v = 0x0101010101010101ULL * (uint8_t)c;

	for (; n && ((uintptr_t)p & 7); n--)
		*p++ = (uint8_t)c;
	for (; n >= 8; n -= 8, p += 8)
		*(uint64_t *)p = v;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;

	if (!(((uintptr_t)dp | (uintptr_t)sp) & 7)) {
		for (; n >= 8; n -= 8, dp += 8, sp += 8)
			*(uint64_t *)dp = *(const uint64_t *)sp;
	}
	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;

	if (dp <= sp || dp >= sp + n)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	if (!(((uintptr_t)x | (uintptr_t)y) & 7)) {
		for (; n >= 8 && *(const uint64_t *)x == *(const uint64_t *)y; n -= 8)
			x += 8, y += 8;
	}
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (uint8_t)*a - (uint8_t)*b;
}

uint64_t fw_hash64(const void *buf, size_t len, uint64_t seed)
{
	const uint8_t *p = buf;
	uint64_t h = seed ? seed : 0xcbf29ce484222325ULL, w;

	for (; len >= 8; len -= 8, p += 8) {
		w = *(const uint64_t *)p;
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	while (len--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}
