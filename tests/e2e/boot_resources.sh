#!/bin/sh
# --cpus and --mem reach the guest: 2 vCPUs online, MemTotal within 5% of 512 MiB.
# timeout: 120
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

out=$SCRATCH/out.txt
log "vmm run --cpus 2 --mem 512M -- (nproc, online CPUs, MemTotal)"
run_with_timeout 90 "$VMM" run --cpus 2 --mem 512M -- sh -c \
	'echo "nproc=$(nproc)"; echo "online=$(cat /sys/devices/system/cpu/online)"
	 sed -n "s/^MemTotal: *\([0-9]*\) kB$/memtotal_kib=\1/p" /proc/meminfo' \
	</dev/null >"$out" 2>"$SCRATCH/err.txt"
rc=$?
cat "$out"
sed 's/^/stderr: /' "$SCRATCH/err.txt"
assert_eq 0 "$rc" "exit status"
assert_line "$out" "nproc=2" "CPU count in the guest"
assert_line "$out" "online=0-1" "online CPUs in the guest"
kib=$(tr -d '\r' <"$out" | sed -n 's/^memtotal_kib=//p')
[ -n "$kib" ] || fail "no MemTotal in the guest output"
want=$((512 * 1024))
log "MemTotal $kib KiB of $want KiB ($((kib * 1000 / want / 10)).$((kib * 1000 / want % 10))%)"
assert_le $((want * 95 / 100)) "$kib" "MemTotal (at least 95% of 512 MiB)"
assert_le "$kib" "$want" "MemTotal (at most 512 MiB)"
log "ok"
