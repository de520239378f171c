#include "bus.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
	pthread_rwlock_init(&bus->lock, NULL);
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
		 const char *name)
{
	uint64_t end;
	unsigned int i;
	int ret = 0;

	if (!len || __builtin_add_overflow(base, len, &end))
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	if (bus->nr == BUS_MAX_RANGES) {
		ret = -ENOSPC;
		goto out;
	}
	for (i = 0; i < bus->nr; i++) {
		struct bus_range *r = &bus->ranges[i];

		if (base < r->base + r->len && r->base < end) {
			ret = -EEXIST;
			goto out;
		}
		if (r->base > base)
			break;
	}
	memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->nr - i) * sizeof(bus->ranges[0]));
	bus->ranges[i] = (struct bus_range){base, len, fn, opaque, name};
	bus->nr++;
out:
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
	unsigned int i;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	for (i = 0; i < bus->nr; i++) {
		if (bus->ranges[i].base != base)
			continue;
		memmove(&bus->ranges[i], &bus->ranges[i + 1],
			(bus->nr - i - 1) * sizeof(bus->ranges[0]));
		bus->nr--;
		ret = 0;
		break;
	}
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

int bus_access(struct bus *bus, uint64_t addr, void *data, uint32_t len, bool is_write)
{
	unsigned int lo = 0, hi;
	int ret = -ENOENT;

	pthread_rwlock_rdlock(&bus->lock);
	hi = bus->nr;
	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;
		struct bus_range *r = &bus->ranges[mid];

		if (addr < r->base) {
			hi = mid;
		} else if (addr - r->base >= r->len) {
			lo = mid + 1;
		} else {
			/* The whole access must fit: a straddling access is not this device's. */
			if (len <= r->len - (addr - r->base)) {
				r->fn(r->opaque, addr - r->base, data, len, is_write);
				ret = 0;
			}
			break;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}
