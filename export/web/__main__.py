"""``python -m export.web --model-dir DIR``: serves the browser demo locally."""

from export.web import main

main()
