#!/usr/bin/env bash
# tests/e2e/run.sh [SCENARIO.sh...]: the e2e tier: Linux guests booted by build/vmm.
#
# Runs every tests/e2e/*.sh scenario (except this file), or the ones given. Where this host's
# /dev/kvm boots Linux (tests/lib/detect-kvm.sh says "direct") each runs here with VMM=build/vmm,
# GUEST_DIR=build/guest; otherwise all run in one boot of the nested test host
# (tests/testhost/run.sh, with QEMU inside only if a scenario declares "# needs: qemu").
# A scenario may declare "# timeout: S" (default 300) and "# cost: S" (its usual run time, for
# E2E_SHARDS=N: that many test host boots side by side). Ends with "N passed, N failed".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}

scenarios=()
if [ $# -gt 0 ]; then
	for s in "$@"; do
		scenarios+=("$(readlink -f "$s")")
	done
else
	for s in "$here"/*.sh; do
		[ "$(basename "$s")" = run.sh ] || scenarios+=("$s")
	done
fi
[ ${#scenarios[@]} -gt 0 ] || { echo "e2e: no scenarios"; echo "0 passed, 0 failed"; exit 77; }

mode=$("$root/tests/lib/detect-kvm.sh")
echo "e2e: ${#scenarios[@]} scenario(s), mode $mode"

# testhost_run SCENARIO...: one boot of the nested test host running them.
testhost_run() {
	local opts=()
	grep -l '^# *needs:.*\bqemu\b' "$@" >/dev/null 2>&1 && opts+=(--with-qemu)
	"$root/tests/testhost/run.sh" "${opts[@]}" "$@"
}

if [ "$mode" = testhost ]; then
	shards=${E2E_SHARDS:-1}
	[ "$shards" -ge 1 ] 2>/dev/null || shards=1
	[ "$shards" -le ${#scenarios[@]} ] || shards=${#scenarios[@]}
	if [ "$shards" -le 1 ]; then
		testhost_run "${scenarios[@]}"
		exit
	fi
	# E2E_SHARDS=N: N test host boots side by side. Scenarios are dealt longest first (by their
	# "# cost: S" hint, else 5 s) to the shard with the least work so far.
	declare -a load members
	for ((i = 0; i < shards; i++)); do load[i]=0 members[i]=""; done
	while read -r cost s; do
		best=0
		for ((i = 1; i < shards; i++)); do [ "${load[i]}" -lt "${load[best]}" ] && best=$i; done
		load[best]=$((load[best] + cost))
		members[best]+="$s"$'\n'
	done < <(for s in "${scenarios[@]}"; do
		c=$(sed -n 's/^# *cost: *\([0-9][0-9]*\).*/\1/p' "$s" | head -n1)
		echo "${c:-5} $s"
	done | sort -rn -k1,1)
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
	pids=()
	for ((i = 0; i < shards; i++)); do
		mapfile -t list < <(printf '%s' "${members[i]}")
		echo "e2e: shard $((i + 1)) of $shards: ${#list[@]} scenario(s), ~${load[i]} s"
		testhost_run "${list[@]}" >"$out/$i.log" 2>&1 &
		pids+=($!)
	done
	rc=0
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	passed=0 failed=0 skipped=0
	for ((i = 0; i < shards; i++)); do
		grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$out/$i.log" || true
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out/$i.log" | tail -n1)
		[ -n "$line" ] || { failed=$((failed + 1)); continue; }
		read -r p f k <<<"$(sed -E 's/^([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \4/' <<<"$line")"
		passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${k:-0}))
	done
	echo "$passed passed, $failed failed$([ $skipped = 0 ] || echo ", $skipped skipped")"
	[ $failed = 0 ] && [ $rc = 0 ]
	exit
fi

# Direct mode: one scenario at a time on this host, each under its own deadline.
export VMM=$B/vmm GUEST_DIR=$B/guest TESTLIB=$root/tests/lib/scenario.sh TEST_MODE=direct
export QEMU=${QEMU-$(command -v qemu-system-x86_64 || true)}
# shellcheck source=../lib/run-direct.sh
. "$root/tests/lib/run-direct.sh"
run_direct "$B/e2e/logs" e2e 300 "${scenarios[@]}"
