#!/bin/sh
# loader: boot_firmware() must refuse broken images with exit status 2 and a message naming the
# problem: missing file, directory, truncated file, wrong machine, shared object, a segment in
# the boot area below 1 MiB, a segment past RAM, an entry point outside the image.
# firmware: memtouch
# timeout: 30
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
good=$FW_DIR/memtouch.elf

# patch FILE OFFSET OCTAL-BYTES: overwrite bytes in place.
patch() {
	# shellcheck disable=SC2059 # octal escapes in the pattern are the point
	printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# expect_refused NAME PATTERN FILE: the vmm exits 2 and says PATTERN (grep -E) on stderr.
expect_refused() {
	run_with_timeout 15 "$VMM" run --firmware "$3" --mem 128 --console none \
		</dev/null >"$SCRATCH/$1.out" 2>"$SCRATCH/$1.err"
	rc=$?
	log "$1: exit $rc: $(head -n1 "$SCRATCH/$1.err")"
	[ $rc = 2 ] || fail "$1: exit status $rc, expected 2"
	grep -qE "$2" "$SCRATCH/$1.err" || fail "$1: no message matching '$2'"
}

phoff=$(od -An -t u8 -j 32 -N 8 "$good" | tr -d ' ')
[ -n "$phoff" ] || phoff=64
vaddr=$((phoff + 16))
paddr=$((phoff + 24))

expect_refused missing 'cannot read firmware' "$SCRATCH/no-such.elf"
mkdir -p "$SCRATCH/dir.elf"
expect_refused directory 'cannot read firmware' "$SCRATCH/dir.elf"
head -c 40 "$good" >"$SCRATCH/short.elf"
expect_refused truncated 'too short|malformed' "$SCRATCH/short.elf"
cp "$good" "$SCRATCH/i386.elf"
patch "$SCRATCH/i386.elf" 18 '\003\000'
expect_refused wrong-machine 'x86-64 ELF64' "$SCRATCH/i386.elf"
cp "$good" "$SCRATCH/dyn.elf"
patch "$SCRATCH/dyn.elf" 16 '\003\000'
expect_refused shared-object 'static executable' "$SCRATCH/dyn.elf"
cp "$good" "$SCRATCH/low.elf"
patch "$SCRATCH/low.elf" $vaddr '\000\020\000\000\000\000\000\000'
patch "$SCRATCH/low.elf" $paddr '\000\020\000\000\000\000\000\000'
expect_refused below-1mib 'below 1 MiB' "$SCRATCH/low.elf"
cp "$good" "$SCRATCH/high.elf"
patch "$SCRATCH/high.elf" $vaddr '\000\000\000\100\000\000\000\000'
patch "$SCRATCH/high.elf" $paddr '\000\000\000\100\000\000\000\000'
expect_refused past-ram 'does not fit' "$SCRATCH/high.elf"
cp "$good" "$SCRATCH/entry.elf"
patch "$SCRATCH/entry.elf" 24 '\000\001\000\000\000\000\000\000'
expect_refused bad-entry 'entry point' "$SCRATCH/entry.elf"
cp "$good" "$SCRATCH/phdrs.elf"
patch "$SCRATCH/phdrs.elf" 32 '\377\377\377\377\377\377\377\177'
expect_refused phdrs-past-eof 'program header' "$SCRATCH/phdrs.elf"
log "all broken images refused"
