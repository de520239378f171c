#!/bin/sh
# A guest kernel panic ends vmm with status 1 and a message on stderr (the guest's own panic text
# stays on its console). The panic is forced with SysRq 'c' (CONFIG_MAGIC_SYSRQ).
# timeout: 120
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

out=$SCRATCH/out.txt err=$SCRATCH/err.txt
log "vmm run -- sh -c 'echo c > /proc/sysrq-trigger'"
run_with_timeout 90 "$VMM" run -- sh -c 'echo c > /proc/sysrq-trigger; echo still-alive' \
	</dev/null >"$out" 2>"$err"
rc=$?
log "exit status $rc; last console lines:"
tr -d '\r' <"$out" | tail -n 5
sed 's/^/stderr: /' "$err"
[ "$rc" != 124 ] || fail "vmm did not stop after the guest panicked"
assert_eq 1 "$rc" "exit status after a guest kernel panic"
grep -q "Kernel panic - not syncing" "$out" || fail "no kernel panic message on the guest console"
grep -q "still-alive" "$out" && fail "the command went on after the panic"
grep -q "guest kernel panic" "$err" || fail "vmm did not say 'guest kernel panic' on stderr"
log "ok: panic -> status 1 with a message"
