#!/usr/bin/env bash
# Two demo-voice sizes trained on the large flite corpus for the same wall-clock budget
# each (seconds of train.py time, summed over resumptions), then scored on the dev set
# (eval_raw.sh). Resumable: rerun after an interruption, or with a larger BUDGET to
# train both further; each run continues from its checkpoint.
#   python -m gradtts_tf.demo_data --out data/large --corpus large
#   python -m gradtts_tf.demo_data --out data/dev --corpus dev
#   BUDGET=4500 models/demo/experiments/size_compare.sh
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/large}
OUT=${OUT:-runs}
BUDGET=${BUDGET:-1800}
COMMON=(--set data.n_val=40 --set train.checkpoint_every_steps=200 --set train.ema_decay=0.999
        --set train.log_images_every=0 --set train.keep_last=2)
declare -A SIZE
SIZE[A]=""
SIZE[B]="--set model.n_enc_channels=192 --set model.filter_channels=768 --set model.filter_channels_dp=256 --set model.n_enc_layers=6"

# Mels first (cached in the data folder), so neither budget pays for them.
if [ ! -f "$OUT/prepared" ]; then
  nice -n 10 $PY -c "
from gradtts_tf.config import load_config
from gradtts_tf.data import prepare_corpus
prepare_corpus('$DATA', load_config('demo', ['data.n_val=40']), progress=True)
" && touch "$OUT/prepared"
fi
# Each run on a core of its own (taskset), both at once, so they share the machine's
# other load alike; CORES=0 runs them one after another on all cores.
train_one() {
  local name=$1 cpu=$2
  local used left start end
  used=$(cat "$OUT/size_$name.seconds" 2>/dev/null || echo 0)
  left=$((BUDGET - used))
  [ "$left" -gt 30 ] || return 0
  start=$(date +%s)
  # SIGINT: the run saves a checkpoint and exits (status 130).
  timeout -s INT "$left" $cpu nice -n 10 $PY train.py --config demo --data "$DATA" \
    --out "$OUT/size_$name" --epochs 100000 "${COMMON[@]}" ${SIZE[$name]} \
    >> "$OUT/size_$name.log" 2>&1
  end=$(date +%s)
  echo $((used + end - start)) > "$OUT/size_$name.seconds"
}
if [ "${CORES:-1}" = 0 ]; then
  for name in A B; do train_one $name ""; done
else
  train_one A "taskset -c 0" &
  train_one B "taskset -c 1" &
  wait
fi
"$HERE/eval_raw.sh"
