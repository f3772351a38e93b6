#!/usr/bin/env bash
# Copy the records of a sweep folder's completed points (no checkpoints, no per-step logs) into another folder, so
# that a long sweep survives the loss of its run folder: `vaelab sweep FILE --out DEST_COPY` after copying DEST
# back skips every completed point (docs/sweeps.md, "Keeping a long sweep's records").
#   bash sweeps/keep_records.sh runs/sweeps/tetrominoes_converged results/sweeps/tetrominoes_converged
set -euo pipefail
src=${1:?usage: keep_records.sh SWEEP_FOLDER DEST}
dest=${2:?usage: keep_records.sh SWEEP_FOLDER DEST}
[ -f "$src/sweep.yaml" ] || { echo "keep_records.sh: $src is not a sweep folder (no sweep.yaml)" >&2; exit 2; }
mkdir -p "$dest/points"
cp "$src/sweep.yaml" "$dest/"
n=0
for point in "$src"/points/*/; do
  name=$(basename "$point")
  [ -f "$point/measurements.json" ] || continue
  mkdir -p "$dest/points/$name"
  for f in point.json config.yaml summary.json metrics.jsonl eval_train.json eval_test.json eval_valid.json measurements.json; do
    [ -f "$point/$f" ] && cp "$point/$f" "$dest/points/$name/"
  done
  n=$((n + 1))
done
echo "kept the records of $n completed points in $dest"
