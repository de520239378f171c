/* The snapshot state writer and reader (state.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "util.h"

void state_out_init(struct state_out *o)
{
	memset(o, 0, sizeof(*o));
}

void state_out_free(struct state_out *o)
{
	free(o->data);
	state_out_init(o);
}

void state_put(struct state_out *o, const void *p, size_t n)
{
	if (o->err || n == 0)
		return;
	if (n > SIZE_MAX / 2 - o->len) {
		o->err = -ENOMEM;
		return;
	}
	if (o->len + n > o->cap) {
		size_t cap = MAX(o->cap * 2, o->len + n);
		uint8_t *d;

		cap = MAX(cap, (size_t)256);
		d = realloc(o->data, cap);
		if (!d) {
			o->err = -ENOMEM;
			return;
		}
		o->data = d;
		o->cap = cap;
	}
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

void state_put_u8(struct state_out *o, uint8_t v)
{
	state_put(o, &v, 1);
}

void state_put_u16(struct state_out *o, uint16_t v)
{
	uint8_t b[2] = {v & 0xff, v >> 8};

	state_put(o, b, 2);
}

void state_put_u32(struct state_out *o, uint32_t v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	state_put(o, b, 4);
}

void state_put_u64(struct state_out *o, uint64_t v)
{
	state_put_u32(o, (uint32_t)v);
	state_put_u32(o, (uint32_t)(v >> 32));
}

void state_in_init(struct state_in *in, const void *data, size_t len)
{
	in->data = data;
	in->len = data ? len : 0;
	in->off = 0;
	in->err = 0;
}

int state_get(struct state_in *in, void *p, size_t n)
{
	if (in->err || n > in->len - in->off) {
		if (!in->err)
			pr_debug("state: read of %zu bytes at offset %zu of %zu", n, in->off,
				 in->len);
		in->err = in->err ? in->err : -EINVAL;
		if (n)
			memset(p, 0, n);
		return in->err;
	}
	if (n)
		memcpy(p, in->data + in->off, n);
	in->off += n;
	return 0;
}

uint8_t state_get_u8(struct state_in *in)
{
	uint8_t v;

	state_get(in, &v, 1);
	return v;
}

uint16_t state_get_u16(struct state_in *in)
{
	uint8_t b[2];

	state_get(in, b, 2);
	return (uint16_t)(b[0] | b[1] << 8);
}

uint32_t state_get_u32(struct state_in *in)
{
	uint8_t b[4];
	uint32_t v = 0;

	state_get(in, b, 4);
	for (int i = 3; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

uint64_t state_get_u64(struct state_in *in)
{
	uint64_t lo = state_get_u32(in);

	return lo | (uint64_t)state_get_u32(in) << 32;
}

bool state_get_bool(struct state_in *in)
{
	uint8_t v = state_get_u8(in);

	if (v > 1)
		state_fail(in, "boolean not 0 or 1");
	return v == 1;
}

int state_fail(struct state_in *in, const char *why)
{
	if (!in->err) {
		pr_debug("state: rejected at offset %zu: %s", in->off, why);
		in->err = -EINVAL;
	}
	return in->err;
}

int state_in_end(struct state_in *in)
{
	if (!in->err && in->off != in->len)
		state_fail(in, "bytes left over");
	return in->err;
}
