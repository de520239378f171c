/*
 * Device and vCPU state for snapshots (issue 14): a growing little-endian writer (struct
 * state_out) and a bounds-checked reader (struct state_in) of one section's payload. Part of
 * the base layer, so every device can save and load itself without knowing the snapshot file
 * (vmm/snapshot/format.h puts the payloads into sections with a checksum each).
 *
 * Errors are sticky: after the first failure (out of memory, a read past the end, a value a
 * loader rejects with state_fail()) every later put is dropped and every later get returns
 * zeros, and state_out_error() / state_in_error() report it. So a save or load function can
 * put/get field after field and check once at the end; a loader must still validate each value
 * it got before using it (a snapshot file is untrusted input, like a guest).
 */
#ifndef VMM_STATE_H
#define VMM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state_out {
	uint8_t *data; /* malloc'ed, owned; NULL while empty */
	size_t len, cap;
	int err; /* 0 or the first -errno */
};

struct state_in {
	const uint8_t *data; /* not owned */
	size_t len, off;
	int err; /* 0 or the first -errno (-EINVAL: truncated or rejected) */
};

/** state_out_init() - an empty writer. */
void state_out_init(struct state_out *o);

/** state_out_free() - release the writer's buffer; it is empty again. */
void state_out_free(struct state_out *o);

/** state_put() - append @n bytes of @p. On allocation failure o->err becomes -ENOMEM. */
void state_put(struct state_out *o, const void *p, size_t n);

/** state_put_u8/u16/u32/u64() - append one integer, little-endian. */
void state_put_u8(struct state_out *o, uint8_t v);
void state_put_u16(struct state_out *o, uint16_t v);
void state_put_u32(struct state_out *o, uint32_t v);
void state_put_u64(struct state_out *o, uint64_t v);
static inline void state_put_bool(struct state_out *o, bool v)
{
	state_put_u8(o, v ? 1 : 0);
}

/** state_out_error() - 0 when everything was written, else the first -errno. */
static inline int state_out_error(const struct state_out *o)
{
	return o->err;
}

/** state_in_init() - a reader of @len bytes at @data (caller keeps them alive). */
void state_in_init(struct state_in *in, const void *data, size_t len);

/**
 * state_get() - copy the next @n bytes into @p. Past the end: @p is zeroed and in->err becomes
 * -EINVAL. Returns 0 or in->err.
 */
int state_get(struct state_in *in, void *p, size_t n);

/** state_get_u8/u16/u32/u64() - the next little-endian integer (0 after an error). */
uint8_t state_get_u8(struct state_in *in);
uint16_t state_get_u16(struct state_in *in);
uint32_t state_get_u32(struct state_in *in);
uint64_t state_get_u64(struct state_in *in);

/** state_get_bool() - a byte that must be 0 or 1 (anything else fails the reader). */
bool state_get_bool(struct state_in *in);

/**
 * state_fail() - a loader rejects a value it read (@why is logged at debug level with the
 * offset): in->err becomes -EINVAL when no error is recorded yet. Returns in->err.
 */
int state_fail(struct state_in *in, const char *why);

/**
 * state_in_end() - the loader is done: fails the reader when bytes are left over (a payload of
 * another layout). Returns 0 or in->err.
 */
int state_in_end(struct state_in *in);

/** state_in_error() - 0 or the first -errno of the reader. */
static inline int state_in_error(const struct state_in *in)
{
	return in->err;
}

#endif
