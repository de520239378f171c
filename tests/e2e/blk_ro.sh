#!/bin/sh
# --disk PATH,ro=on: the guest sees a read-only disk (VIRTIO_BLK_F_RO), reads the host's data,
# and its writes are refused; the image is unchanged afterwards.
# cost: 20
# timeout: 200
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

img=$SCRATCH/ro.img
dd if=/dev/zero of="$img" bs=1M count=0 seek=16 2>/dev/null
printf 'host-marker-ro-77\n' | dd of="$img" conv=notrunc 2>/dev/null
before=$(md5sum <"$img")

# shellcheck disable=SC2016 # expanded by the guest's shell
g='echo "ro flag $(cat /sys/block/vda/ro)"
head -c 18 /dev/vda
if dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null; then echo write-accepted; else echo write-refused; fi
mount -o ro /dev/vda /mnt 2>/dev/null; true'
run_with_timeout 120 "$VMM" run --mem 256M --disk "$img,ro=on" -- sh -c "$g" \
	</dev/null >"$SCRATCH/out" 2>"$SCRATCH/err"
rc=$?
cat "$SCRATCH/out"
sed 's/^/stderr: /' "$SCRATCH/err"
assert_eq 0 "$rc" "exit status"
assert_line "$SCRATCH/out" "ro flag 1" "the guest sees a read-only disk"
assert_line "$SCRATCH/out" "host-marker-ro-77" "the host's data"
assert_line "$SCRATCH/out" "write-refused" "a write in the guest"
assert_eq "$before" "$(md5sum <"$img")" "image contents"
log "ok"
