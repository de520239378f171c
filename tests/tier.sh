#!/usr/bin/env bash
# tier.sh NAME CMD...: run one test tier, tee its output to build/tiers/NAME.log, print
# "tier NAME: PASS|FAIL|SKIP (T s)", and append "NAME passed failed skipped" to build/tiers.log.
#
# Counts come from the last "N passed, N failed[, N skipped]" line of the output, or Criterion's
# "Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N" line; otherwise the tier counts
# as one check. Exit status 77 means SKIP: reported, not a failure (this script then exits 0);
# any other status is passed through.
set -uo pipefail

[ $# -ge 2 ] || { echo "usage: tier.sh NAME CMD..." >&2; exit 2; }
name=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$root/build}
mkdir -p "$B/tiers"
log=$B/tiers/$name.log

start=$(date +%s.%N)
"$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
secs=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')

clean=$(sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$log" | tr -d '\r')
passed= failed= skipped=0
line=$(grep -E '^[[:space:]]*[0-9]+ passed, [0-9]+ failed' <<<"$clean" | tail -n1 || true)
if [ -n "$line" ]; then
	read -r passed failed skipped <<<"$(sed -E 's/^[[:space:]]*([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \4/' <<<"$line")"
	skipped=${skipped:-0}
else
	line=$(grep -E 'Synthesis: Tested: [0-9]+' <<<"$clean" | tail -n1 || true)
	if [ -n "$line" ]; then
		passed=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
		failed=$(($(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line") + $(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")))
	fi
fi

if [ $rc = 77 ]; then
	status=SKIP
	[ -n "$passed" ] || { passed=0 failed=0 skipped=1; }
elif [ $rc = 0 ]; then
	status=PASS
	[ -n "$passed" ] || { passed=1 failed=0; }
else
	status=FAIL
	[ -n "$passed" ] || passed=0
	# A failing tier is at least one failed check, even if its summary line said otherwise.
	[ -n "$failed" ] && [ "$failed" -gt 0 ] || failed=1
fi
echo "tier $name: $status ($secs s)"
echo "$name $passed $failed $skipped" >>"$B/tiers.log"
[ $rc = 77 ] && exit 0
exit $rc
