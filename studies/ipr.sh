#!/usr/bin/env bash
# "When does IPR help?" (docs/results.md): IPR and each baseline swept with the same budget on
# EmoDB (both ambiguity splits) and the synthetic corpus, then IPR's oracles and ablations at its
# best configuration, 5 seeds, beside IPR itself for the paired tests.
#
#   bash studies/ipr.sh [emodb-thresholds|emodb-rank|synthetic ...]   (default: all three)
#
# Every step resumes: a sweep that exists is continued with --resume, a finished one is only
# reported again; runner.train skips nothing, so its outputs are written once per rerun. The
# wall time of each step goes to runs/studies/ipr/times.log. EMODB (default ../shared/data/emodb)
# names the corpus folder. SAMPLES (default 24) configurations x SEEDS (default 5) per sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
source studies/common.sh
PY=${PY:-.venv/bin/python}
EMODB=${EMODB:-$(cd .. && pwd)/shared/data/emodb}
SAMPLES=${SAMPLES:-24}
SEEDS=${SEEDS:-5}
ROOT=runs/studies/ipr
mkdir -p "$ROOT"

timed() { timed_to "$ROOT/times.log" "$@"; }  # name, command...: run it, log its wall time

sweep() {  # setting, method, overrides...: a resumable sweep named <setting>-<method>
  local setting=$1 method=$2
  shift 2
  local name="$setting-$method" resume=()
  [[ -f "$ROOT/sweeps/$name/sweep.json" ]] && resume=(--resume)
  timed "sweep $name" "$PY" -m runner.tune "$method" "$@" --num-samples "$SAMPLES" \
    --seeds "$SEEDS" --storage-path "$ROOT/sweeps" --name "$name" --no-baselines --quiet \
    --tracking-uri "sqlite:///$PWD/$ROOT/mlflow.db" "${resume[@]}"
}

flip() {  # file, key, a, b: b when the file sets key=a, else a
  if grep -qx "$2=$3" "$1"; then echo "$4"; else echo "$3"; fi
}

ablations() {  # setting: IPR's best configuration and its oracles/ablations, 5 seeds each
  local setting=$1 best="$ROOT/sweeps/$1-ipr/best.txt" out="$ROOT/$1"
  # The readings that are choices (mu schedule, Eq. 7 form, D1 in the update) are ablated by
  # flipping whatever the sweep chose, so no row repeats the best configuration itself.
  local mu beta d1
  mu=$(flip "$best" ipr.mu_schedule constant beta)
  beta=$(flip "$best" ipr.beta_form printed ramp)
  d1=$(flip "$best" ipr.d1_in_update false true)
  local -a rows=("ipr_oracle ipr.pseudo_labels=oracle" "ipr_classifier ipr.pseudo_labels=classifier"
                 "ipr_mu0 ipr.mu=0" "ipr_fixed ipr.gamma=1.0" "ipr_soft ipr.prototype_update=soft"
                 "ipr_d1update_$d1 ipr.d1_in_update=$d1" "ipr_mu_$mu ipr.mu_schedule=$mu"
                 "ipr_beta_$beta ipr.beta_form=$beta")
  timed "train $setting ipr" "$PY" -m runner.train ipr --config "$best" --seeds "$SEEDS" \
    --quiet --out "$out"
  for row in "${rows[@]}"; do
    read -r label setting_override <<< "$row"
    timed "train $setting $label" "$PY" -m runner.train ipr --config "$best" "$setting_override" \
      --label "$label" --seeds "$SEEDS" --quiet --out "$out"
  done
  for method in baseline baseline_star supervised; do  # each at its own swept best
    timed "train $setting $method" "$PY" -m runner.train "$method" \
      --config "$ROOT/sweeps/$setting-$method/best.txt" --seeds "$SEEDS" --quiet --out "$out"
  done
  "$PY" -m runner.report "$out" > "$out/report.md"
}

study() {  # setting, overrides...
  local setting=$1
  shift
  for method in ipr baseline baseline_star supervised; do
    sweep "$setting" "$method" "$@"
  done
  ablations "$setting"
}

for setting in "${@:-emodb-thresholds emodb-rank synthetic}"; do
  for one in $setting; do
    case $one in
      emodb-thresholds) study "$one" corpus.name=emodb "corpus.root=$EMODB" ;;
      emodb-rank) study "$one" corpus.name=emodb "corpus.root=$EMODB" split.by=rank ;;
      synthetic) study "$one" ;;
      *) echo "unknown setting $one: expected emodb-thresholds, emodb-rank or synthetic" >&2
         exit 2 ;;
    esac
  done
done
