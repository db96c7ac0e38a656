"""``python evaluate.py``: objective evaluation of a voice (`gradtts_tf.cli.evaluate`,
also the ``gradtts-evaluate`` command).
"""

from gradtts_tf.cli.quiet import quiet_tensorflow

if __name__ == "__main__":
    quiet_tensorflow()  # before the imports below can load TensorFlow

from gradtts_tf.cli.evaluate import *  # noqa: E402, F403
from gradtts_tf.cli.evaluate import main  # noqa: E402

if __name__ == "__main__":
    main()
