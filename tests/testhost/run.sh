#!/usr/bin/env bash
# run.sh [options] SCENARIO.sh...: run scenarios inside the nested test host, all in one boot.
#
# The test host is a small Linux (tests/testhost/host.config) with KVM built in, booted under
# QEMU TCG with emulated SVM + NPT, so it has a real /dev/kvm even where this machine has none
# (see ../shared/environment.md). Its initramfs holds busybox, build/vmm (as
# /vmm/vmm), build/guest/* (as /vmm/guest/), tests/lib/scenario.sh and the scenarios; with --with-qemu also
# qemu-system-x86_64, its shared libraries and firmware.
#
# Options:
#   --with-qemu       include QEMU (scenarios that declare "# needs: qemu")
#   --timeout S       default per-scenario deadline (300); a scenario may declare "# timeout: S"
#   --mem MIB         test host memory (2048)
#   --smp N           test host vCPUs (1; see SMP below)
#   --append ARGS     extra test host kernel command line (e.g. kvm_amd.npt=0)
#   --env NAME=VALUE  export NAME=VALUE to the scenarios (repeatable)
#   --stream          also print every scenario line live (else only results and failure tails)
#   --quiet-results   no per-scenario "===" lines for passing scenarios (demo)
#
# Output: "=== scenario NAME: PASS|FAIL|SKIP (rc=N, T s) ===" per scenario, the last 30 log lines
# of each failing one, then "N passed, N failed[, N skipped]". Logs: build/testhost/logs/NAME.log,
# the test host console (kernel messages): build/testhost/console.log. Exit 1 if any failed.
# Scenarios see VMM, GUEST_DIR, QEMU, TESTLIB, TEST_MODE=testhost and SCRATCH (see tests/lib/scenario.sh).
# Environment: TESTHOST_SMP (default vCPUs), TESTHOST_DEADLINE (override a boot's deadline, by
# default the sum of its scenario deadlines + 60 s + 10 s per scenario), TESTHOST_IDLE (seconds of
# silence that mean the test host hung, 120: see "boot" below), TESTHOST_BOOTS (how many boots the
# scenarios get in all when the test host hangs, 3), TESTHOST_QEMU and TESTHOST_KERNEL
# (replace qemu-system-x86_64 and the test host kernel; the harness's own test uses a fake),
# VMM_CACHE, BUSYBOX.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
work=$B/testhost

append= with_qemu=0 timeout_default=300 mem=2048 stream=0 quiet_results=0
# SMP: measured on the 2-core dev machine, -smp 2 with MTTCG does not help: boot to /init is the
# same (~2 s) and a nested 1-vCPU guest filling 160 MiB took 10.1 s vs 5.5 s with -smp 1 (5.6 s
# with a 2-vCPU nested guest). So one vCPU by default; override with --smp or TESTHOST_SMP.
smp=${TESTHOST_SMP:-1}
scenarios=() envs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--with-qemu) with_qemu=1 ;;
	--timeout) timeout_default=$2; shift ;;
	--mem) mem=$2; shift ;;
	--smp) smp=$2; shift ;;
	--env) envs+=("$2"); shift ;;
	--append) append="$append $2"; shift ;;
	--stream) stream=1 ;;
	--quiet-results) quiet_results=1 ;;
	-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	-*) echo "testhost: unknown option $1" >&2; exit 2 ;;
	*) scenarios+=("$1") ;;
	esac
	shift
done
[ ${#scenarios[@]} -gt 0 ] || { echo "usage: run.sh [--with-qemu] [--timeout S] [--mem MIB] SCENARIO.sh..." >&2; exit 2; }

qemu=${TESTHOST_QEMU:-$(command -v qemu-system-x86_64 || true)}
[ -n "$qemu" ] || { echo "testhost: qemu-system-x86_64 missing: run 'make deps'" >&2; exit 2; }

if [ -n "${TESTHOST_KERNEL:-}" ]; then
	kernel=$TESTHOST_KERNEL
else
	kernel=$("$root/guest-kernel-config/build-kernel.sh" "$here/host.config")/bzImage
fi
mkdir -p "$work/logs"
# Per-run files (cpio list, initramfs, results) in a private directory, so that two runs at once
# (e2e and kvm tiers, or a developer's run during make test) do not collide; the console log and
# QEMU's stderr of the latest run are copied to $work at the end.
run=$(mktemp -d "$work/run.XXXXXX")
trap 'rm -rf "$run"' EXIT

# --- the initramfs, as a gen_init_cpio list --------------------------------------------------------
list=$run/cpio.list
declare -A have
emit() { echo "$*" >>"$list"; }
add_dir() { # PATH (and its parents)
	[ -n "$1" ] && [ -z "${have[$1]:-}" ] || return 0
	[ "${1%/*}" = "" ] || add_dir "${1%/*}"
	have[$1]=1
	emit "dir $1 0755 0 0"
}
add_file() { # NAME-IN-ARCHIVE SOURCE [MODE]
	[ -z "${have[$1]:-}" ] || return 0
	add_dir "${1%/*}"
	have[$1]=1
	local src=$2
	[ ! -L "$src" ] || src=$(readlink -f "$src")
	emit "file $1 $src ${3:-0755} 0 0"
}
add_elf() { # PATH: an executable or library at the same path, plus its shared libraries
	add_file "$1" "$1"
	local lib
	for lib in $(ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
		add_file "$lib" "$lib"
	done
}

: >"$list"
for d in /dev /proc /sys /tmp /run /root /etc /bin /sbin /usr/bin /usr/sbin /scenarios /testhost; do
	add_dir "$d"
done
emit "nod /dev/console 0600 0 0 c 5 1"
emit "nod /dev/null 0666 0 0 c 1 3"
busybox=${BUSYBOX:-/bin/busybox}
add_file /bin/busybox "$busybox"
while read -r a; do
	[ "$a" = linuxrc ] || [ -n "${have[/$a]:-}" ] && continue
	add_dir "/${a%/*}"
	have[/$a]=1
	emit "slink /$a /bin/busybox 0777 0 0"
done < <("$busybox" --list-full | sort)
add_file /init "$here/init.sh"
add_file /testhost/scenario.sh "$root/tests/lib/scenario.sh" 0644

printf 'root:x:0:0:root:/root:/bin/sh\n' >"$run/passwd"
printf 'root:x:0:\n' >"$run/group"
add_file /etc/passwd "$run/passwd" 0644
add_file /etc/group "$run/group" 0644

if [ -x "$B/vmm" ]; then
	if ldd "$B/vmm" 2>&1 | grep -q '=>'; then
		add_file /vmm/vmm "$B/vmm"
		for lib in $(ldd "$B/vmm" | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
			add_file "$lib" "$lib"
		done
	else
		add_file /vmm/vmm "$B/vmm"
	fi
else
	echo "testhost: warning: $B/vmm not built (make all): scenarios using it will fail" >&2
fi
# The root file system image builder (scripts/mkimage.sh) and its mke2fs (e2fsprogs), which
# vmm run --volume runs too.
add_file /vmm/mkimage.sh "$root/scripts/mkimage.sh"
mke2fs=$(PATH=$PATH:/sbin:/usr/sbin command -v mke2fs || true)
[ -z "$mke2fs" ] || add_elf "$(readlink -f "$mke2fs")"
[ -z "$mke2fs" ] || [ "$(readlink -f "$mke2fs")" = /usr/sbin/mke2fs ] ||
	add_file /usr/sbin/mke2fs "$mke2fs"
# e2fsck and debugfs (e2fsprogs), which vmm run --volume uses to check and write a volume back.
for tool in e2fsck debugfs; do
	t=$(PATH=$PATH:/sbin:/usr/sbin command -v $tool || true)
	[ -z "$t" ] || add_elf "$(readlink -f "$t")"
	[ -z "$t" ] || [ "$(readlink -f "$t")" = /usr/sbin/$tool ] || add_file /usr/sbin/$tool "$t"
done
for f in bzImage vmlinux initramfs.cpio.gz kernel.config; do
	[ -f "$B/guest/$f" ] && add_file "/vmm/guest/$f" "$B/guest/$f" 0644
done
[ -f "$B/guest/bzImage" ] || echo "testhost: warning: $B/guest missing (make guest)" >&2

qemu_in=
if [ $with_qemu = 1 ]; then
	qemu_in=/usr/bin/qemu-system-x86_64
	add_elf "$qemu"
	[ "$qemu" = $qemu_in ] || add_file $qemu_in "$qemu"
	moddir=/usr/lib/x86_64-linux-gnu/qemu
	[ -f $moddir/accel-tcg-x86_64.so ] && add_elf $moddir/accel-tcg-x86_64.so
	# Firmware for -M pc / q35 (SeaBIOS, VGA BIOS, NIC option ROMs) and -M microvm (qboot),
	# and the option ROMs -kernel uses; found through QEMU's data directories.
	for fw in bios-256k.bin bios.bin bios-microvm.bin qboot.rom linuxboot.bin linuxboot_dma.bin \
		kvmvapic.bin pvh.bin multiboot.bin multiboot_dma.bin vgabios.bin vgabios-stdvga.bin \
		efi-e1000.rom efi-e1000e.rom efi-virtio.rom pxe-virtio.rom; do
		for dir in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
			[ -e "$dir/$fw" ] && add_file "$dir/$fw" "$dir/$fw" 0644
		done
	done
fi

# Scenarios: /scenarios/NAME.sh, and the run order with deadlines in /scenarios/list (written per
# boot: a retry boot lists only the scenarios left).
names=()
declare -A deadline
for s in "${scenarios[@]}"; do
	[ -r "$s" ] || { echo "testhost: cannot read scenario $s" >&2; exit 2; }
	name=$(basename "$s" .sh)
	# Results are kept by name: the same scenario twice (or two of one name) runs once.
	[ -z "${deadline[$name]:-}" ] || { echo "testhost: scenario $name given twice: running it once" >&2; continue; }
	t=$(sed -n 's/^# *timeout: *\([0-9][0-9]*\).*/\1/p' "$s" | head -n1)
	names+=("$name")
	deadline[$name]=${t:-$timeout_default}
	add_file "/scenarios/$name.sh" "$s"
	rm -f "$work/logs/$name.log" "$work/logs/$name.hung.log"
done
cat >"$run/env" <<EOF2
export VMM=/vmm/vmm GUEST_DIR=/vmm/guest TESTLIB=/testhost/scenario.sh TEST_MODE=testhost
export QEMU=$qemu_in
EOF2
for kv in ${envs[@]+"${envs[@]}"}; do
	[[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "testhost: bad --env '$kv'" >&2; exit 2; }
	v=${kv#*=}
	echo "export ${kv%%=*}='${v//\'/\'\\\'\'}'" >>"$run/env"
done
add_file /testhost/env "$run/env" 0644

# --- boot ------------------------------------------------------------------------------------------
# The test host can hang idle (QEMU at 0% CPU, its timers no longer firing: see
# ../shared/environment.md), which no deadline inside it can catch. Its /init says "alive" on the
# protocol port every 10 s, so TESTHOST_IDLE seconds (default 120) with nothing on that port mean
# it stopped responding: QEMU is killed, and the scenarios that had not ended (the one running
# included) get another boot, up to TESTHOST_BOOTS boots in all (default 3: one clean-clone
# make test hung twice in a row, in the same shard). A hang in the last boot fails them as hung.
idle=${TESTHOST_IDLE:-120}
boots=${TESTHOST_BOOTS:-3}
[[ $boots =~ ^[1-9][0-9]*$ ]] || { echo "testhost: TESTHOST_BOOTS must be a number >= 1, not '$boots'" >&2; exit 2; }
accel=tcg
[ "$smp" -gt 1 ] && accel=tcg,thread=multi
# Under TCG the test host often cannot calibrate its TSC ("Unable to calibrate against PIT", no
# HPET/PM timer without ACPI) and sets tsc_khz to 0; its KVM then re-requests KVM_REQ_CLOCK_UPDATE
# forever and every nested vCPU livelocks in kvm_arch_vcpu_ioctl_run before its first instruction.
# TCG's TSC runs at the host's rate, so hand the test host that rate (tsc_early_khz) and keep the
# TSC as its clocksource.
host_tsc_khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
tsc_args="tsc=reliable clocksource=tsc${host_tsc_khz:+ tsc_early_khz=$host_tsc_khz}"

report() { # NAME STATUS RC SECS [NOTE]
	echo "=== scenario $1: $2 (rc=$3, $4 s) ==="
	if [ "$2" = FAIL ]; then
		[ -z "${5:-}" ] || echo "$5"
		echo "--- last 30 lines of $work/logs/$1.log ---"
		tail -n 30 "$work/logs/$1.log" 2>/dev/null | sed 's/^/    /' || true
		echo "---"
	fi
}

# boot NAME...: one boot of the test host running these scenarios in order. Appends "NAME STATUS"
# to $run/results per scenario that ended (and "@done" if the test host finished); sets qrc (QEMU's
# status), hung (1 if it stopped responding), current (the scenario running then) and outer.
boot() {
	local n t total=0 line rest r sec tmo st note
	: >"$run/list"
	for n in "$@"; do
		echo "$n ${deadline[$n]}" >>"$run/list"
		total=$((total + deadline[$n]))
	done
	{ cat "$list"; echo "file /scenarios/list $run/list 0644 0 0"; } >"$run/cpio.boot"
	"$root/scripts/gen-cpio.sh" "$run/cpio.boot" "$run/initramfs.cpio"
	# The whole boot's deadline: every scenario's own, plus boot and shutdown margins.
	outer=${TESTHOST_DEADLINE:-$((total + 60 + 10 * $#))}
	echo "testhost: booting ($# scenario(s), smp $smp, ${mem} MiB, initramfs" \
		"$(($(stat -c %s "$run/initramfs.cpio") / 1048576)) MiB, deadline $outer s)" >&2
	rm -f "$run/proto" "$run/console.log"
	mkfifo "$run/proto"
	local boot_start qpid
	boot_start=$(date +%s.%N)
	timeout -k 10 "$outer" "$qemu" -M q35 -accel "$accel" -cpu qemu64,+svm,+npt -m "$mem" \
		-smp "$smp" -nodefaults -no-user-config -display none -no-reboot \
		-chardev file,id=con,path="$run/console.log" -serial chardev:con \
		-chardev stdio,id=proto,signal=off -serial chardev:proto \
		-kernel "$kernel" -initrd "$run/initramfs.cpio" \
		-append "console=ttyS0 quiet panic=-1 $tsc_args$append" </dev/null >"$run/proto" \
		2>"$run/qemu.err" &
	qpid=$!
	hung=0 current=
	exec 8<"$run/proto"
	while :; do
		if IFS= read -r -t "$idle" line <&8; then
			:
		elif [ $? -gt 128 ]; then
			hung=1
			kill -TERM "$qpid" 2>/dev/null # timeout(1) passes it on to QEMU
			break
		elif [ -z "$line" ]; then
			break # end of file: QEMU exited
		fi
		case "$line" in
		*@@TH:*) line=@@TH:${line#*@@TH:} ;;
		*) continue ;;
		esac
		line=${line%$'\r'}
		case "$line" in
		"@@TH:L "*)
			rest=${line#@@TH:L }
			printf '%s\n' "${rest#*|}" >>"$work/logs/${rest%%|*}.log"
			[ $stream = 0 ] || printf '%s\n' "${rest#*|}"
			;;
		"@@TH: init "*)
			echo "testhost: booted to /init in $(awk -v s="$boot_start" -v n="$(date +%s.%N)" \
				'BEGIN { printf "%.1f", n - s }') s (${line#@@TH: init })" >&2
			;;
		"@@TH: begin "*)
			read -r n t <<<"${line#@@TH: begin }"
			current=$n
			# A retry's run replaces the hung one's log, kept as NAME.hung.log.
			[ ! -e "$work/logs/$n.log" ] || mv "$work/logs/$n.log" "$work/logs/$n.hung.log"
			: >"$work/logs/$n.log"
			[ $stream = 0 ] || echo "--- scenario $n (deadline ${t#timeout=} s) ---"
			;;
		"@@TH: end "*)
			read -r n r sec tmo <<<"${line#@@TH: end }"
			r=${r#rc=} sec=${sec#secs=} current=
			case "$r" in 0) st=PASS ;; 77) st=SKIP ;; *) st=FAIL ;; esac
			note=
			[ "$tmo" != timedout=1 ] || note="scenario $n hit its deadline and was killed"
			[ $st = PASS ] && [ $quiet_results = 1 ] || report "$n" $st "$r" "$sec" "$note"
			echo "$n $st" >>"$run/results"
			;;
		"@@TH: done"*) echo "@done" >>"$run/results" ;;
		esac
	done
	exec 8<&-
	if [ $hung = 1 ]; then # QEMU gets 10 s to go on TERM, then KILL (it and timeout(1))
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null && sleep 1; done
		pkill -KILL -P "$qpid" 2>/dev/null
		kill -KILL "$qpid" 2>/dev/null
	fi
	wait "$qpid"
	qrc=$?
	cp "$run/console.log" "$run/qemu.err" "$work/" 2>/dev/null || true
}

# One boot for all; each time the test host stopped responding, another for the scenarios left.
left=("${names[@]}") attempt=1
set +e
while :; do
	boot "${left[@]}"
	[ $hung = 1 ] && [ "$attempt" -lt "$boots" ] || break
	unfinished=()
	for n in "${left[@]}"; do
		grep -q "^$n " "$run/results" 2>/dev/null || unfinished+=("$n")
	done
	echo "testhost: the test host stopped responding (nothing on its protocol port for $idle s$([ -z "$current" ] || echo ", during scenario $current")): booting it again for the ${#unfinished[@]} scenario(s) left"
	[ ${#unfinished[@]} -gt 0 ] || break
	left=("${unfinished[@]}") attempt=$((attempt + 1))
done
set -e

passed=0 failed=0 skipped=0
for n in "${names[@]}"; do
	st=$(awk -v n="$n" '$1 == n { print $2 }' "$run/results" 2>/dev/null || true)
	if [ -z "$st" ]; then
		st=FAIL
		if [ $hung = 1 ]; then
			stop="the test host stopped responding (nothing on its protocol port for $idle s, in each of $attempt boot(s))"
		else
			stop="the test host stopped (QEMU status $qrc)"
		fi
		if [ -e "$work/logs/$n.log" ]; then
			why="hung: $stop before scenario $n ended"
		else
			why="not run: $stop before scenario $n started"
		fi
		if [ $hung = 0 ] && { [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; }; then
			why="$why; the outer deadline of $outer s was hit"
		fi
		report "$n" FAIL none "?" "$why"
	fi
	case $st in PASS) passed=$((passed + 1)) ;; SKIP) skipped=$((skipped + 1)) ;; *) failed=$((failed + 1)) ;; esac
done
if ! grep -q '^@done' "$run/results" 2>/dev/null; then
	echo "testhost: the test host did not finish cleanly (QEMU status $qrc); last console lines:"
	tail -n 30 "$work/console.log" 2>/dev/null | sed 's/^/    /' || true
	[ ! -s "$work/qemu.err" ] || { echo "qemu stderr:"; sed 's/^/    /' "$work/qemu.err"; }
	[ $failed -gt 0 ] || failed=1
fi
echo "$passed passed, $failed failed$([ $skipped = 0 ] || echo ", $skipped skipped")"
[ $failed = 0 ]
