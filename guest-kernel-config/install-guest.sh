#!/usr/bin/env bash
# install-guest.sh DIR: install the default guest into DIR (make guest: build/guest).
#
#   DIR/bzImage, DIR/vmlinux, DIR/kernel.config   the cached guest kernel (build-kernel.sh guest.config)
#   DIR/initramfs.cpio.gz                         build-initramfs.sh, rebuilt only when its inputs change
#
# The vmm finds its default guest at <directory of the vmm binary>/guest/. Files are replaced
# atomically and only when their content changed, so a warm run touches nothing.
set -euo pipefail

[ $# = 1 ] || { echo "usage: install-guest.sh DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
dir=$1
mkdir -p "$dir"

kdir=$("$here/build-kernel.sh" "$here/guest.config")
install_if_changed() { # SRC DST
	if ! cmp -s "$1" "$2"; then
		cp "$1" "$2.tmp"
		mv "$2.tmp" "$2"
		echo "install-guest: installed $2" >&2
	fi
}
install_if_changed "$kdir/bzImage" "$dir/bzImage"
install_if_changed "$kdir/vmlinux" "$dir/vmlinux"
install_if_changed "$kdir/.config" "$dir/kernel.config"

busybox=${BUSYBOX:-/bin/busybox}
key=$({
	cat "$here/build-initramfs.sh" "$here/initramfs/init" "$root/scripts/gen-cpio.sh"
	for c in "$here"/initramfs/tools/*.c; do basename "$c"; cat "$c"; done
	sha256sum <"$busybox"
	gcc --version | head -n1
} | sha256sum | cut -c1-16)
if [ ! -s "$dir/initramfs.cpio.gz" ] || [ "$(cat "$dir/.initramfs.key" 2>/dev/null)" != "$key" ]; then
	"$here/build-initramfs.sh" "$dir/initramfs.cpio.gz"
	echo "$key" >"$dir/.initramfs.key"
fi
