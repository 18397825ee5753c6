#!/usr/bin/env bash
# `make bench`: every benchmark, one after the other (long: keep the machine otherwise quiet).
# Each prints its figures and the command that produced them; figures are ratios to a baseline measured
# in the same run, because shared machines drift. Run one alone with the command it prints.
#   BENCH=operator make bench     only the operator's;  BENCH=runtime make bench   only the runtime's
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
only="${BENCH:-all}"

was_running=$($PY -m hack.localcluster status | grep -c ': running' || true)
cleanup() { if [ "$was_running" = "0" ]; then $PY -m hack.localcluster down >/dev/null; fi; }
trap cleanup EXIT
$PY -m hack.localcluster up

run() { echo; echo "### $*"; "$@"; }
if [ "$only" = all ] || [ "$only" = operator ]; then
  run $PY bench/operator/operator_bench.py
  for extra in bench/operator/*_bench.py; do
    [ "$extra" = bench/operator/operator_bench.py ] || run $PY "$extra"
  done
fi
if [ "$only" = all ] || [ "$only" = runtime ]; then
  run $PY bench/runtime/run.py ${BENCH_QUICK:+--quick}
  run $PY bench/runtime-hardening/run.py
  run $PY bench/quality/run.py
  run $PY bench/canary/shadow_bench.py
  run $PY bench/grpc/grpc_bench.py
  run $PY bench/grpc/guard_bench.py
fi
