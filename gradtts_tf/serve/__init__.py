"""Grad-TTS over HTTP: ``gradtts-serve`` (``python -m gradtts_tf.serve``).

`create_app` builds the FastAPI app (API, OpenAPI schema, web page); `ServerSettings`
holds its limits and micro-batching knobs; `MicroBatcher` gathers concurrent requests
into `Synthesizer.synthesize` calls on one worker thread per voice.
"""

from gradtts_tf.serve.settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "main"]


def create_app(*args, **kwargs):
    """`gradtts_tf.serve.app.create_app` (imports FastAPI and TensorFlow on first use)."""
    from gradtts_tf.serve.app import create_app as create

    return create(*args, **kwargs)


def main(argv=None) -> None:
    """The ``gradtts-serve`` program."""
    from gradtts_tf.serve.cli import main as run

    run(argv)
