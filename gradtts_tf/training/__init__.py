"""Training: Grad-TTS (`train`) and HiFi-GAN (`train_vocoder`) with `model.fit`.

- `trainer`: `GradTTSTrainer`, the model plus its `train_step` mechanics;
- `build`: the model as training builds it (strategy, precision, optimizer, schedule);
- `run`: `train` and the named steps it is made of;
- `checkpoints`: run folders, checkpoints and resume, shared by both trainers;
- `warm_start`, `callbacks`, `optimizers`, `exit_deadline`, `vocoder`.
"""

from gradtts_tf.training.build import (
    WarmupDecay,
    build_model,
    dtype_policy,
    learning_rate,
    make_strategy,
    use_xla,
)
from gradtts_tf.training.checkpoints import (
    Progress,
    RunError,
    config_differences,
    prepare_run_folder,
    restore_latest,
)
from gradtts_tf.training.run import summarize_run, train
from gradtts_tf.training.trainer import GradTTSTrainer
from gradtts_tf.training.warm_start import format_warm_start, resolve_weights, warm_start

__all__ = [
    "GradTTSTrainer",
    "Progress",
    "RunError",
    "WarmupDecay",
    "build_model",
    "config_differences",
    "dtype_policy",
    "format_warm_start",
    "learning_rate",
    "make_strategy",
    "prepare_run_folder",
    "resolve_weights",
    "restore_latest",
    "summarize_run",
    "train",
    "use_xla",
    "warm_start",
]
