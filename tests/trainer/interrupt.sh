#!/usr/bin/env bash
# SIGINT saves a checkpoint and exits 130; the run then resumes from it and finishes.
#   interrupt.sh TRAIN_MNIST DATA_DIR WORK_DIR
set -euo pipefail
train="$1" data="$2" work="$3"
rm -rf "$work" && mkdir -p "$work"
args=(--data "$data" --limit-train 4000 --limit-test 100 --batch-size 32
      --eval-every 0 --threads 1 --no-progress)

"$train" "${args[@]}" --out "$work/run" >"$work/run.log" 2>&1 &
pid=$!
# Wait until training is under way (the header is flushed before the first batch), then let it
# run one second: the run takes about ten.
# (Waits as long as the run lives: a busy machine can be slow to start it.)
until grep -q "thread(s)" "$work/run.log"; do
  kill -0 "$pid" 2>/dev/null || { echo "interrupt.sh: the run ended before printing its header" >&2; cat "$work/run.log" >&2; exit 1; }
  sleep 0.1
done
sleep 1
kill -INT "$pid"
status=0
wait "$pid" || status=$?
if [ "$status" -ne 130 ]; then
  echo "interrupt.sh: expected exit code 130 after SIGINT, got $status" >&2
  cat "$work/run.log" >&2
  exit 1
fi
grep -q "interrupted after iteration" "$work/run.log"
[ -s "$work/run/model.safetensors" ] && [ -s "$work/run/training_state.safetensors" ]
"$train" --resume "$work/run" --no-progress >"$work/resume.log"
grep -q "test accuracy:" "$work/resume.log"
echo "interrupt.sh: SIGINT left a checkpoint ($(grep -o 'after iteration [0-9]*' "$work/run.log")) and the run resumed to the end"
