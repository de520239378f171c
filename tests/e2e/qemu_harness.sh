#!/bin/sh
# Proves the harness itself: QEMU with KVM boots the default guest (build/guest: bzImage +
# initramfs) and the guest's /init runs the vmm.cmd command. Inside the nested test host this is
# KVM on emulated SVM; directly on a hardware-KVM host it needs qemu-system-x86_64 there.
# needs: qemu
# cost: 6
# timeout: 240
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_qemu
need_kvm
for f in bzImage initramfs.cpio.gz; do
	[ -s "$GUEST_DIR/$f" ] || fail "default guest $GUEST_DIR/$f missing (make guest)"
done

out=$SCRATCH/qemu.txt
cmd=$(b64 'echo harness-ok')
log "booting the default guest under $QEMU -enable-kvm"
start=$(now_ms)
run_with_timeout 180 "$QEMU" -enable-kvm -M pc -cpu host -m 256 -nographic -no-reboot \
	-kernel "$GUEST_DIR/bzImage" -initrd "$GUEST_DIR/initramfs.cpio.gz" \
	-append "console=ttyS0 panic=-1 vmm.verbose=1 vmm.cmd=$cmd" </dev/null >"$out" 2>&1
rc=$?
log "qemu exited with status $rc after $(($(now_ms) - start)) ms; guest console:"
tr -d '\r' <"$out" | grep -v '^[[:space:]]*$' | tail -n 40
[ "$rc" != 124 ] || fail "qemu did not finish within 180 s"
assert_line "$out" "vmm-guest: init" "guest /init marker"
assert_line "$out" "harness-ok" "vmm.cmd output"
log "ok: the guest booted under QEMU/KVM and ran its command"
