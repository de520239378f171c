#!/bin/sh
# /init of the nested test host (busybox sh), assembled by tests/testhost/run.sh.
#
# Runs every scenario listed in /scenarios/list ("NAME TIMEOUT_S" lines) in its own session with
# its own deadline, and reports over the second serial port (ttyS1), which carries nothing else
# (kernel messages stay on the console, ttyS0). Every protocol line starts with "@@TH:":
#   @@TH: init uptime=S                        /init started (S = seconds since kernel start)
#   @@TH: alive uptime=S                       every 10 s, whatever the scenarios do
#   @@TH: begin NAME timeout=S
#   @@TH:L NAME|TEXT                           one line of the scenario's stdout/stderr
#   @@TH: end NAME rc=N secs=S timedout=0|1
#   @@TH: done
# then powers off with reboot -f (QEMU runs with -no-reboot).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname testhost

proto=/dev/ttyS1
stty -F "$proto" raw -echo -onlcr 2>/dev/null
exec 3>"$proto"
say() { echo "@@TH: $*" >&3; }
uptime_cs() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }

say "init uptime=$(cut -d' ' -f1 /proc/uptime)"
# The heartbeat: the host side takes a long silence for a hung test host (tests/testhost/run.sh).
(while sleep 10; do say "alive uptime=$(cut -d' ' -f1 /proc/uptime)"; done) </dev/null >/dev/null 2>&1 &
[ -f /testhost/env ] && . /testhost/env
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null

run_scenario() { # NAME TIMEOUT_S
	name=$1
	timeout=$2
	scratch=/tmp/scratch/$name
	fifo=/tmp/fifo.$name
	mkdir -p "$scratch"
	mkfifo "$fifo"
	say "begin $name timeout=$timeout"
	start=$(uptime_cs)

	awk -v n="$name" '{ sub(/\r$/, ""); print "@@TH:L " n "|" $0; fflush() }' <"$fifo" >&3 &
	apid=$!
	# Own session (setsid: the subshell is not a group leader, so no fork): the deadline kills
	# the whole process group, background children included.
	(cd "$scratch" && SCRATCH=$scratch exec setsid sh "/scenarios/$name.sh") \
		>"$fifo" 2>&1 </dev/null &
	spid=$!
	(
		trap 'kill "$s" 2>/dev/null; exit 0' TERM
		sleep "$timeout" &
		s=$!
		wait "$s"
		: >/tmp/timedout.$name
		echo "testhost: scenario $name timed out after $timeout s, killing it" >"$fifo"
		kill -KILL -- "-$spid" 2>/dev/null
	) </dev/null >/dev/null 2>&1 &
	wpid=$!
	wait "$spid"
	rc=$?
	kill -TERM "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	kill -KILL -- "-$spid" 2>/dev/null
	# The reader ends when the last writer closes the fifo; a straggler that left the
	# session would keep it open, so bound the wait.
	n=0
	while kill -0 "$apid" 2>/dev/null && [ $n -lt 30 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	kill "$apid" 2>/dev/null
	wait "$apid" 2>/dev/null
	rm -f "$fifo"

	timedout=0
	if [ -e "/tmp/timedout.$name" ]; then
		timedout=1
		rc=124
	fi
	secs=$(awk -v a="$start" -v b="$(uptime_cs)" 'BEGIN { printf "%.1f", (b - a) / 100 }')
	say "end $name rc=$rc secs=$secs timedout=$timedout"
}

while read -r name timeout; do
	[ -n "$name" ] && run_scenario "$name" "$timeout"
done </scenarios/list

say "done"
exec 3>&-
sync
reboot -f
# Not reached unless reboot failed: make the kernel panic (panic=-1 reboots, QEMU exits).
exit 1
