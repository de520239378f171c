#!/bin/sh
# memtier_limit: --mem-limit keeps guest RAM resident under a ceiling without the guest's help.
# memtouch fills 64 MiB (a quarter zero, a quarter text, half incompressible) under
# --mem-limit 48M and keeps verifying it; the tier's background reclaim must run, pages must come
# back intact, and the guest must pass.
# firmware: memtouch
# timeout: 150
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
sock=$SCRATCH/ctl.sock
out=$SCRATCH/memtouch.out
log "vmm run --firmware memtouch.elf --mem 128 --mem-limit 48M --cmdline 'mib=64 passes=1 hold=12'"
"$VMM" run --firmware "$FW_DIR/memtouch.elf" --mem 128 --console stdio --control "$sock" \
	--mem-limit 48M --cmdline "mib=64 passes=1 hold=12" </dev/null >"$out" 2>"$SCRATCH/err" &
pid=$!
show() { sed 's/^/    | /' "$out"; sed 's/^/    ! /' "$SCRATCH/err"; }
field() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }
wait_for '^memtouch: verify 1' "$out" 90 || { kill "$pid"; wait "$pid"; show; fail "memtouch did not fill"; }
sleep 5
"$VMM" ctl -s "$sock" memory >"$SCRATCH/mem.txt" || { kill "$pid"; wait "$pid"; show; fail "memory.stats failed"; }
grep -E '^(resident_bytes|compressed\.(mem_limit|reclaim_runs|evicted|faults_stored))' "$SCRATCH/mem.txt" | sed 's/^/    /'
wait_until 120 sh -c "! kill -0 $pid 2>/dev/null" || { kill "$pid"; wait "$pid"; show; fail "memtouch did not finish"; }
wait "$pid"
rc=$?
show
assert_eq 0 "$rc" "vmm exit status"
assert_line "$out" "memtouch: PASS" "memtouch console"
assert_eq 50331648 "$(field "$SCRATCH/mem.txt" compressed.mem_limit_bytes)" "mem_limit_bytes"
[ "$(field "$SCRATCH/mem.txt" compressed.reclaim_runs)" -gt 0 ] || fail "the limit never started a reclaim"
[ "$(field "$SCRATCH/mem.txt" compressed.evicted_pages)" -gt 1000 ] || fail "the limit evicted almost nothing"
log "ok"
