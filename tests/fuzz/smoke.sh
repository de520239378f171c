#!/usr/bin/env bash
# tests/fuzz/smoke.sh FUZZER...: run each libFuzzer binary for a short while (FUZZ_SECONDS, 10)
# on a temporary corpus seeded from tests/fuzz/corpus/NAME/ (if present). Fuzzers run NPROC at a
# time; crash/leak/timeout reproducers go to build/fuzz/artifacts/. Ends with
# "N passed, N failed"; exit 77 when given no fuzzers.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
secs=${FUZZ_SECONDS:-10}
jobs=${FUZZ_JOBS:-$(nproc)}

[ $# -gt 0 ] || { echo "fuzz: no fuzzers to run"; exit 77; }
art=$B/fuzz/artifacts
logs=$B/fuzz/logs
mkdir -p "$art" "$logs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run_one() { # BIN
	local bin=$1 name corpus rc
	name=$(basename "$bin")
	corpus=$tmp/$name
	mkdir -p "$corpus"
	[ ! -d "$here/corpus/$name" ] || cp -r "$here/corpus/$name/." "$corpus/"
	timeout -k 10 $((secs + 60)) "$bin" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$art/$name-" "$corpus" >"$logs/$name.log" 2>&1
	rc=$?
	echo "$rc" >"$tmp/$name.rc"
}

pids=()
for bin in "$@"; do
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin is not an executable" >&2
		mkdir -p "$tmp/$(basename "$bin")"
		echo 127 >"$tmp/$(basename "$bin").rc"
		continue
	fi
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n
	done
	echo "fuzz: $(basename "$bin") for $secs s"
	run_one "$bin" &
done
wait

passed=0 failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	rc=$(cat "$tmp/$name.rc" 2>/dev/null || echo 127)
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$name.log" 2>/dev/null | grep -o '[0-9]*$' || true)
	if [ "$rc" = 0 ]; then
		echo "fuzz $name: PASS (${execs:-?} runs)"
		passed=$((passed + 1))
	else
		echo "fuzz $name: FAIL (status $rc, log $logs/$name.log)"
		tail -n 30 "$logs/$name.log" 2>/dev/null | sed 's/^/    /'
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]
