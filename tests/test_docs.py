"""The user documentation: README.md and the MkDocs site in docs/.

The site builds in strict mode (broken links, anchors and API references fail), the
README's links resolve, every fenced ``python`` example of README.md and docs/ runs on
the demo voice (all in one interpreter, each in a fresh namespace and folder), and the
pages stay short and free of internal bookkeeping.

Examples that cannot run here are written as ``bash`` or ``text`` blocks; a ``python``
block preceded by the line ``<!-- no-test -->`` is skipped (use sparingly).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
NO_TEST = "<!-- no-test -->"
README_MAX_LINES = 200
# What may be missing where the `test` extra or `make setup` was not installed: an
# example that needs it is skipped there, not failed.
MISSING_TOOLS = (
    "No module named 'torch'", "No module named 'grad_tts'",
    "No module named 'ai_edge_litert'", "FliteNotFoundError",
)
FORBIDDEN = {
    "the word 'session'": re.compile(r"\bsession", re.IGNORECASE),
    "an issue number": re.compile(r"\b(?:issue|pr|pull request)s?\s*#?\d+", re.IGNORECASE),
    "a '#N' reference": re.compile(r"(?<![\w&/])#\d+(?![\w-])"),
}


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every fenced ``python`` block not marked no-test."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, start, previous = [], None, ""
    for n, line in enumerate(lines, start=1):
        stripped = line.strip()
        if start is None:
            if stripped == "```python" and previous != NO_TEST:
                start, body = n + 1, []
            elif stripped:
                previous = stripped
        elif stripped == "```":
            blocks.append((start, "\n".join(body) + "\n"))
            start, previous = None, ""
        else:
            body.append(line)
    assert start is None, f"{path.name}: the python block at line {start - 1} is not closed"
    return blocks


EXAMPLES = [
    pytest.param(code, id=f"{path.relative_to(ROOT)}:{line}")
    for path in PAGES
    for line, code in python_blocks(path)
]


def test_the_site_builds_in_strict_mode(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
         os.fspath(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    for page in (tmp_path / "site").rglob("*.html"):  # readable offline: nothing from a CDN
        html = page.read_text(encoding="utf-8")
        assert not re.search(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//', html), page
    reference = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    # The API reference is generated from the docstrings, not left empty.
    for name in ("from_pretrained", "tts_batch", "load_config", "synthesise",
                 "load_vocoder", "evaluate", "TFLiteSynthesizer"):
        assert name in reference, f"{name} missing from the API reference"


def test_readme_is_short_and_its_links_resolve():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make test" in text  # CI runs the README's test command
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to a missing {target}"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: os.fspath(p.relative_to(ROOT)))
def test_pages_hold_no_internal_references(path):
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for what, pattern in FORBIDDEN.items():
            assert not pattern.search(line), f"{path.name}:{n} has {what}: {line.strip()!r}"


def test_every_example_compiles():
    assert len(EXAMPLES) >= 10  # README, synthesis, training, evaluation, export, ...
    for param in EXAMPLES:
        compile(param.values[0], param.id, "exec")


# Runs every example in one interpreter (TensorFlow loads once), each in a fresh
# namespace and a fresh working folder; writes {id: {"error": traceback or None}}.
RUNNER = """
import json, os, sys, tempfile, traceback
examples, results_path, root = sys.argv[1:]
results = {}
for name, code in json.load(open(examples)).items():
    os.chdir(tempfile.mkdtemp(prefix="example-", dir=root))
    print(f"== {name}", flush=True)
    try:
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
        results[name] = {"error": None}
    except BaseException:
        results[name] = {"error": traceback.format_exc()}
    with open(results_path, "w") as f:
        json.dump(results, f)
"""


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory) -> dict:
    """Each example's outcome, and the runner's output (for a crash that ends it)."""
    folder = tmp_path_factory.mktemp("examples")
    examples, results = folder / "examples.json", folder / "results.json"
    examples.write_text(json.dumps({p.id: p.values[0] for p in EXAMPLES}))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.fspath(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, os.fspath(examples), os.fspath(results),
         os.fspath(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )
    outcomes = json.loads(results.read_text()) if results.is_file() else {}
    return {"outcomes": outcomes, "output": f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"}


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.id for p in EXAMPLES])
def test_example_runs(name, example_runs):
    outcome = example_runs["outcomes"].get(name)
    assert outcome is not None, f"the runner stopped before {name}:\n{example_runs['output']}"
    error = outcome["error"]
    if error is not None:
        missing = [tool for tool in MISSING_TOOLS if tool in error]
        if missing:
            pytest.skip(f"needs what is not installed here: {missing[0]}")
    assert error is None, error[-5000:]
