#!/usr/bin/env bash
# Copy finished runs into results/ with what produced them: metrics.json, the resolved Hydra config and
# overrides, the training log and the TensorBoard events. Checkpoints stay behind (they are large and
# reproducible). Usage: scripts/publish_runs.sh DEST RUN_DIR [RUN_DIR ...]
set -euo pipefail
dest=$1; shift
for run in "$@"; do
  [ -f "$run/metrics.json" ] || { echo "error: $run has no metrics.json (not finished)" >&2; exit 2; }
  out="$dest/$(basename "$run")"
  mkdir -p "$out"
  cp -r "$run/metrics.json" "$run/.hydra" "$run/train.log" "$run/tb" "$out/"
  echo "published $run -> $out"
done
