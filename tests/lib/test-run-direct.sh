#!/usr/bin/env bash
# tests/lib/test-run-direct.sh: the direct-mode scenario runner (tests/lib/run-direct.sh) on fake
# scenarios: the status line of a passing, failing, skipping and deadline-killed scenario, the
# log's tail and the SKIP reason, the summary line, and its return codes (0 / 1 / 77).
# Ends with "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-run-direct.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
# shellcheck source=run-direct.sh
. "$here/run-direct.sh"

printf '#!/bin/sh\necho fine\n' >"$tmp/pass.sh"
printf '#!/bin/sh\necho "something broke"\nexit 3\n' >"$tmp/fail.sh"
printf '#!/bin/sh\necho "SKIP: no widget here"\nexit 77\n' >"$tmp/skip.sh"
printf '#!/bin/sh\n# timeout: 1\nsleep 30\n' >"$tmp/slow.sh"

# expect NAME WANT-RC PATTERN SCENARIO...: run them; return code and output must match.
expect() {
	local name=$1 want=$2 pat=$3 out rc
	shift 3
	out=$(set -e; run_direct "$tmp/logs" t 20 "$@" 2>&1)
	rc=$?
	if [ $rc = "$want" ] && grep -qE -- "$pat" <<<"$out"; then
		passed=$((passed + 1))
		echo "ok   $name: $(grep -E -- "$pat" <<<"$out" | head -n1)"
	else
		failed=$((failed + 1))
		echo "FAIL $name: status $rc (want $want), output should match '$pat':"
		sed 's/^/    /' <<<"$out"
	fi
}

expect "pass" 0 '^=== scenario pass: PASS \(rc=0, ' "$tmp/pass.sh"
expect "pass summary" 0 '^1 passed, 0 failed$' "$tmp/pass.sh"
expect "fail" 1 '^=== scenario fail: FAIL \(rc=3, ' "$tmp/pass.sh" "$tmp/fail.sh"
expect "fail shows the log tail" 1 '^    something broke$' "$tmp/fail.sh"
expect "fail summary" 1 '^1 passed, 1 failed$' "$tmp/pass.sh" "$tmp/fail.sh"
expect "skip alone is 77" 77 '^    SKIP: no widget here$' "$tmp/skip.sh"
expect "skip summary" 0 '^1 passed, 0 failed, 1 skipped$' "$tmp/pass.sh" "$tmp/skip.sh"
expect "deadline" 1 'scenario slow hit its deadline of 1 s and was killed' "$tmp/slow.sh"
expect "log written" 0 'PASS' "$tmp/pass.sh"
if grep -q fine "$tmp/logs/pass.log"; then
	passed=$((passed + 1)) && echo "ok   the log holds the scenario's output"
else
	failed=$((failed + 1)) && echo "FAIL no scenario output in $tmp/logs/pass.log"
fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
