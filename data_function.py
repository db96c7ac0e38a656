"""The data pipeline, at the place the project has always promised it.

``from data_function import build_dataset`` keeps working from a checkout; the code is
`gradtts_tf.data` (installed with the package).
"""

from gradtts_tf.data import *  # noqa: F403
from gradtts_tf.data import __all__  # noqa: F401
