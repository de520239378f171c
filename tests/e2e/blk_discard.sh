#!/bin/sh
# DISCARD is the disk's balloon: a file written on vda allocates blocks in the sparse image; after
# the guest deletes it and runs fstrim, the image's allocated blocks (stat -c %b) shrink again.
# cost: 40
# timeout: 300
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

img=$SCRATCH/trim.img
dd if=/dev/zero of="$img" bs=1M count=0 seek=64 2>/dev/null
blocks() { stat -c %b "$img"; }

g1='mke2fs -F /dev/vda >/dev/null 2>&1 || exit 10
mount /dev/vda /mnt || exit 11
dd if=/dev/zero of=/mnt/big bs=1M count=24 2>/dev/null || exit 12
umount /mnt || exit 13
echo filled'
run_with_timeout 150 "$VMM" run --mem 256M --disk "$img" -- sh -c "$g1" \
	</dev/null >"$SCRATCH/out1" 2>"$SCRATCH/err1"
rc=$?
cat "$SCRATCH/out1"
sed 's/^/stderr: /' "$SCRATCH/err1"
assert_eq 0 "$rc" "boot 1 exit status"
full=$(blocks)
log "after writing 24 MiB: $full blocks of 512 bytes allocated"
assert_le $((24 * 2048)) "$full" "allocated blocks after the write"

g2='mount /dev/vda /mnt || exit 11
rm /mnt/big && sync
fstrim -v /mnt || exit 14
umount /mnt || exit 13
echo trimmed'
run_with_timeout 150 "$VMM" run --mem 256M --disk "$img" -- sh -c "$g2" \
	</dev/null >"$SCRATCH/out2" 2>"$SCRATCH/err2"
rc=$?
cat "$SCRATCH/out2"
sed 's/^/stderr: /' "$SCRATCH/err2"
assert_eq 0 "$rc" "boot 2 exit status"
assert_line "$SCRATCH/out2" "trimmed"
trimmed=$(blocks)
log "after rm + fstrim: $trimmed blocks allocated (was $full)"
assert_le "$trimmed" $((full - 20 * 2048)) "allocated blocks after fstrim"
log "ok"
