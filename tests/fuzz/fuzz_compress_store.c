/*
 * libFuzzer target for the compressed tier's stored-blob decoder (vmm/mem/compress_store.h):
 * decoding any entry, however corrupt, must never crash, read or write out of bounds, or return
 * success with content that does not match the entry's checksum.
 * Input: byte 0 selects the mode.
 *  - mode & 1 == 0, "raw entry": byte 1 kind, bytes 2-5 checksum, bytes 6-13 page index, the rest
 *    the blob (its length is the entry's length, so lengths over CS_MAX_BLOB are tried too).
 *  - mode & 1 == 1, "round trip": the rest (repeated to 4 KiB) is a page; it is encoded with
 *    lz4 and zstd, must decode to itself, and then every input byte is XORed into the blob in
 *    turn: each decode must fail or give the original page.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/mem/compress_store.h"

static struct cs_codec codecs[2];
static uint8_t page[CS_PAGE_SIZE], out[CS_PAGE_SIZE];

static void setup(void)
{
	static int done;

	if (done)
		return;
	if (cs_codec_init(&codecs[0], CS_ALGO_LZ4, 0) || cs_codec_init(&codecs[1], CS_ALGO_ZSTD, 1))
		abort();
	done = 1;
}

static void raw_entry(const uint8_t *data, size_t size)
{
	struct cs_entry e = {0};
	uint8_t *blob;
	size_t len;
	uint64_t idx;

	if (size < 14)
		return;
	e.kind = data[1] % 5;
	memcpy(&e.csum, data + 2, 4);
	memcpy(&idx, data + 6, 8);
	len = size - 14;
	if (len > 65535)
		len = 65535;
	/* An exact-size heap copy so ASan sees any read past the blob. */
	blob = malloc(len ? len : 1);
	if (!blob)
		return;
	memcpy(blob, data + 14, len);
	e.len = (uint16_t)len;
	if (e.kind == CS_SAME)
		memcpy(&e.pattern, data + 6, 8);
	else
		e.blob = blob;
	for (int c = 0; c < 2; c++) {
		if (cs_decode(&codecs[c], idx, &e, out) == 0 && e.kind != CS_SAME &&
		    cs_page_csum(idx, out) != e.csum)
			abort(); /* success must mean the checksum matched */
	}
	free(blob);
}

static void round_trip(const uint8_t *data, size_t size)
{
	if (size < 2)
		return;
	for (size_t i = 0; i < CS_PAGE_SIZE; i++)
		page[i] = data[1 + i % (size - 1)];
	for (int c = 0; c < 2; c++) {
		struct cs_entry e;
		int r = cs_encode(&codecs[c], 77, page, &e);

		if (r < 0)
			abort();
		if (r == CS_R_INCOMPRESSIBLE)
			continue;
		if (cs_decode(&codecs[c], 77, &e, out) || memcmp(out, page, CS_PAGE_SIZE))
			abort();
		for (size_t i = 1; i < size && e.kind != CS_SAME; i++) {
			size_t at = (i * 131) % e.len;

			e.blob[at] ^= data[i];
			if (cs_decode(&codecs[c], 77, &e, out) == 0 &&
			    memcmp(out, page, CS_PAGE_SIZE))
				abort(); /* a corrupt blob gave wrong data */
			e.blob[at] ^= data[i];
		}
		cs_entry_free(&e);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (!size)
		return 0;
	if (data[0] & 1)
		round_trip(data, size);
	else
		raw_entry(data, size);
	return 0;
}
