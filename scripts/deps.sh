#!/usr/bin/env bash
# deps.sh: install the Debian packages the project needs (make deps). A warm run only asks dpkg.
set -euo pipefail

pkgs=(
	build-essential flex bison bc libelf-dev libssl-dev cpio kmod xz-utils lz4 zstd pkg-config
	linux-source-6.1 busybox-static
	qemu-system-x86 qemu-system-data seabios ipxe-qemu
	liburing-dev liblz4-dev libzstd-dev libjson-c-dev libcriterion-dev libseccomp-dev zlib1g-dev
	clang libclang-rt-14-dev clang-format cppcheck
	socat util-linux coreutils procps gzip gnuplot-nox e2fsprogs
)

installed=" $(dpkg-query -W -f='${Package}=${db:Status-Status} ' "${pkgs[@]}" 2>/dev/null || true) "
missing=
for p in "${pkgs[@]}"; do
	[[ $installed == *" $p=installed "* ]] || missing+=" $p"
done
[ -z "$missing" ] && exit 0

missing=${missing# }
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages: $missing" >&2
	echo "deps: run 'sudo make deps' (or: sudo apt-get install -y $missing)" >&2
	exit 1
fi
echo "deps: installing $missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q $missing
