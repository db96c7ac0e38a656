"""Voices installed with the package, addressable by name.

``demo`` is the small flite-trained voice the Quick start speaks with (how it was made
and how well it speaks: ``models/demo/README.md`` in the repository). Wherever a
program or `Synthesizer.from_pretrained` takes a run folder, it also takes one of
these names.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def available_voices() -> list[str]:
    """Names of the voices installed with the package."""
    root = resources.files(__name__)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file())


def resolve_voice(voice: str | os.PathLike) -> Path:
    """A run folder for ``voice``: an existing path as it is, else an installed voice.

    Args:
        voice: A folder (``config.yaml`` + ``model.weights.h5``) or the name of an
            installed voice (`available_voices`).

    Returns:
        The folder. A name that is neither comes back unchanged as a path, so the
        caller's "not found" error names what the user typed.
    """
    path = Path(voice)
    if path.exists() or os.sep in str(voice) or (os.altsep and os.altsep in str(voice)):
        return path
    if str(voice) in available_voices():
        return Path(str(resources.files(__name__) / str(voice)))
    return path
