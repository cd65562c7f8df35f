#!/usr/bin/env bash
# A short training run (250 iterations of 32 images, one epoch of the MNIST split) must classify
# the test images far better than chance (10%); evaluate must agree with the trainer's figure.
#   accuracy.sh TRAIN_MNIST EVALUATE DATA_DIR WORK_DIR
set -euo pipefail
train="$1" evaluate="$2" data="$3" work="$4"
rm -rf "$work" && mkdir -p "$work"
"$train" --data "$data" --batch-size 32 --lr 0.05 --limit-test 1000 --eval-every 50 --threads 2 --no-progress \
  --out "$work/run" | tee "$work/train.log"
accuracy=$(awk '/^test accuracy:/ {print $3}' "$work/train.log")
"$evaluate" --checkpoint "$work/run" --data "$data" --limit 1000 | tee "$work/evaluate.log"
evaluated=$(awk '/^test accuracy:/ {print $3}' "$work/evaluate.log")
awk -v a="$accuracy" -v e="$evaluated" 'BEGIN {
  if (a < 0.75) { printf "accuracy.sh: test accuracy %s after 250 iterations, expected at least 0.75\n", a; exit 1 }
  if (a != e) { printf "accuracy.sh: evaluate reports %s but the trainer %s\n", e, a; exit 1 }
}'
[ "$(wc -l <"$work/run/curves.csv")" -eq 7 ]  # header + iterations 1, 51, 101, 151, 201 + final
grep -q "<svg" "$work/run/curves.svg"
echo "accuracy.sh: test accuracy $accuracy after one epoch of batch 32"
