"""Shared fixtures: a small flite-spoken corpus in the demo dataset's format."""

from pathlib import Path

import pytest

from gradtts_tf.demo_data import build_demo_dataset, load_sentences

REF = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference"


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The first 24 demo sentences spoken by flite (LJSpeech folder, 22050 Hz)."""
    out = tmp_path_factory.mktemp("demo_corpus")
    build_demo_dataset(out, load_sentences()[:24], jobs=2, progress=False)
    return out
