#!/bin/sh
# make run inside the nested test host: boot the default guest with a short demo command.
# timeout: 180
. "${TESTLIB:-$(dirname "$0")/lib.sh}"
: "${DEMO_CMD:=uname -a; grep MemTotal /proc/meminfo; nproc; echo demo-ok}"
need_vmm
echo "testhost: $VMM run -- sh -c '$DEMO_CMD'"
run_with_timeout 150 "$VMM" run -- sh -c "$DEMO_CMD" </dev/null
rc=$?
echo "vmm exited with status $rc"
exit $rc
