#!/bin/sh
# make run: boot the default guest, run a command in it, and give memory back with the balloon;
# then the CI fast path: snapshot an idle guest once and run a job from it (docs/snapshot.md).
#
# The guest prints its banner (kernel, vCPUs, RAM), runs a command, then allocates, fills and frees
# 100 MiB and waits. The host shows the VMM's RSS still holding those pages, asks the balloon for
# them through the control socket (vmm ctl), shows the RSS again, gives the memory back, and tells
# the guest (over its console) to finish; vmm exits with the guest's status. Free page reporting is
# off here so that the balloon is what returns the memory. Runs in the nested test host, or
# directly where /dev/kvm boots Linux (tests/run-demo.sh picks).
# timeout: 300
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

sock=$SCRATCH/vmm.sock
out=$SCRATCH/console.txt
say() { echo "  host  | $*"; }

guest_script='mem=$(sed -n "s/^MemTotal: *\([0-9]*\) kB$/\1/p" /proc/meminfo)
echo "Linux $(uname -r) is up: $(nproc) vCPUs, $((mem / 1024)) MiB of RAM (MemTotal)"
echo "\$ uname -a"
uname -a
echo "allocating, filling and freeing 100 MiB..."
memfill -m 100 -p zero
echo "demo: waiting for the host"
read -r _
echo "exiting with status 0"'

# The console: vmm's stdin is a fifo we keep open (fd 3); its output goes through a fifo to a
# printer that prefixes it and copies it to $out, where the markers are polled.
mkfifo "$SCRATCH/in" "$SCRATCH/out"
awk -v copy="$out" '{ sub(/\r$/, ""); print "  guest | " $0; print $0 >>copy; fflush() }' \
	<"$SCRATCH/out" &
printer=$!
exec 3<>"$SCRATCH/in"

echo "vmm demo: boot the default guest, run a command in it, give memory back with the balloon"
say "vmm run --cpus 2 --mem 256M --control vmm.sock --balloon free-page-reporting=off -- ..."
"$VMM" run --cpus 2 --mem 256M --control "$sock" --balloon free-page-reporting=off \
	-- sh -c "$guest_script" \
	<"$SCRATCH/in" >"$SCRATCH/out" &
vmm=$!

stop() { # MSG: end the demo as failed, without leaving the VM behind
	kill "$vmm" 2>/dev/null
	wait "$vmm" 2>/dev/null
	wait "$printer" 2>/dev/null
	fail "$*"
}
resident_mib() {
	"$VMM" ctl -s "$sock" memory | awk '$1 == "resident_bytes" { print int($2 / 1048576) }'
}

wait_for "demo: waiting for the host" "$out" 100 || stop "the guest did not get to the balloon step"
rss_before=$(rss_mib "$vmm")
res_before=$(resident_mib)
say "vmm RSS ${rss_before} MiB (guest RAM resident: ${res_before} MiB): the guest's free pages still use host memory"
say "\$ vmm ctl balloon set --guest 64M --wait"
"$VMM" ctl -s "$sock" balloon set --guest 64M --wait --timeout 40s | sed 's/^/  host  | /' ||
	stop "the balloon did not reach its target"
rss_after=$(rss_mib "$vmm")
res_after=$(resident_mib)
say "vmm RSS ${rss_after} MiB (guest RAM resident: ${res_after} MiB): $((rss_before - rss_after)) MiB returned to the host"
say "\$ vmm ctl balloon set 0 --wait   (give it back)"
"$VMM" ctl -s "$sock" balloon set 0 --wait --timeout 40s | sed 's/^/  host  | /' ||
	stop "the balloon did not deflate"
echo go >&3
wait "$vmm"
rc=$?
exec 3>&-
wait "$printer"
say "vmm exited with status $rc"
[ "$rc" = 0 ] || fail "vmm exited with status $rc"
[ "$rss_after" -lt "$rss_before" ] || fail "the balloon did not lower the VMM's RSS"

echo
echo "vmm demo, part 2: a job from a snapshot instead of a boot"
idle_sock=$SCRATCH/idle.sock
say "vmm run --await-command --control idle.sock --console file:boot.txt &   (boot once, wait for a job)"
"$VMM" run --await-command --mem 256M --control "$idle_sock" --console "file:$SCRATCH/boot.txt" \
	</dev/null >/dev/null 2>"$SCRATCH/idle.err" &
idle=$!
wait_for "awaiting command" "$SCRATCH/boot.txt" 120 || {
	kill "$idle" 2>/dev/null
	cat "$SCRATCH/idle.err"
	fail "the idle guest did not get ready"
}
say "\$ vmm ctl snapshot create idle --stop"
"$VMM" ctl -s "$idle_sock" snapshot create "$SCRATCH/idle" --stop | sed 's/^/  host  | /' ||
	fail "snapshot create failed"
wait "$idle"
t0=$(now_ms)
say "\$ vmm run -- uname -r   (cold boot)"
"$VMM" run --mem 256M -- uname -r </dev/null | sed 's/^/  guest | /'
cold=$(($(now_ms) - t0))
t0=$(now_ms)
say "\$ vmm run --restore idle -- uname -r"
"$VMM" run --restore "$SCRATCH/idle" -- uname -r </dev/null >"$SCRATCH/job.out"
rc=$?
warm=$(($(now_ms) - t0))
sed 's/^/  guest | /' "$SCRATCH/job.out"
say "cold boot to exit: ${cold} ms; from the snapshot: ${warm} ms (status $rc)"
[ "$rc" = 0 ] || fail "the job from the snapshot failed"
