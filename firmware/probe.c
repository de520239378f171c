/*
 * probe: the smallest proof that this /dev/kvm runs our firmware (tests/lib/detect-kvm.sh).
 * The runtime's uart_init() already made port writes from CPL3; main() prints one line and the
 * runtime writes PROBE_STATUS to the exit port. A /dev/kvm that ignores IOPL (PVM on some hosts)
 * faults at the first port write instead: the VMM then reports a triple fault and exits 1.
 */
#include "fw.h"

#define PROBE_STATUS 42

int main(void)
{
	printf("probe: port I/O from CPL3 works\n");
	return PROBE_STATUS;
}
