"""``python -m export.tfjs``: runs `gradtts_tf.export.tfjs` (TF.js export)."""

from gradtts_tf.export.tfjs import *  # noqa: E402, F403
from gradtts_tf.export.tfjs import main  # noqa: E402

if __name__ == "__main__":
    main()
