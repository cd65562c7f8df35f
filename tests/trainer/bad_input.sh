#!/usr/bin/env bash
# Wrong flags, missing files and damaged data or checkpoints: every example program answers with
# exit code 2 and a one-line message naming the flag or file and the problem (no crash, no stack
# trace), and no saved file is changed by the failed run.
#   bad_input.sh TRAIN_MNIST EVALUATE CLASSIFY DATA_DIR WORK_DIR
set -euo pipefail
train="$1" evaluate="$2" classify="$3" data="$4" work="$5"
rm -rf "$work" && mkdir -p "$work"
failures=0 cases=0

# expect EXPECTED_TEXT COMMAND...: exit code 2, EXPECTED_TEXT on stderr, nothing crash-like.
expect() {
  local text="$1" status=0
  shift
  cases=$((cases + 1))
  "$@" >"$work/out.txt" 2>"$work/err.txt" || status=$?
  printf '%s\n    -> %s\n' "${*#"$work"/}" "$(head -n 1 "$work/err.txt")" >>"$work/messages.txt"
  local problem=""
  if [ "$status" -ne 2 ]; then problem="exit code $status, expected 2"
  elif ! grep -qF -- "$text" "$work/err.txt"; then problem="stderr lacks '$text'"
  elif grep -Eq "terminate called|Aborted|Segmentation|Sanitizer|runtime error|what\(\)" "$work/err.txt"; then
    problem="crash-like output"
  fi
  if [ -n "$problem" ]; then
    failures=$((failures + 1))
    echo "FAIL: ${*##*/}: $problem" >&2
    sed 's/^/  | /' "$work/err.txt" >&2
  fi
}

# A copy of the data set with one file replaced by the output of a command.
damaged() {  # damaged NAME FILE COMMAND...: $work/NAME holds the data with FILE piped through COMMAND
  local name="$1" file="$2"
  shift 2
  mkdir -p "$work/$name"
  cp "$data"/* "$work/$name/"
  "$@" <"$data/$file" >"$work/$name/$file"
}
patch_byte() {  # patch_byte OFFSET OCTAL: stdin with one byte replaced
  local tmp
  tmp=$(mktemp)
  cat >"$tmp"
  printf "\\$2" | dd of="$tmp" bs=1 seek="$1" conv=notrunc status=none
  cat "$tmp" && rm -f "$tmp"
}

small=(--limit-train 64 --limit-test 20 --batch-size 32 --eval-every 0 --threads 1 --no-progress)
"$train" "${small[@]}" --data "$data" --out "$work/good" >"$work/good.log"
cp -r "$work/good" "$work/good.orig"

# --- flags
expect "--epochs" "$train" --epochs 0
expect "--no-such-flag" "$train" --no-such-flag
expect "resnet99" "$train" --model resnet99
expect "--lr" "$train" --lr fast
expect "--batch-size" "$train" --batch-size 1
expect "--momentum" "$train" --momentum 2
expect "--recompute-bn" "$train" --recompute-bn 1
expect "--resume" "$train" --resume "$work/no-such-run"
expect "--threads" "$evaluate" --threads -1
expect "--checkpoint" "$evaluate" --checkpoint "$work/no-such-run"
expect "image" "$classify" --checkpoint "$work/good"
expect "$work/no-such.png" "$classify" --checkpoint "$work/good" "$work/no-such.png"

# --- data files
expect "$work/no-such-data" "$train" --data "$work/no-such-data" --out "$work/x"
damaged truncated train-images-idx3-ubyte head -c 100000
expect "truncated/train-images-idx3-ubyte" "$train" "${small[@]}" --data "$work/truncated" --out "$work/x"
damaged magic train-labels-idx1-ubyte patch_byte 3 003
expect "magic" "$train" "${small[@]}" --data "$work/magic" --out "$work/x"
damaged label t10k-labels-idx1-ubyte patch_byte 12 014
expect "label 12" "$train" "${small[@]}" --data "$work/label" --out "$work/x"
expect "label 12" "$evaluate" --checkpoint "$work/good" --data "$work/label"
damaged count t10k-images-idx3-ubyte patch_byte 6 377
expect "t10k-images-idx3-ubyte" "$evaluate" --checkpoint "$work/good" --data "$work/count"
damaged gz train-images-idx3-ubyte gzip -c
head -c 300000 "$work/gz/train-images-idx3-ubyte" >"$work/gz/train-images-idx3-ubyte.gz"
rm "$work/gz/train-images-idx3-ubyte"
expect "train-images-idx3-ubyte.gz" "$train" "${small[@]}" --data "$work/gz" --out "$work/x"

# --- checkpoints (and the saved run must come out of every failed attempt unchanged)
mkdir -p "$work/cut" && head -c 5000 "$work/good/model.safetensors" >"$work/cut/model.safetensors"
expect "cut/model.safetensors" "$evaluate" --checkpoint "$work/cut" --data "$data"
expect "does not match" "$evaluate" --checkpoint "$work/good" --model resnet18 --data "$data"
# NaN in fc.bias: the tensor's bytes start at 8 + header length + its first data offset.
mkdir -p "$work/nan" && cp "$work/good/model.safetensors" "$work/nan/"
header_length=$(od -An -t u8 -N 8 "$work/nan/model.safetensors" | tr -d ' ')
fc_bias=$(head -c $((8 + header_length)) "$work/nan/model.safetensors" | grep -ao '"fc.bias":{[^}]*}' |
  grep -o '"data_offsets":\[[0-9]*' | grep -o '[0-9]*$')
printf '\000\000\300\177' | dd of="$work/nan/model.safetensors" bs=1 seek=$((8 + header_length + fc_bias)) conv=notrunc status=none
expect "'fc.bias' holds NaN at element 0" "$evaluate" --checkpoint "$work/nan" --data "$data"
{ printf 'P5\n28 28\n255\n'; head -c 784 /dev/zero; } >"$work/blank.pgm"
expect "'fc.bias' holds NaN" "$classify" --checkpoint "$work/nan" "$work/blank.pgm"
printf 'not a PNG at all' >"$work/garbage.png"
expect "garbage.png" "$classify" --checkpoint "$work/good" "$work/garbage.png"
head -c 3000 "$work/good/training_state.safetensors" >"$work/good/training_state.safetensors.cut"
cp "$work/good/training_state.safetensors" "$work/state.keep"
mv "$work/good/training_state.safetensors.cut" "$work/good/training_state.safetensors"
expect "training_state.safetensors" "$train" --resume "$work/good" --epochs 2 --no-progress
cp "$work/state.keep" "$work/good/training_state.safetensors"
expect "--lr" "$train" --resume "$work/good" --lr 0.5 --no-progress
if ! diff -r "$work/good" "$work/good.orig" >/dev/null; then
  echo "FAIL: a failed run changed the saved checkpoint directory" >&2
  failures=$((failures + 1))
fi

echo "bad_input.sh: $((cases - failures)) of $cases bad inputs rejected cleanly with exit code 2"
[ "$failures" -eq 0 ]
