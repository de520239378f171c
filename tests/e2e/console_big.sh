#!/bin/sh
# A job's stdio through virtio-console (vmm run -- CMD, the default without a terminal):
#   1. 3 MiB of deterministic output plus a binary tail (CR, LF, NUL, 0xff, no final newline)
#      arrive byte-exact on vmm's stdout (sha256), stderr separately (a job reopening
#      /dev/stderr works: tee), and the exit status passes through;
#   2. piped stdin reaches the command byte-exact and ends (EOF) where the input ends;
#   3. a reader that does not read for 3 s (back-pressure: the guest waits, nothing is dropped)
#      still gets every byte;
#   4. --vconsole off keeps the job on the serial console, status and output as before.
# cost: 90
# timeout: 400
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# The same busybox makes the expected bytes here and the real ones in the guest.
job='seq 1 500000 | head -c 3145728; printf "\r\n\000\377tail-no-newline"'
sh -c "$job" >"$SCRATCH/expected"
want=$(sha256sum <"$SCRATCH/expected" | cut -d' ' -f1)
log "expected: $(wc -c <"$SCRATCH/expected") bytes, sha256 $want"

t0=$(now_ms)
run_with_timeout 120 "$VMM" run -- sh -c "$job; echo to-stderr >&2; echo tee-works | tee /dev/stderr >/dev/null; exit 7" \
	</dev/null >"$SCRATCH/out" 2>"$SCRATCH/err"
rc=$?
t1=$(now_ms)
got=$(sha256sum <"$SCRATCH/out" | cut -d' ' -f1)
log "3 MiB job: status $rc in $((t1 - t0)) ms, $(wc -c <"$SCRATCH/out") bytes, sha256 $got"
sed 's/^/stderr: /' "$SCRATCH/err"
assert_eq 7 "$rc" "exit status of the job"
assert_eq "$want" "$got" "sha256 of the job's stdout"
assert_line "$SCRATCH/err" "to-stderr" "the job's stderr"
assert_line "$SCRATCH/err" "tee-works" "tee /dev/stderr in the job"

log "stdin: seq 1 30000 | vmm run -- sh -c 'sha256sum; echo eof-seen'"
seq 1 30000 >"$SCRATCH/in"
want_in=$(sha256sum <"$SCRATCH/in" | cut -d' ' -f1)
# shellcheck disable=SC2002 # a pipe on purpose (not a file)
cat "$SCRATCH/in" | run_with_timeout 120 "$VMM" run -- sh -c 'sha256sum; echo eof-seen' \
	>"$SCRATCH/in.out" 2>"$SCRATCH/in.err"
rc=$?
cat "$SCRATCH/in.out"
sed 's/^/stderr: /' "$SCRATCH/in.err"
assert_eq 0 "$rc" "exit status of the stdin job"
assert_eq "$want_in  -" "$(head -n 1 "$SCRATCH/in.out")" "sha256 of the stdin the job read"
assert_line "$SCRATCH/in.out" "eof-seen" "the job saw the end of its input"

log "back-pressure: the reader sleeps 3 s before it reads"
run_with_timeout 120 sh -c "'$VMM' run -- sh -c '$job' </dev/null 2>'$SCRATCH/bp.err' |
	{ sleep 3; sha256sum; } >'$SCRATCH/bp.sum'"
rc=$?
sed 's/^/stderr: /' "$SCRATCH/bp.err"
assert_eq 0 "$rc" "exit status with a slow reader"
assert_eq "$want  -" "$(cat "$SCRATCH/bp.sum")" "sha256 through a slow reader"

# For the record (no assertion): what the ports cost a job that prints nothing.
for v in on off on off; do
	t0=$(now_ms)
	run_with_timeout 60 "$VMM" run --vconsole $v -- true </dev/null >/dev/null 2>&1
	log "vmm run --vconsole $v -- true: status $?, $(($(now_ms) - t0)) ms"
done

log "--vconsole off: the job on the serial console"
run_with_timeout 60 "$VMM" run --vconsole off -- sh -c 'echo via-16550; exit 4' \
	</dev/null >"$SCRATCH/off.out" 2>"$SCRATCH/off.err"
rc=$?
sed 's/^/stderr: /' "$SCRATCH/off.err"
assert_eq 4 "$rc" "exit status with --vconsole off"
assert_line "$SCRATCH/off.out" "via-16550" "the job's output on the serial console"
log "ok"
