#!/usr/bin/env bash
# The whole mission on the embedded stack: start it, register the example digits classifier,
# deploy it, run it over the example dataset, show the results and the accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
export MODELHUB_DATA_DIR="${DATA_DIR:-$PWD/.modelhub-demo}"
PORT="${PORT:-8000}"
MH=.venv/bin/modelhub
PY=.venv/bin/python
BUILD=examples/digits/build
# the models' jail shows them only these files besides their own (the gateway's thumbnails too)
export MODELHUB_MEDIA_ROOTS="${MODELHUB_MEDIA_ROOTS:-$PWD/$BUILD/dataset}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# shellcheck source=scripts/demo-lib.sh
. scripts/demo-lib.sh

step "Building the example model package and dataset (scikit-learn digits)"
$PY examples/digits/build.py --out "$BUILD"

step "Starting the embedded stack (NATS, MongoDB, Ray, five services) in $MODELHUB_DATA_DIR"
if $MH status --data-dir "$MODELHUB_DATA_DIR" >/dev/null 2>&1; then
  echo "already running"
else
  $MH up --detach --data-dir "$MODELHUB_DATA_DIR" --port "$PORT"
fi
export MODELHUB_URL="http://127.0.0.1:$PORT" MODELHUB_TOKEN="$(cat "$MODELHUB_DATA_DIR/admin-token")"

step "Registering the model"
if $MH models show digits >/dev/null 2>&1; then
  echo "model digits is registered already"
else
  $MH models create digits --description "Handwritten digit classifier (8x8, numpy MLP)" --tag example --tag vision
  $MH models upload digits "$BUILD/digits-classifier.zip" --schema "$BUILD/schema.json"
fi

step "Deploying it (2 replicas, mini-batch 16)"
wait_while_deployment_changes digits-demo
if [ "$(deployment_status digits-demo)" = running ]; then
  echo "deployment digits-demo is running"
else
  $MH models deploy digits --name digits-demo --mini-batch 16 --num-replicas 2
fi

step "Creating the dataset from the example images"
if ! $MH datasets show digits-demo >/dev/null 2>&1; then
  $MH datasets create digits-demo --description "397 held-out digits"
  $MH datasets add digits-demo "$BUILD/dataset" --glob '*.png'
fi

step "Running the model over the dataset"
$MH run digits-demo --deployment digits-demo --output predictions=predictions

step "Results"
$PY examples/digits/report.py --dataset digits-demo --field predictions --labels "$BUILD/dataset/labels.json"

printf '\nThe stack is still running: API docs at %s/api/v1/docs (token in %s/admin-token).\n' \
  "$MODELHUB_URL" "$MODELHUB_DATA_DIR"
printf 'Stop it with: make down\n'
