/*
 * The snapshot state file, DIR/state (issue 14; docs/snapshot.md):
 *
 *   header   magic "VMMSNAP\0" (8 bytes), u32 format version (SNAP_FORMAT_VERSION), u32 header
 *            bytes (SNAP_HEADER_SIZE), char build[64] (the writing binary's version, NUL
 *            padded; a snapshot restores only on the same build), u64 total file bytes
 *   sections one after the other, each:
 *            char tag[24] (NUL padded, e.g. "vcpu.0", "dev.virtio-blk.1"), u64 payload bytes,
 *            u32 CRC-32 (zlib) of tag, length and payload, u32 0, then the payload
 *   the last section is "end" with 0 bytes.
 *
 * Everything little-endian. The parser (snap_image_parse) trusts nothing: sizes are checked
 * against the file, every checksum before a section is handed out, tags are unique and
 * NUL-terminated, and the end section must be last (tests/fuzz/fuzz_snapshot.c).
 */
#ifndef VMM_SNAPSHOT_FORMAT_H
#define VMM_SNAPSHOT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "../state.h"

#define SNAP_MAGIC	    "VMMSNAP"
#define SNAP_FORMAT_VERSION 1
#define SNAP_HEADER_SIZE    88
#define SNAP_TAG_LEN	    24
#define SNAP_BUILD_LEN	    64
#define SNAP_MAX_SECTIONS   256
#define SNAP_MAX_FILE	    (64ULL << 20) /* a state file is device + vCPU state, not RAM */

/** snap_build_id() - this binary's build string as written to and expected in a header. */
const char *snap_build_id(void);

/* A state file being written: header first, sections appended, end section on finish. */
struct snap_writer {
	struct state_out out;
	int err;
};

/** snap_writer_init() - start a file with its header. */
void snap_writer_init(struct snap_writer *w);

/**
 * snap_add_section() - append section @tag (< SNAP_TAG_LEN bytes) with the bytes of @payload
 * (its error, if any, becomes the writer's). Returns 0 or -errno (-EINVAL: tag too long).
 */
int snap_add_section(struct snap_writer *w, const char *tag, const struct state_out *payload);

/**
 * snap_writer_close() - add the end section and the total length: w->out then holds the whole
 * file (w->out.len bytes; the caller frees it with state_out_free()). Returns 0 or -errno.
 */
int snap_writer_close(struct snap_writer *w);

/**
 * snap_writer_finish() - add the end section and write the whole file to @path atomically
 * (PATH.tmp, fsync, rename). Frees the writer. Returns 0 or -errno.
 */
int snap_writer_finish(struct snap_writer *w, const char *path);

struct snap_section {
	char tag[SNAP_TAG_LEN];
	const uint8_t *data; /* into the image's buffer */
	uint64_t len;
};

/* A parsed state file. */
struct snap_image {
	uint8_t *buf; /* the whole file, owned */
	size_t len;
	char build[SNAP_BUILD_LEN];
	unsigned int nr_sections;
	struct snap_section sections[SNAP_MAX_SECTIONS];
};

/**
 * snap_image_parse() - parse @len bytes at @data (copied) into @img. On error @why gets one
 * line for the user ("truncated", "bad checksum of section vcpu.0", "written by vmm X, this is
 * vmm Y", ...). Returns 0, -EINVAL (malformed or corrupt), -EPROTO (another format version or
 * build), -ENOMEM.
 */
int snap_image_parse(struct snap_image *img, const void *data, size_t len, char *why,
		     size_t why_len);

/**
 * snap_image_load() - read @path (at most SNAP_MAX_FILE bytes) and snap_image_parse() it.
 * Returns 0 or -errno (-ENOENT, -EFBIG, ... with @why set).
 */
int snap_image_load(struct snap_image *img, const char *path, char *why, size_t why_len);

/** snap_image_free() - release a parsed image. */
void snap_image_free(struct snap_image *img);

/**
 * snap_section_in() - a reader over section @tag's payload. Returns 0, or -ENOENT when the
 * image has no such section (the reader is then empty).
 */
int snap_section_in(const struct snap_image *img, const char *tag, struct state_in *in);

#endif
