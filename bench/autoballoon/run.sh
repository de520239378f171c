#!/usr/bin/env bash
# bench/autoballoon/run.sh: the memory autopilot's workload, vmm --auto-balloon on against QEMU
# with free page reporting + deflate-on-oom, in one boot of the nested test host (or directly where
# /dev/kvm boots Linux); see autoballoon_bench.sh. Writes build/bench/autoballoon.csv
# (seconds, vmm (default huge pages), vmm --hugepages off and qemu RSS MiB) and, with gnuplot, build/bench/autoballoon.png.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
out=$B/bench
mkdir -p "$out"
log=$out/autoballoon.log

mode=$("$root/tests/lib/detect-kvm.sh")
if [ "$mode" = direct ]; then
	"$root/tests/direct-run.sh" bench-autoballoon 1200 "$here/autoballoon_bench.sh" | tee "$log"
else
	"$root/tests/testhost/run.sh" --with-qemu --stream --quiet-results "$here/autoballoon_bench.sh" |
		tee "$log"
fi
rc=${PIPESTATUS[0]}

# The samples, one row per second: seconds,vmm,vmm-4k,qemu (empty where one run had ended).
grep -o '@@csv [a-z0-9-]* [0-9]* [0-9]*' "$log" | awk '
	{ v[$2, $3] = $4; if ($3 > max) max = $3 }
	END { print "seconds,vmm_rss_mib,vmm_4k_rss_mib,qemu_rss_mib"
	      for (t = 0; t <= max; t++) print t "," v["vmm", t] "," v["vmm-4k", t] "," v["qemu", t] }' \
	>"$out/autoballoon.csv"
echo "autoballoon: CSV $out/autoballoon.csv"
if command -v gnuplot >/dev/null; then
	gnuplot <<GP
set terminal png size 900,500
set output "$out/autoballoon.png"
set datafile separator ","
set key top right
set xlabel "seconds"
set ylabel "VMM process RSS (MiB)"
set title "512 MiB guest: fill 300 MiB, free, idle, allocate 350 MiB"
plot "$out/autoballoon.csv" using 1:2 with lines lw 2 title "vmm --auto-balloon on", \
     "$out/autoballoon.csv" using 1:3 with lines lw 2 title "vmm --auto-balloon on --hugepages off", \
     "$out/autoballoon.csv" using 1:4 with lines lw 2 title "QEMU (reporting + deflate-on-oom)"
GP
	echo "autoballoon: plot $out/autoballoon.png"
else
	echo "autoballoon: no gnuplot (make deps installs gnuplot-nox): no plot"
fi
exit "$rc"
