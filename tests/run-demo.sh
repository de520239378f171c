#!/usr/bin/env bash
# tests/run-demo.sh (make run): boot the default guest with build/vmm and run a short demo in it.
# Directly where /dev/kvm boots Linux, else inside the nested test host (tests/detect-kvm.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$root/build}
demo='uname -a; grep MemTotal /proc/meminfo; nproc; echo demo-ok'

mode=$("$root/tests/detect-kvm.sh")
if [ "$mode" = direct ]; then
	echo "run: direct mode: $B/vmm run -- sh -c '$demo'"
	exec "$B/vmm" run -- sh -c "$demo"
fi
echo "run: test host mode (no hardware KVM here): booting the nested test host, then build/vmm inside it"
exec "$root/tests/testhost/run.sh" --stream --quiet-results --env "DEMO_CMD=$demo" \
	"$root/tests/testhost/demo.sh"
