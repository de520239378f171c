#!/bin/sh
# Every bad input to `vmm run` ends with status 2 and one line on stderr saying what is wrong;
# no guest runs. Bad kernels need a working /dev/kvm (they are found while loading); the
# permission checks need root here (a user without access is made with su).
# timeout: 180
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

failures=0
# expect WHAT SUBSTRING CMD...: CMD exits 2 and prints exactly one stderr line containing SUBSTRING.
expect() {
	_what=$1 _want=$2
	shift 2
	run_with_timeout 60 "$@" </dev/null >"$SCRATCH/out" 2>"$SCRATCH/err"
	_rc=$?
	_lines=$(wc -l <"$SCRATCH/err")
	if [ "$_rc" = 2 ] && [ "$_lines" = 1 ] && grep -qF -e "$_want" "$SCRATCH/err"; then
		log "ok   $_what: $(cat "$SCRATCH/err")"
		return 0
	fi
	log "FAIL $_what: status $_rc (want 2), $_lines stderr line(s) (want 1 with '$_want'):"
	sed 's/^/         stderr: /' "$SCRATCH/err"
	tail -n 5 "$SCRATCH/out" | sed 's/^/         stdout: /'
	failures=$((failures + 1))
}

k=$GUEST_DIR/bzImage

# --- command line ---
expect "unknown option" "unknown option '--frobnicate'" "$VMM" run --frobnicate -- true
expect "unknown short option" "unknown option '-x'" "$VMM" run -x -- true
expect "option without its value" "option '--cpus' needs a value" "$VMM" run --cpus
expect "bad --console" "--console 'tty': expected stdio, none or file:PATH" \
	"$VMM" run --console tty -- true
expect "bad --balloon key" "--balloon: unknown option 'frobnicate'" \
	"$VMM" run --balloon frobnicate=on -- true
expect "bad --balloon value" "--balloon: bad value 'maybe' for stats" \
	"$VMM" run --balloon stats=maybe -- true
expect "bad --balloon word" "--balloon: 'sometimes' is not on, off or KEY=VALUE" \
	"$VMM" run --balloon sometimes -- true
expect "bad --merge" "--merge 'maybe': expected on or off" "$VMM" run --merge maybe -- true
expect "bad --hugepages" "--hugepages '2M': expected on or off" "$VMM" run --hugepages 2M -- true

# --- resources ---
expect "--mem not a size" "--mem 'lots': expected a size" "$VMM" run --mem lots -- true
expect "--mem below 64 MiB" "--mem 32 MiB is below the minimum of 64 MiB" \
	"$VMM" run --mem 32M -- true
host_mib=$(awk '$1 == "MemTotal:" { print int($2 / 1024) }' /proc/meminfo)
expect "--mem above host RAM" "is more than this host's" \
	"$VMM" run --mem $((host_mib * 2 + 1024))M -- true
expect "--cpus 0" "--cpus '0': expected a number of vCPUs, at least 1" "$VMM" run --cpus 0 -- true
expect "--cpus not a number" "--cpus 'two': expected a number of vCPUs" \
	"$VMM" run --cpus two -- true
expect "--cpus above the limit" "--cpus 255 is above the limit of 254 vCPUs" \
	"$VMM" run --cpus 255 -- true
expect "--cpus far above the limit" "is above the limit of 254 vCPUs" \
	"$VMM" run --cpus 100000 -- true

# --- kernel and initrd ---
expect "missing kernel" "cannot read kernel $SCRATCH/no-such-kernel: No such file or directory" \
	"$VMM" run --kernel "$SCRATCH/no-such-kernel" -- true
expect "kernel is a directory" "cannot read kernel $SCRATCH: Is a directory" \
	"$VMM" run --kernel "$SCRATCH" -- true
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$SCRATCH/text"
expect "text file as kernel" "is neither a bzImage nor an ELF vmlinux" \
	"$VMM" run --kernel "$SCRATCH/text" -- true
: >"$SCRATCH/empty"
expect "empty file as kernel" "is neither a bzImage nor an ELF vmlinux" \
	"$VMM" run --kernel "$SCRATCH/empty" -- true
expect "ELF program as kernel" "ELF kernel has no PVH entry note" \
	"$VMM" run --kernel "$VMM" -- true
head -c 8192 "$k" >"$SCRATCH/truncated"
expect "truncated bzImage" "truncated" "$VMM" run --kernel "$SCRATCH/truncated" -- true
expect "missing initrd" "cannot read initrd $SCRATCH/no-such-initrd: No such file or directory" \
	"$VMM" run --initrd "$SCRATCH/no-such-initrd" -- true
# A sparse 96 MiB file: larger than a 64 MiB guest's RAM.
dd if=/dev/zero of="$SCRATCH/big-initrd" bs=1M count=0 seek=96 2>/dev/null
expect "initrd larger than RAM" "does not fit in guest RAM" \
	"$VMM" run --mem 64M --initrd "$SCRATCH/big-initrd" -- true
expect "initrd larger than RAM (PVH)" "does not fit in guest RAM" \
	"$VMM" run --mem 64M --kernel "$GUEST_DIR/vmlinux" --initrd "$SCRATCH/big-initrd" -- true
rm -f "$SCRATCH/big-initrd"
expect "unwritable console file" "--console file:$SCRATCH/no-dir/console" \
	"$VMM" run --console "file:$SCRATCH/no-dir/console" -- true

# --- /dev/kvm ---
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	# A private mount namespace with an empty /dev: no /dev/kvm.
	expect "no /dev/kvm" "/dev/kvm does not exist" unshare -m sh -c \
		'mount -t tmpfs none /dev && exec "$0" run -- true' "$VMM"
else
	log "skip no /dev/kvm: needs root and mount namespaces"
fi

# An unprivileged user: in the test host one is added to its /etc/passwd; elsewhere 'nobody'.
user=
if [ "$(id -u)" = 0 ]; then
	if [ "$TEST_MODE" = testhost ]; then
		grep -q '^vmmtest:' /etc/passwd ||
			echo 'vmmtest:x:1000:1000:vmm test:/tmp:/bin/sh' >>/etc/passwd
		user=vmmtest
	elif id nobody >/dev/null 2>&1; then
		user=nobody
	fi
fi
as_user() { # CMD...: run CMD as $user
	_c=
	for _a in "$@"; do _c="$_c '$_a'"; done
	su -s /bin/sh "$user" -c "cd / && exec $_c"
}
if [ -n "$user" ]; then
	# Copies in $SCRATCH, which the user can reach wherever the build directory is.
	chmod 755 "$SCRATCH"
	cp "$VMM" "$SCRATCH/vmm"
	cp "$k" "$SCRATCH/kernel"
	cp "$k" "$SCRATCH/private-kernel"
	chmod 755 "$SCRATCH/vmm"
	chmod 644 "$SCRATCH/kernel"
	chmod 600 "$SCRATCH/private-kernel"
	expect "unreadable kernel" "cannot read kernel $SCRATCH/private-kernel: Permission denied" \
		as_user "$SCRATCH/vmm" run --kernel "$SCRATCH/private-kernel" -- true
	if as_user test -r /dev/kvm -a -w /dev/kvm; then
		log "skip no permission for /dev/kvm: $user can open it here ($(ls -l /dev/kvm))"
	else
		expect "no permission for /dev/kvm" "no permission to open /dev/kvm" \
			as_user "$SCRATCH/vmm" run --kernel "$SCRATCH/kernel" -- true
	fi
else
	log "skip unreadable kernel and /dev/kvm permission: need root to switch to another user"
fi

[ $failures = 0 ] || fail "$failures bad-input check(s) failed"
log "ok: every bad input gave status 2 and its message"
