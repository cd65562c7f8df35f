#!/usr/bin/env bash
# ctnn against PyTorch on the same workloads, shapes and thread counts, in one run.
#   bench/compare_pytorch.sh [--threads "1 2"] [--rounds 3] [--runs 5] [--workloads "mnist_train ..."]
# Workloads: mnist_train mnist_infer resnet50_latency resnet50_infer resnet50_train (the default
# set), and mnist_conv_layers: the MNIST net's convolutions one by one (forward, and the backward
# training runs), in a second table with each side's total per training step.
# Each (workload, threads) pair runs as separate processes, alternating ctnn and PyTorch for
# `rounds` rounds (so both see the same machine noise); each process reports the median of `runs`
# timed runs after warm-up, and the table shows the median over rounds. Peak RSS is the process's
# own (getrusage), one workload per process. The FMA peak is the best bench/peak_flops reading,
# sampled before every round.
# Needs Debian's python3-torch and python3-torchvision (installed with apt-get if missing); the
# benchmarks are built in $BUILD_DIR (default: build-bench next to this repository's sources).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
threads_list="1 2"
rounds=3
runs=5
workloads="mnist_train mnist_infer resnet50_latency resnet50_infer resnet50_train"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads_list="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --workloads) workloads="$2"; shift 2 ;;
    *) echo "usage: $0 [--threads \"1 2\"] [--rounds R] [--runs N] [--workloads \"...\"]" >&2; exit 2 ;;
  esac
done
build="${BUILD_DIR:-$root/build-bench}"
python=/usr/bin/python3  # Debian's interpreter: the one python3-torch installs into

# shellcheck source=../scripts/common.sh
source "$root/scripts/common.sh"
ensure_packages python3-torch python3-torchvision

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target bench_mnist bench_resnet50 bench_conv_layers peak_flops >/dev/null

results=$(mktemp)
trap 'rm -f "$results"' EXIT
program_of() {
  case "$1" in
    mnist_conv_layers) echo "$build/bench/bench_conv_layers" ;;
    mnist_*) echo "$build/bench/bench_mnist" ;;
    *) echo "$build/bench/bench_resnet50" ;;
  esac
}
runs_of() { case "$1" in resnet50_train) echo $(( (runs + 1) / 2 )) ;; *) echo "$runs" ;; esac; }

for threads in $threads_list; do
  for w in $workloads; do
    for ((r = 0; r < rounds; r++)); do
      # The peak is sampled between workloads too: a reading taken while a neighbour is busy is
      # low, and the best of all readings is what the machine can do.
      "$build/bench/peak_flops" --threads "$threads" --runs 3 --warmup 1 | sed 's/^RESULT/RESULT side=peak/' >>"$results"
      "$(program_of "$w")" --threads "$threads" --runs "$(runs_of "$w")" --workload "$w" |
        sed 's/^RESULT/RESULT side=ctnn/' >>"$results"
      "$python" "$root/bench/pytorch_workloads.py" --threads "$threads" --runs "$(runs_of "$w")" --workload "$w" |
        sed 's/^RESULT/RESULT side=torch/' >>"$results"
    done
  done
done

echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs;" \
     "ctnn: $(c++ --version | head -1); PyTorch $("$python" -c 'import torch; print(torch.__version__)');" \
     "median of $rounds alternating rounds x $runs runs"
awk -v workloads="$workloads" -v threads_list="$threads_list" '
  /layer=/ { next }  # mnist_conv_layers: the table below
  function max_of(key,   n, i, a, m) {
    n = split(vals[key], a, " "); m = 0
    for (i = 1; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0
    return m
  }
  function med(key,   n, i, j, t, a) {
    n = split(vals[key], a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n ? a[int((n + 1) / 2)] : 0
  }
  /^RESULT/ {
    delete f
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["side"] SUBSEP f["workload"] SUBSEP f["threads"]
    for (m in f) if (m != "side" && m != "workload" && m != "threads") vals[k SUBSEP m] = vals[k SUBSEP m] " " f[m]
  }
  END {
    nt = split(threads_list, ts, " "); nw = split(workloads, ws, " ")
    if (nw == 1 && ws[1] == "mnist_conv_layers") exit
    printf "%-17s %3s %5s | %10s %10s %7s | %7s %7s | %6s %6s | %9s %9s\n", "workload", "thr", "batch",
           "ctnn", "pytorch", "ratio", "ctnn", "pytorch", "ctnn", "torch", "RSS ctnn", "RSS torch"
    printf "%-17s %3s %5s | %10s %10s %7s | %7s %7s | %6s %6s | %9s %9s\n", "", "", "",
           "img/s", "img/s", "c/p", "GFLOP/s", "GFLOP/s", "%peak", "%peak", "MiB", "MiB"
    for (ti = 1; ti <= nt; ti++) {
      t = ts[ti]; peak = max_of("peak" SUBSEP "peak" SUBSEP t SUBSEP "best")
      for (wi = 1; wi <= nw; wi++) {
        w = ws[wi]; c = "ctnn" SUBSEP w SUBSEP t; p = "torch" SUBSEP w SUBSEP t
        if (w == "mnist_conv_layers") continue
        ci = med(c SUBSEP "images_per_s"); pi = med(p SUBSEP "images_per_s")
        cg = med(c SUBSEP "gflops"); pg = med(p SUBSEP "gflops")
        extra = ""
        if (w == "resnet50_latency") extra = sprintf("  latency %.1f ms vs %.1f ms (ratio %.2f)", med(c SUBSEP "ms"), med(p SUBSEP "ms"), med(c SUBSEP "ms") / med(p SUBSEP "ms"))
        printf "%-17s %3s %5s | %10.1f %10.1f %7.2f | %7.1f %7.1f | %5.1f%% %5.1f%% | %9s %9s%s\n", w, t,
               med(c SUBSEP "batch"), ci, pi, (pi > 0 ? ci / pi : 0), cg, pg, 100 * cg / peak, 100 * pg / peak,
               med(c SUBSEP "rss_mib"), med(p SUBSEP "rss_mib"), extra
      }
      printf "%-17s %3s %5s   measured FMA peak (best of %d readings): %.1f GFLOP/s\n", "peak", t, "", split(vals["peak" SUBSEP "peak" SUBSEP t SUBSEP "best"], unused, " "), peak
    }
  }' "$results"

# Per-layer table: medians over rounds of each (layer, pass); "speed c/p" is PyTorch's time over
# ctnn's (above 1: ctnn faster), and the totals weight each layer by its uses per training step.
grep -q 'layer=' "$results" && awk -v threads_list="$threads_list" '
  function med(key,   n, i, j, t, a) {
    n = split(vals[key], a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n ? a[int((n + 1) / 2)] : 0
  }
  /^RESULT/ && /layer=/ {
    delete f
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    row = f["layer"] SUBSEP f["pass"]
    if (!(row in seen)) { seen[row] = 1; order[++rows] = row; uses[row] = f["uses"] }
    k = f["side"] SUBSEP row SUBSEP f["threads"]
    vals[k SUBSEP "ms"] = vals[k SUBSEP "ms"] " " f["ms"]
    vals[k SUBSEP "gflops"] = vals[k SUBSEP "gflops"] " " f["gflops"]
  }
  END {
    printf "\n%-22s %4s %8s %3s | %9s %9s %9s | %7s %7s\n", "conv layer (batch 128)", "uses", "pass", "thr",
           "ctnn ms", "torch ms", "speed c/p", "ctnn GF/s", "torch GF/s"
    nt = split(threads_list, ts, " ")
    for (ti = 1; ti <= nt; ti++) {
      t = ts[ti]; total_c = 0; total_p = 0
      for (r = 1; r <= rows; r++) {
        row = order[r]; split(row, lp, SUBSEP)
        c = med("ctnn" SUBSEP row SUBSEP t SUBSEP "ms"); p = med("torch" SUBSEP row SUBSEP t SUBSEP "ms")
        total_c += uses[row] * c; total_p += uses[row] * p
        printf "%-22s %4s %8s %3s | %9.2f %9.2f %9.2f | %7.1f %7.1f\n", lp[1], uses[row], lp[2], t, c, p,
               (c > 0 ? p / c : 0), med("ctnn" SUBSEP row SUBSEP t SUBSEP "gflops"), med("torch" SUBSEP row SUBSEP t SUBSEP "gflops")
      }
      printf "%-22s %4s %8s %3s | %9.2f %9.2f %9.2f |   (each layer x its uses per training step)\n", "total", "", "", t,
             total_c, total_p, (total_c > 0 ? total_p / total_c : 0)
    }
  }' "$results"
