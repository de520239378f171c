#!/bin/sh
# memtier_reclaim: the compressed tier on a Linux guest. A 512 MiB guest fills about 330 MiB with
# a realistic mix (zero pages, English-like text, random data, identical pages, and 24 copies of
# the busybox binary in tmpfs) and idles; `vmm ctl memory reclaim 128M` must bring guest RAM
# resident in host memory to at most 128 MiB plus the part that does not compress; then the guest
# verifies every byte it wrote (memfill checksums, sha256sum of the binaries): zero mismatches.
# cost: 55
# timeout: 900
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm
need_kvm

sock=$SCRATCH/ctl.sock
out=$SCRATCH/guest.out
err=$SCRATCH/vmm.err
# The guest side (busybox sh). Handshakes over the console: READY -> (host reclaims) -> go ->
# VERIFIED -> (host reads the stats) -> go -> exit.
guest='cd /tmp
memfill -m 64 -p zero -w >z.log 2>&1 & a=$!
memfill -m 128 -p text -w >t.log 2>&1 & b=$!
memfill -m 48 -p random -w >r.log 2>&1 & c=$!
memfill -m 32 -p dup -w >d.log 2>&1 & d=$!
i=0; while [ $i -lt 24 ]; do cat /bin/busybox >bin.$i; i=$((i+1)); done
sha256sum bin.* >sums
while [ $(cat z.log t.log r.log d.log | grep -c "memfill: ready") -lt 4 ]; do sleep 1; done
grep MemFree /proc/meminfo
echo MEMTIER-READY
read x
kill -USR1 $a $b $c $d; wait $a; wait $b; wait $c; wait $d
cat z.log t.log r.log d.log
sha256sum -c sums >/dev/null && echo BINARIES-OK
echo MEMTIER-VERIFIED
read x
echo MEMTIER-DONE'

field() { # FILE NAME: the value of NAME in `vmm ctl` human output
	awk -v k="$2" '$1 == k { print $2; exit }' "$1"
}
show() { sed 's/^/    | /' "$out"; sed 's/^/    ! /' "$err"; }
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; show; fail "$*"; }

log "test host THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo none)"
mkfifo "$SCRATCH/in"
log "vmm run --mem 512M --control ... -- sh -c '<fill, wait, verify>'"
"$VMM" run --mem 512M --control "$sock" -- sh -c "$guest" <"$SCRATCH/in" >"$out" 2>"$err" &
pid=$!
exec 3>"$SCRATCH/in"
wait_for MEMTIER-READY "$out" 600 || stop "the guest did not fill its memory"
log "guest filled and idle"
"$VMM" ctl -s "$sock" memory >"$SCRATCH/before.txt" || stop "memory.stats failed"
before=$(field "$SCRATCH/before.txt" resident_bytes)
log "guest RAM resident before: $((before / 1048576)) MiB"
run_with_timeout 700 "$VMM" ctl -s "$sock" memory reclaim 128M --timeout 600s \
	>"$SCRATCH/reclaim.txt" 2>&1 || { cat "$SCRATCH/reclaim.txt"; stop "memory reclaim failed"; }
sed 's/^/    reclaim: /' "$SCRATCH/reclaim.txt"
after=$(field "$SCRATCH/reclaim.txt" resident_bytes)
incomp=$(field "$SCRATCH/reclaim.txt" incompressible_resident_bytes)
limit=$((128 * 1048576 + incomp))
log "resident after reclaim: $((after / 1048576)) MiB; allowed: 128 MiB + $((incomp / 1048576)) MiB incompressible"
[ "$after" -le "$limit" ] || stop "resident $after bytes > 128 MiB + incompressible $incomp"
[ "$after" -lt "$before" ] || stop "nothing was reclaimed"
"$VMM" ctl -s "$sock" memory >"$SCRATCH/stored.txt"
echo go >&3
wait_for MEMTIER-VERIFIED "$out" 600 || stop "the guest did not verify"
"$VMM" ctl -s "$sock" memory >"$SCRATCH/verified.txt"
grep -E '^(resident_bytes|compressed\.)' "$SCRATCH/verified.txt" | sed 's/^/    after verify: /'
echo go >&3
wait_until 120 sh -c "! kill -0 $pid 2>/dev/null" || stop "the guest did not exit"
wait "$pid"
rc=$?
exec 3>&-
show
assert_eq 0 "$rc" "vmm exit status"
assert_line "$out" MEMTIER-DONE "guest end marker"
assert_line "$out" BINARIES-OK "sha256sum -c of the binaries"
ok=$(grep -c 'memfill: result=ok .*mismatches=0 ' "$out")
assert_eq 4 "$ok" "memfill processes that verified every page"
faults=$(field "$SCRATCH/verified.txt" compressed.faults_stored)
evicted=$(field "$SCRATCH/reclaim.txt" evicted_pages)
log "evicted $evicted pages; $faults faulted back in while the guest verified"
[ "${faults:-0}" -gt $((evicted / 2)) ] || fail "only ${faults:-0} of $evicted pages came back through the tier"
assert_eq 0 "$(field "$SCRATCH/verified.txt" compressed.checksum_errors)" "checksum errors"
log "ok"
