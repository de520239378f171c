#!/bin/sh
# Without a command the guest runs a shell on the console; piped (or file) stdin reaches it from
# the first byte, even when all of it is written before the guest boots, and vmm exits with the
# shell's status. A script larger than the VMM's 4 KiB receive buffer checks back-pressure.
# cost: 20
# timeout: 180
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# The output "piped-42" does not occur in the input, so echoed input cannot fake it.
log "printf 'echo piped-\$((6*7))\\nexit 5\\n' | vmm run"
printf 'echo piped-$((6*7))\nexit 5\n' |
	run_with_timeout 60 "$VMM" run >"$SCRATCH/pipe.txt" 2>"$SCRATCH/pipe.err"
rc=$?
tr -d '\r' <"$SCRATCH/pipe.txt" | tail -n 3
sed 's/^/stderr: /' "$SCRATCH/pipe.err"
grep -q "piped-42" "$SCRATCH/pipe.txt" || fail "the piped command's output is missing"
assert_eq 5 "$rc" "exit status of the piped shell ('exit 5')"

# A file on stdin (not pollable: read as the guest drains the FIFO), 500 lines (about 9 KiB).
i=1
: >"$SCRATCH/script.sh"
while [ $i -le 500 ]; do
	echo "s=\$((s + $i)) # padding to make the line longer" >>"$SCRATCH/script.sh"
	i=$((i + 1))
done
printf 'echo "sum=$s"\nexit 6\n' >>"$SCRATCH/script.sh"
log "vmm run <script.sh ($(wc -c <"$SCRATCH/script.sh") bytes)"
run_with_timeout 120 "$VMM" run <"$SCRATCH/script.sh" >"$SCRATCH/file.txt" 2>"$SCRATCH/file.err"
rc=$?
tr -d '\r' <"$SCRATCH/file.txt" | tail -n 2
sed 's/^/stderr: /' "$SCRATCH/file.err"
grep -q "sum=125250" "$SCRATCH/file.txt" || fail "the script from a file did not run completely"
assert_eq 6 "$rc" "exit status of the shell reading a file"

log "the same script through a pipe"
# shellcheck disable=SC2002 # a pipe on purpose (not a file)
cat "$SCRATCH/script.sh" |
	run_with_timeout 120 "$VMM" run >"$SCRATCH/pipe2.txt" 2>"$SCRATCH/pipe2.err"
rc=$?
sed 's/^/stderr: /' "$SCRATCH/pipe2.err"
grep -q "sum=125250" "$SCRATCH/pipe2.txt" || fail "the script through a pipe did not run completely"
assert_eq 6 "$rc" "exit status of the shell reading a pipe"
log "ok"
