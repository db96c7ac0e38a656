#!/usr/bin/env bash
# The synthesis settings chosen on the dev set (100 sentences of the training corpus's
# sources that it never trained on), never on the evaluation sets: each combination of
# temperature and length scale at 10 steps, seeds 0 and 1; the summary ranks them by WER
# then MCD. Usage: choose_settings.sh VOICE NAME
#   python -m gradtts_tf.demo_data --out data/dev --corpus dev
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs}
voice=$1 name=$2
for temperature in ${TEMPERATURES:-1.5 2.0 3.0}; do
  for length in ${LENGTHS:-0.9 1.0}; do
    for seed in ${SEEDS:-0 1}; do
      json=$OUT/${name}_dev_t${temperature}_l${length}_seed$seed.json
      [ -f "$json" ] || nice -n 5 $PY evaluate.py --checkpoint "$voice" --references data/dev \
        --steps 10 --temperature "$temperature" --length-scale "$length" --seed "$seed" \
        --vocoders none --no-recordings --json "$json" --quiet
    done
  done
done
$PY "$HERE/summarize.py" "$OUT/${name}_dev_t*_seed*.json"
