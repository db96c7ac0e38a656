#!/usr/bin/env bash
# Called by size_compare.sh: each run's raw (non-EMA) weights at its last checkpoint, scored
# on the dev set. The EMA (decay 0.999, no bias correction) still holds 0.999^steps of the
# initial weights after a short run (41 % after 900 steps), so it would judge the
# budget, not the size.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs}
for name in A B; do
  raw="$OUT/size_${name}_raw"
  if [ ! -f "$raw/model.weights.h5" ]; then
    mkdir -p "$raw" && cp "$OUT/size_$name/config.yaml" "$raw/"
    nice -n 10 $PY - "$OUT/size_$name" "$raw" <<'PYEOF'
import sys
from pathlib import Path

from gradtts_tf.config import load_config
from gradtts_tf.training import build_model, restore_latest

run, raw = Path(sys.argv[1]), Path(sys.argv[2])
config = load_config(run / "config.yaml")
model = build_model(config, jit_compile=False)
ckpt, state = restore_latest(model, run)
print(f"{run}: {ckpt.name}, step {state['step']}")
# model.weights are the trained (raw) weights; the EMA lives in the optimizer.
from gradtts_tf.model import GradTTS
plain = GradTTS.from_config_tree(config)
plain.set_weights(model.get_weights())
plain.save_weights(raw / "model.weights.h5")
PYEOF
  fi
  for seed in 0 1; do
    json="$OUT/size_${name}_raw_dev_seed$seed.json"
    [ -f "$json" ] && continue
    nice -n 10 $PY evaluate.py --checkpoint "$raw" --references "${DEV:-data/dev}" \
      --steps 10 --temperature 1.5 --length-scale 1.0 --seed $seed --vocoders none \
      --no-recordings --json "$json" --quiet >> "$OUT/size_${name}_eval.log" 2>&1
  done
done
