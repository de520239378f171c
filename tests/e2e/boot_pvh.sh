#!/bin/sh
# An ELF vmlinux boots through its PVH entry, with the same initramfs, and passes the command's
# status through like the bzImage does.
# timeout: 120
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm
[ -s "$GUEST_DIR/vmlinux" ] || fail "$GUEST_DIR/vmlinux missing (make guest)"

out=$SCRATCH/out.txt
log "vmm run --kernel vmlinux --initrd initramfs.cpio.gz -- sh -c 'echo pvh-\$((6*7)); exit 7'"
run_with_timeout 90 "$VMM" run --kernel "$GUEST_DIR/vmlinux" \
	--initrd "$GUEST_DIR/initramfs.cpio.gz" -- sh -c 'echo pvh-$((6*7)); uname -r; exit 7' \
	</dev/null >"$out" 2>"$SCRATCH/err.txt"
rc=$?
cat "$out"
sed 's/^/stderr: /' "$SCRATCH/err.txt"
assert_line "$out" "pvh-42" "command output under the PVH-booted kernel"
assert_eq 7 "$rc" "exit status"
log "ok"
