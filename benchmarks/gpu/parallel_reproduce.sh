#!/usr/bin/env bash
# Run reproduce rows as parallel processes, one per (experiment, dataset, model), e.g. on a
# GPU machine where one process leaves the GPU mostly idle. Each process caches its run in
# RUNS_DIR like any `sessionrec reproduce`; logs go to LOG_DIR. Usage:
#   MINUTES=7 RUNS_DIR=/tmp/runs LOG_DIR=/tmp/logs \
#     benchmarks/gpu/parallel_reproduce.sh linet-table1:diginetica:narm,stamp focol-table2:diginetica:gcegnn
# MINUTES (optional) caps each run's training (a capped run is REDUCED); SR is the command
# that runs sessionrec (default `sessionrec`; `python3 -m sessionrec` with PYTHONPATH=src
# where the package is not installed). Then prints the test HR@20 / MRR@20 of every finished
# run in RUNS_DIR (earlier ones included: use a fresh RUNS_DIR for one batch's figures).
set -u
RUNS_DIR=${RUNS_DIR:-results/runs}
LOG_DIR=${LOG_DIR:-logs/parallel}
SR=${SR:-sessionrec}
mkdir -p "$LOG_DIR"
cap=()
[ -n "${MINUTES:-}" ] && cap=(--max-minutes "$MINUTES")
for spec in "$@"; do
  IFS=: read -r experiment dataset models <<<"$spec"
  for model in ${models//,/ }; do
    name=$experiment-$dataset-$model
    $SR reproduce "$experiment" --dataset "$dataset" --models "$model" "${cap[@]}" \
      --no-progress --set num_threads=1 --runs-dir "$RUNS_DIR" --out "$LOG_DIR/$name" \
      >"$LOG_DIR/$name.log" 2>&1 &
  done
done
wait
for metrics in "$RUNS_DIR"/*/metrics.json; do
  python3 - "$metrics" <<'PY'
import json, sys
from pathlib import Path
m = json.loads(Path(sys.argv[1]).read_text())
print(f"{Path(sys.argv[1]).parent.name}: test HR@20 {100 * m['test']['hr@20']:.2f}, "
      f"MRR@20 {100 * m['test']['mrr@20']:.2f}, best epoch {m.get('best_epoch')}")
PY
done
