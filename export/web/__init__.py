"""``python -m export.web``: serves the browser demo (`gradtts_tf.export.web`); this
folder also holds the page's sources."""

from gradtts_tf.export.web import *  # noqa: F403
from gradtts_tf.export.web import main  # noqa: F401
