#!/usr/bin/env bash
# tests/lib/test-testhost.sh: the nested test host's runner (tests/testhost/run.sh) against a fake
# QEMU that speaks the /init protocol (tests/testhost/init.sh) on its stdout: a test host that
# hangs once is booted again for the scenarios left only (the hung one included) and they pass;
# one that hangs on every boot (3 by default, TESTHOST_BOOTS) fails them as hung and not run; a silent scenario whose test host
# still says "alive" is not taken for a hang. Ends with "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-testhost.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

# The fake QEMU: reads /scenarios/list from its -initrd, records it (boot N: names), then per
# FAKE_MODE: "hang-once" hangs in the second scenario of the first boot, "hang-always" in the
# first scenario of every boot, "alive" runs each scenario silently for 3 s with a heartbeat
# every second. Otherwise every scenario passes.
cat >"$tmp/qemu" <<'EOF'
#!/usr/bin/env bash
while [ $# -gt 0 ]; do [ "$1" = -initrd ] && initrd=$2; shift; done
d=$(mktemp -d) && (cd "$d" && busybox cpio -i -d -F "$initrd" scenarios/list 2>/dev/null)
boot=$(($(cat "$FAKE_STATE/boots" 2>/dev/null || echo 0) + 1))
echo $boot >"$FAKE_STATE/boots"
echo "boot $boot: $(awk '{ printf "%s ", $1 }' "$d/scenarios/list")" >>"$FAKE_STATE/lists"
echo "@@TH: init uptime=1.0"
i=0
while read -r name t; do
	i=$((i + 1))
	echo "@@TH: begin $name timeout=$t"
	echo "@@TH:L $name|running $name in boot $boot"
	if { [ "$FAKE_MODE" = hang-once ] && [ $boot = 1 ] && [ $i = 2 ]; } || [ "$FAKE_MODE" = hang-always ]; then
		exec sleep 60
	fi
	if [ "$FAKE_MODE" = alive ]; then
		for s in 1 2 3; do sleep 1; echo "@@TH: alive uptime=$s"; done
	fi
	echo "@@TH: end $name rc=0 secs=0.1 timedout=0"
done <"$d/scenarios/list"
echo "@@TH: done"
rm -rf "$d"
EOF
chmod +x "$tmp/qemu"
: >"$tmp/bzImage"
for n in a b c; do printf '#!/bin/sh\necho %s\n' $n >"$tmp/$n.sh"; done

# expect NAME MODE WANT-RC PATTERN...: run a, b and c with FAKE_MODE=MODE; the return code must
# be WANT-RC and the output (extra=SCENARIO: one more after c) (with the fake's "boot N: names" lines) must match every PATTERN.
expect() {
	local name=$1 mode=$2 want=$3 out rc pat bad=
	shift 3
	rm -rf "$tmp/state" && mkdir -p "$tmp/state"
	out=$(B=$tmp/build FAKE_MODE=$mode FAKE_STATE=$tmp/state TESTHOST_QEMU=$tmp/qemu \
		TESTHOST_KERNEL=$tmp/bzImage TESTHOST_IDLE=2 TESTHOST_BOOTS=${boots:-3} \
		"$root/tests/testhost/run.sh" "$tmp/a.sh" "$tmp/b.sh" "$tmp/c.sh" ${extra:-} 2>&1)
	rc=$?
	out+=$'\n'$(cat "$tmp/state/lists" 2>/dev/null)
	for pat in "$@"; do grep -qE -- "$pat" <<<"$out" || bad+=" '$pat'"; done
	if [ $rc = "$want" ] && [ -z "$bad" ]; then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name: status $rc (want $want), output should match$bad:"
		sed 's/^/    /' <<<"$out"
	fi
}

expect "no hang: one boot" pass 0 '^3 passed, 0 failed$' '^boot 1: a b c $'
extra=$tmp/a.sh expect "a scenario given twice runs once" pass 0 '^3 passed, 0 failed$' '^boot 1: a b c $' \
	'scenario a given twice: running it once'
expect "hang once: booted again for the scenarios left" hang-once 0 \
	'stopped responding \(nothing on its protocol port for 2 s, during scenario b\): booting it again for the 2 scenario\(s\) left' \
	'^boot 2: b c $' '^=== scenario b: PASS' '^3 passed, 0 failed$'
if grep -q 'running b in boot 1' "$tmp/build/testhost/logs/b.hung.log" 2>/dev/null &&
	grep -q 'running b in boot 2' "$tmp/build/testhost/logs/b.log"; then
	passed=$((passed + 1)) && echo "ok   the hung run's log is kept as b.hung.log, the retry's is b.log"
else
	failed=$((failed + 1)) && echo "FAIL b.hung.log / b.log do not hold boot 1's / boot 2's run"
fi
expect "a hang in every boot: three boots, then hung and not run" hang-always 1 \
	'^hung: the test host stopped responding .* in each of 3 boot\(s\)\) before scenario a ended' \
	'^not run: the test host stopped responding .* before scenario c started' \
	'^boot 2: a b c $' '^boot 3: a b c $' '^0 passed, 3 failed$'
if ! grep -q '^boot 4' "$tmp/state/lists"; then
	passed=$((passed + 1)) && echo "ok   no fourth boot"
else
	failed=$((failed + 1)) && echo "FAIL a fourth boot after three hangs"
fi
boots=2 expect "TESTHOST_BOOTS=2: two boots" hang-always 1 \
	'^hung: the test host stopped responding .* in each of 2 boot\(s\)\) before scenario a ended' \
	'^boot 2: a b c $' '^0 passed, 3 failed$'
if ! grep -q '^boot 3' "$tmp/state/lists"; then
	passed=$((passed + 1)) && echo "ok   TESTHOST_BOOTS=2: no third boot"
else
	failed=$((failed + 1)) && echo "FAIL TESTHOST_BOOTS=2: a third boot"
fi
expect "a silent scenario with a live test host is no hang" alive 0 '^3 passed, 0 failed$' \
	'^boot 1: a b c $'
echo "$passed passed, $failed failed"
[ $failed = 0 ]
