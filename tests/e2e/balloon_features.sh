#!/bin/sh
# virtio-balloon feature negotiation with the real Linux driver (default --balloon options):
# the guest's virtio_balloon driver binds and negotiates STATS_VQ, DEFLATE_ON_OOM and REPORTING
# (plus VERSION_1), as the guest sees it in /sys/bus/virtio/devices/*/features and as the VMM
# reports it in `vmm ctl info` and `vmm ctl memory`.
# timeout: 150
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# The guest lists its virtio devices: name, device id, bound driver, feature bits (one character
# per bit, bit 0 first), then idles until the host shuts it down.
# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='for d in /sys/bus/virtio/devices/*; do
	drv=$(readlink "$d/driver" 2>/dev/null); drv=${drv##*/}
	echo "@@dev ${d##*/} $(cat "$d/device") ${drv:-none} $(cat "$d/features")"
done
echo "@@ready"
sleep 600'

log "vmm run --mem 256M (default balloon options)"
bg_vmm_start "$gcmd" --mem 256M
wait_for '^@@ready' "$con" 120 || { dump; fail "the guest did not list its virtio devices"; }
dump

# Guest side: virtio device id 5 is the balloon (virtio 1.2 §5).
line=$(tr -d '\r' <"$con" | grep '^@@dev .* 0x0005 ' | head -n1)
[ -n "$line" ] || fail "no virtio-balloon (device 0x0005) in the guest's /sys/bus/virtio/devices"
# shellcheck disable=SC2086 # split the fields
set -- $line
assert_eq virtio_balloon "$4" "driver bound to $2"
bits=$5
bit() { printf '%s' "$bits" | cut -c$(($1 + 1)); }
for f in 1:STATS_VQ 2:DEFLATE_ON_OOM 5:REPORTING 32:VERSION_1; do
	assert_eq 1 "$(bit "${f%%:*}")" "guest feature bit ${f%%:*} (${f#*:})"
done
for f in 3:FREE_PAGE_HINT 4:PAGE_POISON; do
	assert_eq 0 "$(bit "${f%%:*}")" "guest feature bit ${f%%:*} (${f#*:}, not offered)"
done
log "guest: $2 bound to $4, features $bits"

# VMM side: vm.info (devices[].features) and memory.stats (balloon.features).
ctl info | tee "$SCRATCH/info.txt" || fail "vmm ctl info failed"
ctl --json info >"$SCRATCH/info.json" || fail "vmm ctl --json info failed"
ctl --json memory >"$SCRATCH/mem.json" || fail "vmm ctl --json memory failed"
cat "$SCRATCH/info.json" "$SCRATCH/mem.json"
for f in stats_vq deflate_on_oom reporting; do
	grep -q "virtio-balloon (.*$f" "$SCRATCH/info.txt" ||
		fail "vmm ctl info does not list the negotiated feature $f"
	grep -o '"features":\[[^]]*\]' "$SCRATCH/info.json" | grep -q "\"$f\"" ||
		fail "vm.info: $f not in the balloon's features"
	grep -o '"features":\[[^]]*\]' "$SCRATCH/mem.json" | grep -q "\"$f\"" ||
		fail "memory.stats: $f not in balloon.features"
done
grep -o '"features":\[[^]]*\]' "$SCRATCH/info.json" | grep -q -e free_page_hint -e page_poison &&
	fail "vm.info lists a feature that is not offered"

log "vmm ctl shutdown"
bg_vmm_shutdown
log "VMM exit status $bg_rc"
log "ok: the Linux driver bound and negotiated stats_vq, deflate_on_oom and reporting"
