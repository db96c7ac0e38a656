"""``python inference.py``: text to WAV files (`gradtts_tf.cli.synthesize`, also the
``gradtts-synthesize`` command).
"""

from gradtts_tf.cli.quiet import quiet_tensorflow

if __name__ == "__main__":
    quiet_tensorflow()  # before the imports below can load TensorFlow

from gradtts_tf.cli.synthesize import *  # noqa: E402, F403
from gradtts_tf.cli.synthesize import main  # noqa: E402

if __name__ == "__main__":
    main()
