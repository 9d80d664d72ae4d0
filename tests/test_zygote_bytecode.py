"""The zygote holds the bytecode of learned modules it cannot import (``zygote._bytecode``).

Real files on a real ``sys.path``: a package whose ``models`` module fails to import until the
"project" is configured, as Django's do without settings. The held code object is what the
import executes (it runs then, not ahead); a reload reads the file again; a module whose parent
is not loaded, or that is missing, is not held; the held files are the ones the zygote watches.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapprof.server.zygote import _bytecode

MODELS = (
    "import needpkg\nif not needpkg.CONFIGURED:\n    raise RuntimeError('not configured')\nVALUE = 'v1'\n"
)


@pytest.fixture
def needpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    pkg = tmp_path / "needpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("CONFIGURED = False\n")
    (pkg / "models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    meta_path = list(sys.meta_path)
    try:
        yield pkg
    finally:
        sys.meta_path[:] = meta_path
        for name in [n for n in sys.modules if n == "needpkg" or n.startswith("needpkg.")]:
            del sys.modules[name]


def test_a_held_module_executes_the_held_code_at_its_import_and_a_reload_reads_the_file(
    needpkg: Path,
) -> None:
    import needpkg as package

    with pytest.raises(RuntimeError):
        importlib.import_module("needpkg.models")  # as in the zygote: settings not configured
    held = _bytecode.hold(["needpkg.models", "needpkg.missing", "otherpkg.models"])
    assert list(held) == ["needpkg.models"]  # missing: not found; otherpkg: its parent is not loaded
    watched = _bytecode.install(held)
    assert watched == [str(needpkg / "models.py")]
    # the file changes after the code was held (a real zygote would be stale and replaced):
    # what the import runs is the code object held, executed now, with the package configured
    (needpkg / "models.py").write_text(MODELS.replace("'v1'", "'v2, longer'"))
    package.CONFIGURED = True  # type: ignore[attr-defined]
    models = importlib.import_module("needpkg.models")
    assert models.VALUE == "v1"
    assert models.__file__ == str(needpkg / "models.py")
    assert type(models.__spec__.loader).__name__ == "_HeldLoader"
    assert importlib.reload(models).VALUE == "v2, longer"  # used once: a reload reads the file


def test_a_held_module_found_elsewhere_is_left_to_the_normal_finders(needpkg: Path, tmp_path: Path) -> None:
    import needpkg as package

    with pytest.raises(RuntimeError):
        importlib.import_module("needpkg.models")
    _bytecode.install(_bytecode.hold(["needpkg.models"]))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "models.py").write_text("VALUE = 'elsewhere'\n")
    package.__path__.insert(0, str(elsewhere))  # the package now finds another file first
    package.CONFIGURED = True  # type: ignore[attr-defined]
    assert importlib.import_module("needpkg.models").VALUE == "elsewhere"
