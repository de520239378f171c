#!/bin/sh
# memtier_race: the lost-write race of the compressed tier. The firmware race guest writes and
# verifies a 64 MiB working area continuously for 60 s (MEMTIER_RACE_SECS; each page carries its
# index and generation) while the host compresses and drops its RAM in a loop (vmm ctl memory
# reclaim 0; a round takes about 15 s under TCG): every write must survive, every page must come
# back intact.
# firmware: race
# timeout: 300
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
sock=$SCRATCH/ctl.sock
out=$SCRATCH/race.out
secs=${MEMTIER_RACE_SECS:-60}
log "vmm run --firmware race.elf --mem 256 --control ... --cmdline 'mib=64 secs=$secs'"
"$VMM" run --firmware "$FW_DIR/race.elf" --mem 256 --console stdio --control "$sock" \
	--cmdline "mib=64 secs=$secs" </dev/null >"$out" 2>"$SCRATCH/race.err" &
pid=$!
show() { sed 's/^/    | /' "$out"; sed 's/^/    ! /' "$SCRATCH/race.err"; }
wait_for '^race: 64 MiB' "$out" 60 || { kill "$pid"; wait "$pid"; show; fail "race did not start"; }
rounds=0 evicted=0
while kill -0 "$pid" 2>/dev/null; do
	run_with_timeout 120 "$VMM" ctl -s "$sock" memory reclaim 0 --timeout 30s \
		>"$SCRATCH/reclaim.txt" 2>&1 || break
	e=$(awk '$1 == "evicted_pages" { print $2 }' "$SCRATCH/reclaim.txt")
	evicted=$((evicted + ${e:-0}))
	rounds=$((rounds + 1))
	[ $rounds != 1 ] || sed 's/^/    reclaim 1: /' "$SCRATCH/reclaim.txt"
	"$VMM" ctl -s "$sock" memory >"$SCRATCH/mem.new" 2>/dev/null && mv "$SCRATCH/mem.new" "$SCRATCH/mem.txt"
done
wait "$pid"
rc=$?
show
log "$rounds reclaims evicted $evicted pages while the guest wrote"
[ -s "$SCRATCH/mem.txt" ] && grep -E '^compressed\.' "$SCRATCH/mem.txt" | sed 's/^/    /'
[ "$rc" = 0 ] || fail "vmm exit status $rc"
assert_line "$out" "race: PASS" "race console"
grep -q 'race: .* 0 mismatches$' "$out" || fail "the race guest saw mismatches"
[ "$rounds" -ge 3 ] || fail "only $rounds reclaims ran during the race"
[ "$evicted" -gt 1000 ] || fail "reclaim evicted only $evicted pages"
faults=$(awk '$1 == "compressed.faults_stored" { print $2 }' "$SCRATCH/mem.txt")
[ "${faults:-0}" -gt 100 ] || fail "only ${faults:-0} pages were faulted back in"
csum=$(awk '$1 == "compressed.checksum_errors" { print $2 }' "$SCRATCH/mem.txt")
assert_eq 0 "${csum:-x}" "checksum errors"
log "ok"
