#!/bin/sh
# vmm run --volume HOSTDIR:GUESTDIR[,ro]: HOSTDIR's files at GUESTDIR in the guest; after a clean
# exit a file edited in the guest is edited in HOSTDIR, a new one appears, a deleted one is gone,
# names with spaces and the command's exit status survive; ,ro refuses writes and leaves HOSTDIR
# alone; a guest that crashes after writing (sysrq c) or stops without unmounting (vmm-exit
# straight from the job) leaves HOSTDIR unchanged; with --root the volume is inside the root disk's
# tree; a missing HOSTDIR is one line and status 2. Prints the image build and write-back times
# of a 50 MiB tree (vmm -v).
# cost: 150
# timeout: 700
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

export TMPDIR=$SCRATCH/tmp # the test host has no /var/tmp; also: nothing may be left there
mkdir -p "$TMPDIR"
h=$SCRATCH/job
mkdir -p "$h/sub" "$h/dir with space"
echo original >"$h/edit.txt"
echo doomed >"$h/del.txt"
echo kept >"$h/sub/keep"
echo spaced >"$h/dir with space/f g"
ln -s sub/keep "$h/link"
chmod 0750 "$h/sub"

# sig DIR: one line per entry (type, mode, size, name, content checksum), sorted.
sig() {
	(cd "$1" && find . | sort | while IFS= read -r f; do
		if [ -L "$f" ]; then
			echo "l $f -> $(readlink "$f")"
		elif [ -f "$f" ]; then
			echo "f $(stat -c %a "$f") $(md5sum <"$f" | cut -c1-32) $f"
		else
			echo "d $(stat -c %a "$f") $f"
		fi
	done)
}

# vrun NAME TIMEOUT ARGS...: vmm run with stdout/stderr into $SCRATCH/NAME.{out,err}; status in rc.
vrun() {
	_n=$1 _t=$2
	shift 2
	run_with_timeout "$_t" "$VMM" run --mem 256M "$@" </dev/null >"$SCRATCH/$_n.out" 2>"$SCRATCH/$_n.err"
	rc=$?
	sed "s/^/$_n: /" "$SCRATCH/$_n.out"
	sed "s/^/$_n stderr: /" "$SCRATCH/$_n.err"
}

leftovers() {
	ls -A "$TMPDIR"
	ls -A "$SCRATCH" | grep '^\.vmm-volume' || true
}

log "1: a writable volume round trip"
# shellcheck disable=SC2016 # expanded by the guest's shell
g='cd /work || exit 10
cat edit.txt "dir with space/f g" link
echo edited >edit.txt
echo fresh >new.txt
rm del.txt
mkdir -p out/deep && echo result >out/deep/r
echo appended >>"dir with space/f g"
exit 3'
vrun rw 150 --volume "$h:/work" -- sh -c "$g"
assert_eq 3 "$rc" "the command's exit status"
assert_line "$SCRATCH/rw.out" original "HOSTDIR's file in the guest"
assert_line "$SCRATCH/rw.out" spaced "a name with spaces"
assert_line "$SCRATCH/rw.out" kept "through the symlink"
assert_eq edited "$(cat "$h/edit.txt")" "the edited file on the host"
assert_eq fresh "$(cat "$h/new.txt" 2>&1)" "the new file on the host"
[ ! -e "$h/del.txt" ] || fail "the file deleted in the guest is still in HOSTDIR"
assert_eq result "$(cat "$h/out/deep/r" 2>&1)" "a new directory tree"
assert_eq "spaced appended" "$(tr '\n' ' ' <"$h/dir with space/f g" | sed 's/ $//')" "appended"
assert_eq kept "$(cat "$h/sub/keep")" "an untouched file"
assert_eq "sub/keep" "$(readlink "$h/link")" "the symlink"
assert_eq 750 "$(stat -c %a "$h/sub")" "a directory's mode"
[ ! -e "$h/lost+found" ] || fail "the image's lost+found came back"
assert_eq "" "$(leftovers)" "no image or staging directory left behind"

log "2: ,ro refuses writes and leaves HOSTDIR alone"
before=$(sig "$h")
# shellcheck disable=SC2016
vrun ro 120 --volume "$h:/work,ro" -- \
	sh -c 'cat /work/edit.txt; if echo x >/work/edit.txt 2>/dev/null; then echo writable; else echo read-only; fi'
assert_eq 0 "$rc" "ro: exit status"
assert_line "$SCRATCH/ro.out" edited "ro: the files"
assert_line "$SCRATCH/ro.out" read-only "ro: a write fails"
assert_eq "$before" "$(sig "$h")" "ro: HOSTDIR unchanged"

log "3: a guest that crashes mid-job leaves HOSTDIR unchanged"
vrun crash 120 --volume "$h:/work" -- \
	sh -c 'echo crashed >/work/edit.txt; rm /work/new.txt; sync; echo c >/proc/sysrq-trigger; sleep 30'
[ "$rc" != 0 ] || fail "crash: vmm exited 0"
assert_eq "$before" "$(sig "$h")" "crash: HOSTDIR unchanged"
grep -q "not written back" "$SCRATCH/crash.err" || fail "crash: no 'not written back' line"
assert_eq "" "$(leftovers)" "crash: nothing left behind"

log "4: a job that stops the VM itself, the volume still mounted: HOSTDIR unchanged, status 2"
vrun dirty 120 --volume "$h:/work" -- sh -c 'echo dirty >/work/edit.txt; sync; vmm-exit 0'
assert_eq 2 "$rc" "dirty: exit status"
grep -q "did not unmount it cleanly" "$SCRATCH/dirty.err" || fail "dirty: no 'did not unmount' line"
assert_eq "$before" "$(sig "$h")" "dirty: HOSTDIR unchanged"

log "5: with --root the volume is mounted inside the root disk's tree"
mkimage=/vmm/mkimage.sh
[ -f "$mkimage" ] || mkimage=$(dirname "$0")/../../scripts/mkimage.sh
r=$SCRATCH/rootdir
mkdir -p "$r/bin" "$r/etc" "$r/dev" "$r/proc" "$r/sys" "$r/tmp" "$r/run"
bb=/bin/busybox
[ -x "$bb" ] || bb=$(command -v busybox)
cp "$bb" "$r/bin/busybox" || fail "no busybox for the root disk"
for a in sh cat echo ls; do ln -s busybox "$r/bin/$a"; done
echo on-the-root-disk >"$r/etc/os-marker"
sh "$mkimage" "$r" "$SCRATCH/root.img" 32M || fail "mkimage.sh failed"
# shellcheck disable=SC2016
vrun root 120 --disk "$SCRATCH/root.img" --root /dev/vda --volume "$h:/srv/job" -- \
	sh -c 'cat /etc/os-marker; cat /srv/job/edit.txt; echo from-root >/srv/job/root.txt'
assert_eq 0 "$rc" "root: exit status"
assert_line "$SCRATCH/root.out" on-the-root-disk "root: the root disk"
assert_line "$SCRATCH/root.out" edited "root: the volume"
assert_eq from-root "$(cat "$h/root.txt" 2>&1)" "root: written back"

log "6: bad volumes: one line, status 2, before the guest starts"
expect() { # WHAT SUBSTRING ARGS...
	_w=$1 _s=$2
	shift 2
	vrun bad 60 "$@" -- true
	assert_eq 2 "$rc" "$_w: exit status"
	assert_eq 1 "$(wc -l <"$SCRATCH/bad.err")" "$_w: stderr lines"
	grep -qF -e "$_s" "$SCRATCH/bad.err" || fail "$_w: stderr lacks '$_s'"
}
expect "missing HOSTDIR" "--volume $SCRATCH/nope: No such file or directory" --volume "$SCRATCH/nope:/work"
expect "a file as HOSTDIR" "not a directory" --volume "$h/edit.txt:/work"
expect "relative GUESTDIR" "must be an absolute path" --volume "$h:work"

log "7: a 50 MiB tree: image build and write-back times"
big=$SCRATCH/big
mkdir -p "$big"
i=0
while [ $i -lt 50 ]; do
	head -c 1048576 /dev/urandom >"$big/f$i"
	i=$((i + 1))
done
vrun big 300 -v --volume "$big:/big" -- sh -c 'echo changed >/big/f0'
assert_eq 0 "$rc" "big: exit status"
assert_eq changed "$(cat "$big/f0")" "big: written back"
assert_eq 1048576 "$(stat -c %s "$big/f49")" "big: an untouched 1 MiB file"
grep -E "volume.*(built|written back) in" "$SCRATCH/big.err" | sed 's/^/figure: /'
assert_eq "" "$(leftovers)" "big: nothing left behind"
log "ok"
