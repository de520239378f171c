/*
 * blkbench PATH randread|seqread|seqwrite BS_KIB QD SECONDS [direct]: a small fio stand-in for
 * bench/blk. QD threads each keep one request in flight (pread/pwrite), so the device sees a
 * queue depth of QD; randread picks BS-aligned offsets uniformly over the whole file or device,
 * seqread/seqwrite give each thread its own contiguous slice. "direct" opens with O_DIRECT.
 * Prints one line: "ops=N bytes=N secs=S iops=N mbps=N" (MB = 10^6 bytes). Exit 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_QD 256

enum mode { RANDREAD, SEQREAD, SEQWRITE };

static int fd;
static enum mode mode;
static uint64_t bs, size, deadline_ns;
static unsigned int qd;

struct worker {
	pthread_t t;
	unsigned int idx;
	uint64_t ops, bytes;
	int err;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	uint64_t nblk = size / bs, slice = nblk / qd, first = slice * w->idx, i = 0;
	uint64_t rnd = 0x9e3779b97f4a7c15ULL * (w->idx + 1);
	void *buf;

	if (posix_memalign(&buf, 4096, bs))
		return NULL;
	memset(buf, 0x5a, bs);
	while (now_ns() < deadline_ns) {
		uint64_t blk;
		ssize_t n;

		if (mode == RANDREAD) {
			rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
			blk = rnd % nblk;
		} else {
			blk = first + (i++ % (slice ? slice : 1));
		}
		n = mode == SEQWRITE ? pwrite(fd, buf, bs, blk * bs) : pread(fd, buf, bs, blk * bs);
		if (n != (ssize_t)bs) {
			w->err = n < 0 ? errno : EIO;
			break;
		}
		w->ops++;
		w->bytes += bs;
	}
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct worker w[MAX_QD];
	uint64_t ops = 0, bytes = 0, t0, secs;
	struct stat st;
	double el;

	if (argc < 6 || argc > 7)
		goto usage;
	if (!strcmp(argv[2], "randread"))
		mode = RANDREAD;
	else if (!strcmp(argv[2], "seqread"))
		mode = SEQREAD;
	else if (!strcmp(argv[2], "seqwrite"))
		mode = SEQWRITE;
	else
		goto usage;
	bs = strtoull(argv[3], NULL, 10) * 1024;
	qd = strtoul(argv[4], NULL, 10);
	secs = strtoull(argv[5], NULL, 10);
	if (!bs || !qd || qd > MAX_QD || !secs || (argc == 7 && strcmp(argv[6], "direct")))
		goto usage;
	fd = open(argv[1], (mode == SEQWRITE ? O_RDWR : O_RDONLY) | (argc == 7 ? O_DIRECT : 0));
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "blkbench: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	size = st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0)
		size = 0;
	if (size < bs * qd) {
		fprintf(stderr, "blkbench: %s: smaller than QD blocks\n", argv[1]);
		return 1;
	}
	t0 = now_ns();
	deadline_ns = t0 + secs * 1000000000ULL;
	for (unsigned int i = 0; i < qd; i++) {
		w[i].idx = i;
		pthread_create(&w[i].t, NULL, run, &w[i]);
	}
	for (unsigned int i = 0; i < qd; i++) {
		pthread_join(w[i].t, NULL);
		ops += w[i].ops;
		bytes += w[i].bytes;
		if (w[i].err) {
			fprintf(stderr, "blkbench: I/O error: %s\n", strerror(w[i].err));
			return 1;
		}
	}
	if (mode == SEQWRITE)
		fdatasync(fd);
	el = (now_ns() - t0) / 1e9;
	printf("ops=%llu bytes=%llu secs=%.3f iops=%.0f mbps=%.1f\n", (unsigned long long)ops,
	       (unsigned long long)bytes, el, ops / el, bytes / el / 1e6);
	return 0;
usage:
	fprintf(stderr,
		"usage: blkbench PATH randread|seqread|seqwrite BS_KIB QD SECONDS [direct]\n");
	return 2;
}
