"""``python export/run_tflite.py``: the LiteRT runner, `gradtts_tf.export.run_tflite`.

Needs numpy, ai-edge-litert and this package (installed, or this checkout); TensorFlow
is never imported.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradtts_tf.cli.quiet import quiet_tensorflow

if __name__ == "__main__":
    quiet_tensorflow()  # before the imports below can load TensorFlow

from gradtts_tf.export.run_tflite import *  # noqa: E402, F403
from gradtts_tf.export.run_tflite import main  # noqa: E402

if __name__ == "__main__":
    main()
