#!/usr/bin/env bash
# summary.sh TIERS_LOG [TIER...]: one line per tier from build/tiers.log ("NAME passed failed
# skipped" lines written by tests/tier.sh), then "N passed, N failed[, N skipped]" over all tiers.
# Each TIER named that has no line (its build failed, so tier.sh never ran) counts as one failure.
# Exits non-zero if any tier failed or no tier ran.
set -euo pipefail

log=${1:-build/tiers.log}
shift || true
mkdir -p "$(dirname "$log")"
for t in "$@"; do
	[ -f "$log" ] && awk -v t="$t" '$1 == t { f = 1 } END { exit !f }' "$log" ||
		echo "$t 0 1 0 did-not-run" >>"$log"
done
if [ ! -s "$log" ]; then
	echo "summary: no tier results in $log (did the build fail before any tier ran?)"
	echo "0 passed, 1 failed"
	exit 1
fi
awk '
	NF >= 3 {
		s = ($4 == "" ? 0 : $4)
		st = ($3 > 0) ? "FAIL" : (($2 == 0 && s > 0) ? "SKIP" : "PASS")
		printf "tier %-12s %-4s %4d passed, %d failed%s%s\n", $1, st, $2, $3, (s > 0) ? ", " s " skipped" : "", ($5 == "did-not-run") ? " (did not run: its build failed)" : ""
		p += $2; f += $3; k += s
	}
	END {
		printf "%d passed, %d failed%s\n", p, f, (k > 0) ? ", " k " skipped" : ""
		exit (f > 0) ? 1 : 0
	}' "$log"
