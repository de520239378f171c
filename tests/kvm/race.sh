#!/bin/sh
# race: write and verify a 16 MiB working area for 2 s; every page must keep its last write.
# firmware: race
# timeout: 30
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
fw_expect race 20 --mem 128 --cmdline "mib=16 secs=2"
