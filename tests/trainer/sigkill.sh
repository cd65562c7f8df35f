#!/usr/bin/env bash
# Training killed with SIGKILL (no chance to save or clean up; possibly in the middle of writing a
# checkpoint) resumes from its last checkpoint and ends exactly as an uninterrupted run.
#   sigkill.sh TRAIN_MNIST EVALUATE DATA_DIR WORK_DIR
set -euo pipefail
train="$1" evaluate="$2" data="$3" work="$4"
rm -rf "$work" && mkdir -p "$work"
args=(--data "$data" --limit-train 1280 --limit-test 100 --batch-size 64 --eval-every 2 --seed 3 --threads 1 --no-progress)

"$train" "${args[@]}" --out "$work/whole" >"$work/whole.log"

"$train" "${args[@]}" --out "$work/killed" >"$work/killed.log" 2>&1 &
pid=$!
# Evaluations (each followed by a checkpoint) come after iterations 1, 3, 5, 7...; the line for
# iteration 7 is printed just before its checkpoint is written, so the kill lands during or just
# after that save, with the checkpoint of iteration 5 certainly complete.
# Waits as long as the run lives: on a busy or instrumented build that can take minutes.
until grep -q "iteration 7 " "$work/killed.log"; do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -KILL "$pid" 2>/dev/null || true  # (gone already if it failed before iteration 7: reported below)
wait "$pid" 2>/dev/null || true
grep -q "iteration 7 " "$work/killed.log" || { cat "$work/killed.log" >&2; echo "sigkill.sh: never reached iteration 7" >&2; exit 1; }
! grep -q "test accuracy:" "$work/killed.log"  # killed before the end, not after
# Whatever moment the kill hit, the directory holds a complete checkpoint that loads strictly.
"$evaluate" --checkpoint "$work/killed" --data "$data" --limit 20 >"$work/evaluate.log"
"$train" --resume "$work/killed" --no-progress >"$work/resume.log"
grep -Eq "resumed from .* \(iteration (5|7)\)" "$work/resume.log"
for f in model.safetensors training_state.safetensors curves.csv; do
  cmp -s "$work/whole/$f" "$work/killed/$f" || { echo "sigkill.sh: $f differs from the uninterrupted run" >&2; exit 1; }
done
[ -z "$(find "$work/killed" -name '.*.tmp-*')" ] || { echo "sigkill.sh: temporary files left behind" >&2; exit 1; }
echo "sigkill.sh: killed after iteration 7's evaluation; resumed from $(grep -o 'iteration [0-9]*' "$work/resume.log" | head -1) to the uninterrupted result"
