#!/usr/bin/env bash
# tests/direct-run.sh NAME TIMEOUT SCRIPT: run a scenario or bench SCRIPT on this host (where
# /dev/kvm boots guests itself, tests/lib/detect-kvm.sh "direct"), as the test host would: with VMM,
# GUEST_DIR, TESTLIB and TEST_MODE=direct set, in a scratch directory of its own (SCRATCH, removed
# afterwards), killed after TIMEOUT seconds. Exits with the script's status.
set -uo pipefail

[ $# = 3 ] || { echo "usage: direct-run.sh NAME TIMEOUT SCRIPT" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$root/build}
export VMM=$B/vmm GUEST_DIR=$B/guest TESTLIB=$root/tests/lib/scenario.sh TEST_MODE=direct
scratch=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cd "$scratch" || exit 2
SCRATCH=$scratch timeout -k 10 "$2" sh "$3"
