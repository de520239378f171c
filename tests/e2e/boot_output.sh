#!/bin/sh
# The guest command's output reaches vmm's stdout completely, up to its last byte, before vmm
# exits: 8 runs on 2 vCPUs (where the tail of the output used to be lost about 1 run in 4).
# cost: 28
# timeout: 150
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

i=1
while [ $i -le 8 ]; do
	run_with_timeout 60 "$VMM" run --cpus 2 -- sh -c 'seq 1 300; printf last-line' \
		</dev/null >"$SCRATCH/out.$i" 2>"$SCRATCH/err.$i"
	rc=$?
	lines=$(wc -l <"$SCRATCH/out.$i")
	last=$(tail -c 9 "$SCRATCH/out.$i")
	log "run $i: status $rc, $lines lines, ends with '$last'"
	assert_eq 0 "$rc" "exit status of run $i"
	assert_eq 300 "$lines" "complete lines in run $i"
	assert_eq "last-line" "$last" "the last bytes of run $i (no newline after them)"
	i=$((i + 1))
done
log "ok: 8 of 8 runs complete"
