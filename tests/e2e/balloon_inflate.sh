#!/bin/sh
# virtio-balloon inflate and deflate with the real Linux driver: the guest (256 MiB) fills and
# frees 200 MiB; `vmm ctl balloon set --guest 64M --wait` must bring `actual` to the target and
# the VMM's RSS down by at least 150 MiB; `balloon set 0 --wait` must bring `actual` back to 0,
# after which the guest allocates (and verifies) 200 MiB again.
# Free page reporting is off here so the RSS drop is the balloon's alone (balloon_reporting.sh
# covers reporting).
# cost: 14
# timeout: 300
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# The guest: fill+verify+free 200 MiB, so that at most ~30 MiB of its RAM was never touched and
# any 192 MiB the driver takes held at least 160 MiB the host had (with 160 MiB, 71 MiB were
# untouched, and a run whose driver took 44 MiB of them fell by 148 MiB), then follow the balloon through MemFree (ballooned pages
# are allocated by the driver), then allocate 200 MiB. Every wait is bounded.
# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='mf() { awk "/^MemFree:/ { print int(\$2 / 1024) }" /proc/meminfo; }
waitmf() { n=0; while ! [ "$(mf)" "$1" "$2" ]; do sleep 0.2; n=$((n + 1)); [ $n -lt 900 ] || { echo "@@timeout MemFree $(mf) $1 $2"; exit 20; }; done; }
memfill -m 200 -p random || exit 10
echo "@@filled memfree=$(mf)"
waitmf -lt 96
echo "@@inflated memfree=$(mf)"
waitmf -gt 180
echo "@@deflated memfree=$(mf)"
memfill -m 200 -p random || exit 11
echo "@@alloc200 ok"'

log "vmm run --mem 256M --balloon free-page-reporting=off (guest fills and frees 200 MiB)"
bg_vmm_start "$gcmd" --mem 256M --balloon free-page-reporting=off
wait_for '^@@filled' "$con" 200 || { dump; fail "the guest did not fill and free 200 MiB"; }
tr -d '\r' <"$con" | grep -E '^(memfill|@@)' | sed 's/^/    | /'

rss0=$(rss_mib "$vpid")
ctl --json memory >"$SCRATCH/mem0.json" || fail "vmm ctl memory failed"
log "VMM RSS $rss0 MiB; guest RAM resident $(($(jnum resident_bytes <"$SCRATCH/mem0.json") / 1048576)) MiB"
[ "$rss0" -ge 170 ] || fail "VMM RSS $rss0 MiB after the guest filled 200 MiB: expected >= 170"

log "vmm ctl balloon set --guest 64M --wait --timeout 60s"
t0=$(now_ms)
ctl balloon set --guest 64M --wait --timeout 60s || { dump; fail "balloon set --guest 64M --wait failed"; }
t1=$(now_ms)
ctl --json balloon get >"$SCRATCH/get1.json" || fail "balloon get failed"
cat "$SCRATCH/get1.json"
target=$(jnum target_pages <"$SCRATCH/get1.json")
actual=$(jnum actual_pages <"$SCRATCH/get1.json")
assert_eq $((192 * 256)) "$target" "target_pages"
assert_eq "$target" "$actual" "actual_pages after --wait"

# The discard happens before the buffer returns, so the RSS is down by the time actual moved;
# poll briefly anyway (RSS accounting is not synchronous with madvise on every kernel).
drop_ok() { [ $((rss0 - $(rss_mib "$vpid"))) -ge 150 ]; }
wait_until 10 drop_ok
rss1=$(rss_mib "$vpid")
ctl --json memory >"$SCRATCH/mem1.json" || fail "vmm ctl memory failed"
log "inflated to 192 MiB in $((t1 - t0)) ms; VMM RSS $rss0 -> $rss1 MiB (-$((rss0 - rss1)) MiB);" \
	"ballooned $(($(jnum ballooned_bytes <"$SCRATCH/mem1.json") / 1048576)) MiB in" \
	"$(jnum discard_calls <"$SCRATCH/mem1.json") discard calls"
[ $((rss0 - rss1)) -ge 150 ] || fail "VMM RSS fell by $((rss0 - rss1)) MiB, expected >= 150"
wait_for '^@@inflated' "$con" 30 || { dump; fail "the guest did not see its memory ballooned"; }

log "vmm ctl balloon set 0 --wait --timeout 60s"
t0=$(now_ms)
ctl balloon set 0 --wait --timeout 60s || { dump; fail "balloon set 0 --wait failed"; }
t1=$(now_ms)
ctl --json balloon get >"$SCRATCH/get2.json" || fail "balloon get failed"
cat "$SCRATCH/get2.json"
assert_eq 0 "$(jnum actual_pages <"$SCRATCH/get2.json")" "actual_pages after deflating"
log "deflated to 0 in $((t1 - t0)) ms"

wait_for '^@@alloc200 ok' "$con" 200 || { dump; fail "the guest could not allocate 200 MiB again"; }
wait_until 60 sh -c "! kill -0 $vpid 2>/dev/null" || { dump; fail "the VMM did not exit"; }
wait "$vpid"
rc=$?
vpid=
dump
assert_eq 0 "$rc" "VMM exit status (the guest command's)"
log "ok: inflate to 192 MiB freed $((rss0 - rss1)) MiB of host RSS; deflate returned actual to 0"
