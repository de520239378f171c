/* The compressed tier's page store (vmm/mem/compress_store.h): codecs, checksums, the table. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/mem/compress_store.h"

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void text_page(uint8_t *p, uint64_t seed)
{
	static const char *const w[] = {"guest ", "memory ", "page ", "the ",  "balloon ",
					"host ",  "and ",    "of ",   "ring\n"};
	size_t off = 0;

	while (off < CS_PAGE_SIZE) {
		const char *s = w[rng(&seed) % 9];

		while (*s && off < CS_PAGE_SIZE)
			p[off++] = (uint8_t)*s++;
	}
}

static void random_page(uint8_t *p, uint64_t seed, size_t bytes)
{
	memset(p, 0, CS_PAGE_SIZE);
	for (size_t i = 0; i < bytes; i += 8) {
		uint64_t v = rng(&seed);

		memcpy(p + i, &v, bytes - i < 8 ? bytes - i : 8);
	}
}

Test(compress_store, crc32c_known_vectors)
{
	cr_assert_eq(cs_crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(cs_crc32c(0, "", 0), 0);
	/* Incremental use gives the same value as one call. */
	cr_assert_eq(cs_crc32c(cs_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
	/* 32 bytes of zeros (RFC 3720 B.4). */
	uint8_t z[32] = {0};

	cr_assert_eq(cs_crc32c(0, z, sizeof(z)), 0x8A9136AAu);
}

Test(compress_store, same_filled_detection)
{
	uint64_t page[CS_PAGE_SIZE / 8], pat = 1;

	memset(page, 0, sizeof(page));
	cr_assert(cs_same_filled(page, &pat));
	cr_assert_eq(pat, 0);
	for (unsigned int i = 0; i < CS_PAGE_SIZE / 8; i++)
		page[i] = 0xdeadbeefcafef00dULL;
	cr_assert(cs_same_filled(page, &pat));
	cr_assert_eq(pat, 0xdeadbeefcafef00dULL);
	page[511] ^= 1;
	cr_assert_not(cs_same_filled(page, &pat));
}

static void roundtrip(enum cs_algo algo)
{
	struct cs_codec c;
	uint8_t *page = malloc(CS_PAGE_SIZE), *out = malloc(CS_PAGE_SIZE);
	struct cs_entry e;

	cr_assert_eq(cs_codec_init(&c, algo, 0), 0);
	/* zero page */
	memset(page, 0, CS_PAGE_SIZE);
	cr_assert_eq(cs_encode(&c, 7, page, &e), CS_R_SAME);
	cr_assert_eq(e.kind, CS_SAME);
	cr_assert_eq(e.pattern, 0);
	memset(out, 0xaa, CS_PAGE_SIZE);
	cr_assert_eq(cs_decode(&c, 7, &e, out), 0);
	cr_assert_eq(memcmp(page, out, CS_PAGE_SIZE), 0);
	cs_entry_free(&e);
	/* same-filled */
	memset(page, 0x5a, CS_PAGE_SIZE);
	cr_assert_eq(cs_encode(&c, 8, page, &e), CS_R_SAME);
	cr_assert_eq(cs_decode(&c, 8, &e, out), 0);
	cr_assert_eq(memcmp(page, out, CS_PAGE_SIZE), 0);
	/* the checksum is bound to the page index */
	cr_assert_eq(cs_decode(&c, 9, &e, out), -EBADMSG);
	cs_entry_free(&e);
	/* text */
	text_page(page, 3);
	cr_assert_eq(cs_encode(&c, 10, page, &e), CS_R_COMPRESSED);
	cr_assert_eq(e.kind, algo == CS_ALGO_LZ4 ? CS_LZ4 : CS_ZSTD);
	cr_assert(e.len > 0 && e.len <= CS_MAX_BLOB);
	cr_assert(e.len < CS_PAGE_SIZE / 2, "text compresses well (%u bytes)", e.len);
	memset(out, 0, CS_PAGE_SIZE);
	cr_assert_eq(cs_decode(&c, 10, &e, out), 0);
	cr_assert_eq(memcmp(page, out, CS_PAGE_SIZE), 0);
	cr_assert_eq(cs_decode(&c, 11, &e, out), -EBADMSG);
	cs_entry_free(&e);
	/* random: incompressible, nothing allocated */
	random_page(page, 5, CS_PAGE_SIZE);
	cr_assert_eq(cs_encode(&c, 12, page, &e), CS_R_INCOMPRESSIBLE);
	cr_assert_eq(e.kind, CS_EMPTY);
	/* a quarter random, the rest zero: compresses, but not to nothing */
	random_page(page, 6, CS_PAGE_SIZE / 4);
	cr_assert_eq(cs_encode(&c, 13, page, &e), CS_R_COMPRESSED);
	cr_assert_eq(cs_decode(&c, 13, &e, out), 0);
	cr_assert_eq(memcmp(page, out, CS_PAGE_SIZE), 0);
	cs_entry_free(&e);
	/* 7/8 random: worse than 3/4, stays resident */
	random_page(page, 7, CS_PAGE_SIZE * 7 / 8);
	cr_assert_eq(cs_encode(&c, 14, page, &e), CS_R_INCOMPRESSIBLE);
	cs_codec_free(&c);
	free(page);
	free(out);
}

Test(compress_store, roundtrip_lz4)
{
	roundtrip(CS_ALGO_LZ4);
}

Test(compress_store, roundtrip_zstd)
{
	roundtrip(CS_ALGO_ZSTD);
}

Test(compress_store, codec_rejects_bad_algo)
{
	struct cs_codec c;

	cr_assert_eq(cs_codec_init(&c, (enum cs_algo)9, 0), -EINVAL);
	cs_codec_free(&c);
}

/* Every bit flip of a blob is undecodable, a checksum mismatch, or harmless: never wrong data. */
static void flips(enum cs_algo algo)
{
	struct cs_codec c;
	uint8_t page[CS_PAGE_SIZE], out[CS_PAGE_SIZE];
	struct cs_entry e;

	cr_assert_eq(cs_codec_init(&c, algo, 0), 0);
	text_page(page, 11);
	cr_assert_eq(cs_encode(&c, 42, page, &e), CS_R_COMPRESSED);
	for (unsigned int i = 0; i < e.len; i++) {
		for (unsigned int b = 0; b < 8; b += 3) {
			int ret;

			e.blob[i] ^= (uint8_t)(1u << b);
			ret = cs_decode(&c, 42, &e, out);
			/* A flip may leave the output unchanged (e.g. a match offset into equal
			 * text): then the guest still gets exactly its page. */
			cr_assert(ret == -EBADMSG || ret == -EINVAL ||
					  (ret == 0 && !memcmp(out, page, CS_PAGE_SIZE)),
				  "flip byte %u bit %u decoded to different content", i, b);
			e.blob[i] ^= (uint8_t)(1u << b);
		}
	}
	e.csum ^= 1;
	cr_assert_eq(cs_decode(&c, 42, &e, out), -EBADMSG);
	e.csum ^= 1;
	cr_assert_eq(cs_decode(&c, 42, &e, out), 0);
	cs_entry_free(&e);
	cs_codec_free(&c);
}

Test(compress_store, every_flip_is_caught_lz4)
{
	flips(CS_ALGO_LZ4);
}

Test(compress_store, every_flip_is_caught_zstd)
{
	flips(CS_ALGO_ZSTD);
}

Test(compress_store, malformed_entries_are_errors)
{
	struct cs_codec c;
	uint8_t out[CS_PAGE_SIZE], blob[CS_MAX_BLOB + 16] = {0};
	struct cs_entry e = {0};

	cr_assert_eq(cs_codec_init(&c, CS_ALGO_LZ4, 0), 0);
	cr_assert_eq(cs_decode(&c, 0, &e, out), -EINVAL); /* CS_EMPTY */
	e.kind = 9;
	cr_assert_eq(cs_decode(&c, 0, &e, out), -EINVAL);
	e.kind = CS_LZ4;
	e.blob = blob;
	e.len = 0;
	cr_assert_eq(cs_decode(&c, 0, &e, out), -EINVAL);
	e.len = CS_MAX_BLOB + 1;
	cr_assert_eq(cs_decode(&c, 0, &e, out), -EINVAL);
	e.len = 16;
	cr_assert_eq(cs_decode(&c, 0, &e, out), -EINVAL);
	e.kind = CS_ZSTD;
	cr_assert_eq(cs_decode(&c, 0, &e, out), -EINVAL);
	e.blob = NULL;
	cr_assert_eq(cs_decode(&c, 0, &e, out), -EINVAL);
	cs_codec_free(&c);
}

Test(compress_store, table_insert_take_drop)
{
	struct cs_store s;
	struct cs_codec c;
	struct cs_stats st;
	struct cs_entry e, got;
	uint8_t page[CS_PAGE_SIZE];

	cr_assert_eq(cs_store_init(&s, 3 * CS_CHUNK_PAGES + 10), 0);
	cr_assert_eq(cs_codec_init(&c, CS_ALGO_LZ4, 0), 0);
	cs_get_stats(&s, &st);
	cr_assert_eq(st.alloc_bytes, 0, "nothing allocated before the first insert");
	text_page(page, 1);
	cr_assert_eq(cs_encode(&c, 5, page, &e), CS_R_COMPRESSED);
	cr_assert_eq(cs_insert(&s, 5, &e), 0);
	cr_assert_eq(e.kind, CS_EMPTY, "the store took the entry");
	cr_assert_eq(cs_insert(&s, 5, &e), -EINVAL);
	cr_assert_eq(cs_encode(&c, 5, page, &e), CS_R_COMPRESSED);
	cr_assert_eq(cs_insert(&s, 5, &e), -EEXIST);
	cr_assert_eq(e.kind, CS_LZ4, "refused entries stay with the caller");
	cr_assert_eq(cs_insert(&s, 3 * CS_CHUNK_PAGES + 10, &e), -ERANGE);
	cs_entry_free(&e);
	memset(page, 0, sizeof(page));
	cr_assert_eq(cs_encode(&c, 3 * CS_CHUNK_PAGES + 9, page, &e), CS_R_SAME);
	cr_assert_eq(cs_insert(&s, 3 * CS_CHUNK_PAGES + 9, &e), 0);
	cs_get_stats(&s, &st);
	cr_assert_eq(st.compressed_pages, 1);
	cr_assert_eq(st.same_pages, 1);
	cr_assert_eq(st.zero_pages, 1);
	cr_assert(st.compressed_bytes > 0 && st.alloc_bytes > st.compressed_bytes);
	cr_assert(cs_contains(&s, 5));
	cr_assert_not(cs_contains(&s, 6));
	cr_assert_not(cs_contains(&s, 1ULL << 40));
	cr_assert_eq(cs_first(&s, 0, CS_EMPTY), 5);
	cr_assert_eq(cs_first(&s, 6, CS_EMPTY), 3 * CS_CHUNK_PAGES + 9);
	cr_assert_eq(cs_first(&s, 0, CS_SAME), 3 * CS_CHUNK_PAGES + 9);
	cr_assert_eq(cs_first(&s, 0, CS_ZSTD), UINT64_MAX);
	cr_assert(cs_take(&s, 5, &got));
	cr_assert_eq(got.kind, CS_LZ4);
	cr_assert_eq(cs_decode(&c, 5, &got, page), 0);
	cs_entry_free(&got);
	cr_assert_not(cs_take(&s, 5, &got));
	cr_assert_eq(got.kind, CS_EMPTY);
	cr_assert_eq(cs_drop(&s, 0, 1ULL << 40), 1);
	cs_get_stats(&s, &st);
	cr_assert_eq(st.compressed_pages + st.same_pages + st.compressed_bytes, 0);
	cr_assert_eq(st.alloc_bytes, 0, "empty chunks are freed");
	cs_codec_free(&c);
	cs_store_destroy(&s);
	cs_store_destroy(&s); /* idempotent */
}

Test(compress_store, test_hook_corrupts)
{
	struct cs_store s;
	struct cs_codec c;
	struct cs_entry e;
	uint8_t page[CS_PAGE_SIZE];

	cr_assert_eq(cs_store_init(&s, 64), 0);
	cr_assert_eq(cs_codec_init(&c, CS_ALGO_ZSTD, 3), 0);
	text_page(page, 9);
	cr_assert_eq(cs_encode(&c, 3, page, &e), CS_R_COMPRESSED);
	cr_assert_eq(cs_insert(&s, 3, &e), 0);
	memset(page, 0x11, sizeof(page));
	cr_assert_eq(cs_encode(&c, 4, page, &e), CS_R_SAME);
	cr_assert_eq(cs_insert(&s, 4, &e), 0);
	cr_assert_eq(cs_test_corrupt(&s, 2, 0), -ENOENT);
	cr_assert_eq(cs_test_corrupt(&s, 3, 100), 0);
	cr_assert_eq(cs_test_corrupt(&s, 4, 5), 0);
	cr_assert(cs_take(&s, 3, &e));
	cr_assert_neq(cs_decode(&c, 3, &e, page), 0);
	cs_entry_free(&e);
	cr_assert(cs_take(&s, 4, &e));
	cr_assert_eq(cs_decode(&c, 4, &e, page), -EBADMSG);
	cs_codec_free(&c);
	cs_store_destroy(&s);
}
