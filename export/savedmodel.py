"""``python -m export.savedmodel``: runs `gradtts_tf.export.savedmodel` (SavedModel export)."""

from gradtts_tf.cli.quiet import quiet_tensorflow

if __name__ == "__main__":
    quiet_tensorflow()  # before the imports below can load TensorFlow

from gradtts_tf.export.savedmodel import *  # noqa: E402, F403
from gradtts_tf.export.savedmodel import main  # noqa: E402

if __name__ == "__main__":
    main()
