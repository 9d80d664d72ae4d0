"""The pieces of ``--preload auto`` without a server: what counts as app code, what is learned
and stored, and the zygote's checked import of one module at a time (in a child process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swapprof._errors import ConfigError
from swapprof.server._config import ServerConfig
from swapprof.server._rundir import RunDir
from swapprof.server.generation._imported import AppCode
from swapprof.server.master._learned import LearnedPreload


def test_app_code_is_the_app_tree_the_app_dir_and_the_project_but_not_its_virtualenv(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".venv" / "site").mkdir(parents=True)
    (project / "mysite").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = AppCode("mysite.asgi:application", str(project / "mysite"), cwd=str(project))
    code.libraries = (*code.libraries, str(project / ".venv" / "site"))
    fake = {
        "mysite.settings": project / "mysite" / "settings.py",
        "helpers": project / "helpers.py",
        "vendored": project / ".venv" / "site" / "vendored.py",
        "outside": elsewhere / "outside.py",
    }
    modules = {}
    for name, path in fake.items():
        path.write_text("")
        module = type(sys)(name)
        module.__file__ = str(path)
        module.__spec__ = type("Spec", (), {"name": name})()  # type: ignore[assignment]
        modules[name] = module
    modules["json"] = sys.modules["json"]
    modules["os.path"] = sys.modules["os.path"]  # an alias: not importable as itself
    assert code.preloadable(modules) == ["vendored", "outside", "json"]
    assert code.owns("mysite") and code.owns("mysite.urls")


def test_an_app_inside_swapprof_owns_only_its_module() -> None:
    code = AppCode("swapprof.server.demo:app")
    assert code.owns("swapprof.server.demo")
    assert not code.owns("swapprof.server._contract")
    assert "swapprof.server._contract" in code.preloadable()


def test_learned_set_merges_in_order_drops_and_survives_a_restart(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    run_dir.create()
    learned = LearnedPreload(run_dir, "app:app")
    assert learned.merge(["a", "a.b", "c"]) == ["a", "a.b", "c"]
    assert learned.merge(["a", "d"]) == ["d"]
    assert learned.drop({"c": {"reason": "thread", "detail": "it started a thread"}}) == {
        "c": {"reason": "thread", "detail": "it started a thread"}
    }
    assert learned.drop({"c": {"reason": "thread"}}) == {}  # said once
    assert learned.wanted() == ["a", "a.b", "d"]
    learned.save()
    again = LearnedPreload(run_dir, "app:app")
    assert again.load() and again.wanted() == ["a", "a.b", "d"] and again.status()["from_run_dir"]
    assert not LearnedPreload(run_dir, "other:app").load()  # learned for another app
    again.relearn()  # a dependency changed: drops forgotten, the next report replaces the set
    assert again.merge(["a", "e"]) == ["e"] and again.wanted() == ["a", "e"]
    assert json.loads(run_dir.learned.read_text())["app"] == "app:app"


def test_preload_auto_is_a_setting_beside_declared_packages() -> None:
    config = ServerConfig.from_env("app:app", {"SWAPPROF_PRELOAD": "auto,numpy"})
    assert config.preload_auto and config.preload_declared == ("numpy",)
    assert config.contract("/run", 1).report_imports
    assert not ServerConfig("app:app", preload=("numpy",)).contract("/run", 1).report_imports
    with pytest.raises(ConfigError, match="app code"):
        ServerConfig("app:app", preload=("auto", "app.models"))


CHECK = """
import json, sys
from swapprof.server.generation._imported import AppCode
from swapprof.server.zygote._learned import import_checked
loaded, dropped = import_checked(sys.argv[1].split(","), AppCode("nothing:app", cwd=sys.argv[2]))
print(json.dumps({"loaded": loaded, "dropped": dropped}))
"""


def test_the_zygote_imports_one_module_at_a_time_and_names_each_culprit(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    project = tmp_path / "project"
    (project / "appmod").mkdir(parents=True)
    (project / "appmod" / "__init__.py").write_text("")
    (lib / "fine.py").write_text("VALUE = 1\n")
    (lib / "broken.py").write_text("raise RuntimeError('needs settings')\n")
    (lib / "spawner.py").write_text("import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True, name='bg').start()\n")  # fmt: skip
    (lib / "leaky.py").write_text("KEEP = open(__file__)\n")
    (lib / "pulls.py").write_text("import appmod\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(lib), str(project), os.environ.get("PYTHONPATH", "")]),
    }
    names = "fine,broken,spawner,leaky,pulls,json"
    out = subprocess.run(
        [sys.executable, "-c", CHECK, names, str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    reasons = {name: why["reason"] for name, why in result["dropped"].items()}
    assert reasons == {
        "broken": "import_failed",
        "spawner": "thread",
        "leaky": "open_fds",
        "pulls": "app_code",
    }
    assert "'bg'" in result["dropped"]["spawner"]["detail"]
    assert "appmod" in result["dropped"]["pulls"]["detail"]
    assert result["loaded"] == 2  # fine, json
