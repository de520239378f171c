#!/usr/bin/env bash
# Build (or reuse) a Linux kernel from Debian's linux-source-6.1 with `make tinyconfig` + a config fragment.
#
#   build-kernel.sh FRAGMENT        prints the cache directory holding bzImage, vmlinux and .config
#
# Kernels are cached outside the work tree in $VMM_CACHE (default ~/.cache/vmm) keyed by a hash of
# (fragment, this script, linux-source version), so CI runs and later builds reuse them. A lock
# serialises concurrent builds of the same kernel. Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

frag=$(readlink -f "$1")
src_tar=/usr/src/linux-source-6.1.tar.xz
[ -r "$frag" ] || { echo "build-kernel: cannot read config fragment $1" >&2; exit 2; }
[ -r "$src_tar" ] || { echo "build-kernel: $src_tar missing: run 'make deps' (package linux-source-6.1)" >&2; exit 2; }

cache=${VMM_CACHE:-$HOME/.cache/vmm}
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %s "$src_tar")
key=$( { cat "$frag"; cat "$0"; echo "$srcver"; } | sha256sum | cut -c1-16)
name=$(basename "$frag" .config)
out="$cache/kernels/$name-$key"
mkdir -p "$cache/kernels"

exec 9>"$out.lock"
flock 9
if [ -s "$out/bzImage" ] && [ -s "$out/vmlinux" ]; then
	echo "build-kernel: reusing cached $name kernel $out" >&2
	echo "$out"
	exit 0
fi

src="$cache/src/linux-source-6.1-$srcver"
if [ ! -f "$src/.extracted" ]; then
	echo "build-kernel: extracting $src_tar" >&2
	rm -rf "$src" && mkdir -p "$src"
	tar -xJf "$src_tar" -C "$src" --strip-components=1
	touch "$src/.extracted"
fi

bld="$out.build"
rm -rf "$bld" && mkdir -p "$bld"
start=$(date +%s)
echo "build-kernel: building $name kernel in $bld (a few minutes)" >&2
make -s -C "$src" O="$bld" ARCH=x86_64 tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$bld" "$bld/.config" "$frag" >/dev/null
make -s -C "$src" O="$bld" ARCH=x86_64 olddefconfig >/dev/null

# Every option the fragment asks for must have survived olddefconfig (a missing dependency drops it).
missing=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) grep -qx -- "$line" "$bld/.config" || { echo "build-kernel: $name: $line did not apply" >&2; missing=1; } ;;
	"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}
		! grep -q "^$opt=" "$bld/.config" || { echo "build-kernel: $name: $opt should be off" >&2; missing=1; } ;;
	esac
done <"$frag"
[ $missing = 0 ] || exit 1

make -C "$src" O="$bld" ARCH=x86_64 -j"$(nproc)" bzImage >"$bld/build.log" 2>&1 ||
	{ tail -30 "$bld/build.log" >&2; echo "build-kernel: $name build failed (log: $bld/build.log)" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out"
cp "$bld/arch/x86/boot/bzImage" "$bld/vmlinux" "$bld/.config" "$out/"
rm -rf "$bld"
echo "build-kernel: $name kernel built in $(( $(date +%s) - start )) s -> $out" >&2
echo "$out"
