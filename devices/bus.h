/* Port-I/O and MMIO dispatch by address range (one bus instance per address space). */
#ifndef DEVICES_BUS_H
#define DEVICES_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/**
 * bus_io_fn - a device's access handler.
 * @opaque: the pointer given to bus_register(); @offset: bytes from the range's base;
 * @data: @len bytes (1, 2, 4 or 8) to fill on a read, or holding the value on a write,
 * little-endian; @is_write: direction. Called from vCPU threads: the device locks its own state.
 */
typedef void (*bus_io_fn)(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);

struct bus_range {
	uint64_t base, len;
	bus_io_fn fn;
	void *opaque;
	const char *name;
};

#define BUS_MAX_RANGES 64

struct bus {
	const char *name; /* "pio" or "mmio", for messages */
	pthread_rwlock_t lock;
	unsigned int nr;
	struct bus_range ranges[BUS_MAX_RANGES]; /* sorted by base, never overlapping */
};

/** bus_init() - empty bus named @name (static string). */
void bus_init(struct bus *bus, const char *name);

/**
 * bus_register() - route [@base, @base + @len) to @fn(@opaque, ...). @name is a static string.
 * Returns 0, -EINVAL for len 0 or overflow, -EEXIST when it overlaps a range, -ENOSPC when full.
 */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
		 const char *name);

/** bus_unregister() - remove the range starting at @base. Returns 0 or -ENOENT. */
int bus_unregister(struct bus *bus, uint64_t base);

/**
 * bus_access() - dispatch one guest access at @addr of @len bytes.
 * Returns 0 when a device handled it, -ENOENT when no range covers [addr, addr+len) (the caller
 * then reads all-ones and logs once per address).
 */
int bus_access(struct bus *bus, uint64_t addr, void *data, uint32_t len, bool is_write);

#endif
