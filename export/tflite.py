"""``python -m export.tflite``: runs `gradtts_tf.export.tflite` (TFLite export)."""

from gradtts_tf.cli.quiet import quiet_tensorflow

if __name__ == "__main__":
    quiet_tensorflow()  # before the imports below can load TensorFlow

from gradtts_tf.export.tflite import *  # noqa: E402, F403
from gradtts_tf.export.tflite import main  # noqa: E402

if __name__ == "__main__":
    main()
