"""``python train.py``: train Grad-TTS (`gradtts_tf.cli.train`, also the
``gradtts-train`` command)."""

from gradtts_tf.cli.quiet import quiet_tensorflow

if __name__ == "__main__":
    quiet_tensorflow()  # before the imports below can load TensorFlow

from gradtts_tf.cli.train import *  # noqa: F403
from gradtts_tf.cli.train import main

if __name__ == "__main__":
    main()
