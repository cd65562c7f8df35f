#!/usr/bin/env bash
# A run stopped part-way (as an interruption would) and resumed with --resume ends with exactly
# the weights, training state and curves of the same run done in one go.
#   resume.sh TRAIN_MNIST DATA_DIR WORK_DIR
set -euo pipefail
train="$1" data="$2" work="$3"
rm -rf "$work" && mkdir -p "$work"
args=(--data "$data" --limit-train 640 --limit-test 200 --batch-size 64 --epochs 2 --eval-every 4 --seed 5 --threads 2 --no-progress)

"$train" "${args[@]}" --out "$work/whole" >"$work/whole.log"
"$train" "${args[@]}" --out "$work/parts" --stop-after 13 >"$work/part1.log"
grep -q "stopped as asked after iteration 13" "$work/part1.log"
"$train" --resume "$work/parts" --no-progress >"$work/part2.log"
grep -q "resumed from $work/parts at epoch 2, batch 3 (iteration 13)" "$work/part2.log"

for f in model.safetensors training_state.safetensors curves.csv; do
  if ! cmp -s "$work/whole/$f" "$work/parts/$f"; then
    echo "resume.sh: $f of the resumed run differs from the uninterrupted run" >&2
    exit 1
  fi
done
echo "resume.sh: the resumed run equals the uninterrupted one (weights, optimizer state, curves)"
