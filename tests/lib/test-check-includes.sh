#!/usr/bin/env bash
# tests/lib/test-check-includes.sh: tests/lib/check-includes.sh passes on the tree as it is and
# fails, naming the file and the rule, on each planted violation (a copy of vmm/ and devices/,
# one violation at a time). Ends with "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
check=$here/check-includes.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-includes.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

fresh() {
	rm -rf "$tmp/tree"
	mkdir -p "$tmp/tree"
	cp -r "$root/vmm" "$root/devices" "$tmp/tree/"
}

# expect NAME WANT-RC PATTERN: run the check on the copy; exit status and output must match.
expect() {
	local out rc
	out=$("$check" "$tmp/tree" 2>&1)
	rc=$?
	if [ $rc = "$2" ] && grep -qE -- "$3" <<<"$out"; then
		passed=$((passed + 1))
		echo "ok   $1: $(grep -E -- "$3" <<<"$out" | head -n1)"
	else
		failed=$((failed + 1))
		echo "FAIL $1: status $rc (want $2), output should match '$3':"
		sed 's/^/    /' <<<"$out"
	fi
}

# plant FILE LINE: add an include line at the top of FILE in the copy.
plant() {
	sed -i "1i $2" "$tmp/tree/$1"
}

fresh
expect "the tree as it is" 0 'follow the layering rule'
plant devices/serial.c '#include "../vmm/vm.h"'
expect "a device includes vm.h" 1 'devices/serial.c includes vmm/vm.h: devices/ may include only'
fresh
plant devices/virtio.h '#include "../vmm/mem/memtier.h"'
expect "a device header includes the memory tier" 1 'devices/virtio.h includes vmm/mem/memtier.h'
fresh
plant vmm/mem/guest_mem.c '#include "../../devices/bus.h"'
expect "the memory layer includes a device" 1 'vmm/mem/guest_mem.c includes devices/bus.h: vmm/mem/'
fresh
plant vmm/boot/e820.c '#include "../vm.h"'
expect "boot includes vm.h" 1 'vmm/boot/e820.c includes vmm/vm.h: vmm/boot/'
fresh
plant vmm/util.c '#include "mem/guest_mem.h"'
expect "the base layer includes memory" 1 'vmm/util.c includes vmm/mem/guest_mem.h: the base layer'
fresh
plant vmm/vcpu.c '#include "control/protocol.h"'
expect "the core includes the control plane" 1 'vmm/vcpu.c includes vmm/control/protocol.h: only vmm/main.c'
fresh
mkdir -p "$tmp/tree/vmm/control"
echo '/* x */' >"$tmp/tree/vmm/control/server.h"
plant vmm/vm.c '#include "control/server.h"'
expect "the core includes vmm/control/" 1 'vmm/vm.c includes vmm/control/server.h'
fresh
plant devices/virtio_pci.c '#include "pci_priv.h"'
expect "a device includes the PCI internals" 1 'devices/virtio_pci.c includes devices/pci_priv.h: devices/pci_priv.h holds'
fresh
plant devices/bus.c '#include "no_such.h"'
expect "an include that does not resolve" 1 'devices/bus.c includes "no_such.h": no such file'
fresh
plant vmm/util.h '#include "loop.h"'
plant vmm/loop.h '#include "util.h"'
expect "an include cycle" 1 'include cycle'
fresh
plant vmm/machine.c '#include "control/protocol.h"'
expect "machine.c may include the control plane" 0 'follow the layering rule'

echo "$passed passed, $failed failed"
[ $failed = 0 ]
