"""``python -m export.web --model-dir DIR``: serves the browser demo locally."""

from gradtts_tf.export.web import main

main()
