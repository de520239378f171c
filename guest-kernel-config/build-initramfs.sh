#!/usr/bin/env bash
# build-initramfs.sh OUT.cpio.gz: the default guest's initramfs.
#
# Contents: busybox-static with its applet links, /init (initramfs/init), the static tools built
# from initramfs/tools/*.c (gcc -static -O2), /dev/console, minimal /etc. Built from a staging
# directory through a gen_init_cpio list (no root needed) with fixed mtimes, sorted entries and
# gzip -n, so the same inputs give the same bytes.
set -euo pipefail

[ $# = 1 ] || { echo "usage: build-initramfs.sh OUT.cpio.gz" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$1
busybox=${BUSYBOX:-/bin/busybox}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

[ -x "$busybox" ] && "$busybox" --list-full >/dev/null 2>&1 ||
	{ echo "build-initramfs: $busybox missing: run 'make deps' (package busybox-static)" >&2; exit 2; }
! ldd "$busybox" 2>&1 | grep -q '=>' ||
	{ echo "build-initramfs: $busybox is not static (need busybox-static)" >&2; exit 2; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/etc"

for c in "$here"/initramfs/tools/*.c; do
	name=$(basename "$c" .c)
	gcc -static -O2 -s -Wall -Wextra -Werror -D_GNU_SOURCE -o "$stage/bin/$name" "$c"
done
cp "$busybox" "$stage/bin/busybox"
cp "$here/initramfs/init" "$stage/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\n' >"$stage/etc/group"
printf 'vmm-guest\n' >"$stage/etc/hostname"
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

list=$stage/cpio.list
{
	for d in bin sbin usr usr/bin usr/sbin dev etc proc sys tmp run root mnt; do
		echo "dir /$d 0755 0 0"
	done
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "nod /dev/null 0666 0 0 c 1 3"
	echo "file /init $stage/init 0755 0 0"
	echo "file /bin/busybox $stage/bin/busybox 0755 0 0"
	for f in passwd group hostname; do
		echo "file /etc/$f $stage/etc/$f 0644 0 0"
	done
	for t in "$stage"/bin/*; do
		[ "$(basename "$t")" = busybox ] || echo "file /bin/$(basename "$t") $t 0755 0 0"
	done
	# Applet links, except where one of our tools has the same name.
	"$busybox" --list-full | sort | while read -r a; do
		[ -e "$stage/bin/$(basename "$a")" ] || echo "slink /$a /bin/busybox 0777 0 0"
	done
} >"$list"
# gen_init_cpio does not create parent directories: keep only links whose directory is listed.
grep -v -E '^slink /(usr/)?(s?bin)/[^/]+ |^slink /[^/]+ ' "$list" | grep '^slink' &&
	{ echo "build-initramfs: applet in an unlisted directory" >&2; exit 1; }

"$root/scripts/gen-cpio.sh" "$list" "$stage/initramfs.cpio"
mkdir -p "$(dirname "$out")"
gzip -n -9 -c "$stage/initramfs.cpio" >"$out.tmp"
mv "$out.tmp" "$out"
echo "build-initramfs: $out ($(stat -c %s "$out") bytes)" >&2
