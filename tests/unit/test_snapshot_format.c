/* Snapshot state payloads (vmm/state.h) and the state file (vmm/snapshot/format.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../vmm/snapshot/format.h"
#include "../../vmm/state.h"

Test(state, round_trip_little_endian)
{
	struct state_out o;
	struct state_in in;

	state_out_init(&o);
	state_put_u8(&o, 0xab);
	state_put_u16(&o, 0x1234);
	state_put_u32(&o, 0xdeadbeef);
	state_put_u64(&o, 0x0102030405060708ULL);
	state_put_bool(&o, true);
	cr_assert_eq(o.len, 1 + 2 + 4 + 8 + 1);
	cr_assert_eq(o.data[1], 0x34);
	cr_assert_eq(o.data[7], 0x08);
	state_in_init(&in, o.data, o.len);
	cr_assert_eq(state_get_u8(&in), 0xab);
	cr_assert_eq(state_get_u16(&in), 0x1234);
	cr_assert_eq(state_get_u32(&in), 0xdeadbeef);
	cr_assert_eq(state_get_u64(&in), 0x0102030405060708ULL);
	cr_assert(state_get_bool(&in));
	cr_assert_eq(state_in_end(&in), 0);
	state_out_free(&o);
}

Test(state, truncated_read_is_sticky_and_zero)
{
	uint8_t b[3] = {1, 2, 3};
	struct state_in in;

	state_in_init(&in, b, sizeof(b));
	cr_assert_eq(state_get_u16(&in), 0x0201);
	cr_assert_eq(state_get_u32(&in), 0); /* only one byte left */
	cr_assert_eq(state_in_error(&in), -EINVAL);
	cr_assert_eq(state_get_u8(&in), 0); /* sticky, even though one byte is left */
}

Test(state, bad_bool_and_leftover_fail)
{
	uint8_t b[2] = {2, 0};
	struct state_in in;

	state_in_init(&in, b, 1);
	state_get_bool(&in);
	cr_assert_eq(state_in_error(&in), -EINVAL);
	state_in_init(&in, b, 2);
	state_get_u8(&in);
	cr_assert_eq(state_in_end(&in), -EINVAL);
}

static char *write_image(size_t *len)
{
	static char path[] = "/tmp/test_snapfmt_XXXXXX";
	struct snap_writer w;
	struct state_out a;
	FILE *f;
	char *buf;
	int fd = mkstemp(path);

	cr_assert(fd >= 0);
	close(fd);
	snap_writer_init(&w);
	state_out_init(&a);
	state_put_u32(&a, 42);
	cr_assert_eq(snap_add_section(&w, "vcpu.0", &a), 0);
	cr_assert_eq(snap_add_section(&w, "empty", NULL), 0);
	cr_assert_eq(snap_add_section(&w, "a-tag-that-is-far-too-long-for-it", &a), -EINVAL);
	state_out_free(&a);
	w.err = 0; /* the too-long tag is the only failure wanted here */
	cr_assert_eq(snap_writer_finish(&w, path), 0);
	f = fopen(path, "rb");
	cr_assert(f);
	buf = malloc(1 << 16);
	*len = fread(buf, 1, 1 << 16, f);
	fclose(f);
	unlink(path);
	return buf;
}

Test(snap_format, write_parse_round_trip)
{
	struct snap_image img;
	struct state_in in;
	char why[256];
	size_t len;
	char *buf = write_image(&len);

	cr_assert_eq(snap_image_parse(&img, buf, len, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(img.nr_sections, 2);
	cr_assert_eq(snap_section_in(&img, "vcpu.0", &in), 0);
	cr_assert_eq(state_get_u32(&in), 42);
	cr_assert_eq(state_in_end(&in), 0);
	cr_assert_eq(snap_section_in(&img, "nope", &in), -ENOENT);
	snap_image_free(&img);
	free(buf);
}

Test(snap_format, every_truncation_and_bit_flip_is_refused)
{
	struct snap_image img;
	char why[256];
	size_t len;
	char *buf = write_image(&len);

	for (size_t n = 0; n < len; n++)
		cr_assert_neq(snap_image_parse(&img, buf, n, why, sizeof(why)), 0, "cut at %zu", n);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (char)(1 << bit);
			int r = snap_image_parse(&img, buf, len, why, sizeof(why));
			/* The build string's padding and section pad words are not checked. */
			if (r == 0)
				snap_image_free(&img);
			cr_assert(r != 0 || (i >= 16 + strlen(snap_build_id()) && i < 80) ||
					  (i >= 88 + 36 && i < 88 + 40) ||
					  (i >= 88 + 44 + 36 && i < 88 + 44 + 40) ||
					  (i >= 88 + 84 + 36 && i < 88 + 84 + 40),
				  "flip at byte %zu bit %d accepted", i, bit);
			buf[i] ^= (char)(1 << bit);
		}
	}
	free(buf);
}

Test(snap_format, other_build_is_refused_with_a_reason)
{
	struct snap_image img;
	char why[256];
	size_t len;
	char *buf = write_image(&len);

	buf[16] ^= 1;
	cr_assert_eq(snap_image_parse(&img, buf, len, why, sizeof(why)), -EPROTO);
	cr_assert(strstr(why, "written by"), "%s", why);
	free(buf);
}
