"""Warm start: a new run's initial weights taken from another run or checkpoint."""

from __future__ import annotations

import os
import re
from pathlib import Path

from gradtts_tf.config import Config, load_config
from gradtts_tf.model import GradTTS
from gradtts_tf.training.build import dtype_policy
from gradtts_tf.training.checkpoints import STATE_WEIGHTS, RunError, list_checkpoints
from gradtts_tf.voices import resolve_voice


def _strip_model_name(path: str) -> str:
    """``grad_tts_3/encoder/emb/embeddings`` -> ``encoder/emb/embeddings``."""
    return path.split("/", 1)[1] if "/" in path else path


def resolve_weights(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """Finds the weights file and its ``config.yaml`` for ``--warm-start``.

    ``source`` may be a ``.weights.h5`` file, a checkpoint directory, a run folder
    (its ``model.weights.h5``, else its newest checkpoint), an installed voice's name
    or a converted official checkpoint folder. The config is looked up beside the file
    and up to two folders above.
    """
    p = resolve_voice(source)
    if p.is_dir():
        ckpts = list_checkpoints(p)
        for candidate in (
            p / STATE_WEIGHTS, p / "model.weights.h5",
            ckpts[-1] / STATE_WEIGHTS if ckpts else None,
        ):
            if candidate is not None and candidate.is_file():
                p = candidate
                break
        else:
            raise RunError(
                f"{source}: no model.weights.h5 or checkpoints/ to warm-start from"
            )
    elif not p.is_file():
        raise RunError(f"--warm-start: {source} not found")
    for folder in (p.parent, p.parent.parent, p.parent.parent.parent):
        if (folder / "config.yaml").is_file():
            return p, folder / "config.yaml"
    return p, None


def warm_start(
    model: GradTTS,
    source: str | os.PathLike,
    ignore_layers: str | None = None,
    config: Config | None = None,
    verbose: bool = True,
) -> dict[str, list]:
    """Initialises ``model``'s weights from another run or converted checkpoint.

    The source is built from its own ``config.yaml`` (``config`` when it has none),
    loaded, and every weight is copied by path (``encoder/emb/embeddings``, ...)
    unless its path matches ``ignore_layers`` (a regular expression searched in the
    path) or the source lacks it or has another shape. The optimizer starts fresh.

    Returns:
        Dict of lists: ``loaded``, ``ignored``, ``shape`` (``(path, source shape,
        new shape)``), ``missing`` (not in the source) and ``unused`` (source only).
    """
    weights_file, config_file = resolve_weights(source)
    src_config = load_config(config_file) if config_file is not None else config
    if src_config is None:
        raise RunError(
            f"no config.yaml beside {weights_file}: warm-starting needs the source's config"
        )
    with dtype_policy("float32"):
        src = GradTTS.from_config_tree(src_config)
    try:
        src.load_weights(weights_file)
    except ValueError as e:
        raise RunError(f"{weights_file} does not match {config_file}: {e}") from e
    src_vars = {_strip_model_name(v.path): v for v in src.weights}
    pattern = re.compile(ignore_layers) if ignore_layers else None
    report: dict[str, list] = {"loaded": [], "ignored": [], "shape": [], "missing": []}
    for var in model.weights:
        path = _strip_model_name(var.path)
        if pattern is not None and pattern.search(path):
            report["ignored"].append(path)
        elif path not in src_vars:
            report["missing"].append(path)
        elif tuple(src_vars[path].shape) != tuple(var.shape):
            report["shape"].append((path, tuple(src_vars[path].shape), tuple(var.shape)))
        else:
            var.assign(src_vars[path].numpy())
            report["loaded"].append(path)
    targets = {_strip_model_name(v.path) for v in model.weights}
    report["unused"] = sorted(set(src_vars) - targets)
    if verbose:
        print(format_warm_start(report, weights_file))
    return report


def format_warm_start(report: dict[str, list], source: Path | str) -> str:
    """A readable account of `warm_start`'s report."""
    total = sum(len(report[k]) for k in ("loaded", "ignored", "shape", "missing"))
    lines = [f"warm start from {source}: {len(report['loaded'])} of {total} weights loaded"]

    def some(items):
        shown = ", ".join(str(i) for i in items[:8])
        return shown + (f", ... ({len(items)} in all)" if len(items) > 8 else "")

    if report["ignored"]:
        lines.append(f"  skipped {len(report['ignored'])} (--ignore-layers): "
                     f"{some(report['ignored'])}")
    if report["shape"]:
        shapes = [f"{p} {a} -> {b}" for p, a, b in report["shape"]]
        lines.append(f"  skipped {len(shapes)} (shape differs): {some(shapes)}")
    if report["missing"]:
        lines.append(f"  kept initial values of {len(report['missing'])} not in the source: "
                     f"{some(report['missing'])}")
    if report.get("unused"):
        lines.append(f"  {len(report['unused'])} source weights unused: "
                     f"{some(report['unused'])}")
    return "\n".join(lines)
