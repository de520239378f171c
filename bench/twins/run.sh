#!/usr/bin/env bash
# bench/twins/run.sh: two identical idle 512 MiB guests, host memory of the pair (sum of PSS, KSM
# pages counted once) over a fixed window, vmm (KSM + free page reporting + --auto-balloon on)
# against QEMU (mem-merge=on + virtio-balloon free page reporting), in one boot of the nested test
# host (or directly where /dev/kvm boots Linux); see twins_bench.sh. Writes build/bench/twins.csv
# (seconds, pair PSS and pair RSS MiB for vmm and qemu) and, with gnuplot, build/bench/twins.png.
# Extra arguments go to the test host runner (e.g. --env TWINS_WINDOW=60).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
out=$B/bench
mkdir -p "$out"
log=$out/twins.log

mode=$("$root/tests/lib/detect-kvm.sh")
if [ "$mode" = direct ]; then
	"$root/tests/direct-run.sh" bench-twins 900 "$here/twins_bench.sh" | tee "$log"
else
	"$root/tests/testhost/run.sh" --with-qemu --stream --quiet-results "$@" "$here/twins_bench.sh" |
		tee "$log"
fi
rc=${PIPESTATUS[0]}

# The samples, one row per 2 s: seconds, then pair PSS and RSS per VMM (empty where absent).
grep -o '@@csv [a-z]* [0-9]* [0-9]* [0-9]*' "$log" | awk '
	{ p[$2, $3] = $4; r[$2, $3] = $5; if ($3 > max) max = $3 }
	END { print "seconds,vmm_pair_pss_mib,vmm_pair_rss_mib,qemu_pair_pss_mib,qemu_pair_rss_mib"
	      for (t = 0; t <= max; t += 2)
		print t "," p["vmm", t] "," r["vmm", t] "," p["qemu", t] "," r["qemu", t] }' \
	>"$out/twins.csv"
echo "twins: CSV $out/twins.csv"
if command -v gnuplot >/dev/null; then
	gnuplot <<GP
set terminal png size 900,500
set output "$out/twins.png"
set datafile separator ","
set key top right
set offsets 0, 0, graph 0.45, 0
set yrange [0:*]
set xlabel "seconds"
set ylabel "host memory of the pair (MiB)"
set title "two idle 512 MiB guests: host memory of the pair, PSS (thick) and RSS (thin)"
plot "$out/twins.csv" using 1:2 with lines lw 2 lc 1 title "vmm PSS (KSM + reporting + --auto-balloon on)", \
     "$out/twins.csv" using 1:3 with lines lw 1 lc 1 title "vmm RSS", \
     "$out/twins.csv" using 1:4 with lines lw 2 lc 2 title "QEMU PSS (mem-merge=on + reporting)", \
     "$out/twins.csv" using 1:5 with lines lw 1 lc 2 title "QEMU RSS"
GP
	echo "twins: plot $out/twins.png"
else
	echo "twins: no gnuplot (make deps installs gnuplot-nox): no plot"
fi
exit "$rc"
