#!/bin/sh
# virtio-blk with the real Linux driver: two --disk images appear as vda and vdb in order with
# their serials (GET_ID); a file system made and written on vda in one boot is read back in the
# next; bad --disk setups (missing image, cache=none on this tmpfs) are one line and status 2.
# cost: 40
# timeout: 300
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

a=$SCRATCH/a.img b=$SCRATCH/b.img
dd if=/dev/zero of="$a" bs=1M count=0 seek=64 2>/dev/null
dd if=/dev/zero of="$b" bs=1M count=0 seek=8 2>/dev/null

# shellcheck disable=SC2016 # expanded by the guest's shell
g1='echo "serials $(cat /sys/block/vda/serial) $(cat /sys/block/vdb/serial)"
echo "sizes $(cat /sys/block/vda/size) $(cat /sys/block/vdb/size)"
mke2fs -F /dev/vda >/dev/null 2>&1 || exit 10
mount /dev/vda /mnt || exit 11
echo persisted-across-boots-42 >/mnt/f || exit 12
umount /mnt || exit 13
echo written'
log "boot 1: make a file system on vda and write a file"
run_with_timeout 120 "$VMM" run --mem 256M --disk "$a,serial=ci-disk-a" --disk "$b,serial=second" \
	-- sh -c "$g1" </dev/null >"$SCRATCH/out1" 2>"$SCRATCH/err1"
rc=$?
cat "$SCRATCH/out1"
sed 's/^/stderr: /' "$SCRATCH/err1"
assert_eq 0 "$rc" "boot 1 exit status"
assert_line "$SCRATCH/out1" "serials ci-disk-a second" "vda/vdb in --disk order with their serials"
assert_line "$SCRATCH/out1" "sizes 131072 16384" "capacities in 512-byte sectors"
assert_line "$SCRATCH/out1" "written"

log "boot 2: read it back"
run_with_timeout 120 "$VMM" run --mem 256M --disk "$a" \
	-- sh -c 'mount /dev/vda /mnt && cat /mnt/f' </dev/null >"$SCRATCH/out2" 2>"$SCRATCH/err2"
rc=$?
cat "$SCRATCH/out2"
sed 's/^/stderr: /' "$SCRATCH/err2"
assert_eq 0 "$rc" "boot 2 exit status"
assert_line "$SCRATCH/out2" "persisted-across-boots-42" "data written in boot 1"

expect_setup_error "missing image" "disk $SCRATCH/nope.img: No such file or directory" \
	"$VMM" run --mem 256M --disk "$SCRATCH/nope.img" -- true
case $(stat -f -c %T "$SCRATCH" 2>/dev/null) in
tmpfs | ramfs)
	if [ "$(uname -r | cut -d. -f1)" -lt 6 ] ||
		{ [ "$(uname -r | cut -d. -f1)" = 6 ] && [ "$(uname -r | cut -d. -f2)" -lt 6 ]; }; then
		expect_setup_error "cache=none on tmpfs" "refuses O_DIRECT" \
			"$VMM" run --mem 256M --disk "$a,cache=none" -- true
	fi
	;;
esac
expect_setup_error "bad cache mode" "cache=fast: expected none or writeback" \
	"$VMM" run --mem 256M --disk "$a,cache=fast" -- true
log "ok"
