/* The snapshot state file: writer and untrusting parser (format.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../util.h"
#include "format.h"

#ifndef VMM_BUILD_ID
#define VMM_BUILD_ID "unknown"
#endif

#define SECTION_HDR 40 /* tag + u64 len + u32 crc + u32 pad */

const char *snap_build_id(void)
{
	return "vmm " VMM_BUILD_ID " state-1";
}

/* CRC-32 of a section: its tag and length (the first 32 header bytes), then its payload. */
static uint32_t crc(const uint8_t *hdr, const void *p, uint64_t n)
{
	uLong c = crc32(crc32(0L, Z_NULL, 0), hdr, SNAP_TAG_LEN + 8);
	const uint8_t *b = p;

	while (n) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;

		c = crc32(c, b, chunk);
		b += chunk;
		n -= chunk;
	}
	return (uint32_t)c;
}

void snap_writer_init(struct snap_writer *w)
{
	char build[SNAP_BUILD_LEN] = {0};

	memset(w, 0, sizeof(*w));
	state_out_init(&w->out);
	state_put(&w->out, SNAP_MAGIC, 8); /* with its NUL */
	state_put_u32(&w->out, SNAP_FORMAT_VERSION);
	state_put_u32(&w->out, SNAP_HEADER_SIZE);
	snprintf(build, sizeof(build), "%s", snap_build_id());
	state_put(&w->out, build, sizeof(build));
	state_put_u64(&w->out, 0); /* total bytes, patched by finish */
}

int snap_add_section(struct snap_writer *w, const char *tag, const struct state_out *payload)
{
	char t[SNAP_TAG_LEN] = {0};

	if (w->err)
		return w->err;
	if (strlen(tag) >= SNAP_TAG_LEN || !tag[0])
		return w->err = -EINVAL;
	if (payload && payload->err)
		return w->err = payload->err;
	memcpy(t, tag, strlen(tag));
	state_put(&w->out, t, sizeof(t));
	state_put_u64(&w->out, payload ? payload->len : 0);
	if (w->out.err)
		return w->err = w->out.err;
	state_put_u32(&w->out, crc(w->out.data + w->out.len - SNAP_TAG_LEN - 8,
				   payload ? payload->data : NULL, payload ? payload->len : 0));
	state_put_u32(&w->out, 0);
	if (payload)
		state_put(&w->out, payload->data, payload->len);
	return w->err = w->out.err;
}

int snap_writer_close(struct snap_writer *w)
{
	snap_add_section(w, "end", NULL);
	if (w->err)
		return w->err;
	for (int i = 0; i < 8; i++)
		w->out.data[80 + i] = (uint8_t)((uint64_t)w->out.len >> (8 * i));
	return 0;
}

int snap_writer_finish(struct snap_writer *w, const char *path)
{
	char tmp[4096];
	int fd, ret;
	size_t off = 0;

	ret = snap_writer_close(w);
	if (ret)
		goto out;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		ret = -ENAMETOOLONG;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	while (off < w->out.len) {
		ssize_t n = write(fd, w->out.data + off, w->out.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
out:
	state_out_free(&w->out);
	return ret;
}

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int snap_image_parse(struct snap_image *img, const void *data, size_t len, char *why,
		     size_t why_len)
{
	const uint8_t *p;
	size_t off;
	bool ended = false;

	memset(img, 0, sizeof(*img));
	snprintf(why, why_len, "malformed");
	if (len < SNAP_HEADER_SIZE) {
		snprintf(why, why_len, "truncated (%zu bytes, no complete header)", len);
		return -EINVAL;
	}
	p = data;
	if (memcmp(p, SNAP_MAGIC, 8) != 0) {
		snprintf(why, why_len, "not a vmm snapshot (bad magic)");
		return -EINVAL;
	}
	if (le(p + 8, 4) != SNAP_FORMAT_VERSION || le(p + 12, 4) != SNAP_HEADER_SIZE) {
		snprintf(why, why_len, "snapshot format version %u, this vmm reads version %u",
			 (unsigned)le(p + 8, 4), (unsigned)SNAP_FORMAT_VERSION);
		return -EPROTO;
	}
	memcpy(img->build, p + 16, SNAP_BUILD_LEN);
	if (img->build[SNAP_BUILD_LEN - 1] != '\0') {
		snprintf(why, why_len, "malformed header (build string not terminated)");
		return -EINVAL;
	}
	if (le(p + 80, 8) != len) {
		snprintf(why, why_len,
			 "truncated or extended: header says %llu bytes, file has %zu",
			 (unsigned long long)le(p + 80, 8), len);
		return -EINVAL;
	}
	if (strcmp(img->build, snap_build_id()) != 0) {
		snprintf(why, why_len, "written by \"%s\", this is \"%s\"", img->build,
			 snap_build_id());
		return -EPROTO;
	}
	img->buf = malloc(len);
	if (!img->buf)
		return -ENOMEM;
	memcpy(img->buf, data, len);
	img->len = len;
	off = SNAP_HEADER_SIZE;
	while (off < len) {
		const uint8_t *h = img->buf + off;
		struct snap_section *s;
		uint64_t n;

		if (ended || len - off < SECTION_HDR) {
			snprintf(why, why_len, "%s at byte %zu",
				 ended ? "data after the end section" : "truncated section header",
				 off);
			goto bad;
		}
		n = le(h + SNAP_TAG_LEN, 8);
		if (memchr(h, '\0', SNAP_TAG_LEN) == NULL || h[0] == '\0') {
			snprintf(why, why_len, "malformed section tag at byte %zu", off);
			goto bad;
		}
		if (n > len - off - SECTION_HDR) {
			snprintf(why, why_len, "section %.*s truncated", SNAP_TAG_LEN, (char *)h);
			goto bad;
		}
		if (crc(h, h + SECTION_HDR, n) != (uint32_t)le(h + SNAP_TAG_LEN + 8, 4)) {
			snprintf(why, why_len, "bad checksum of section %s", (char *)h);
			goto bad;
		}
		if (strcmp((const char *)h, "end") == 0) {
			ended = true;
		} else {
			struct state_in dup;

			if (img->nr_sections == SNAP_MAX_SECTIONS) {
				snprintf(why, why_len, "more than %d sections", SNAP_MAX_SECTIONS);
				goto bad;
			}
			if (snap_section_in(img, (const char *)h, &dup) == 0) {
				snprintf(why, why_len, "section %s twice", (char *)h);
				goto bad;
			}
			s = &img->sections[img->nr_sections++];
			memcpy(s->tag, h, SNAP_TAG_LEN);
			s->data = h + SECTION_HDR;
			s->len = n;
		}
		off += SECTION_HDR + n;
	}
	if (!ended) {
		snprintf(why, why_len, "truncated (no end section)");
		goto bad;
	}
	why[0] = '\0';
	return 0;
bad:
	snap_image_free(img);
	return -EINVAL;
}

int snap_image_load(struct snap_image *img, const char *path, char *why, size_t why_len)
{
	struct stat st;
	uint8_t *buf;
	size_t off = 0;
	int fd, ret;

	memset(img, 0, sizeof(*img));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > SNAP_MAX_FILE) {
		snprintf(why, why_len, "%s: not a regular file of at most %llu MiB", path,
			 SNAP_MAX_FILE >> 20);
		close(fd);
		return -EFBIG;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	ret = snap_image_parse(img, buf, off, why, why_len);
	free(buf);
	return ret;
}

void snap_image_free(struct snap_image *img)
{
	free(img->buf);
	memset(img, 0, sizeof(*img));
}

int snap_section_in(const struct snap_image *img, const char *tag, struct state_in *in)
{
	for (unsigned int i = 0; i < img->nr_sections; i++) {
		if (strncmp(img->sections[i].tag, tag, SNAP_TAG_LEN) == 0) {
			state_in_init(in, img->sections[i].data, img->sections[i].len);
			return 0;
		}
	}
	state_in_init(in, NULL, 0);
	return -ENOENT;
}
