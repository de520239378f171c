/* Boot-time CPU structures shared by every boot path: GDT + TSS and identity page tables. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../mem/guest_mem.h"
#include "../util.h"
#include "boot.h"

#define GDT_ENTRIES 7 /* null, null, code, data, user code, user data / TSS (2 slots) */
#define TSS_SEL	    0x28

/* Segment descriptor from base/limit/access/flags (Intel SDM vol. 3 §3.4.5). */
static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0x000f0000) << 32) | ((uint64_t)(base & 0x00ffffff) << 16) |
	       (limit & 0x0000ffff);
}

int boot_gdt(struct guest_mem *gm, struct boot_entry *e)
{
	uint64_t *gdt = gm_ptr(gm, BOOT_GDT_GPA, GDT_ENTRIES * 8);

	if (!gdt)
		return -EFAULT;
	memset(gdt, 0, GDT_ENTRIES * 8);
	gdt[2] = e->mode == BOOT_PROT32 ? gdt_entry(0xc09b, 0, 0xfffff)	 /* code32 */
					: gdt_entry(0xa09b, 0, 0xfffff); /* code64 */
	gdt[3] = e->mode == BOOT_USER64 ? gdt_entry(0xa0fb, 0, 0xfffff)	 /* user code64 */
					: gdt_entry(0xc093, 0, 0xfffff); /* data */
	gdt[4] = gdt_entry(0xc0f3, 0, 0xfffff);				 /* user data */
	gdt[5] = gdt_entry(0x008b, 0, 0x67);				 /* TSS, busy */
	gdt[6] = 0;							 /* TSS high half */
	e->gdt_gpa = BOOT_GDT_GPA;
	e->gdt_limit = GDT_ENTRIES * 8 - 1;
	return 0;
}

int boot_identity_map(struct guest_mem *gm, struct boot_entry *e, int user)
{
	uint64_t flags = 0x3 | (user ? 0x4 : 0); /* present, writable, (user) */
	uint64_t *pml4 = gm_ptr(gm, BOOT_PML4_GPA, 6 * GM_PAGE_SIZE);
	uint64_t *pdpt, *pd;

	if (!pml4)
		return -EFAULT;
	memset(pml4, 0, 6 * GM_PAGE_SIZE);
	pdpt = pml4 + 512;
	pd = pdpt + 512;
	pml4[0] = (BOOT_PML4_GPA + GM_PAGE_SIZE) | flags;
	for (unsigned int i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PML4_GPA + (2 + i) * GM_PAGE_SIZE) | flags;
	for (unsigned int i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | flags | 0x80; /* 2 MiB page */
	e->cr3 = BOOT_PML4_GPA;
	return 0;
}

int boot_read_file(const char *path, size_t max, uint8_t **buf, size_t *len)
{
	struct stat st;
	size_t done = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		ret = -E2BIG;
		goto out;
	}
	*buf = malloc(st.st_size ? st.st_size : 1);
	if (!*buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, *buf + done, st.st_size - done);

		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			free(*buf);
			*buf = NULL;
			goto out;
		}
		done += n;
	}
	*len = done;
out:
	close(fd);
	return ret;
}
