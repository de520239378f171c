#!/bin/sh
# bench/memtier/testhost.sh: the compressed tier's figures that need KVM, measured in one boot of
# the nested test host (bench/memtier/run.sh embeds memtouch.elf above this text and runs it there
# with QEMU inside). Absolute times under TCG are ~50-100x hardware: compare ratios only.
#  A. fault-in latency p50/p99 under a firmware guest: memtouch fills 128 MiB, the host compresses
#     it (memory reclaim 0), memtouch's verify loop faults it back; the host-side service time
#     from memory.stats, and the guest-side cost per page from memtouch's cycles/page.
#  B. RSS saved for the realistic guest (the e2e fill: zero, text, random, identical pages and
#     binaries in a 512 MiB guest): vmm process PSS/RSS before and after memory reclaim 128M.
#  C. the same guest under QEMU with KSM (-M pc,mem-merge=on, KSM running with fast scan
#     settings): QEMU process PSS before and after KSM has merged (RSS counts a merged page at
#     every mapping, PSS divides it).
#  D. the same guest under vmm with KSM as in C, then memory reclaim 128M on top.
# timeout: 1500
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_kvm
need_vmm
field() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }
res() { echo "RESULT $*"; }

# --- A. fault-in latency, firmware guest ---------------------------------------------------------
sock=$SCRATCH/a.sock
"$VMM" run --firmware "$FW_DIR/memtouch.elf" --mem 256 --console stdio --control "$sock" \
	--cmdline "mib=128 passes=1 hold=100000" </dev/null >"$SCRATCH/a.out" 2>"$SCRATCH/a.err" &
apid=$!
if wait_for '^memtouch: verify 1' "$SCRATCH/a.out" 300; then
	sleep 2
	"$VMM" ctl -s "$sock" memory reclaim 0 --timeout 300s >"$SCRATCH/a.reclaim" 2>&1
	evicted=$(field "$SCRATCH/a.reclaim" evicted_pages)
	n=0
	while [ $n -lt 120 ]; do
		"$VMM" ctl -s "$sock" memory >"$SCRATCH/a.mem" 2>/dev/null
		f=$(field "$SCRATCH/a.mem" compressed.faults_stored)
		[ "${f:-0}" -ge $((evicted * 9 / 10)) ] && break
		sleep 1
		n=$((n + 1))
	done
	sleep 3 # one more full verify pass after the faults
	mhz=$(sed -n 's/.*tsc \([0-9]*\) MHz.*/\1/p' "$SCRATCH/a.out" | head -n1)
	before=$(sed -n 's/^memtouch: verify 1: .* \([0-9]*\) cycles\/page$/\1/p' "$SCRATCH/a.out")
	# The hold pass that ran during the fault-ins: the slowest one.
	during=$(sed -n 's/^memtouch: hold [0-9]*: .* \([0-9]*\) cycles\/page$/\1/p' "$SCRATCH/a.out" | sort -n | tail -n1)
	res "A firmware guest: $evicted pages evicted ($(field "$SCRATCH/a.reclaim" compression_ratio)x, $(field "$SCRATCH/a.reclaim" mb_per_s_per_core) MB/s per core in the test host)"
	res "A fault-in service time (host, uffd thread): p50 $(($(field "$SCRATCH/a.mem" compressed.fault_p50_ns) / 1000)) us, p99 $(($(field "$SCRATCH/a.mem" compressed.fault_p99_ns) / 1000)) us over $(field "$SCRATCH/a.mem" compressed.fault_samples) faults"
	[ -z "$mhz" ] || [ -z "$before" ] || [ -z "$during" ] ||
		res "A guest-side verify cost: $before cycles/page resident, $during cycles/page while faulting back ($(((during - before) / mhz)) us more per page at $mhz MHz)"
	grep -q ' [1-9][0-9]* bad pages' "$SCRATCH/a.out" && res "A ERROR: memtouch saw bad pages"
else
	res "A memtouch did not start"
fi
kill "$apid" 2>/dev/null
wait "$apid" 2>/dev/null

# --- B. the realistic guest under vmm --------------------------------------------------------------
guest='cd /tmp
memfill -m 64 -p zero -w >z.log 2>&1 &
memfill -m 128 -p text -w >t.log 2>&1 &
memfill -m 48 -p random -w >r.log 2>&1 &
memfill -m 32 -p dup -w >d.log 2>&1 &
i=0; while [ $i -lt 24 ]; do cat /bin/busybox >bin.$i; i=$((i+1)); done
while [ $(cat z.log t.log r.log d.log | grep -c "memfill: ready") -lt 4 ]; do sleep 1; done
echo MEMTIER-READY
sleep 100000'
sock=$SCRATCH/b.sock
"$VMM" run --mem 512M --control "$sock" --console file:"$SCRATCH/b.out" -- sh -c "$guest" \
	</dev/null >/dev/null 2>"$SCRATCH/b.err" &
bpid=$!
if wait_for MEMTIER-READY "$SCRATCH/b.out" 600; then
	sleep 5
	rss0=$(rss_mib "$bpid") pss0=$(pss_mib "$bpid")
	"$VMM" ctl -s "$sock" memory reclaim 128M --timeout 600s >"$SCRATCH/b.reclaim" 2>&1
	sleep 5
	rss1=$(rss_mib "$bpid") pss1=$(pss_mib "$bpid")
	"$VMM" ctl -s "$sock" memory >"$SCRATCH/b.mem" 2>/dev/null
	res "B vmm, compressed tier (lz4), KSM off: process PSS $pss0 -> $pss1 MiB, $((pss0 - pss1)) MiB saved (RSS $rss0 -> $rss1 MiB; the store's $(($(field "$SCRATCH/b.mem" compressed.store_alloc_bytes) / 1048576)) MiB included)"
	res "B reclaim: $(head -n1 "$SCRATCH/b.reclaim"); ratio $(field "$SCRATCH/b.reclaim" compression_ratio)x, $(field "$SCRATCH/b.reclaim" mb_per_s) MB/s wall, incompressible $(($(field "$SCRATCH/b.reclaim" incompressible_resident_bytes) / 1048576)) MiB"
else
	res "B the guest did not fill ($(tail -n3 "$SCRATCH/b.err"))"
fi
kill "$bpid" 2>/dev/null
wait "$bpid" 2>/dev/null

# KSM with fast scan settings until pages_sharing stops moving (3 readings 10 s apart, 400 s at
# most). Sets $ksm_ms and $ksm_sharing.
ksm=/sys/kernel/mm/ksm
# ksm_fast / ksm_restore: fast scan settings for a measurement, then the host's own back.
ksm_fast() {
	old_run=$(cat $ksm/run) old_scan=$(cat $ksm/pages_to_scan) old_sleep=$(cat $ksm/sleep_millisecs)
	echo 5000 >$ksm/pages_to_scan
	echo 20 >$ksm/sleep_millisecs
}
ksm_restore() {
	ksm_off
	echo "$old_scan" >$ksm/pages_to_scan
	echo "$old_sleep" >$ksm/sleep_millisecs
	echo "$old_run" >$ksm/run
}

ksm_settle() {
	t0=$(now_ms) last=-1 stable=0
	echo 1 >$ksm/run
	while [ $(($(now_ms) - t0)) -lt 400000 ] && [ $stable -lt 3 ]; do
		sleep 10
		cur=$(cat $ksm/pages_sharing)
		if [ "$cur" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
		last=$cur
	done
	ksm_ms=$(($(now_ms) - t0)) ksm_sharing=$last
}
ksm_off() {
	echo 2 >$ksm/run
	echo 0 >$ksm/run
}

# --- D. the same guest under vmm with KSM and then the tier --------------------------------------
if [ -w $ksm/run ]; then
	ksm_fast
	sock=$SCRATCH/d.sock
	"$VMM" run --mem 512M --control "$sock" --console file:"$SCRATCH/d.out" -- sh -c "$guest" \
		</dev/null >/dev/null 2>"$SCRATCH/d.err" &
	dpid=$!
	if wait_for MEMTIER-READY "$SCRATCH/d.out" 600; then
		sleep 5
		pss0=$(pss_mib "$dpid")
		ksm_settle
		pss1=$(pss_mib "$dpid")
		"$VMM" ctl -s "$sock" memory reclaim 128M --timeout 600s >"$SCRATCH/d.reclaim" 2>&1
		sleep 5
		pss2=$(pss_mib "$dpid")
		res "D vmm + KSM: process PSS $pss0 -> $pss1 MiB after KSM settled ($ksm_ms ms, pages_sharing $ksm_sharing): $((pss0 - pss1)) MiB saved; then 'memory reclaim 128M': $pss2 MiB, $((pss0 - pss2)) MiB saved in all ($(sed -n 's/^stopped_because *//p' "$SCRATCH/d.reclaim"), $(sed -n 's/^shared_pages_skipped *//p' "$SCRATCH/d.reclaim") KSM-shared pages skipped)"
	else
		res "D the guest did not fill"
	fi
	kill "$dpid" 2>/dev/null
	wait "$dpid" 2>/dev/null
	ksm_restore
fi

# --- C. the same guest under QEMU with KSM -------------------------------------------------------
if [ -n "$QEMU" ] && [ -x "$QEMU" ] && [ -w $ksm/run ]; then
	ksm_fast
	"$QEMU" -enable-kvm -M pc,mem-merge=on -cpu host -m 512 -nographic -no-reboot \
		-kernel "$GUEST_DIR/bzImage" -initrd "$GUEST_DIR/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 vmm.tty=0 vmm.cmd=$(b64 "$guest")" \
		</dev/null >"$SCRATCH/c.out" 2>&1 &
	cpid=$!
	if wait_for MEMTIER-READY "$SCRATCH/c.out" 900; then
		sleep 5
		rss0=$(rss_mib "$cpid") pss0=$(pss_mib "$cpid")
		ksm_settle
		rss1=$(rss_mib "$cpid") pss1=$(pss_mib "$cpid")
		# RSS keeps counting a merged page at every place it is mapped: PSS divides it.
		res "C QEMU mem-merge=on + KSM: process PSS $pss0 -> $pss1 MiB, $((pss0 - pss1)) MiB saved after KSM settled ($ksm_ms ms; RSS $rss0 -> $rss1 MiB; host pages_shared $(cat $ksm/pages_shared), pages_sharing $ksm_sharing)"
	else
		res "C the QEMU guest did not fill"
	fi
	kill "$cpid" 2>/dev/null
	wait "$cpid" 2>/dev/null
	ksm_restore
else
	res "C skipped: no QEMU in the test host (run.sh passes --with-qemu) or no KSM"
fi
log "done"
