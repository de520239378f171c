#!/bin/sh
# bench/control-vmm scenario: the control socket of a real VMM running a Linux guest, under the
# load test (tests/load/control_load.c: 32 clients x 1,000 requests each, every reply checked,
# zero failures: balloon.get, the command mix, the mix pipelined 8 deep) and the latency bench
# (bench/control/control_bench.c: p50/p99 of 10,000 balloon.get round trips next to a raw Unix
# socket echo). Afterwards the VMM must still answer and the guest still run. Run by
# bench/control-vmm/run.sh; BENCH_BIN holds control_load and control_bench.
# timeout: 1200
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm
need_kvm
: "${BENCH_BIN:?BENCH_BIN (control_load, control_bench) not set: run bench/control-vmm/run.sh}"


# The guest ticks once a second, so "the guest still runs" is visible.
# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='echo @@ready; i=0; while :; do echo "@@tick $i"; i=$((i + 1)); sleep 1; done'
log "vmm run --mem 256M --control $sock (idle guest)"
bg_vmm_start "$gcmd" --mem 256M
wait_for '^@@ready' "$con" 120 || fail "the guest did not start"
rss0=$(rss_kib "$vpid")

status=0
for mode in "" "--mix" "--mix --window 8"; do
	log "control_load --socket $sock $mode (32 clients x 1000 requests)"
	# shellcheck disable=SC2086 # mode is words
	run_with_timeout 400 "$BENCH_BIN/control_load" --socket "$sock" $mode ||
		{ log "control_load $mode: FAILED"; status=1; }
done

log "control_bench --socket $sock"
run_with_timeout 300 "$BENCH_BIN/control_bench" --socket "$sock" || { log "control_bench: FAILED"; status=1; }

rss1=$(rss_kib "$vpid")
n=$(tr -d '\r' <"$con" | grep -c '^@@tick')
more_ticks() { [ "$(tr -d '\r' <"$con" | grep -c '^@@tick')" -gt "$n" ]; }
wait_until 10 more_ticks || fail "the guest stopped running during the load"
run_with_timeout 30 "$VMM" ctl -s "$sock" info || fail "the VMM does not answer after the load"
run_with_timeout 30 "$VMM" ctl -s "$sock" --json info | grep -o '"control":{[^}]*}'
log "VMM RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB over the load (guest idle)"
run_with_timeout 30 "$VMM" ctl -s "$sock" shutdown --timeout 10s >/dev/null
wait_until 30 sh -c "! kill -0 $vpid 2>/dev/null" || fail "the VMM did not stop after shutdown"
vpid=
[ $status = 0 ] || fail "the load test or the latency bench failed against the VMM"
echo "control load against the VMM: PASS (zero failed requests)"
