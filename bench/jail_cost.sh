#!/usr/bin/env bash
# The model jail's cost, measured as the bench docs report it: bench/jobs.py (overhead and GPU-like
# efficiency) and bench/online_predict.py on the hub as it was before the jail (REF, default the
# last commit before it) and on this tree, one after the other on the same machine, same venv.
#   bash bench/jail_cost.sh [REF]      # results under bench/jail-cost/
# The "before" side runs REF's packages from a git worktree, put first on PYTHONPATH (the venv's
# editable installs resolve after it). Ray Data's reference pipeline is skipped (it is the same
# on both sides).
set -euo pipefail
cd "$(dirname "$0")/.."
REF="${1:-4341db1}"
OUT=bench/jail-cost
mkdir -p "$OUT"
WT="$(mktemp -d)/before"
git worktree add --detach -q "$WT" "$REF"
trap 'git worktree remove --force "$WT"' EXIT
BEFORE=""
for p in libs/contracts libs/runtime services/registry services/deployer services/scheduler services/inference-worker services/gateway cli; do
  BEFORE="$BEFORE${BEFORE:+:}$WT/$p"
done
export MODELHUB_BENCH_RAYDATA=0
for side in before after; do
  if [ "$side" = before ]; then path="$BEFORE"; root="$WT"; else path=""; root="$PWD"; fi
  echo "== jobs, $side the jail"
  PYTHONPATH="$path" .venv/bin/python "$root/bench/jobs.py" | tee "$OUT/jobs-$side.txt"
  cp "$root/bench/results.json" "$OUT/jobs-$side.json"
  [ "$side" = after ] && git checkout -q -- bench/results.json
done
for side in before after; do
  if [ "$side" = before ]; then path="$BEFORE"; root="$WT"; else path=""; root="$PWD"; fi
  echo "== online predict, $side the jail"
  PYTHONPATH="$path" .venv/bin/python "$root/bench/online_predict.py" --seconds 5 --out "$OUT/online-$side.json" \
    | tee "$OUT/online-$side.txt"
done
