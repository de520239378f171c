#!/usr/bin/env bash
# tests/lib/check-includes.sh [ROOT]: the layering rule of vmm/ and devices/, checked on every
# `#include "..."` (run by `make lint`). Prints one line per violation and exits 1 if any.
#
# Layers, bottom up; a file may include its own folder and the layers below it as listed:
#   base       vmm/util, vmm/loop, vmm/state -> base only
#   memory     vmm/mem/                     -> vmm/util.h, vmm/loop.h, vmm/mem/
#   devices    devices/                     -> vmm/util.h, vmm/loop.h, vmm/state.h, vmm/mem/guest_mem.h,
#                                              devices/
#   boot       vmm/boot/                    -> vmm/util.h, vmm/mem/guest_mem.h, vmm/boot/
#   core       vmm/vm, vmm/vcpu*, machine   -> anything below
#   control    vmm/control/: nothing outside it includes it except vmm/main.c, vmm/cli.c and
#              vmm/machine.c.
#   a module's internals, M_priv.h, only by M.c and M_*.c (devices/pci_priv.h: pci.c, pci_irq.c).
# Also: every quoted include resolves to a file, and there is no include cycle between files.
set -uo pipefail

root=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
cd "$root" || exit 2
bad=0

violation() { # FILE TARGET WHY
	echo "check-includes: $1 includes $2: $3"
	bad=$((bad + 1))
}

is_control() { # PATH
	case $1 in
	vmm/control/*) return 0 ;;
	esac
	return 1
}

# allowed SRC DST: does the layer of SRC allow including DST? Sets $why when not.
allowed() {
	local src=$1 dst=$2
	if [[ $dst == *_priv.h ]]; then
		local mod=${dst%_priv.h}
		why="${mod}_priv.h holds internals of ${mod}.c and ${mod}_*.c only"
		[[ $src == "$mod.c" || $src == "${mod}"_*.c ]]
		return
	fi
	case $src in
	vmm/util.[ch] | vmm/loop.[ch] | vmm/state.[ch])
		why="the base layer (vmm/util, vmm/loop, vmm/state) includes only itself"
		[[ $dst == vmm/util.h || $dst == vmm/loop.h || $dst == vmm/state.h ]]
		return
		;;
	vmm/mem/*)
		why="vmm/mem/ may include only vmm/util.h, vmm/loop.h and vmm/mem/"
		[[ $dst == vmm/util.h || $dst == vmm/loop.h || $dst == vmm/mem/* ]]
		return
		;;
	devices/*)
		why="devices/ may include only vmm/util.h, vmm/loop.h, vmm/state.h, vmm/mem/guest_mem.h and devices/"
		[[ $dst == vmm/util.h || $dst == vmm/loop.h || $dst == vmm/state.h || $dst == vmm/mem/guest_mem.h ||
			$dst == devices/* ]]
		return
		;;
	vmm/boot/*)
		why="vmm/boot/ may include only vmm/util.h, vmm/mem/guest_mem.h and vmm/boot/"
		[[ $dst == vmm/util.h || $dst == vmm/mem/guest_mem.h || $dst == vmm/boot/* ]]
		return
		;;
	esac
	if is_control "$dst" && ! is_control "$src"; then
		why="only vmm/main.c, vmm/cli.c, vmm/machine.c and the control plane include it"
		[[ $src == vmm/main.c || $src == vmm/cli.c || $src == vmm/machine.c ]]
		return
	fi
	return 0
}

if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
	files=$(git ls-files --cached --others --exclude-standard -- 'vmm/*.[ch]' 'devices/*.[ch]')
else
	files=$(find vmm devices -name '*.[ch]' | sort)
fi
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT

for f in $files; do
	[ -f "$f" ] || continue
	dir=$(dirname "$f")
	echo "$f $f" >>"$edges" # every file is a node, even one that includes nothing
	while read -r inc; do
		dst=$(realpath -m --relative-to="$root" "$dir/$inc")
		if [ ! -f "$dst" ]; then
			violation "$f" "\"$inc\"" "no such file"
			continue
		fi
		allowed "$f" "$dst" || violation "$f" "$dst" "$why"
		echo "$f $dst" >>"$edges"
	done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/p' "$f")
done

# tsort names the files of a cycle on stderr ("input contains a loop"); self-edges are ignored.
if ! cycle=$(tsort "$edges" 2>&1 >/dev/null); then
	echo "check-includes: include cycle:"
	grep -v 'input contains a loop' <<<"$cycle" | sed 's/^tsort: /    /'
	bad=$((bad + 1))
fi

nfiles=$(wc -w <<<"$files")
if [ $bad -gt 0 ]; then
	echo "check-includes: $bad violation(s) in $nfiles files"
	exit 1
fi
echo "check-includes: $nfiles files follow the layering rule"
