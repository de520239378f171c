/*
 * console: a guest that keeps the serial console busy, for the tests of console output that
 * nobody reads (tests/kvm/console.sh). Prints lines=N numbered 97-byte lines (0, the default:
 * forever), then "console: PASS" and exits 0. With nowait=1 each byte goes straight to the THR
 * without waiting for THRE (one port write per byte: floods as fast as the VMM takes it, and
 * what a full output buffer cannot take is dropped); else through printf, which waits for THRE
 * before each byte.
 */
#include "fw.h"

#define LINE_FMT                                                                            \
	"console: line %08u abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" \
	"-----------\n"

int main(void)
{
	uint64_t lines = fw_arg_u64("lines", 0);
	bool nowait = fw_arg_u64("nowait", 0) != 0;
	char line[128];

	for (uint64_t i = 0; !lines || i < lines; i++) {
		if (nowait) {
			int n = snprintf(line, sizeof(line), LINE_FMT, (unsigned int)i);

			for (int j = 0; j < n; j++)
				outb(FW_COM1, (uint8_t)line[j]);
		} else {
			printf(LINE_FMT, (unsigned int)i);
		}
	}
	printf("console: PASS\n");
	return 0;
}
