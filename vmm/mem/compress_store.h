/*
 * The compressed tier's page store (design.md "Guest memory and host reclamation", step 4): the
 * pure half, with no threads, no userfaultfd and no KVM, so tests and fuzzers drive it directly.
 *
 * A guest page (4 KiB) is encoded into a struct cs_entry: zero and same-filled pages (one 64-bit
 * word repeated) keep only that word; other pages are compressed with lz4 or zstd into a
 * right-sized heap blob; a page whose compressed size would pass CS_MAX_BLOB (3/4 of a page) is
 * incompressible and stays resident. Every entry carries a CRC32C of the page content seeded with
 * the page index, checked when the page is decoded: a flipped bit in a blob, a blob attached to
 * the wrong page, or a decompressor bug is reported as -EBADMSG instead of returning wrong data.
 *
 * The store maps state-map page indices to entries. Its tables are allocated per 2 MiB chunk
 * (CS_CHUNK_PAGES) on first use and freed when the chunk empties, so a VM that never reclaims
 * pays nothing.
 */
#ifndef VMM_MEM_COMPRESS_STORE_H
#define VMM_MEM_COMPRESS_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_PAGE_SIZE   4096u
#define CS_MAX_BLOB    (CS_PAGE_SIZE * 3 / 4) /* bytes; a larger result stays resident */
#define CS_CHUNK_PAGES 512u		      /* pages per lazily allocated table (2 MiB) */

enum cs_algo { CS_ALGO_LZ4, CS_ALGO_ZSTD };

/* What an entry holds. */
enum cs_kind {
	CS_EMPTY = 0, /* nothing stored */
	CS_SAME,      /* same-filled page: @pattern repeated (0 = zero page) */
	CS_LZ4,	      /* @blob holds @len bytes of an LZ4 block */
	CS_ZSTD,      /* @blob holds @len bytes of a zstd frame */
};

struct cs_entry {
	uint8_t kind; /* enum cs_kind */
	uint8_t pad;
	uint16_t len;  /* blob bytes (CS_LZ4, CS_ZSTD), at most CS_MAX_BLOB */
	uint32_t csum; /* cs_page_csum() of the page content */
	union {
		uint64_t pattern; /* CS_SAME */
		uint8_t *blob;	  /* CS_LZ4, CS_ZSTD: malloc'd, owned by the entry */
	};
};

/* Per-thread codec state (compression and decompression contexts and a scratch buffer). */
struct cs_codec {
	enum cs_algo algo;
	int level;    /* zstd level; lz4 acceleration (1 = default) */
	void *cctx;   /* ZSTD_CCtx */
	void *dctx;   /* ZSTD_DCtx */
	uint8_t *buf; /* CS_PAGE_SIZE bytes of scratch */
};

/* What cs_encode() made of a page. */
enum cs_result {
	CS_R_SAME = 0,		 /* same-filled: the entry holds the pattern */
	CS_R_COMPRESSED = 1,	 /* the entry holds a blob */
	CS_R_INCOMPRESSIBLE = 2, /* larger than CS_MAX_BLOB compressed: nothing to store */
};

struct cs_stats {
	uint64_t compressed_pages; /* entries holding a blob */
	uint64_t compressed_bytes; /* sum of their blob lengths */
	uint64_t alloc_bytes;	   /* heap held by blobs and tables (malloc_usable_size) */
	uint64_t same_pages;	   /* same-filled entries, zero pages included */
	uint64_t zero_pages;	   /* same-filled entries whose pattern is 0 */
};

struct cs_store {
	pthread_mutex_t lock; /* protects everything below */
	uint64_t nr_pages;
	uint64_t nr_chunks;
	struct cs_entry **chunks; /* nr_chunks tables of CS_CHUNK_PAGES, NULL until used */
	uint32_t *chunk_used;	  /* entries held per chunk */
	struct cs_stats st;
};

/**
 * cs_crc32c() - CRC32C (Castagnoli, iSCSI polynomial 0x1EDC6F41 reflected) of @len bytes at
 * @buf, continuing from @crc (0 to start). SSE4.2 when the CPU has it, else slicing-by-8 tables.
 * cs_crc32c(0, "123456789", 9) == 0xE3069283.
 */
uint32_t cs_crc32c(uint32_t crc, const void *buf, size_t len);

/** cs_page_csum() - the checksum an entry carries for page @idx with content @page (4 KiB). */
uint32_t cs_page_csum(uint64_t idx, const void *page);

/**
 * cs_same_filled() - true when the 4 KiB at @page is one 64-bit word repeated; *@pattern is
 * set to that word.
 */
bool cs_same_filled(const void *page, uint64_t *pattern);

/**
 * cs_codec_init() - set up a codec for @algo. @level: zstd compression level (1..19, 0 = 1) or
 * lz4 acceleration (0 or 1 = default). Returns 0, -EINVAL (bad algo), -ENOMEM.
 */
int cs_codec_init(struct cs_codec *c, enum cs_algo algo, int level);

/** cs_codec_free() - release @c's contexts; safe on a zeroed or failed codec. */
void cs_codec_free(struct cs_codec *c);

/**
 * cs_encode() - encode page @idx whose 4 KiB content is at @page into *@out.
 * The page is read once per step (checksum, same-fill test, compression); the caller must keep it
 * stable while this runs (the tier write-protects it), else the checksum may not match the blob
 * and the page is refused at fault-in (never silently wrong).
 * Returns enum cs_result (>= 0) or -ENOMEM; *@out is CS_EMPTY unless the result is CS_R_SAME or
 * CS_R_COMPRESSED, and the caller then owns it (cs_entry_free() or cs_insert()).
 */
int cs_encode(struct cs_codec *c, uint64_t idx, const void *page, struct cs_entry *out);

/**
 * cs_decode() - write the page content of entry @e of page @idx to @page (4 KiB).
 * Any entry content is safe to pass (the fuzz target feeds arbitrary bytes): a blob that does not
 * decode to exactly 4 KiB, an unknown kind or a length over CS_MAX_BLOB give -EINVAL; content
 * whose checksum differs from @e->csum gives -EBADMSG. @page is scratch on failure.
 * Returns 0, -EINVAL or -EBADMSG.
 */
int cs_decode(struct cs_codec *c, uint64_t idx, const struct cs_entry *e, void *page);

/** cs_entry_free() - free @e's blob and make it CS_EMPTY. */
void cs_entry_free(struct cs_entry *e);

/** cs_store_init() - an empty store for @nr_pages page indices. Returns 0 or -ENOMEM. */
int cs_store_init(struct cs_store *s, uint64_t nr_pages);

/** cs_store_destroy() - free every entry and table; safe on a zeroed store. */
void cs_store_destroy(struct cs_store *s);

/**
 * cs_insert() - store *@e for page @idx; the store takes ownership and *@e becomes CS_EMPTY.
 * Returns 0, -ERANGE (@idx out of range), -EEXIST (page already stored; @e is untouched),
 * -EINVAL (@e is CS_EMPTY), -ENOMEM (chunk table allocation). Takes s->lock.
 */
int cs_insert(struct cs_store *s, uint64_t idx, struct cs_entry *e);

/**
 * cs_take() - remove page @idx's entry into *@out (the caller owns it). Returns true when there
 * was one; false (and *@out CS_EMPTY) otherwise. Takes s->lock.
 */
bool cs_take(struct cs_store *s, uint64_t idx, struct cs_entry *out);

/** cs_contains() - true when page @idx has an entry. Takes s->lock. */
bool cs_contains(struct cs_store *s, uint64_t idx);

/**
 * cs_drop() - free the entries of pages [@first, @first + @nr) (out-of-range pages are ignored).
 * Returns the number of entries freed. Takes s->lock.
 */
uint64_t cs_drop(struct cs_store *s, uint64_t first, uint64_t nr);

/** cs_get_stats() - snapshot of the store's counters. Takes s->lock. */
void cs_get_stats(struct cs_store *s, struct cs_stats *out);

/**
 * cs_first() - the lowest page index >= @from holding an entry of kind @kind (CS_EMPTY: any),
 * or UINT64_MAX. Takes s->lock.
 */
uint64_t cs_first(struct cs_store *s, uint64_t from, enum cs_kind kind);

/**
 * cs_test_corrupt() - test hook: flip one bit of page @idx's stored data (byte @byte % len of
 * its blob, or of its pattern) so the next decode fails its checksum. Returns 0, or -ENOENT.
 */
int cs_test_corrupt(struct cs_store *s, uint64_t idx, unsigned int byte);

#endif
