"""The browser page's JavaScript against the Python it mirrors, and the page itself.

The text front end (export/web/src/frontend.js) gives the Python ids: the tables it reads
(symbols, abbreviations, CMUdict, unidecode) are exported by
`export.tfjs.export_frontend`; node runs the front end on a sentence set with numbers,
currency, ordinals, years, abbreviations, punctuation, non-ASCII text and ARPAbet
braces, plus a few hundred seeded random numbers. The solver plans (src/solvers.js)
equal `gradtts_tf.solvers.solver_plan` and the per-step noise (src/prng.js) equals
`gradtts_tf.noise`. In headless Chromium, the page speaks a tiny exported model with
the euler, dpmpp-2m and ml-sde solvers from a seed and gives the Keras `Synthesizer`'s
mel, on WASM (default suite) and on WebGL and WebGPU (slow); it chooses its backend
by measurement and uses WASM threads when isolated. Also: the demo server's routing.
"""

import json
import os
import random
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gradtts_tf.export.tfjs import export_frontend, frontend_tables
from gradtts_tf.export.web import serve_in_thread
from gradtts_tf.noise import piece_noise
from gradtts_tf.solvers import DEFAULT_SOLVER, SOLVERS, STOCHASTIC_SOLVERS, solver_plan
from gradtts_tf.text import load_cmudict, symbols, text_to_ids
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "export" / "web"
NODE = shutil.which("node")

SENTENCES = [
    "Hello, world.",
    "Mr. Smith paid $3.50 for 2 apples on the 21st of May, 1999.",
    "Dr. Jones met Mrs. Brown at St. Paul's at 10:30; it cost £20!",
    "The 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 22nd, 101st and 1000th runners.",
    "It's $2,500,000? No: 1,234,567.89 dollars, or $0.01, $1, $1.00, $2.5, $1.2.3.",
    "In 2005, 2000 and 1900, then 1066, 1492, 2999 and 3000; also 0, 7, 13, 99, 100, 101.",
    "Capt. Lt. Sgt. Col. Gen. Maj. Rev. Hon. Esq. Ltd. Co. Jr. Ft. Drs. (abbreviations)",
    "3.14159 and 0.5, 10.0 and 123456789 or 1000000000000!",
    "Café déjà vu — naïve façade, “quotes”, ‘single’… and Zhōngwén 中文.",
    "Turn left on {HH AW1 S T AH0 N} Street, then brace{AH0}inside {unclosed",
    "Hello\tworld\nagain   spaced  ",
    '(parentheses) and "quotes" - dash; colon: end? yes!',
    "what's up, doc? I'm fine; you're late.",
    "a_b~c and 221B Baker St. at 9 am.",
]
UNSPEAKABLE = ["", "   ", "...!!!", "😀", "?! ... 😀"]


def _random_numbers(n: int) -> list[str]:
    rng = random.Random(0)
    texts = []
    for _ in range(n):
        v = rng.choice([rng.randint(0, 100), rng.randint(0, 10_000), rng.randint(0, 10**7),
                        rng.randint(0, 10**15), rng.randint(0, 10**30)])
        texts.append(rng.choice([
            f"{v}", f"${v}.{rng.randint(0, 99):02d}", f"{v}th", f"{v:,}",
            f"{v}.{rng.randint(0, 999)}", f"£{v}", f"{v}st place", f"${v:,}",
        ]))
    return texts


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("frontend")
    export_frontend(out)
    return out


def _run_js(tables: Path, texts: list[str], tmp_path: Path) -> list[dict]:
    if NODE is None:
        if os.environ.get("CI"):
            pytest.fail("node not found (make web-deps installs it)")
        pytest.skip("node not found")
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(texts))
    proc = subprocess.run(
        [NODE, os.fspath(WEB / "tests" / "frontend_cli.mjs"), os.fspath(tables),
         os.fspath(texts_file)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(proc.stdout)


def test_tables_come_from_python(tables):
    front = json.loads((tables / "frontend.json").read_text())
    assert front == frontend_tables()
    assert front["symbols"] == list(symbols) and len(front["symbols"]) == 148
    assert front["blank_id"] == 148 and front["space_id"] == symbols.index(" ")
    assert [a[1] for a in front["abbreviations"][:2]] == ["misess", "mister"]
    cmu = json.loads((tables / "cmudict.json").read_text())
    assert cmu == load_cmudict() and cmu["HELLO"] == "HH AH0 L OW1"
    uni = json.loads((tables / "unidecode.json").read_text())
    assert uni["0"][0xE9] == "e" and uni["20"][0x14] == "--"  # é, em dash
    sizes = {f.name: f.stat().st_size for f in tables.iterdir()}
    print("front-end tables (bytes):", sizes)


def test_js_ids_match_python(tables, tmp_path):
    texts = SENTENCES + _random_numbers(300)
    js = _run_js(tables, texts, tmp_path)
    mismatches = []
    for text, result in zip(texts, js, strict=True):
        expected = text_to_ids(text)
        if result.get("ids") != expected:
            mismatches.append((text, expected, result))
    assert not mismatches, mismatches[:3]
    n_ids = sum(len(r["ids"]) for r in js)
    print(f"{len(texts)} texts, {n_ids} ids: JS == Python")


def test_js_rejects_unspeakable_text_like_python(tables, tmp_path):
    js = _run_js(tables, UNSPEAKABLE, tmp_path)
    for text, result in zip(UNSPEAKABLE, js, strict=True):
        with pytest.raises(ValueError):
            text_to_ids(text)
        assert result["error"] == "NothingToSpeakError", (text, result)
    assert "no letters or words" in js[-1]["message"]
    assert "empty" in js[0]["message"]


def test_server_routes_and_confines_paths(tmp_path):
    dist, model = tmp_path / "dist", tmp_path / "model"
    dist.mkdir()
    model.mkdir()
    (dist / "index.html").write_text("<html>page</html>")
    (dist / "app.js").write_text("// app")
    (dist / "x.wasm").write_bytes(b"\0asm")
    (model / "model_info.json").write_text('{"ok": true}')
    (tmp_path / "secret.txt").write_text("secret")
    server, url = serve_in_thread(model, dist_dir=dist)
    try:
        with urllib.request.urlopen(url) as r:
            assert b"page" in r.read()
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with urllib.request.urlopen(url + "model/model_info.json?v=1") as r:
            assert json.loads(r.read()) == {"ok": True}
        with urllib.request.urlopen(url + "x.wasm") as r:
            assert r.headers["Content-Type"] == "application/wasm"
        for path in ("model/../secret.txt", "model/%2e%2e/secret.txt", "../secret.txt"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(url + path)
            assert err.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_server_explains_missing_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="make web-build"):
        serve_in_thread(tmp_path, dist_dir=tmp_path / "nothing")


def test_packaged_page_is_built_from_the_current_sources(tmp_path):
    """The page installed with the package (gradtts_tf/export/web_dist) is what
    `make web-build` makes of export/web today: rebuild after changing the sources."""
    import filecmp

    if NODE is None or not (WEB / "node_modules" / "esbuild").is_dir():
        if os.environ.get("CI"):
            pytest.fail("node or export/web/node_modules missing: run `make web-deps`")
        pytest.skip("node or export/web/node_modules missing: run `make web-deps`")
    subprocess.run([NODE, "build.mjs", os.fspath(tmp_path)], cwd=WEB, check=True,
                   capture_output=True, timeout=300)
    packaged = ROOT / "gradtts_tf" / "export" / "web_dist"
    for name in ("app.js", "index.html"):
        assert filecmp.cmp(tmp_path / name, packaged / name, shallow=False), (
            f"gradtts_tf/export/web_dist/{name} is stale: run `make web-build` and commit it"
        )


# --------------------------------------------------------------------------- solvers


PLAN_STEPS = range(1, 13)
SCHEDULES = [(0.05, 20.0), (0.2, 10.0)]  # the official (beta_min, beta_max), another
# Explicit time grids for the solvers that take one (uneven, ending above 0 and at 0).
GIVEN_TIMES = [[1.0, 0.7, 0.35, 0.1, 0.001], [0.9, 0.5, 0.0], [1.0, 0.0]]
PLAN_RTOL = 1e-12


def _node_json(script: str, request: dict, tmp_path: Path) -> str:
    require(NODE is not None, "node not found: run `make web-deps`")
    path = tmp_path / f"{Path(script).stem}_request.json"
    path.write_text(json.dumps(request))
    proc = subprocess.run(
        [NODE, os.fspath(WEB / "tests" / script), os.fspath(path)],
        capture_output=True, text=True, timeout=600, check=False, cwd=WEB,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _plan_mismatches(py: list[float], js: list[float], rtol: float = PLAN_RTOL) -> list:
    """``(index, python, js)`` of every value that differs by more than ``rtol``."""
    return [
        (i, a, b) for i, (a, b) in enumerate(zip(py, js, strict=True))
        if not abs(a - b) <= rtol * max(abs(a), abs(b))
    ]


def test_plan_comparison_catches_a_difference():
    assert _plan_mismatches([1.0, 0.0, -2.5], [1.0, 0.0, -2.5]) == []
    assert _plan_mismatches([1.0, 0.0], [1.0 + 1e-11, 0.0]) == [(0, 1.0, 1.0 + 1e-11)]
    assert _plan_mismatches([0.0], [1e-300]) == [(0, 0.0, 1e-300)]


def test_js_solver_plans_equal_python(tmp_path):
    """src/solvers.js computes `solver_plan` and `time_grid` in float64 like Python:
    every solver at steps 1-12 on two schedules, and given time grids, to 1e-12
    relative; the same arguments are refused."""
    from gradtts_tf.solvers import time_grid

    errors = [["heun", 4, None], ["euler", 0, None], ["euler", 2.5, None],
              ["euler", 2, [1.0, 0.5, 0.0]], ["ml-sde", 2, [1.0, 0.0]],
              ["dpmpp-2m", 2, [1.0, 1.0, 0.0]], ["ml-sde", 1, [1.5, 0.0]]]
    request = {"schedules": SCHEDULES, "steps": list(PLAN_STEPS), "times": GIVEN_TIMES,
               "errors": errors}
    js = json.loads(_node_json("node_solvers.mjs", request, tmp_path))
    assert js["solvers"] == list(SOLVERS)
    assert js["stochastic"] == list(STOCHASTIC_SOLVERS)
    assert js["default"] == DEFAULT_SOLVER
    assert len(js["plans"]) == len(SCHEDULES) * (
        len(PLAN_STEPS) * len(SOLVERS) + len(GIVEN_TIMES) * 2)
    bad, worst = [], 0.0
    for plan in js["plans"]:
        given = plan["given_times"]
        key = (plan["solver"], plan["steps"], given, plan["beta_min"], plan["beta_max"])
        ref = solver_plan(plan["solver"], plan["steps"], plan["beta_min"], plan["beta_max"],
                          **({"times": given} if given is not None else {}))
        assert plan["stochastic"] == ref.stochastic, key
        assert len(plan["times"]) == len(plan["coefs"]) == ref.steps == plan["steps"], key
        assert all(len(c) == 6 for c in plan["coefs"]), key
        py = [*ref.times, *(c for step in ref.coefs for c in step)]
        ours = [*plan["times"], *(c for step in plan["coefs"] for c in step)]
        if mismatches := _plan_mismatches(py, ours):
            bad.append((key, mismatches[:3]))
        worst = max([worst] + [abs(a - b) / max(abs(a), abs(b))
                               for a, b in zip(py, ours, strict=True) if a != b])
    for grid in js["grids"]:
        if mismatches := _plan_mismatches(time_grid(grid["solver"], grid["steps"]),
                                          grid["times"]):
            bad.append((grid["solver"], grid["steps"], mismatches[:3]))
    assert not bad, bad[:5]
    for (solver, steps, times), message in zip(errors, js["errors"], strict=True):
        with pytest.raises(ValueError) as err:
            solver_plan(solver, steps, 0.05, 20.0, **({"times": times} if times else {}))
        assert message is not None, (solver, steps, times)
        assert message.startswith("RangeError: " + str(err.value).split(":")[0] + ":"), (
            message, str(err.value))
    print(f"{len(js['plans'])} plans and {len(js['grids'])} time grids: JS == Python, "
          f"largest relative difference {worst:.1e}")


def test_js_solver_error_messages():
    """Unknown solvers and step counts are refused naming what is valid."""
    require(NODE is not None, "node not found: run `make web-deps`")
    script = (
        "import { solverPlan } from './src/solvers.js';"
        "for (const args of [['heun', 4], ['euler', 0]]) {"
        "  try { solverPlan(args[0], args[1], 0.05, 20); console.log('no error'); }"
        "  catch (e) { console.log(e.name + ': ' + e.message); } }"
    )
    out = subprocess.run([NODE, "--input-type=module", "-e", script], cwd=WEB,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == f"RangeError: solver: expected one of {', '.join(SOLVERS)}, got \"heun\""
    assert lines[1] == "RangeError: steps: expected an integer >= 1, got 0"


def test_js_step_noise_equals_python(tmp_path):
    """The per-step draws of a stochastic solver (stream 2 pos + 1, then zero padding)
    and the start noise (stream 2 pos) are the Python generator's, to the last bit
    where both math libraries round alike (at most one float32 ulp elsewhere)."""
    steps, frames, padded, n_feats, seed, pos = 5, 37, 40, 80, 1234, 1
    request = {"out": os.fspath(tmp_path / "noise.f32"), "seed": seed, "steps": steps,
               "frames": frames, "padded_frames": padded, "n_feats": n_feats, "pos": pos}
    _node_json("node_noise.mjs", request, tmp_path)
    js = np.fromfile(tmp_path / "noise.f32", np.float32).reshape(steps + 1, padded, n_feats)
    expected = np.zeros_like(js)
    expected[:steps, :frames] = piece_noise(seed, pos, [steps, frames, n_feats], stochastic=True)
    expected[steps, :frames] = piece_noise(seed, pos, [frames, n_feats])
    np.testing.assert_array_max_ulp(js, expected, maxulp=1)
    assert not js[:, frames:].any()
    print(f"step noise: {int(np.sum(js != expected))} of {js.size} values differ by one ulp")


# --------------------------------------------------------------------------- the page


CHROMIUM = "/usr/bin/chromium"
PAGE_TEXT = "Hello, world."
PAGE_STEPS = 5
PAGE_TEMPERATURE = 1.5
PAGE_RATE = 1.25  # the page's speaking rate; length_scale = 1 / rate
PAGE_SEED = 77
PAGE_SOLVERS = ("euler", "dpmpp-2m", "ml-sde")
GPU_SOLVERS = ("dpmpp-2m",)
# Page mel vs Keras `Synthesizer.synthesize`, max abs difference / max abs of Keras'.
# Measured on the tiny model (float32 throughout, other kernels): WASM 7e-7 to 1.5e-6,
# WebGL and WebGPU on SwiftShader 9e-6 to 2.4e-5.
TOL = {"wasm": 1e-4, "webgl": 2e-4, "webgpu": 2e-4}
# Chromium flags per backend: WebGPU needs --enable-unsafe-webgpu where Chromium does
# not trust the GPU (headless, SwiftShader); WebGL runs on SwiftShader with --disable-gpu.
BACKEND_ARGS = {"wasm": ["--disable-gpu"], "webgl": ["--disable-gpu"],
                "webgpu": ["--enable-unsafe-webgpu"], "cpu": ["--disable-gpu"]}


@pytest.fixture(scope="module")
def page_model(tmp_path_factory):
    """A tiny Grad-TTS, its float32 TF.js export, the built page and the Keras mels of
    `PAGE_SOLVERS` from `PAGE_SEED` (the portable generator's start and step noise)."""
    require(NODE is not None and (WEB / "node_modules" / "playwright-core").is_dir(),
            "node or export/web/node_modules missing: run `make web-deps`")
    require(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: run `make web-deps`")
    from gradtts_tf.config import Config
    from gradtts_tf.export.savedmodel import export_savedmodels
    from gradtts_tf.export.tfjs import ConverterNotFoundError, converter_command, export_tfjs
    from gradtts_tf.synthesizer import Synthesizer
    from tests.conftest import tiny_gradtts

    try:
        converter_command()
    except ConverterNotFoundError as err:
        require(False, str(err))
    root = tmp_path_factory.mktemp("page")
    model = tiny_gradtts()
    export_savedmodels(model, root / "savedmodel", config=Config())
    export_tfjs(None, root / "tfjs", savedmodel_dir=root / "savedmodel")
    subprocess.run([NODE, "build.mjs", os.fspath(root / "dist")], cwd=WEB, check=True,
                   capture_output=True, timeout=300)
    synth = Synthesizer(model, Config(), vocoder=None, freeze=False)  # traces faster
    mels = {}
    for solver in PAGE_SOLVERS:
        (utterance,), _ = synth.synthesize(
            [PAGE_TEXT], seed=PAGE_SEED, steps=PAGE_STEPS, temperature=PAGE_TEMPERATURE,
            length_scale=1 / PAGE_RATE, solver=solver,
        )
        mels[solver] = utterance.mel  # [T, 80]
    return SimpleNamespace(root=root, mels=mels, ids=text_to_ids(PAGE_TEXT))


def _drive_page(page_model, tmp_path: Path, backend: str, **request) -> dict:
    """Serves the page and runs export/web/tests/browser_test.mjs on it."""
    server, url = serve_in_thread(page_model.root / "tfjs", dist_dir=page_model.root / "dist")
    request = {
        "url": url, "chromium": CHROMIUM, "user_data_dir": os.fspath(tmp_path / "profile"),
        "out_dir": os.fspath(tmp_path), "text": PAGE_TEXT, "steps": PAGE_STEPS,
        "temperature": PAGE_TEMPERATURE, "rate": PAGE_RATE, "timeout_ms": 240_000,
        "backend": backend, "extra_args": BACKEND_ARGS.get(backend, ["--disable-gpu"]),
        **request,
    }
    try:
        summary = json.loads(_node_json("browser_test.mjs", request, tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    assert not summary["page_errors"] and not summary["console_errors"], summary
    assert not summary["requests_outside"]  # offline: everything is served locally
    return summary


def _check_solver_runs(page_model, summary: dict, tmp_path: Path, backend: str,
                       solvers: tuple[str, ...] = PAGE_SOLVERS) -> None:
    errors = {}
    for run in summary["solver_runs"]:
        solver = run["solver"]
        assert run["backend"] == backend and run["steps"] == PAGE_STEPS
        assert run["noise"] == f"seed {PAGE_SEED}" and run["ids"] == page_model.ids
        assert f"{PAGE_STEPS} {solver} steps" in run["timing_text"]
        mel = np.fromfile(tmp_path / f"browser_mel_{solver}.f32", np.float32).reshape(-1, 80)
        ref = page_model.mels[solver]
        assert mel.shape == ref.shape, (solver, mel.shape, ref.shape)
        errors[solver] = float(np.max(np.abs(mel - ref)) / np.max(np.abs(ref)))
    print(f"{backend}: page mel vs Keras Synthesizer, relative error "
          + ", ".join(f"{s} {e:.1e}" for s, e in errors.items())
          + f" (bound {TOL[backend]:.0e}); {summary['backend_info']}")
    assert set(errors) == set(solvers)
    assert all(e < TOL[backend] for e in errors.values()), errors
    # The solvers differ (a bug feeding one plan to all would pass the bound above).
    euler = page_model.mels["euler"]
    assert all(np.max(np.abs(page_model.mels[s] - euler)) > 1e-3 for s in PAGE_SOLVERS[1:])


def _solver_runs(solvers: tuple[str, ...] = PAGE_SOLVERS) -> list[dict]:
    return [{"solver": s, "seed": PAGE_SEED} for s in solvers]


def test_page_solvers_match_keras_on_wasm(page_model, tmp_path):
    """WASM (SIMD, threads: 4 emulated cores give TF.js' 2): the Solver control, a seed,
    and the mel of each solver equals the Keras Synthesizer's."""
    summary = _drive_page(page_model, tmp_path, "wasm", hardware_concurrency=4,
                          solver_runs=_solver_runs(), unspeakable_text="?! 😀")
    backend = summary["backend"]
    assert backend["backend"] == "wasm" and backend["mode"] == "chosen"
    details = backend["details"]
    assert summary["cross_origin_isolated"] and details["crossOriginIsolated"]
    assert details["simd"] and details["threadsSupported"] and details["threads"] == 2
    assert "SIMD, 2 threads" in summary["backend_info"]
    assert summary["solver_options"] == list(SOLVERS)
    assert summary["solver_selected"] == DEFAULT_SOLVER
    assert summary["backend_selected"] == "wasm"
    assert [o["value"] for o in summary["backend_options"]] == [
        "auto", "webgpu", "webgl", "wasm", "cpu"]
    assert "Nothing to pronounce" in summary["unspeakable_message"]
    _check_solver_runs(page_model, summary, tmp_path, "wasm")


def test_page_measures_backends_and_takes_url_settings(page_model, tmp_path):
    """No ?backend=: the page times decoder_step on each candidate and runs on the
    fastest, showing the figures; ?solver= selects the solver."""
    summary = _drive_page(page_model, tmp_path, "auto",
                          query={"candidates": "wasm,cpu", "solver": "dpmpp-2m"})
    backend = summary["backend"]
    measured = {m["backend"]: m for m in backend["measurements"]}
    assert backend["mode"] == "measured" and set(measured) == {"wasm", "cpu"}
    for m in measured.values():
        assert m["frames"] == 64 and 0 < m["stepMs"] <= m["firstMs"] + 1e3
        assert len(m["callsMs"]) in (1, 2)  # one when it already lost by 2x
    fastest = min(measured.values(), key=lambda m: m["stepMs"])["backend"]
    assert backend["backend"] == fastest == summary["load"]["backend"]
    assert f"Backend: {fastest}" in summary["backend_info"]
    for name, m in measured.items():
        shown = f"{m['stepMs']:.1f} ms" if m["stepMs"] < 10 else f"{round(m['stepMs'])} ms"
        assert f"{name} {shown}" in summary["backend_info"]
    assert summary["backend_selected"] == "auto"
    assert summary["solver_selected"] == "dpmpp-2m"
    print(summary["backend_info"])

    # The default candidates: software GPUs (SwiftShader here) are named, not measured.
    summary = _drive_page(page_model, tmp_path, "auto", query={"solver": "nonsense"})
    backend = summary["backend"]
    assert backend["backend"] in ("webgpu", "webgl", "wasm")
    for name, reason in backend["skipped"].items():
        assert "software GPU" in reason and name in summary["backend_info"]
    assert "?solver=nonsense is not a solver of this voice" in summary["error"]
    assert summary["solver_selected"] == DEFAULT_SOLVER
    print(summary["backend_info"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["webgl", "webgpu"])
def test_page_solvers_match_keras_on_gpu_backends(page_model, tmp_path, backend):
    """WebGL and WebGPU (SwiftShader in headless Chromium): the same mels as Keras. One
    solver here, the multistep one (its steps also feed the previous step's estimate
    back); the host loop is the same JavaScript on every backend, and WASM runs them all."""
    summary = _drive_page(page_model, tmp_path, backend,
                          solver_runs=_solver_runs(GPU_SOLVERS))
    choice = summary["backend"]
    if choice["mode"] == "fallback":
        pytest.skip(f"{backend} cannot run in this Chromium: {choice['unavailable'][backend]}")
    assert choice["backend"] == backend and choice["mode"] == "chosen"
    _check_solver_runs(page_model, summary, tmp_path, backend, GPU_SOLVERS)
