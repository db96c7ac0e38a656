"""gradtts-tf: Grad-TTS in TensorFlow 2 / Keras 3.

``from gradtts_tf import Synthesizer`` is resolved lazily, so ``import gradtts_tf``
alone does not load TensorFlow.
"""

__all__ = ["Synthesizer"]


def __getattr__(name: str):
    if name == "Synthesizer":
        from gradtts_tf.synthesizer import Synthesizer

        return Synthesizer
    raise AttributeError(f"module 'gradtts_tf' has no attribute {name!r}")
