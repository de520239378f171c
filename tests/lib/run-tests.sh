#!/usr/bin/env bash
# tests/lib/run-tests.sh: run every tests/lib/test-*.sh (the harness's own tests, no KVM) and add
# up their "N passed, N failed" lines into one.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0
for t in "$here"/test-*.sh; do
	echo "== $(basename "$t")"
	out=$("$t" 2>&1)
	rc=$?
	echo "$out"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
	p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
	f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
	[ -n "$line" ] || { p=0 f=1; }
	[ $rc = 0 ] || [ "${f:-0}" -gt 0 ] || f=1
	passed=$((passed + p)) failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]
