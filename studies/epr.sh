#!/usr/bin/env bash
# EPR as the paper evaluates it (docs/results.md, EPR, "which protocol moves the numbers"): pEPR
# (depth 5) and sEPR (depth 3) on EmoDB at the cpu preset, under epr.protocol=paper and in_sample
# over SEEDS (default 5) and nested over NESTED_SEEDS (default 3; it trains epr.inner_folds + 1 = 4
# times the networks), beside the classical reference on the same folds.
#
#   bash studies/epr.sh            EMODB (default ../shared/data/emodb), OUT (runs/studies/epr)
#
# One runner.train per seed, each a row of OUT (epr_<protocol> for pEPR, epr_soft_<protocol> for
# sEPR). A seed whose config.txt exists is skipped; an interrupted one resumes from its Ray Train
# checkpoint, or in a fresh checkout from the state it left in ARCHIVE/in_flight, when the
# package's sources (src/emoref) have not changed since; commits to docs, tests or scripts do
# not matter. Seeds go in the order that answers first (the queue, below): paper and in_sample
# seed by seed (which protocol difference moves the numbers), then nested pEPR, whose seed
# trains 200 networks, then nested sEPR, then pEPR under paper with early stopping on segment
# accuracy against the utterance label (epr.monitor=accuracy; the default monitors the loss
# against the refined targets, which rewards imitating the previous stage), then stage 1 alone
# at twice the width and at twice the segments over CAPACITY_SEEDS (default 3: why every row
# stays below the classical reference), then pEPR under paper with each
# fold's forest fitted on its own network's profiles over FOLD_FOREST_SEEDS (default 3;
# epr.forest_fit=fold_network); a seed stopped part-way goes first. Stage 1 is
# trained once per seed: a seed's later rows load its stage-1 networks from the store
# (epr.reuse_stage1; the accuracy-monitor row stops stage 1 differently and the stage-1 rows
# size it differently, so they train their own), and their curves and numbers are what
# training them would give. Wall times go to OUT/times.log; the report, with every stage table,
# the last stage against stage 1 paired per row and the rows of one kind paired stage by stage,
# to OUT/report.md.
#
# Each finished seed's numbers (config.txt, epochs.csv, table.csv, confusion.json: what
# runner.report reads) and provenance.txt (the commit and code digest that ran) are copied to ARCHIVE (default studies/results/epr, kept in the
# repository), with times.log and report.md: docs/results.md's numbers come from there
# (`python -m runner.report studies/results/epr`), and a run folder that was lost is restored from
# it before anything trains, so a finished seed is never trained twice.
set -euo pipefail
cd "$(dirname "$0")/.."
source studies/common.sh
PY=${PY:-.venv/bin/python}
# The folder that holds the repository and shared/ beside it: paths under it are archived as ../
# (set it when this script runs from a checkout elsewhere, such as a frozen copy of the code).
BESIDE=${BESIDE:-$(cd .. && pwd)}
EMODB=${EMODB:-$BESIDE/shared/data/emodb}
OUT=${OUT:-runs/studies/epr}
SEEDS=${SEEDS:-5}
NESTED_SEEDS=${NESTED_SEEDS:-3}
FOLD_FOREST_SEEDS=${FOLD_FOREST_SEEDS:-3}
CAPACITY_SEEDS=${CAPACITY_SEEDS:-3}
ARCHIVE=${ARCHIVE:-studies/results/epr}
# a seed's files the report reads, and the code that ran (seeds finished before it was written lack it)
KEPT=(config.txt epochs.csv table.csv confusion.json provenance.txt)
# LANES seeds train side by side, each one Ray Train worker with CPUS threads. On 2 cores two lanes
# of one thread each train more networks per hour than one seed with two threads (small
# convolutions scale poorly across threads: BENCHMARKS.md, pair 9); every row uses the same
# setting, so the protocols compare like with like. The lanes share one queue of jobs (below).
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

relative() {  # file: the repository's parent folder written as .. (paths in configs and logs),
  # and the in-flight folder as this script names it (ARCHIVE may be anywhere)
  sed -i -e "s|$BESIDE/|../|g" -e 's|--state-dir [^ ]*|--state-dir $ARCHIVE/in_flight|g' "$1"
}

archive() {  # row, seed: the finished seed, the wall times and the report into ARCHIVE
  copy_seed "$OUT/$1/seed$2" "$ARCHIVE/$1/seed$2"
  relative "$ARCHIVE/$1/seed$2/config.txt"
  local part="$ARCHIVE/times.log.$BASHPID"  # two lanes may archive at once
  cp "$OUT/times.log" "$part" && relative "$part" && mv "$part" "$ARCHIVE/times.log"
}

for done_seed in "$ARCHIVE"/*/seed*/config.txt; do  # restore finished seeds a lost OUT lacks
  [[ -f "$done_seed" ]] || continue
  folder=${done_seed%/config.txt}
  [[ -f "$OUT/${folder#"$ARCHIVE"/}/config.txt" ]] || copy_seed "$folder" "$OUT/${folder#"$ARCHIVE"/}"
done
[[ -f "$OUT/times.log" || ! -f "$ARCHIVE/times.log" ]] || cp "$ARCHIVE/times.log" "$OUT/times.log"

# A seed in flight keeps its newest state (at most STATE_EVERY seconds old, default 300) and its
# elapsed time in ARCHIVE/in_flight/<row>/seed<k>/, so a study stopped with the machine it ran on
# goes on from there in a fresh checkout of the same code (runner.train --state-dir; the state is
# refused by any other code, config or split). Both are removed once the seed is archived.
INFLIGHT=$ARCHIVE/in_flight
STATE_EVERY=${STATE_EVERY:-300}

seed() {  # row, seed, overrides...: one seed of one row, through Ray Train (resumable)
  local row=$1 k=$2
  shift 2
  [[ -f "$OUT/$row/seed$k/config.txt" ]] && return 0
  MARKS="$INFLIGHT/$row/seed$k" timed "$row seed$k" "$PY" -m runner.train epr "seed=$k" \
    --seeds 1 --label "$row" --out "$OUT" --quiet --state-dir "$INFLIGHT" \
    --state-every "$STATE_EVERY" workers=1 "dist.cpus_per_worker=$CPUS" "${CORPUS[@]}" "$@" ||
    return 1
  archive "$row" "$k"
  rm -rf "${INFLIGHT:?}/$row/seed$k"
  rmdir "$INFLIGHT/$row" "$INFLIGHT" 2> /dev/null || true
}

report() {  # written whole, then moved: two lanes may report at once
  local part="$OUT/report.md.$BASHPID"
  "$PY" -m runner.report "$OUT" > "$part" && "$PY" -m studies.progress "$OUT" >> "$part" &&
    mv "$part" "$OUT/report.md"
  mkdir -p "$ARCHIVE" && cp "$OUT/report.md" "$ARCHIVE/report.md.$BASHPID" &&
    mv "$ARCHIVE/report.md.$BASHPID" "$ARCHIVE/report.md"
}

if [[ ! -f "$OUT/reference_cv/seed4/config.txt" ]]; then
  timed "reference" "$PY" -m runner.train reference split=kfold --seeds 5 --quiet --out "$OUT" \
    "${CORPUS[@]}"
  for ((k = 0; k < 5; k++)); do archive reference_cv "$k"; done
fi

# The jobs, one runner.train each, in the order that answers first: paper and in_sample seed by
# seed (which protocol difference moves the numbers), then nested pEPR and nested sEPR, then pEPR
# under paper with early stopping on segment accuracy (the rows the study's issue asks for),
# then stage 1 at twice the width and the segments (why every row stays below the classical
# reference), then pEPR under paper with the fold network's forest. A seed stopped part-way
# (its state in ARCHIVE/in_flight) goes before all of them: its work counts only once it finishes, and its
# state is the largest file the archive holds. Lanes take the jobs from this one queue, each the
# first job not finished, not taken and ready, so no lane idles while the other has hours of
# work left (a nested pEPR seed alone trains 200 networks). Ready: a seed's rows other than
# epr_paper wait for its epr_paper, whose stage-1 networks they load from the store, and two
# rows of one seed never run at once (both would train the same stage-1 networks); the rows that
# train their own stage 1 (own_stage1, below) wait for nothing.
JOBS=()
job() { JOBS+=("$*"); }  # row seed overrides...
for ((k = 0; k < SEEDS; k++)); do
  for protocol in paper in_sample; do
    job "epr_$protocol" "$k" "epr.protocol=$protocol" epr.labels=mixed epr.depth=5
    job "epr_soft_$protocol" "$k" "epr.protocol=$protocol" epr.labels=soft epr.depth=3
  done
done
for ((k = 0; k < NESTED_SEEDS; k++)); do
  job epr_nested "$k" epr.protocol=nested epr.labels=mixed epr.depth=5
done
# the issue's other rows next: nested sEPR, then the accuracy monitor
for ((k = 0; k < NESTED_SEEDS; k++)); do
  job epr_soft_nested "$k" epr.protocol=nested epr.labels=soft epr.depth=3
done
for ((k = 0; k < SEEDS; k++)); do  # early stopping on segment accuracy instead of loss
  job epr_paper_monitor_accuracy "$k" epr.protocol=paper epr.labels=mixed epr.depth=5 \
    epr.monitor=accuracy
done
# Why every row stays below the classical reference (86.17 WA on these folds): stage 1 alone
# (epr.depth=1) with twice the convolution width (epr.width=0.25) and with twice the segments
# (a 50 ms hop, audio.segment_hop=5), one factor at a time, over CAPACITY_SEEDS (default 3); each
# pairs with the same seed's stage 1 of epr_stage1_base (width 1/8, 100 ms hop: epr_paper's stage
# 1, trained again beside them) in the report. If the cpu preset's scale-down is what keeps stage
# 1 low, these rise towards the reference. The base row is there because a seed's stage 1 is the
# same network only on the same kind of processor (another CPU's floating-point reductions change
# the trajectory from the first epoch: docs/results.md, nested pEPR), and the rows next to each
# other in the queue most likely run on one machine; where the store holds the seed's networks
# from this processor (nested pEPR's outer networks are the same), it costs only the forest.
for ((k = 0; k < CAPACITY_SEEDS; k++)); do
  job epr_stage1_base "$k" epr.protocol=paper epr.labels=mixed epr.depth=1
  job epr_stage1_width025 "$k" epr.protocol=paper epr.labels=mixed epr.depth=1 epr.width=0.25
  job epr_stage1_hop5 "$k" epr.protocol=paper epr.labels=mixed epr.depth=1 audio.segment_hop=5
done
# pEPR under paper, each fold's forest fitted on its own network's profiles of the training
# utterances (epr.forest_fit=fold_network): the paper's teaching profiles with the in_sample
# row's forest fit, the two protocol differences of docs/results.md put together.
for ((k = 0; k < FOLD_FOREST_SEEDS; k++)); do
  job epr_paper_fold_forest "$k" epr.protocol=paper epr.labels=mixed epr.depth=5 \
    epr.forest_fit=fold_network
done
stopped=() others=()
for entry in "${JOBS[@]}"; do  # seeds stopped part-way first, in queue order
  read -r row k _ <<< "$entry"
  if [[ -f "$INFLIGHT/$row/seed$k/state.pt" ]]; then stopped+=("$entry"); else others+=("$entry"); fi
done
JOBS=("${stopped[@]}" "${others[@]}")

CLAIMS="$OUT/.claims"  # a lane's claim on a seed (or on a row's seed): a folder, made atomically
rm -rf "$CLAIMS"       # claims of a run that was stopped are void
mkdir -p "$CLAIMS"

# Rows that train their own stage-1 networks (stopped or sized unlike epr_paper's, so the store
# holds none for them): they wait for no row and may run beside the seed's other rows.
own_stage1() { [[ $1 == *monitor* || $1 == epr_stage1_* ]]; }

lane() {  # take the next ready job until none is left; a failed job stops every lane
  local entry row k rest claim took waiting
  while [[ ! -e "$CLAIMS/failed" ]]; do
    took=0 waiting=0
    for entry in "${JOBS[@]}"; do
      read -r row k rest <<< "$entry"
      [[ -f "$OUT/$row/seed$k/config.txt" ]] && continue
      waiting=1
      [[ $row == epr_paper ]] || own_stage1 "$row" || [[ -f "$OUT/epr_paper/seed$k/config.txt" ]] ||
        continue
      claim="$CLAIMS/seed$k"
      own_stage1 "$row" && claim="$CLAIMS/${row}_seed$k"
      mkdir "$claim" 2> /dev/null || continue
      # word splitting of rest is wanted: its overrides
      # shellcheck disable=SC2086
      if ! seed "$row" "$k" $rest; then
        touch "$CLAIMS/failed"
        echo "$row seed$k failed; every lane stops after its job" >&2
        return 1
      fi
      rmdir "$claim"
      report
      took=1
      break
    done
    ((waiting)) || return 0
    ((took)) || sleep "${POLL:-30}"  # every job left is another lane's, or waits for one
  done
  return 1
}

pids=()
for ((i = 0; i < LANES; i++)); do
  lane &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
exit $status
