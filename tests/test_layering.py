"""Imports run one way: the model's layers never reach up into training, evaluation,
export, conversion or the programs (checked on the source, function-level imports too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gradtts_tf"
LOWER = ["text", "audio.py", "ops.py", "float_sums.py", "noise.py", "solvers.py", "layers",
         "model.py", "config.py", "voices", "vocoder.py", "runtime.py"]
UPPER = ("gradtts_tf.training", "gradtts_tf.evaluation",
         "gradtts_tf.export", "gradtts_tf.convert", "gradtts_tf.cli", "gradtts_tf.demo",
         "gradtts_tf.vocoder_training", "gradtts_tf.hifigan", "gradtts_tf.data",
         "data_function", "train", "inference", "evaluate", "export")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _lower_files() -> list[Path]:
    files = []
    for entry in LOWER:
        path = PACKAGE / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


@pytest.mark.parametrize("path", _lower_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lower_layers_do_not_import_upper_ones(path):
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line}: imports {name}"
        for line, name in _imports(path)
        if any(name == upper or name.startswith(upper + ".") for upper in UPPER)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from gradtts_tf.convert.hifigan import x\n")
    assert _imports(module) == [(2, "gradtts_tf.convert.hifigan")]
