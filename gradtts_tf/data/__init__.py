"""The data pipeline: corpus validation, mel caching and the ``tf.data`` input of training.

`prepare_corpus` validates every utterance once (skipped ones are logged on the logger
``gradtts_tf.data``, naming file, line and reason) and caches mels and a manifest;
`build_dataset` returns the padded ``tf.data.Dataset`` training reads. The
implementation is `gradtts_tf.data.pipeline`; the folder also holds the demo corpus'
sentences (``sentences.txt``).
"""

from gradtts_tf.data.pipeline import (
    MANIFEST_VERSION,
    Manifest,
    Utterance,
    build_dataset,
    prepare_corpus,
    read_corpus,
    stream_order,
)

__all__ = [
    "MANIFEST_VERSION",
    "Manifest",
    "Utterance",
    "build_dataset",
    "prepare_corpus",
    "read_corpus",
    "stream_order",
]
