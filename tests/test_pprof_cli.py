"""``swapprof profile`` (add_parser/run in swapprof.pprof._cli) and the HTML flame graph."""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapprof._errors import ConfigError
from swapprof.pprof import PprofServer, Profile, ProfileFormatError, flame_html, serve
from swapprof.pprof._cli import add_parser, profile_url, run
from swapprof.pprof._errors import ProfileFetchError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="swapprof")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["profile", *argv])


def swapprof_cli_busy(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(100))


@pytest.fixture
def server() -> Iterator[PprofServer]:
    stop = threading.Event()
    worker = threading.Thread(target=swapprof_cli_busy, args=(stop,))
    worker.start()
    with serve(token="tk", max_seconds=5) as running:
        yield running
    stop.set()
    worker.join()


def test_fetch_write_and_render(
    server: PprofServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, page = tmp_path / "cpu.pb.gz", tmp_path / "flame.html"
    base = server.url.removesuffix("/debug/pprof/")
    args = parse(base, "--seconds", "1", "-o", str(out), "--html", str(page), "--token", "tk")
    assert run(args) == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    printed = capsys.readouterr().out
    assert "swapprof_cli_busy" in printed and f"wrote {out}" in printed
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "swapprof_cli_busy" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing to fetch
    # the saved file is an input too
    assert run(parse(str(out), "--html", str(tmp_path / "again.html"))) == 0
    assert "cpu/nanoseconds" in capsys.readouterr().out


def test_cli_errors(server: PprofServer, tmp_path: Path) -> None:
    with pytest.raises(ProfileFetchError, match="answered 401"):
        run(parse(server.url + "cmdline", "-o", str(tmp_path / "x")))
    with pytest.raises(ProfileFetchError, match="answered 404: Unknown profile"):
        run(parse(server.url + "nonesuch", "--token", "tk", "-o", str(tmp_path / "x")))
    with pytest.raises(ProfileFetchError, match="exceeds the server's maximum"):
        run(parse(server.url + "profile", "--seconds", "9", "--token", "tk", "-o", str(tmp_path / "x")))
    with pytest.raises(ProfileFormatError):  # a text route is no profile
        run(parse(server.url + "cmdline", "--token", "tk", "-o", str(tmp_path / "x")))
    with pytest.raises(ConfigError, match="neither an existing file nor an http"):
        run(parse(str(tmp_path / "missing.pb.gz")))
    (tmp_path / "junk").write_bytes(b"not a profile")
    with pytest.raises(ProfileFormatError):
        run(parse(str(tmp_path / "junk")))
    with pytest.raises(ConfigError, match="--seconds applies to URLs"):
        run(parse(str(tmp_path / "junk"), "--seconds", "2"))
    with pytest.raises(ProfileFetchError, match="could not fetch"):
        run(parse("http://127.0.0.1:1/debug/pprof/heap"))  # nothing listens on port 1


def test_profile_url() -> None:
    assert profile_url("http://h:1", 5) == "http://h:1/debug/pprof/profile?seconds=5"
    assert profile_url("http://h:1/debug/pprof/", None) == "http://h:1/debug/pprof/profile"
    assert profile_url("http://h:1/debug/pprof/heap?gc=1", 2) == "http://h:1/debug/pprof/heap?gc=1&seconds=2"


def test_flame_graph_page() -> None:
    profile = Profile([("samples", "count"), ("inuse_space", "bytes")], ("space", "bytes"), 1)
    profile.add((("leaf</script>", "/a.py", 1, 2), ("root", "/a.py", 1, 1)), [1, 3000])
    profile.add((("other", "/b.py", 1, 2), ("root", "/a.py", 1, 1)), [1, 1000])
    profile.add((("shrinking", "/c.py", 1, 2),), [1, -50])
    page = flame_html(profile, title="t<1>")
    assert "<title>t&lt;1&gt;</title>" in page and "</script>\n<script>" in page
    data = json.loads(re.search(r'id="flame-data">(.*?)</script>', page, re.S)[1])  # type: ignore[index]
    assert data["unit"] == "bytes" and data["root"]["v"] == 4000
    (root,) = data["root"]["c"]
    assert root["n"] == "root" and sorted((c["n"], c["v"]) for c in root["c"]) == [
        ("leaf</script>", 3000),
        ("other", 1000),
    ]
    assert "leaf</script>" not in page  # escaped inside the JSON
    with pytest.raises(ConfigError, match="no sample type 'cpu'"):
        flame_html(profile, "cpu")


NODE_HARNESS = """
const els = {};
function el(id) {
  return els[id] || (els[id] = {textContent: '', innerHTML: '', clientWidth: 800, value: '', on: {},
    addEventListener(type, f) { this.on[type] = f; }});
}
el('flame-data').textContent = require('fs').readFileSync(0, 'utf8');
global.document = {getElementById: el};
global.window = {addEventListener() {}};
SCRIPT
const before = (el('chart').innerHTML.match(/<rect/g) || []).length;
el('chart').on.click({target: {closest: () => ({dataset: {i: '2'}})}});
const after = (el('chart').innerHTML.match(/<rect/g) || []).length;
el('search').value = 'leaf';
el('search').on.input();
console.log(JSON.stringify({before, after, svg: el('chart').innerHTML.startsWith('<svg'),
  hits: (el('chart').innerHTML.match(/#e040fb/g) || []).length, info: el('info').textContent}));
"""


def test_flame_graph_script_runs_in_node(tmp_path: Path) -> None:
    """The page's own script, run by node against a stub DOM (skipped without node)."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the flame graph script is not executed")
    profile = Profile([("cpu", "nanoseconds")], ("cpu", "nanoseconds"), 1)
    profile.add((("leaf", "/a.py", 1, 2), ("root", "/a.py", 1, 1)), [3_000_000])
    profile.add((("other", "/b.py", 1, 2), ("root", "/a.py", 1, 1)), [1_000_000])
    page = flame_html(profile)
    data = re.search(r'id="flame-data">(.*?)</script>', page, re.S)[1]  # type: ignore[index]
    script = re.search(r"<script>(.*?)</script>", page, re.S)[1]  # type: ignore[index]
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS.replace("SCRIPT", script))
    done = subprocess.run([node, str(harness)], input=data, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (
        result["svg"] and result["before"] == 4 and result["after"] == 3
    )  # zoomed on leaf: all, root (faded), leaf
    assert result["hits"] == 1 and result["info"] == "cpu/nanoseconds: 3.00ms of 4.00ms in view"
