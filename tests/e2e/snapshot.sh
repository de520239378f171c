#!/bin/sh
# Snapshot and restore (issue 14): a guest keeping 32 MiB of random data is snapshotted and
# stopped; the restore continues its output without a new boot, the data's checksum matches,
# its clock is right and `balloon set` works; three clones of one snapshot run at once; an
# --await-command guest restored with a COMMAND runs it and exits with its status; a corrupt,
# truncated or foreign snapshot and a machine option given with --restore are one line, status 2.
# cost: 80
# timeout: 600
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# shellcheck disable=SC2016 # expanded by the guest's shell
job='head -c 33554432 /dev/urandom >/tmp/d; echo "sum $(md5sum </tmp/d | cut -c1-32) size $(wc -c </tmp/d)"
i=0; while :; do i=$((i + 1)); echo "tick $i $(md5sum </tmp/d | cut -c1-32) $(date +%s)"; sleep 1; done'
bg_vmm_start "$job" --mem 256M
wait_for '^tick 2 ' "$con" 180 || { dump; fail "the job did not start ticking"; }
sum=$(tr -d '\r' <"$con" | sed -n 's/^sum \([0-9a-f]*\).*/\1/p' | head -n1)
[ -n "$sum" ] || fail "no checksum printed"
snap=$SCRATCH/snap
t0=$(now_ms)
ctl snapshot create "$snap" --stop >"$SCRATCH/snap.out" || { dump; fail "snapshot create failed"; }
cat "$SCRATCH/snap.out"
wait_until 30 sh -c "! kill -0 $vpid 2>/dev/null" || fail "the VMM did not stop after --stop"
wait "$vpid"
assert_eq 0 "$?" "exit status of the snapshotted VMM"
vpid=
log "snapshot in $(($(now_ms) - t0)) ms: memory file $(($(stat -c %s "$snap/memory") / 1048576)) MiB apparent, $(($(du -k "$snap/memory" | cut -f1) / 1024)) MiB allocated"
last=$(tr -d '\r' <"$con" | sed -n 's/^tick \([0-9]*\) .*/\1/p' | tail -n1)

# restore_bg N: `vmm run --restore $snap` in the background with console c.N and socket s.N.
restore_bg() {
	"$VMM" run --restore "$snap" --console "file:$SCRATCH/c.$1" --control "$SCRATCH/s.$1" \
		</dev/null >"$SCRATCH/o.$1" 2>"$SCRATCH/e.$1" &
	eval "rpid$1=\$!"
}
cleanup() {
	for p in "$rpid1" "$rpid2" "$rpid3" "$rpid4"; do [ -z "$p" ] || kill -KILL "$p" 2>/dev/null; done
}
trap cleanup EXIT
rpid1= rpid2= rpid3= rpid4=
t0=$(now_ms)
restore_bg 1
next=$((last + 1))
wait_for "^tick $next " "$SCRATCH/c.1" 120 || {
	sed 's/^/    ! /' "$SCRATCH/e.1"
	fail "the restored guest did not go on ticking (tick $next)"
}
log "restore to the next tick: $(($(now_ms) - t0)) ms"
tr -d '\r' <"$SCRATCH/c.1" | head -n 5
grep -q 'Linux version' "$SCRATCH/c.1" && fail "the restored guest booted again"
got=$(tr -d '\r' <"$SCRATCH/c.1" | sed -n "s/^tick $next \([0-9a-f]*\) .*/\1/p")
assert_eq "$sum" "$got" "checksum of the 32 MiB after the restore"
gnow=$(tr -d '\r' <"$SCRATCH/c.1" | sed -n "s/^tick $next [0-9a-f]* \([0-9]*\)/\1/p")
skew=$((gnow - $(date +%s)))
[ "$skew" -lt 0 ] && skew=$((-skew))
assert_le "$skew" 3 "guest clock skew after the restore, s (printed up to 1 s before)"
sock=$SCRATCH/s.1
ctl balloon set 64 --wait --timeout 60 || fail "balloon set after the restore"
ctl info | grep -q running || fail "vm.info after the restore"
kill -TERM "$rpid1"
wait "$rpid1"
rpid1=

log "three clones of one snapshot at once"
for n in 2 3 4; do restore_bg "$n"; done
for n in 2 3 4; do
	wait_for "^tick $next " "$SCRATCH/c.$n" 180 || {
		sed 's/^/    ! /' "$SCRATCH/e.$n"
		fail "clone $n did not run"
	}
done
for n in 2 3 4; do
	eval "p=\$rpid$n"
	log "clone $n: Pss $(pss_mib "$p") MiB, Rss $(pss_mib "$p" Rss) MiB"
done
for n in 2 3 4; do eval "kill -TERM \$rpid$n"; done
wait
rpid2= rpid3= rpid4=

log "an idle guest waiting for its command"
"$VMM" run --await-command --mem 256M --console "file:$SCRATCH/c.a" --control "$SCRATCH/s.a" \
	</dev/null >"$SCRATCH/o.a" 2>"$SCRATCH/e.a" &
apid=$!
wait_for 'awaiting command' "$SCRATCH/c.a" 180 || {
	tr -d '\r' <"$SCRATCH/c.a" | tail -n 20
	sed 's/^/    ! /' "$SCRATCH/e.a"
	fail "--await-command guest did not get ready"
}
sock=$SCRATCH/s.a
ctl snapshot create "$SCRATCH/idle" --stop || fail "snapshot of the idle guest"
wait "$apid"
t0=$(now_ms)
run_with_timeout 120 "$VMM" run --restore "$SCRATCH/idle" -- sh -c 'echo "job says $((6 * 7))"; exit 7' \
	</dev/null >"$SCRATCH/o.j" 2>"$SCRATCH/e.j"
rc=$?
log "restore + command + exit: $(($(now_ms) - t0)) ms"
sed 's/^/stderr: /' "$SCRATCH/e.j"
assert_eq 7 "$rc" "exit status of the command run after a restore"
assert_line "$SCRATCH/o.j" "job says 42" "the command's output"

expect_setup_error "a machine option with --restore" "--mem comes from the snapshot" \
	"$VMM" run --restore "$snap" --mem 512M
expect_setup_error "a command for a guest that waits for none" "was not waiting for one" \
	"$VMM" run --restore "$snap" -- true
expect_setup_error "no snapshot" "No such file" "$VMM" run --restore "$SCRATCH/none"
cp -r "$snap" "$SCRATCH/bad"
printf 'X' | dd of="$SCRATCH/bad/state" bs=1 seek=200 conv=notrunc 2>/dev/null
expect_setup_error "a corrupt state file" "bad checksum" "$VMM" run --restore "$SCRATCH/bad"
head -c 1000 "$snap/state" >"$SCRATCH/bad/state"
expect_setup_error "a truncated state file" "truncated" "$VMM" run --restore "$SCRATCH/bad"
cp "$snap/state" "$SCRATCH/bad/state"
truncate -s 1M "$SCRATCH/bad/memory"
expect_setup_error "a memory file of the wrong size" "not a memory file" "$VMM" run --restore "$SCRATCH/bad"
