"""The JavaScript text front end (export/web/src/frontend.js) gives the Python ids.

The tables it reads (symbols, abbreviations, CMUdict, unidecode) are exported by
`export.tfjs.export_frontend`; node runs the front end on a sentence set with numbers,
currency, ordinals, years, abbreviations, punctuation, non-ASCII text and ARPAbet
braces, plus a few hundred seeded random numbers. Also: the demo server's routing.
"""

import json
import os
import random
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gradtts_tf.export.tfjs import export_frontend, frontend_tables
from gradtts_tf.export.web import serve_in_thread
from gradtts_tf.text import load_cmudict, symbols, text_to_ids

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
