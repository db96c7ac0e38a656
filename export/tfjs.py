"""``python -m export.tfjs``: runs `gradtts_tf.export.tfjs` (TF.js export)."""

from gradtts_tf.cli.quiet import quiet_tensorflow

if __name__ == "__main__":
    quiet_tensorflow()  # before the imports below can load TensorFlow

from gradtts_tf.export.tfjs import *  # noqa: E402, F403
from gradtts_tf.export.tfjs import main  # noqa: E402

if __name__ == "__main__":
    main()
