#!/bin/sh
# memtouch: fill 32 MiB with zero, duplicate, text and random pages, verify twice, compare the
# checksums of the fill with those of the verify passes.
# firmware: memtouch
# timeout: 40
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
fw_expect memtouch 30 --mem 128 --cmdline "mib=32 passes=2"
grep -q '^memtouch: verify 2: 0 bad pages' "$SCRATCH/memtouch.out" || fail "verify pass 2 missing"
