#!/usr/bin/env bash
# embed.sh OUT SCENARIO FILE...: write OUT, a copy of the scenario SCENARIO that first unpacks
# FILE... (helper binaries, firmware images) into $SCRATCH/bin and sets BENCH_BIN to it. The
# nested test host's initramfs holds only the vmm, the guest and the scenarios
# (tests/testhost/run.sh), so a scenario carries its own helpers this way, as tests/kvm/run.sh
# does for firmware. The scenario's header lines (needs, timeout) stay at the top.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: embed.sh OUT SCENARIO FILE..." >&2; exit 2; }
out=$1 scenario=$2
shift 2
{
	echo "#!/bin/sh"
	grep -E '^# *(timeout|needs):' "$scenario" || true
	# shellcheck disable=SC2016 # expanded inside the test host
	printf '%s\n' 'BENCH_BIN=$SCRATCH/bin' 'export BENCH_BIN' 'mkdir -p "$BENCH_BIN"'
	for f in "$@"; do
		n=$(basename "$f")
		echo "base64 -d <<'@@EMBED@@' | gunzip >\"\$BENCH_BIN/$n\""
		gzip -9c "$f" | base64
		echo "@@EMBED@@"
		echo "chmod +x \"\$BENCH_BIN/$n\""
	done
	grep -v '^#!' "$scenario"
} >"$out"
