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
# checkpoint when the package's sources (src/emoref) have not changed since; commits to docs,
# tests or scripts do not matter. Seeds go in the order that answers first: paper and in_sample
# seed by seed (which protocol difference moves the numbers), then pEPR under paper with early
# stopping on segment accuracy against the utterance label (epr.monitor=accuracy; the default
# monitors the loss against the refined targets, which rewards imitating the previous stage),
# then nested, whose pEPR seed trains 200 networks. Stage 1 is trained once per seed: a seed's
# later rows load its stage-1 networks from the store (epr.reuse_stage1; the accuracy-monitor row
# stops stage 1 differently, so it trains its own), and their curves and numbers are what
# training them would give. Wall times go to OUT/times.log; the report, with every stage table,
# the last stage against stage 1 paired per row and the rows of one kind paired stage by stage,
# to OUT/report.md.
#
# Each finished seed's numbers (config.txt, epochs.csv, table.csv, confusion.json: what
# runner.report reads) are copied to ARCHIVE (default studies/results/epr, kept in the
# repository), with times.log and report.md: docs/results.md's numbers come from there
# (`python -m runner.report studies/results/epr`), and a run folder that was lost is restored from
# it before anything trains, so a finished seed is never trained twice.
set -euo pipefail
cd "$(dirname "$0")/.."
source studies/common.sh
PY=${PY:-.venv/bin/python}
EMODB=${EMODB:-$(cd .. && pwd)/shared/data/emodb}
OUT=${OUT:-runs/studies/epr}
SEEDS=${SEEDS:-5}
NESTED_SEEDS=${NESTED_SEEDS:-3}
ARCHIVE=${ARCHIVE:-studies/results/epr}
KEPT=(config.txt epochs.csv table.csv confusion.json)  # a seed's files the report reads
# LANES seeds train side by side, each one Ray Train worker with CPUS threads. On 2 cores two lanes
# of one thread each train more networks per hour than one seed with two threads (small
# convolutions scale poorly across threads: BENCHMARKS.md, pair 9); every row uses the same
# setting, so the protocols compare like with like. Lane i takes seeds i, i + LANES, ...: no two
# lanes write the same seed folder.
LANES=${LANES:-2}
CPUS=${CPUS:-1}
mkdir -p "$OUT"
CORPUS=(corpus.name=emodb "corpus.root=$EMODB")

timed() { timed_to "$OUT/times.log" "$@"; }  # name, command...: run it, log its wall time

copy_seed() {  # from, to: a finished seed folder's KEPT files, config.txt last (it marks done)
  local name
  mkdir -p "$2"
  for name in "${KEPT[@]:1}" config.txt; do
    [[ -f "$1/$name" ]] && cp "$1/$name" "$2/$name.part" && mv "$2/$name.part" "$2/$name"
  done
  return 0
}

relative() {  # file: the repository's parent folder written as .. (paths in configs and logs)
  sed -i "s|$(cd .. && pwd)/|../|g" "$1"
}

archive() {  # row, seed: the finished seed, the wall times and the report into ARCHIVE
  copy_seed "$OUT/$1/seed$2" "$ARCHIVE/$1/seed$2"
  relative "$ARCHIVE/$1/seed$2/config.txt"
  cp "$OUT/times.log" "$ARCHIVE/times.log.part" && relative "$ARCHIVE/times.log.part" &&
    mv "$ARCHIVE/times.log.part" "$ARCHIVE/times.log"
}

for done_seed in "$ARCHIVE"/*/seed*/config.txt; do  # restore finished seeds a lost OUT lacks
  [[ -f "$done_seed" ]] || continue
  folder=${done_seed%/config.txt}
  [[ -f "$OUT/${folder#"$ARCHIVE"/}/config.txt" ]] || copy_seed "$folder" "$OUT/${folder#"$ARCHIVE"/}"
done
[[ -f "$OUT/times.log" || ! -f "$ARCHIVE/times.log" ]] || cp "$ARCHIVE/times.log" "$OUT/times.log"

seed() {  # row, seed, overrides...: one seed of one row, through Ray Train (resumable)
  local row=$1 k=$2
  shift 2
  [[ -f "$OUT/$row/seed$k/config.txt" ]] && return 0
  timed "$row seed$k" "$PY" -m runner.train epr "seed=$k" --seeds 1 --label "$row" --out "$OUT" \
    --quiet workers=1 "dist.cpus_per_worker=$CPUS" "${CORPUS[@]}" "$@"
  archive "$row" "$k"
}

report() {  # written whole, then moved: two lanes may report at once
  local part="$OUT/report.md.$BASHPID"
  "$PY" -m runner.report "$OUT" > "$part" && mv "$part" "$OUT/report.md"
  mkdir -p "$ARCHIVE" && cp "$OUT/report.md" "$ARCHIVE/report.md.$BASHPID" &&
    mv "$ARCHIVE/report.md.$BASHPID" "$ARCHIVE/report.md"
}

if [[ ! -f "$OUT/reference_cv/seed4/config.txt" ]]; then
  timed "reference" "$PY" -m runner.train reference split=kfold --seeds 5 --quiet --out "$OUT" \
    "${CORPUS[@]}"
  for ((k = 0; k < 5; k++)); do archive reference_cv "$k"; done
fi

run_seed() {  # protocol, seed: its pEPR and sEPR rows, then the report
  seed "epr_$1" "$2" "epr.protocol=$1" epr.labels=mixed epr.depth=5
  seed "epr_soft_$1" "$2" "epr.protocol=$1" epr.labels=soft epr.depth=3
  report
}

lane() {  # first seed: paper and in_sample seed by seed, pEPR under paper stopped on accuracy, nested
  local k
  for ((k = $1; k < SEEDS; k += LANES)); do
    run_seed paper "$k"
    run_seed in_sample "$k"
  done
  for ((k = $1; k < SEEDS; k += LANES)); do  # early stopping on segment accuracy instead of loss
    seed epr_paper_monitor_accuracy "$k" epr.protocol=paper epr.labels=mixed epr.depth=5 \
      epr.monitor=accuracy
    report
  done
  for ((k = $1; k < NESTED_SEEDS; k += LANES)); do
    run_seed nested "$k"
  done
}

pids=()
for ((i = 0; i < LANES; i++)); do
  lane "$i" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
exit $status
