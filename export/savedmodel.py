"""``python -m export.savedmodel``: runs `gradtts_tf.export.savedmodel` (SavedModel export)."""

from gradtts_tf.export.savedmodel import *  # noqa: E402, F403
from gradtts_tf.export.savedmodel import main  # noqa: E402

if __name__ == "__main__":
    main()
