"""Thin entry points for the exporters, kept at the place the project has always
promised them (``python -m export.tflite`` ...); the code is `gradtts_tf.export`.
"""
