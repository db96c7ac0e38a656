"""Edge export of Grad-TTS: SavedModel, TFLite and TF.js graphs plus a LiteRT runner.

Kept free of imports on purpose: `gradtts_tf.export.run_tflite` must load without
TensorFlow. See ``export/README.md`` in the repository.
"""
