#!/bin/sh
# balloon: the firmware driver inflates and deflates 16 MiB, takes the deflate-on-OOM step,
# reports 4 MiB of free pages and feeds the stats queue; the device must follow virtio 1.2
# §5.5 (used lengths, actual, queue numbering) and the host must discard what it was given.
# Then again without the stats queue, so the reporting queue moves down to index 2.
# firmware: balloon
# timeout: 45
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
args="mib=16 stats-rounds=2"
fw_expect balloon 20 --mem 128 --balloon stats-period=1 --cmdline "$args"
if fw_args_supported balloon "$args"; then
	grep -q '^balloon: stats buffer returned [2-9]' "$SCRATCH/balloon.out" ||
		fail "the stats buffer was not returned twice with stats-period=1"
else
	log "note: this vmm does not pass --cmdline to firmware; ran with the defaults"
fi
grep -q '^balloon: queues inflate 0 deflate 1 stats 2 reporting 3$' "$SCRATCH/balloon.out" ||
	fail "unexpected queue numbering with every feature"
fw_expect balloon 20 --mem 128 --balloon stats=off
grep -q '^balloon: queues inflate 0 deflate 1 stats -1 reporting 2$' "$SCRATCH/balloon.out" ||
	fail "without STATS_VQ the reporting queue must be queue 2"
