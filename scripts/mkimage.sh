#!/bin/sh
# mkimage.sh DIR IMAGE [SIZE]: an ext4 image holding a copy of DIR, built without root rights
# (mke2fs -d from e2fsprogs), for `vmm run --disk IMAGE --root /dev/vda -- CMD`.
#
# SIZE is mke2fs's (e.g. 512M, 2G); by default DIR's size plus half again plus 32 MiB. The image
# is sparse: only the blocks holding data are allocated. The root directory is owned by root; the
# other files keep their owners (run as root, or fix them in the guest, if that matters). A root
# file system for the default guest needs at least a shell (bin/sh) and what CMD runs.
# Errors (no DIR, no mke2fs, DIR does not fit in SIZE) are one line and exit status 2.
set -eu

die() {
	echo "mkimage: $*" >&2
	exit 2
}

[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: mkimage.sh DIR IMAGE [SIZE]"
dir=$1 img=$2 size=${3:-}
[ -d "$dir" ] || die "$dir: not a directory"
# e2fsprogs' mke2fs (busybox has one without -d; a busybox shell may prefer its applet for a bare
# name, hence full paths, and the version check).
mke2fs=
for c in ${MKE2FS:-} /usr/sbin/mke2fs /sbin/mke2fs $(command -v mke2fs || true); do
	case $c in /*) ;; *) continue ;; esac
	if [ -x "$c" ] && "$c" -V 2>&1 | grep -q '^mke2fs 1\.'; then
		mke2fs=$c
		break
	fi
done
[ -n "$mke2fs" ] || die "mke2fs (e2fsprogs, with -d) not found: install e2fsprogs (make deps)"
if [ -z "$size" ]; then
	kib=$(du -sk "$dir" | cut -f1)
	size=$((kib * 3 / 2 / 1024 + 32))M
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rm -f "$img"
if ! "$mke2fs" -q -F -t ext4 -L vmm-root -E root_owner=0:0 -d "$dir" "$img" "$size" \
	>"$log" 2>&1; then
	rm -f "$img"
	die "mke2fs -d $dir $img $size failed: $(grep -v '^$' "$log" | tail -n 1)"
fi
echo "mkimage: $img ($size, ext4) from $dir" >&2
