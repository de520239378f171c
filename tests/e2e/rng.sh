#!/bin/sh
# virtio-rng (virtio 1.2 §5.4): the default guest's /dev/hwrng reads from our device (getrandom on
# the host): 64 bytes, random, different in two boots; the rate limit holds (--rng on,rate=1K:
# 4 KiB take at least 2.5 s of guest time after the 1 KiB burst); --rng off: no device; a bad
# --rng is one clear line and exit status 2.
# timeout: 300
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# shellcheck disable=SC2016 # expanded in the guest
read64='cat /sys/class/misc/hw_random/rng_current; head -c 64 /dev/hwrng | od -An -v -tx1 | tr -d " \n"; echo'
for i in 1 2; do
	log "vmm run -- sh -c '$read64'  (boot $i)"
	run_with_timeout 90 "$VMM" run --mem 256M -- sh -c "$read64" </dev/null \
		>"$SCRATCH/hw$i.txt" 2>"$SCRATCH/hw$i.err"
	rc=$?
	cat "$SCRATCH/hw$i.txt"
	sed 's/^/stderr: /' "$SCRATCH/hw$i.err"
	assert_eq 0 "$rc" "exit status of boot $i"
	grep -q '^virtio_rng' "$SCRATCH/hw$i.txt" || fail "rng_current is not virtio_rng in boot $i"
	hex=$(tr -d '\r' <"$SCRATCH/hw$i.txt" | grep -E '^[0-9a-f]+$' | tail -n1)
	assert_eq 128 "${#hex}" "hex digits of 64 bytes from /dev/hwrng (boot $i)"
	[ "$hex" != "$(printf '%0128d' 0)" ] || fail "64 zero bytes from /dev/hwrng"
	eval "hex$i=\$hex"
done
# shellcheck disable=SC2154 # set by eval
[ "$hex1" != "$hex2" ] || fail "two boots read the same 64 bytes"

# shellcheck disable=SC2016 # expanded in the guest
slow='t0=$(cut -d" " -f1 /proc/uptime); n=$(head -c 4096 /dev/hwrng | wc -c); t1=$(cut -d" " -f1 /proc/uptime); echo "got $n in $t0 $t1"'
log "vmm run --rng on,rate=1K -- (4 KiB from /dev/hwrng)"
run_with_timeout 120 "$VMM" run --mem 256M --rng on,rate=1K -- sh -c "$slow" </dev/null \
	>"$SCRATCH/slow.txt" 2>"$SCRATCH/slow.err"
rc=$?
cat "$SCRATCH/slow.txt"
assert_eq 0 "$rc" "exit status of the rate-limited boot"
line=$(tr -d '\r' <"$SCRATCH/slow.txt" | grep '^got ' | tail -n1)
[ -n "$line" ] || fail "no result line from the rate-limited read"
secs=$(echo "$line" | awk '{ printf "%.1f", $5 - $4 }')
log "4096 bytes at rate=1K: $line -> $secs s"
echo "$line" | grep -q '^got 4096 ' || fail "the rate-limited read did not return 4096 bytes"
awk -v s="$secs" 'BEGIN { exit !(s >= 2.5) }' || fail "4 KiB at 1 KiB/s took $secs s (< 2.5 s): rate limit not applied"

log "vmm run --rng off -- (no hwrng device)"
run_with_timeout 90 "$VMM" run --mem 256M --rng off -- sh -c 'cat /sys/class/misc/hw_random/rng_current 2>&1; head -c 1 /dev/hwrng >/dev/null 2>&1 && echo READ-OK || echo READ-FAILED' \
	</dev/null >"$SCRATCH/off.txt" 2>&1
cat "$SCRATCH/off.txt"
assert_line "$SCRATCH/off.txt" "READ-FAILED" "/dev/hwrng with --rng off"

"$VMM" run --rng on,rate=0 -- true >"$SCRATCH/bad.txt" 2>&1
rc=$?
cat "$SCRATCH/bad.txt"
assert_eq 2 "$rc" "exit status of --rng on,rate=0"
assert_eq 1 "$(wc -l <"$SCRATCH/bad.txt" | tr -d ' ')" "lines printed for a bad --rng"
log "ok"
