#!/bin/sh
# --root /dev/vda: the default guest runs the command on an ext4 root disk built by
# scripts/mkimage.sh (mke2fs -d, no root rights) and vmm exits with its status; what the command
# wrote there is on the disk in the next boot; with ro=on the root is mounted read-only.
# cost: 25
# timeout: 240
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

mkimage=/vmm/mkimage.sh
[ -f "$mkimage" ] || mkimage=$(dirname "$0")/../../scripts/mkimage.sh
r=$SCRATCH/rootdir
mkdir -p "$r/bin" "$r/etc" "$r/dev" "$r/proc" "$r/sys" "$r/tmp" "$r/run"
bb=/bin/busybox
[ -x "$bb" ] || bb=$(command -v busybox)
cp "$bb" "$r/bin/busybox" || fail "no busybox to put on the root disk"
for a in sh cat echo ls sync test; do ln -s busybox "$r/bin/$a"; done
echo "root-disk-marker-5" >"$r/etc/os-marker"
sh "$mkimage" "$r" "$SCRATCH/root.img" 64M || fail "mkimage.sh failed"

# shellcheck disable=SC2016 # expanded by the guest's shell
g='cat /etc/os-marker
[ -e /bin/vmm-exit ] || echo "not the initramfs"
echo written-on-the-root-disk >/data
exit 7'
run_with_timeout 120 "$VMM" run --mem 256M --disk "$SCRATCH/root.img" --root /dev/vda \
	-- sh -c "$g" </dev/null >"$SCRATCH/out1" 2>"$SCRATCH/err1"
rc=$?
cat "$SCRATCH/out1"
sed 's/^/stderr: /' "$SCRATCH/err1"
assert_eq 7 "$rc" "the command's exit status"
assert_line "$SCRATCH/out1" "root-disk-marker-5" "a file of the root disk"
assert_line "$SCRATCH/out1" "not the initramfs" "the command runs on the disk's root"

run_with_timeout 120 "$VMM" run --mem 256M --disk "$SCRATCH/root.img,ro=on" --root /dev/vda \
	-- sh -c 'cat /data; if echo x >/y 2>/dev/null; then echo writable; else echo read-only; fi' \
	</dev/null >"$SCRATCH/out2" 2>"$SCRATCH/err2"
rc=$?
cat "$SCRATCH/out2"
sed 's/^/stderr: /' "$SCRATCH/err2"
assert_eq 0 "$rc" "boot 2 exit status"
assert_line "$SCRATCH/out2" "written-on-the-root-disk" "data written on the root in boot 1"
assert_line "$SCRATCH/out2" "read-only" "ro=on root"

run_with_timeout 30 "$VMM" run --disk "$SCRATCH/root.img" --root /dev/vdb -- true \
	</dev/null >/dev/null 2>"$SCRATCH/err3"
rc=$?
cat "$SCRATCH/err3"
assert_eq 2 "$rc" "--root naming a disk not given"
assert_eq 1 "$(wc -l <"$SCRATCH/err3")" "stderr lines"
log "ok"
