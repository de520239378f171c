#!/usr/bin/env bash
# tests/lib/test-mkimage.sh: scripts/mkimage.sh builds an ext4 image from a directory without
# root rights; its files read back with debugfs (e2fsprogs); bad input is one line and status 2.
# Ends with "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mk=$here/../../scripts/mkimage.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-mkimage.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
debugfs=$(PATH=$PATH:/sbin:/usr/sbin command -v debugfs || true)
[ -n "$debugfs" ] || { echo "SKIP: debugfs (e2fsprogs) missing"; echo "0 passed, 0 failed"; exit 0; }

mkdir -p "$tmp/root/bin" "$tmp/root/etc/deep/er"
printf 'marker-123\n' >"$tmp/root/etc/deep/er/file"
ln -s ../etc/deep/er/file "$tmp/root/bin/link"
head -c 300000 /dev/urandom >"$tmp/root/bin/blob"

# 1. Build, then read every file back out of the image.
if "$mk" "$tmp/root" "$tmp/r.img" 2>"$tmp/err"; then
	got=$("$debugfs" -R "cat /etc/deep/er/file" "$tmp/r.img" 2>/dev/null)
	[ "$got" = marker-123 ] && ok "file content" || bad "file content: '$got'"
	"$debugfs" -R "dump /bin/blob $tmp/blob.out" "$tmp/r.img" 2>/dev/null
	cmp -s "$tmp/root/bin/blob" "$tmp/blob.out" && ok "300 KB binary file" || bad "binary file differs"
	got=$("$debugfs" -R "stat /bin/link" "$tmp/r.img" 2>/dev/null | grep -c 'Fast link dest: "../etc/deep/er/file"')
	[ "$got" = 1 ] && ok "symlink" || bad "symlink"
	got=$("$debugfs" -R "stat /" "$tmp/r.img" 2>/dev/null | grep -c 'User:     0   Group:     0')
	[ "$got" = 1 ] && ok "root directory owned by root" || bad "root directory owner"
	got=$(stat -c %s "$tmp/r.img")
	[ "$got" -ge $((32 * 1048576)) ] && ok "default size ($got bytes)" || bad "default size $got"
else
	bad "mkimage failed: $(cat "$tmp/err")"
fi

# 2. Errors: one line, status 2, no image left behind.
expect() { # WHAT PATTERN ARGS...
	local what=$1 pat=$2 rc
	shift 2
	"$mk" "$@" >/dev/null 2>"$tmp/err"
	rc=$?
	if [ $rc = 2 ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q -- "$pat" "$tmp/err"; then
		ok "$what: $(cat "$tmp/err")"
	else
		bad "$what: status $rc, stderr '$(cat "$tmp/err")'"
	fi
}
expect "no arguments" "usage" 
expect "missing directory" "not a directory" "$tmp/nope" "$tmp/x.img"
head -c 12000000 /dev/urandom >"$tmp/root/bin/big"
expect "does not fit" "Could not allocate" "$tmp/root" "$tmp/small.img" 8M
[ ! -e "$tmp/small.img" ] && ok "no partial image left" || bad "partial image left"

echo "$passed passed, $failed failed"
[ $failed = 0 ]
