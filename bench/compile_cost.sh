#!/usr/bin/env bash
# Compile cost of the deepest networks: wall time and peak compiler memory (GNU time) of one
# translation unit that instantiates forward + backward of ResNet50 and of ResNet152, compiled
# with the project's flags (g++ -std=c++20 -O2 -march=native). No ccache: every run compiles.
#   bench/compile_cost.sh [runs]   (default 3 runs each; the median is reported)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
cxx="${CXX:-g++}"
[ -x /usr/bin/time ] || { echo "compile_cost: needs GNU time (apt-get install time)" >&2; exit 1; }
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

printf "%-10s %10s %14s   (%s, %s runs, median)\n" network "wall (s)" "peak RSS (MiB)" "$($cxx --version | head -1)" "$runs"
for net in ResNet50 ResNet152; do
  walls=() rss=()
  for ((i = 0; i < runs; i++)); do
    /usr/bin/time -v -o "$out/time.txt" "$cxx" -std=c++20 -O2 -march=native -I"$root/include" $eigen \
      -DCTNN_NET="$net" "$root/bench/compile_cost/resnet.cpp" -o "$out/$net"
    walls+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (j = 1; j <= n; j++) s = s * 60 + t[j]; print s}' "$out/time.txt")")
    rss+=("$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$out/time.txt")")
  done
  median() { printf "%s\n" "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
  printf "%-10s %10s %14s\n" "$net" "$(median "${walls[@]}")" "$(median "${rss[@]}")"
  "$out/$net" >/dev/null
done
