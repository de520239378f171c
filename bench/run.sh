#!/usr/bin/env bash
# bench/run.sh (make bench): run every bench/*/run.sh in turn; exit 1 if any failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
failed=()
for b in "$here"/*/run.sh; do
	name=$(basename "$(dirname "$b")")
	echo "=== bench $name ==="
	"$b" || failed+=("$name")
	echo
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "bench: failed: ${failed[*]}"
	exit 1
fi
echo "bench: all done"
