#!/usr/bin/env bash
# bench/slowdown/run.sh: what the memory autopilot costs a CPU- and memory-bound guest program:
# memhash (200 MiB, timed inside the guest) with --auto-balloon on and off, same guest, one run at
# a time by default (SLOWDOWN_MODE), in one boot of the nested test host (or directly where
# /dev/kvm boots Linux); see slowdown_bench.sh. Prints the median times and the slowdown; the log is build/bench/slowdown.log.
# Extra arguments go to the test host runner (e.g. --env SLOWDOWN_ROUNDS=5 --env SLOWDOWN_MODE=together).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
out=$B/bench
mkdir -p "$out"
log=$out/slowdown.log

mode=$("$root/tests/lib/detect-kvm.sh")
if [ "$mode" = direct ]; then
	"$root/tests/direct-run.sh" bench-slowdown 1500 "$here/slowdown_bench.sh" | tee "$log"
else
	"$root/tests/testhost/run.sh" --stream --quiet-results "$@" "$here/slowdown_bench.sh" | tee "$log"
fi
exit "${PIPESTATUS[0]}"
