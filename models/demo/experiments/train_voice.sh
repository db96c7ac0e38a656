#!/usr/bin/env bash
# The demo voice's training run on the large flite corpus (the winning size of
# size_compare.sh, the demo config's), warm-started from a voice's weights (FROM: the
# previous demo voice by default), with an EMA of the weights. The 20 sentences the
# first demo voice held out stay held out (data.val_ids), so both are judged on them;
# 40 more are drawn at random for validation.
# Resumable: rerun to continue from the run's newest checkpoint; SIGINT (Ctrl-C, or
# BUDGET seconds of wall-clock) writes a checkpoint and exits.
#   python -m gradtts_tf.demo_data --out data/large --corpus large
#   BUDGET=7200 models/demo/experiments/train_voice.sh
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/large}
RUN=${RUN:-runs/voice}
FROM=${FROM:-demo}
HELDOUT="[demo_0021, demo_0109, demo_0163, demo_0201, demo_0220, demo_0245, demo_0320,
  demo_0322, demo_0380, demo_0406, demo_0418, demo_0429, demo_0458, demo_0482, demo_0493,
  demo_0494, demo_0516, demo_0526, demo_0550, demo_0593]"
# A run with checkpoints resumes from them (the trainer refuses a warm start into it).
WARM=(--warm-start "$FROM")
if [ -d "$RUN/checkpoints" ]; then WARM=(); fi
timeout -s INT "${BUDGET:-36000}" nice -n 10 $PY train.py --config demo --data "$DATA" \
  --out "$RUN" --epochs 100000 "${WARM[@]}" \
  --set data.n_val=40 --set "data.val_ids=$HELDOUT" \
  --set train.learning_rate="${LR:-1.0e-4}" --set train.warmup_steps=200 \
  --set train.ema_decay=0.999 --set train.checkpoint_every_steps=500 \
  --set train.keep_last=2 --set train.log_images_every=0 \
  >> "$RUN.log" 2>&1
