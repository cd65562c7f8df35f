#!/usr/bin/env bash
# A run whose weights blow up stops with exit code 3 and a message naming what diverged; the
# checkpoint it leaves is the last good one and loads strictly (NaN is refused). The blow-up is
# forced, not hoped for: epoch 1 trains at lr 0.1 and saves checkpoints, then a step schedule with
# gamma 1e30 makes epoch 2's updates overflow float (a merely large lr such as 30 may recover).
#   diverge.sh TRAIN_MNIST EVALUATE DATA_DIR WORK_DIR
set -euo pipefail
train="$1" evaluate="$2" data="$3" work="$4"
rm -rf "$work" && mkdir -p "$work"
args=(--data "$data" --limit-train 256 --batch-size 32 --limit-test 64 --threads 1 --no-progress)

status=0
"$train" "${args[@]}" --lr 0.1 --epochs 2 --schedule step --step-size 1 --gamma 1e30 --eval-every 2 \
  --out "$work/run" >"$work/run.log" 2>&1 || status=$?
fail() { echo "diverge.sh: $1" >&2; cat "$work/run.log" >&2; exit 1; }
[ "$status" -eq 3 ] || fail "expected exit code 3 after divergence, got $status"
# Whichever shows it first: a tensor of the model, the training loss or the test loss.
grep -Eq "(tensor '[a-z0-9_.]+'|the loss|the test loss) became (NaN|infinite|NaN or infinite) at epoch 2, batch [0-9]+ \(iteration [0-9]+\); training stopped" "$work/run.log" ||
  fail "no message naming what diverged"
kept=$(grep -o "last good checkpoint (iteration [0-9]*)" "$work/run.log" | grep -o "[0-9]*") || fail "no kept checkpoint named"
last_logged=$(awk -F'|' '/^Epoch:/ {print $2}' "$work/run.log" | grep -o "[0-9]*" | tail -1)
[ "$kept" -lt "$last_logged" ] || fail "the kept checkpoint ($kept) should predate the diverged evaluation ($last_logged)"
# The kept checkpoint holds the weights of iteration $kept: finite (a strict load refuses NaN) and
# scoring what the trainer logged for that iteration.
"$evaluate" --checkpoint "$work/run" --data "$data" --limit 64 >"$work/evaluate.log" 2>&1 ||
  { cat "$work/evaluate.log" >&2; fail "evaluate could not use the kept checkpoint"; }
logged=$(awk -F'|' -v it="$kept" '/^Epoch:/ && $2 ~ ("iteration " it " ") {print $5}' "$work/run.log" | grep -o "[0-9.]*$")
evaluated=$(awk '/^test accuracy:/ {print $3}' "$work/evaluate.log")
[ "$logged" = "$evaluated" ] || fail "the kept checkpoint scores $evaluated, the trainer logged $logged at iteration $kept"
[ -z "$(find "$work/run" -name '.*.tmp-*')" ] || fail "temporary files left behind"

# Divergence before the first checkpoint: the message says nothing was saved, and nothing was.
status=0
"$train" "${args[@]}" --lr 1000 --eval-every 0 --out "$work/early" >"$work/early.log" 2>&1 || status=$?
[ "$status" -eq 3 ] || { cat "$work/early.log" >&2; echo "diverge.sh: expected exit 3, got $status" >&2; exit 1; }
grep -q "no checkpoint was written yet" "$work/early.log"
[ ! -e "$work/early/model.safetensors" ]
echo "diverge.sh: stopped with exit 3; kept checkpoint of iteration $kept scores $evaluated as logged"
