# shellcheck shell=bash
# tests/lib/run-direct.sh: the direct-mode scenario runner shared by tests/e2e/run.sh and
# tests/kvm/run.sh (sourced; bash). Each scenario runs here, one after another, in a scratch
# directory of its own under its own deadline ("# timeout: S" in the script, else the default).
#
#   run_direct LOGDIR PREFIX DEFAULT_TIMEOUT SCENARIO...
#
# The caller exports VMM, GUEST_DIR, TESTLIB, TEST_MODE (and QEMU). Prints one
# "=== scenario NAME: PASS|FAIL|SKIP (rc=N, S s) ===" line each (with the log's tail on a failure,
# the SKIP line on a skip), then "N passed, N failed[, N skipped]". Returns 0 when none failed and
# one passed, 77 when none failed and none passed (all skipped), 1 when any failed. Logs:
# LOGDIR/NAME.log.

run_direct() {
	local logs=$1 prefix=$2 deftime=$3
	shift 3
	local passed=0 failed=0 skipped=0 s name t scratch start rc secs st
	mkdir -p "$logs"
	for s in "$@"; do
		name=$(basename "$s" .sh)
		t=$(sed -n 's/^# *timeout: *\([0-9][0-9]*\).*/\1/p' "$s" | head -n1)
		t=${t:-$deftime}
		scratch=$(mktemp -d "${TMPDIR:-/tmp}/$prefix-$name.XXXXXX")
		start=$(date +%s.%N)
		set +e
		(cd "$scratch" && SCRATCH=$scratch exec timeout -k 10 "$t" sh "$s") \
			</dev/null >"$logs/$name.log" 2>&1
		rc=$?
		set -e
		secs=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
		case $rc in 0) st=PASS ;; 77) st=SKIP ;; *) st=FAIL ;; esac
		echo "=== scenario $name: $st (rc=$rc, $secs s) ==="
		if [ $st = FAIL ]; then
			[ $rc != 124 ] || echo "scenario $name hit its deadline of $t s and was killed"
			echo "--- last 30 lines of $logs/$name.log ---"
			tail -n 30 "$logs/$name.log" | sed 's/^/    /'
			echo "---"
		elif [ $st = SKIP ]; then
			grep -m1 '^SKIP:' "$logs/$name.log" | sed 's/^/    /' || true
		fi
		case $st in PASS) passed=$((passed + 1)) ;; SKIP) skipped=$((skipped + 1)) ;; *) failed=$((failed + 1)) ;; esac
		rm -rf "$scratch"
	done
	echo "$passed passed, $failed failed$([ $skipped = 0 ] || echo ", $skipped skipped")"
	[ $failed = 0 ] || return 1
	[ $passed -gt 0 ] || return 77
	return 0
}
