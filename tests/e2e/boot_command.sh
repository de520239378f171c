#!/bin/sh
# The default guest runs the command given after "--" and vmm exits with its status.
# timeout: 150
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

out=$SCRATCH/out3.txt
log "vmm run --mem 256M -- sh -c 'echo hello-from-guest; exit 3'"
run_with_timeout 60 "$VMM" run --mem 256M -- sh -c 'echo hello-from-guest; exit 3' \
	</dev/null >"$out" 2>"$SCRATCH/err3.txt"
rc=$?
log "exit status $rc; guest output:"
cat "$out"
sed 's/^/stderr: /' "$SCRATCH/err3.txt"
assert_line "$out" "hello-from-guest" "guest output"
assert_eq 3 "$rc" "exit status of 'exit 3'"

log "vmm run --mem 256M -- true"
run_with_timeout 60 "$VMM" run --mem 256M -- true </dev/null >"$SCRATCH/out0.txt" 2>&1
rc=$?
cat "$SCRATCH/out0.txt"
assert_eq 0 "$rc" "exit status of 'true'"
log "ok"
