#include "compress_store.h"

#include <errno.h>
#include <lz4.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* Codec scratch: the page snapshot, then the compressor output, then the lz4 state. */
#define SNAP_OFF 0
#define OUT_OFF	 CS_PAGE_SIZE
#define LZ4_OFF	 (2 * CS_PAGE_SIZE)

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_tab[t][i] =
				(crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
}

__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p,
							    size_t len)
{
	uint64_t c = crc;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
	}
	for (; len; p++, len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p);
	return (uint32_t)c;
}

static uint32_t crc_soft(uint32_t c, const uint8_t *p, size_t len)
{
	for (; len >= 8; p += 8, len -= 8) {
		uint32_t lo, hi;

		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
		lo ^= c;
		c = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
		    crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^
		    crc_tab[2][(hi >> 8) & 0xff] ^ crc_tab[1][(hi >> 16) & 0xff] ^
		    crc_tab[0][hi >> 24];
	}
	for (; len; p++, len--)
		c = (c >> 8) ^ crc_tab[0][(c ^ *p) & 0xff];
	return c;
}

uint32_t cs_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	crc = crc_hw ? crc_sse42(crc, buf, len) : crc_soft(crc, buf, len);
	return ~crc;
}

uint32_t cs_page_csum(uint64_t idx, const void *page)
{
	return cs_crc32c(cs_crc32c(0, &idx, sizeof(idx)), page, CS_PAGE_SIZE);
}

/* Same-filled entries check their pattern word (the whole content they hold). */
static uint32_t same_csum(uint64_t idx, uint64_t pattern)
{
	return cs_crc32c(cs_crc32c(0, &idx, sizeof(idx)), &pattern, sizeof(pattern));
}

bool cs_same_filled(const void *page, uint64_t *pattern)
{
	const uint64_t *w = page;
	uint64_t v = w[0];

	for (unsigned int i = 1; i < CS_PAGE_SIZE / 8; i++)
		if (w[i] != v)
			return false;
	*pattern = v;
	return true;
}

int cs_codec_init(struct cs_codec *c, enum cs_algo algo, int level)
{
	memset(c, 0, sizeof(*c));
	if (algo != CS_ALGO_LZ4 && algo != CS_ALGO_ZSTD)
		return -EINVAL;
	c->algo = algo;
	c->level = level > 0 ? level : 1;
	c->buf = malloc(LZ4_OFF + (size_t)LZ4_sizeofState());
	c->dctx = ZSTD_createDCtx();
	if (algo == CS_ALGO_ZSTD)
		c->cctx = ZSTD_createCCtx();
	if (!c->buf || !c->dctx || (algo == CS_ALGO_ZSTD && !c->cctx)) {
		cs_codec_free(c);
		return -ENOMEM;
	}
	return 0;
}

void cs_codec_free(struct cs_codec *c)
{
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	free(c->buf);
	memset(c, 0, sizeof(*c));
}

/* Compress the snapshot; returns the blob length, or 0 when it does not fit CS_MAX_BLOB. */
static size_t compress_snapshot(struct cs_codec *c)
{
	const char *src = (const char *)c->buf + SNAP_OFF;
	char *dst = (char *)c->buf + OUT_OFF;

	if (c->algo == CS_ALGO_LZ4) {
		int n = LZ4_compress_fast_extState(c->buf + LZ4_OFF, src, dst, CS_PAGE_SIZE,
						   CS_MAX_BLOB, c->level);

		return n > 0 ? (size_t)n : 0;
	}
	size_t n = ZSTD_compressCCtx(c->cctx, dst, CS_MAX_BLOB, src, CS_PAGE_SIZE, c->level);

	return ZSTD_isError(n) ? 0 : n;
}

int cs_encode(struct cs_codec *c, uint64_t idx, const void *page, struct cs_entry *out)
{
	uint8_t *snap = c->buf + SNAP_OFF;
	uint64_t pattern;
	size_t n;

	memset(out, 0, sizeof(*out));
	/* One read of the page: checksum and blob describe the same bytes whatever happens. */
	memcpy(snap, page, CS_PAGE_SIZE);
	if (cs_same_filled(snap, &pattern)) {
		out->kind = CS_SAME;
		out->pattern = pattern;
		out->csum = same_csum(idx, pattern);
		return CS_R_SAME;
	}
	n = compress_snapshot(c);
	if (!n)
		return CS_R_INCOMPRESSIBLE;
	out->blob = malloc(n);
	if (!out->blob)
		return -ENOMEM;
	memcpy(out->blob, c->buf + OUT_OFF, n);
	out->kind = c->algo == CS_ALGO_LZ4 ? CS_LZ4 : CS_ZSTD;
	out->len = (uint16_t)n;
	out->csum = cs_page_csum(idx, snap);
	return CS_R_COMPRESSED;
}

int cs_decode(struct cs_codec *c, uint64_t idx, const struct cs_entry *e, void *page)
{
	uint64_t *w = page;

	switch (e->kind) {
	case CS_SAME:
		if (same_csum(idx, e->pattern) != e->csum)
			return -EBADMSG;
		for (unsigned int i = 0; i < CS_PAGE_SIZE / 8; i++)
			w[i] = e->pattern;
		return 0;
	case CS_LZ4:
		if (!e->blob || !e->len || e->len > CS_MAX_BLOB)
			return -EINVAL;
		if (LZ4_decompress_safe((const char *)e->blob, page, e->len, CS_PAGE_SIZE) !=
		    (int)CS_PAGE_SIZE)
			return -EINVAL;
		break;
	case CS_ZSTD: {
		size_t n;

		if (!e->blob || !e->len || e->len > CS_MAX_BLOB || !c->dctx)
			return -EINVAL;
		n = ZSTD_decompressDCtx(c->dctx, page, CS_PAGE_SIZE, e->blob, e->len);
		if (ZSTD_isError(n) || n != CS_PAGE_SIZE)
			return -EINVAL;
		break;
	}
	default:
		return -EINVAL;
	}
	return cs_page_csum(idx, page) == e->csum ? 0 : -EBADMSG;
}

void cs_entry_free(struct cs_entry *e)
{
	if (e->kind == CS_LZ4 || e->kind == CS_ZSTD)
		free(e->blob);
	memset(e, 0, sizeof(*e));
}

int cs_store_init(struct cs_store *s, uint64_t nr_pages)
{
	memset(s, 0, sizeof(*s));
	s->nr_pages = nr_pages;
	s->nr_chunks = (nr_pages + CS_CHUNK_PAGES - 1) / CS_CHUNK_PAGES;
	s->chunks = calloc(s->nr_chunks ? s->nr_chunks : 1, sizeof(*s->chunks));
	s->chunk_used = calloc(s->nr_chunks ? s->nr_chunks : 1, sizeof(*s->chunk_used));
	if (!s->chunks || !s->chunk_used) {
		free(s->chunks);
		free(s->chunk_used);
		s->chunks = NULL;
		s->chunk_used = NULL;
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	return 0;
}

/* Counters for an entry entering (+1) or leaving (-1) the store. Lock held. */
static void account(struct cs_store *s, const struct cs_entry *e, int dir)
{
	if (e->kind == CS_SAME) {
		s->st.same_pages += dir;
		if (!e->pattern)
			s->st.zero_pages += dir;
		return;
	}
	s->st.compressed_pages += dir;
	s->st.compressed_bytes += dir * (int64_t)e->len;
	s->st.alloc_bytes += dir * (int64_t)malloc_usable_size(e->blob);
}

/* Free chunk table @ch when it holds nothing any more. Lock held. */
static void chunk_put(struct cs_store *s, uint64_t ch)
{
	if (--s->chunk_used[ch])
		return;
	s->st.alloc_bytes -= malloc_usable_size(s->chunks[ch]);
	free(s->chunks[ch]);
	s->chunks[ch] = NULL;
}

void cs_store_destroy(struct cs_store *s)
{
	if (!s->chunks)
		return;
	for (uint64_t ch = 0; ch < s->nr_chunks; ch++) {
		if (!s->chunks[ch])
			continue;
		for (unsigned int i = 0; i < CS_CHUNK_PAGES; i++)
			cs_entry_free(&s->chunks[ch][i]);
		free(s->chunks[ch]);
	}
	free(s->chunks);
	free(s->chunk_used);
	pthread_mutex_destroy(&s->lock);
	memset(s, 0, sizeof(*s));
}

/* The slot of @idx, or NULL when its chunk has no table. Lock held. */
static struct cs_entry *slot(struct cs_store *s, uint64_t idx)
{
	struct cs_entry *t = s->chunks[idx / CS_CHUNK_PAGES];

	return t ? &t[idx % CS_CHUNK_PAGES] : NULL;
}

int cs_insert(struct cs_store *s, uint64_t idx, struct cs_entry *e)
{
	uint64_t ch = idx / CS_CHUNK_PAGES;
	struct cs_entry *sl;
	int ret = 0;

	if (idx >= s->nr_pages)
		return -ERANGE;
	if (e->kind == CS_EMPTY)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (!s->chunks[ch]) {
		s->chunks[ch] = calloc(CS_CHUNK_PAGES, sizeof(struct cs_entry));
		if (!s->chunks[ch]) {
			ret = -ENOMEM;
			goto out;
		}
		s->st.alloc_bytes += malloc_usable_size(s->chunks[ch]);
	}
	sl = &s->chunks[ch][idx % CS_CHUNK_PAGES];
	if (sl->kind != CS_EMPTY) {
		ret = -EEXIST;
		goto out;
	}
	*sl = *e;
	memset(e, 0, sizeof(*e));
	s->chunk_used[ch]++;
	account(s, sl, 1);
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

bool cs_take(struct cs_store *s, uint64_t idx, struct cs_entry *out)
{
	struct cs_entry *sl;
	bool found = false;

	memset(out, 0, sizeof(*out));
	if (idx >= s->nr_pages)
		return false;
	pthread_mutex_lock(&s->lock);
	sl = slot(s, idx);
	if (sl && sl->kind != CS_EMPTY) {
		*out = *sl;
		memset(sl, 0, sizeof(*sl));
		account(s, out, -1);
		chunk_put(s, idx / CS_CHUNK_PAGES);
		found = true;
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

bool cs_contains(struct cs_store *s, uint64_t idx)
{
	struct cs_entry *sl;
	bool found;

	if (idx >= s->nr_pages)
		return false;
	pthread_mutex_lock(&s->lock);
	sl = slot(s, idx);
	found = sl && sl->kind != CS_EMPTY;
	pthread_mutex_unlock(&s->lock);
	return found;
}

uint64_t cs_drop(struct cs_store *s, uint64_t first, uint64_t nr)
{
	uint64_t end, freed = 0;

	if (first >= s->nr_pages)
		return 0;
	end = nr > s->nr_pages - first ? s->nr_pages : first + nr;
	pthread_mutex_lock(&s->lock);
	for (uint64_t idx = first; idx < end; idx++) {
		struct cs_entry *sl = slot(s, idx);

		if (!sl) {
			/* Skip the rest of an untouched chunk. */
			idx = (idx / CS_CHUNK_PAGES + 1) * CS_CHUNK_PAGES - 1;
			continue;
		}
		if (sl->kind == CS_EMPTY)
			continue;
		account(s, sl, -1);
		cs_entry_free(sl);
		freed++;
		chunk_put(s, idx / CS_CHUNK_PAGES);
	}
	pthread_mutex_unlock(&s->lock);
	return freed;
}

void cs_get_stats(struct cs_store *s, struct cs_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	pthread_mutex_unlock(&s->lock);
}

uint64_t cs_first(struct cs_store *s, uint64_t from, enum cs_kind kind)
{
	uint64_t found = UINT64_MAX;

	pthread_mutex_lock(&s->lock);
	for (uint64_t idx = from; idx < s->nr_pages; idx++) {
		struct cs_entry *sl = slot(s, idx);

		if (!sl) {
			idx = (idx / CS_CHUNK_PAGES + 1) * CS_CHUNK_PAGES - 1;
			continue;
		}
		if (sl->kind != CS_EMPTY && (kind == CS_EMPTY || sl->kind == kind)) {
			found = idx;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

int cs_test_corrupt(struct cs_store *s, uint64_t idx, unsigned int byte)
{
	struct cs_entry *sl;
	int ret = -ENOENT;

	if (idx >= s->nr_pages)
		return -ENOENT;
	pthread_mutex_lock(&s->lock);
	sl = slot(s, idx);
	if (sl && sl->kind == CS_SAME) {
		sl->pattern ^= 1ULL << (byte % 64);
		ret = 0;
	} else if (sl && sl->kind != CS_EMPTY) {
		sl->blob[byte % sl->len] ^= 0x01;
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}
