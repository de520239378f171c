#!/bin/sh
# The memory autopilot reads the VMM's cgroup v2 (issue 15: "the VM's cgroup memory.high /
# memory.current when it has one"). The VMM runs in a cgroup of its own; a 512 MiB guest with
# --auto-balloon on,low=30,high=45 and free page reporting off holds 270 MiB of tmpfs and 100 MiB
# of freed (still resident) memory, so its available memory sits in the band:
#   - without a limit, the policy must not inflate (it is in band);
#   - once memory.high leaves the cgroup under 10% of headroom, it is host pressure: the band
#     moves down and the policy must inflate ("host pressure: inflate", with the limit in the
#     event), and the cgroup's memory.current must fall.
# cost: 60
# timeout: 300
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

cgroot=/sys/fs/cgroup
grep -qw memory "$cgroot/cgroup.controllers" 2>/dev/null ||
	skip "no cgroup v2 memory controller at $cgroot (cgroup v1 or none): the cgroup figures cannot be shown here"
cg=$cgroot/vmm-e2e-$$
mkdir "$cg" 2>/dev/null || skip "cannot make a cgroup under $cgroot (read-only, as in a container)"
echo +memory >"$cgroot/cgroup.subtree_control" 2>/dev/null
[ -f "$cg/memory.high" ] || { rmdir "$cg"; skip "the memory controller cannot be enabled below $cgroot"; }
# The scenario's shell joins the cgroup, so the VMM started below is charged to it.
echo $$ >"$cg/cgroup.procs" 2>/dev/null || { rmdir "$cg"; skip "cannot move this shell into $cg"; }
cg_cleanup() {
	[ -z "$vpid" ] || wait "$vpid" 2>/dev/null # killed by bg_vmm_cleanup: leaves the cgroup
	echo $$ >"$cgroot/cgroup.procs" 2>/dev/null
	rmdir "$cg" 2>/dev/null
}

# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='mount -t tmpfs -o size=470M tmpfs /mnt || exit 3
dd if=/dev/zero of=/mnt/a bs=1M count=270 2>/dev/null || exit 4
dd if=/dev/zero of=/mnt/b bs=1M count=100 2>/dev/null || exit 4
rm /mnt/b; echo @@ready; sleep 600'
bg_vmm_start "$gcmd" --mem 512M --balloon on,free-page-reporting=off --auto-balloon on,low=30,high=45
ev=$SCRATCH/events.txt
"$VMM" ctl -s "$sock" events memory.policy >"$ev" 2>"$SCRATCH/events.err" &
epid=$!
trap 'rc=$?; kill "$epid" 2>/dev/null; (exit $rc); bg_vmm_cleanup; cg_cleanup' EXIT

wait_for '^@@ready' "$con" 240 || { dump; fail "the guest did not fill its memory"; }
sleep 10 # ten periods in the band, no limit
ctl --json memory >"$SCRATCH/mem-before.json" || fail "memory.stats failed"
before=$(jnum inflates <"$SCRATCH/mem-before.json")
cur=$(cat "$cg/memory.current")
log "no limit: memory.current $((cur / 1048576)) MiB, policy.inflates $before"
[ "$before" = 0 ] || { cat "$ev"; dump; fail "the policy inflated a guest in its band with no pressure ($before inflates)"; }

# 20 MiB of headroom: under 10% of the limit.
high=$((cur + 20 * 1048576))
echo "$high" >"$cg/memory.high" || fail "cannot set memory.high"
log "memory.high set to $((high / 1048576)) MiB"
wait_until 30 grep -q '"why":"host pressure: inflate"' "$ev" || {
	cat "$ev"
	dump
	fail "the policy did not inflate under the cgroup's pressure"
}
line=$(grep '"why":"host pressure: inflate"' "$ev" | head -n1)
log "event: $line"
lim=$(echo "$line" | jnum cgroup_limit_mib)
[ "$lim" = $((high / 1048576)) ] || fail "the event shows cgroup_limit_mib $lim, not $((high / 1048576))"
echo "$line" | grep -q '"host_pressure":true' || fail "the inflate was not for host pressure"
echo "$line" | grep -q '"cgroup_available_mib":[0-9]' || fail "the event shows no cgroup headroom"
sleep 3
after=$(cat "$cg/memory.current")
log "memory.current: $((cur / 1048576)) MiB -> $((after / 1048576)) MiB"
[ $((cur - after)) -ge $((40 * 1048576)) ] ||
	fail "memory.current fell by $(((cur - after) / 1048576)) MiB (< 40 MiB) after the inflate"
echo max >"$cg/memory.high"
echo "PASS autoballoon_cgroup (memory.high $((high / 1048576)) MiB: host pressure inflate; memory.current -$(((cur - after) / 1048576)) MiB)"
