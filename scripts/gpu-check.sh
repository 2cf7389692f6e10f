#!/usr/bin/env bash
# The GPU check (docs/operations.md "GPUs"): run on a machine with an NVIDIA GPU and torch, e.g. through the
# device tool:  bash scripts/gpu-check.sh   (results JSON under $OUT when set, else bench/).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
PY=python3
for candidate in python3 python /opt/conda/bin/python; do
  if command -v "$candidate" >/dev/null && "$candidate" -c "import torch, numpy" 2>/dev/null; then PY=$candidate; break; fi
done
"$PY" scripts/gpu_check.py --out "${OUT:-bench}/gpu-check.json" "$@"
