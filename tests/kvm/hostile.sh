#!/bin/sh
# hostile: a malicious balloon driver (malformed descriptors and rings, bad PFNs and addresses,
# early and stray notifies). Every buffer must come back with length 0 and the VMM must keep
# working, after a device reset when the ring itself was broken.
# firmware: hostile
# timeout: 40
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
fw_expect hostile 30 --mem 128
