#!/usr/bin/env bash
# A voice scored as its README reports it: WER, CER and MCD with its own synthesis
# settings, 3 seeds, on
#   ood: sentences of a text source the voice never trained on (Sherlock Holmes; the
#        references' rows: flite's recordings and their Griffin-Lim-vocoded mels);
#   heldout: the project's own held-out split (the 20 demo sentences the first demo
#        voice held out, data.n_val 20 / data.split_seed 1234 of the 748).
# Usage: evaluate_voice.sh VOICE NAME   (VOICE: a run/voice folder or an installed voice)
#   python -m gradtts_tf.demo_data --out data/ood --corpus ood_eval
#   python -m gradtts_tf.demo_data --out data/demo
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs}
SEEDS=${SEEDS:-0 1 2}
voice=$1 name=$2
# The held-out split is defined by the first voice's split settings, whatever the
# voice under test was trained with.
split=$OUT/heldout_split.yaml
printf 'data:\n  n_val: 20\n  split_seed: 1234\n' > "$split"
for seed in $SEEDS; do
  refs=(--no-recordings --vocoders none)
  [ "$seed" = "$(echo $SEEDS | cut -d' ' -f1)" ] && refs=()
  json=$OUT/${name}_ood_seed$seed.json
  [ -f "$json" ] || nice -n 5 $PY evaluate.py --checkpoint "$voice" --references data/ood \
      --seed "$seed" "${refs[@]}" --json "$json" --quiet
  json=$OUT/${name}_heldout_seed$seed.json
  [ -f "$json" ] || nice -n 5 $PY evaluate.py --checkpoint "$voice" --references data/demo \
      --split val --config "$split" --seed "$seed" "${refs[@]}" --json "$json" --quiet
done
