#!/usr/bin/env bash
# EPR as the paper evaluates it (docs/results.md, "EPR: which protocol moves the numbers"): pEPR
# (depth 5) and sEPR (depth 3) on EmoDB at the cpu preset, under epr.protocol=paper and in_sample
# over SEEDS (default 5) and nested over NESTED_SEEDS (default 3; it trains epr.inner_folds + 1 = 4
# times the networks), beside the classical reference on the same folds.
#
#   bash studies/epr.sh            EMODB (default ../shared/data/emodb), OUT (runs/studies/epr)
#
# One runner.train per seed, each a row of OUT (epr_<protocol> for pEPR, epr_soft_<protocol> for
# sEPR). A seed whose config.txt exists is skipped; an interrupted one resumes from its Ray Train
# checkpoint when the code has not changed since. Seeds go in the order that answers first: the
# paper protocol, then nested, then in_sample. Wall times go to OUT/times.log; the report, with
# every stage table and the last stage against stage 1 paired per row, to OUT/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source studies/common.sh
PY=${PY:-.venv/bin/python}
EMODB=${EMODB:-$(cd .. && pwd)/shared/data/emodb}
OUT=${OUT:-runs/studies/epr}
SEEDS=${SEEDS:-5}
NESTED_SEEDS=${NESTED_SEEDS:-3}
mkdir -p "$OUT"
CORPUS=(corpus.name=emodb "corpus.root=$EMODB")

timed() { timed_to "$OUT/times.log" "$@"; }  # name, command...: run it, log its wall time

seed() {  # row, seed, overrides...: one seed of one row, through Ray Train (resumable)
  local row=$1 k=$2
  shift 2
  [[ -f "$OUT/$row/seed$k/config.txt" ]] && return 0
  timed "$row seed$k" "$PY" -m runner.train epr "seed=$k" --seeds 1 --label "$row" --out "$OUT" \
    --quiet workers=1 dist.cpus_per_worker=2 "${CORPUS[@]}" "$@"
}

report() { "$PY" -m runner.report "$OUT" > "$OUT/report.md"; }

[[ -f "$OUT/reference_cv/seed4/config.txt" ]] ||
  timed "reference" "$PY" -m runner.train reference split=kfold --seeds 5 --quiet --out "$OUT" \
    "${CORPUS[@]}"
for protocol in paper nested in_sample; do
  n=$SEEDS
  [[ $protocol == nested ]] && n=$NESTED_SEEDS
  for ((k = 0; k < n; k++)); do
    seed "epr_$protocol" "$k" "epr.protocol=$protocol" epr.labels=mixed epr.depth=5
    seed "epr_soft_$protocol" "$k" "epr.protocol=$protocol" epr.labels=soft epr.depth=3
    report
  done
done
