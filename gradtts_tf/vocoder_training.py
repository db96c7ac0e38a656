"""The earlier home of HiFi-GAN training, kept for one release.

Use `gradtts_tf.training.vocoder` (the functions) and ``gradtts-train-vocoder`` or
``python -m gradtts_tf.cli.train_vocoder`` (the program).
"""

from gradtts_tf.cli.train_vocoder import main
from gradtts_tf.training.vocoder import (
    init_generator_from,
    make_fine_tune_mels,
    train_vocoder,
    vocoder_dataset,
)

__all__ = ["init_generator_from", "main", "make_fine_tune_mels", "train_vocoder",
           "vocoder_dataset"]

if __name__ == "__main__":
    main()
