#!/usr/bin/env bash
# gen-cpio.sh LIST OUT: write the newc cpio archive described by a gen_init_cpio LIST to OUT.
#
# LIST is the kernel's usr/gen_init_cpio format ("file NAME SRC MODE UID GID", "dir ...",
# "nod ...", "slink ..."), so device nodes and root ownership need no root and no fakeroot.
# Directories, links and nodes get mtime $SOURCE_DATE_EPOCH (default 0); files keep their own
# mtime (callers wanting reproducible output set it). The tool is built once from Debian's
# linux-source-6.1 and cached in $VMM_CACHE/tools.
set -euo pipefail

[ $# = 2 ] || { echo "usage: gen-cpio.sh LIST OUT" >&2; exit 2; }
cache=${VMM_CACHE:-$HOME/.cache/vmm}
src_tar=/usr/src/linux-source-6.1.tar.xz
tool=$cache/tools/gen_init_cpio

if [ ! -x "$tool" ]; then
	mkdir -p "$cache/tools"
	exec 9>"$tool.lock"
	flock 9
	if [ ! -x "$tool" ]; then
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		src=$(ls "$cache"/src/linux-source-6.1-*/usr/gen_init_cpio.c 2>/dev/null | head -n1 || true)
		if [ -z "$src" ]; then
			[ -r "$src_tar" ] || { echo "gen-cpio: $src_tar missing: run 'make deps'" >&2; exit 2; }
			echo "gen-cpio: extracting gen_init_cpio.c from $src_tar" >&2
			tar -xJf "$src_tar" -C "$tmp" --strip-components=2 linux-source-6.1/usr/gen_init_cpio.c
			src=$tmp/gen_init_cpio.c
		fi
		gcc -O2 -o "$tmp/gen_init_cpio" "$src"
		mv "$tmp/gen_init_cpio" "$tool"
	fi
	exec 9>&-
fi

"$tool" -t "${SOURCE_DATE_EPOCH:-0}" "$1" >"$2.tmp"
mv "$2.tmp" "$2"
