#!/bin/sh
# memtier_balloon_limit: --mem-limit holds against a guest that balloons its memory and then
# writes it again without a deflate (issue 12 item 3). The balloon firmware (mode=rewrite) fills
# 64 MiB, inflates it all, rewrites every ballooned page and idles; under --mem-limit 24M the tier
# must bring guest RAM resident + the store's heap (what the limit bounds, README) under 24 MiB,
# the VMM's RSS must follow, and every page must read back intact after the idle and the deflate.
# firmware: balloon
# timeout: 240
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
sock=$SCRATCH/ctl.sock
out=$SCRATCH/balloon.out
limit=$((24 * 1048576))
log "vmm run --firmware balloon.elf --mem 128 --mem-limit 24M --cmdline 'mode=rewrite mib=64 hold=40'"
"$VMM" run --firmware "$FW_DIR/balloon.elf" --mem 128 --console stdio --control "$sock" \
	--mem-limit 24M --cmdline "mode=rewrite mib=64 hold=40" </dev/null >"$out" 2>"$SCRATCH/err" &
pid=$!
show() { sed 's/^/    | /' "$out"; sed 's/^/    ! /' "$SCRATCH/err"; }
field() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }
wait_for '^balloon: rewrote' "$out" 90 || { kill "$pid"; wait "$pid"; show; fail "the guest did not rewrite its balloon"; }
rss_peak=$(rss_kib "$pid")
held=x
# The limit is checked every second; each pass runs under TCG (50-100x slower): up to 30 s.
i=0
while [ $i -lt 30 ]; do
	i=$((i + 1))
	sleep 1
	"$VMM" ctl -s "$sock" memory >"$SCRATCH/mem.txt" 2>/dev/null || continue
	res=$(field "$SCRATCH/mem.txt" resident_bytes)
	store=$(field "$SCRATCH/mem.txt" compressed.store_alloc_bytes)
	held=$((${res:-0} + ${store:-0}))
	[ "$held" -gt "$limit" ] || break
done
rss=$(rss_kib "$pid")
grep -E '^(resident_bytes|ballooned_pages|compressed\.(mem_limit_bytes|store_alloc_bytes|reclaim_runs|evicted_pages))' \
	"$SCRATCH/mem.txt" | sed 's/^/    /'
log "guest RAM resident + store heap: $held bytes (limit $limit) after ${i} s; vmm VmRSS $((rss / 1024)) MiB (at the rewrite: $((rss_peak / 1024)) MiB)"
wait_until 150 sh -c "! kill -0 $pid 2>/dev/null" || { kill "$pid"; wait "$pid"; show; fail "the guest did not finish"; }
wait "$pid"
rc=$?
show
assert_eq 0 "$rc" "vmm exit status"
assert_line "$out" "balloon: PASS" "balloon console"
assert_line "$out" "balloon: after idling 0 bad pages" "data after the idle"
[ "$held" != x ] || fail "memory.stats never answered"
assert_le "$held" "$limit" "guest RAM resident + store heap (bytes) under --mem-limit"
# VmRSS = what the limit bounds + the VMM itself (static binary, stacks, buffers: a few MiB).
assert_le "$((rss / 1024))" 40 "vmm VmRSS (MiB) with a 24 MiB limit on a 64 MiB rewritten balloon"
log "ok"
