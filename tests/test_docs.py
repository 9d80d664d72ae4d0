"""The docs cover the CLI and the environment: every flag of every subcommand, every SWAPPROF_*
variable named in the source, and a README that stays a first screen, not a manual.

The parser is walked through plain argparse internals (``_SubParsersAction.choices``), so the
walk does not depend on how cli.py builds its subcommands.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapprof.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
SOURCE = ROOT / "swapprof"
README_MAX_LINES = 220
# The page each subcommand's flags belong on; a subcommand not listed (or a top-level option)
# may be documented anywhere under docs/.
PAGES = {
    "serve": "server.md",
    "ctl": "server.md",
    "demo": "server.md",
    "report": "observability.md",
    "observe": "integrations.md",
    "profile": "pprof.md",
    "dashboards": "dashboards.md",
    "bench": "gate.md",
    "gate": "gate.md",
}
ENV_RE = re.compile(r"\bSWAPPROF_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
# A name built at run time from a prefix (f"SWAPPROF_{key.upper()}") is not a name of its own.
ENV_PREFIX_RE = re.compile(r"\bSWAPPROF_\{")


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """Yield (command path, option string) for every option of ``parser`` and its subparsers."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))
        elif isinstance(action, argparse._HelpAction):
            continue
        else:
            for option in action.option_strings:
                yield " ".join(path), option


def docs_text() -> str:
    pages = sorted(DOCS.rglob("*.md"))
    assert pages, f"no Markdown pages under {DOCS}"
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def documented(option: str, text: str) -> bool:
    """``--run`` must appear as itself, not only as the start of ``--run-dir``."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def source_env_vars() -> set[str]:
    names: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        names.update(ENV_RE.findall(path.read_text(encoding="utf-8")))
    return names


def test_the_walk_sees_nested_subcommands_and_their_options() -> None:
    found = set(walk(build_parser()))
    # A sample from each level: top-level subcommands, nested ones (ctl upgrade, dashboards push).
    for expected in [
        ("serve", "--preload"),
        ("serve", "--debug-token"),
        ("ctl", "--run-dir"),
        ("ctl upgrade", "--wait"),
        ("ctl upgrade", "--timeout"),
        ("ctl reload", "--json"),
        ("dashboards push", "--url"),
        ("gate", "--baseline"),
        ("", "--version"),
    ]:
        assert expected in found
    assert not any(option in ("-h", "--help") for _, option in found)


def page_text(command: str) -> str:
    page = PAGES.get(command.split(" ")[0])
    return docs_text() if page is None else (DOCS / page).read_text(encoding="utf-8")


def test_every_flag_of_every_subcommand_is_in_the_docs() -> None:
    options = sorted(set(walk(build_parser())))
    assert len(options) > 50, "the walk found too few options; is the parser still walked?"
    missing = [
        f"swapprof {cmd} {opt} (in docs/{PAGES.get(cmd.split(' ')[0], '')})"
        for cmd, opt in options
        if not documented(opt, page_text(cmd))
    ]
    assert not missing, f"flags missing from docs/: {missing}"


def test_every_subcommand_is_in_the_docs() -> None:
    text = docs_text()
    commands = {cmd for cmd, _ in walk(build_parser()) if cmd}
    missing = sorted(cmd for cmd in commands if f"swapprof {cmd}" not in text)
    assert not missing, f"subcommands never named as `swapprof CMD` in docs/: {missing}"


def test_every_swapprof_environment_variable_is_in_the_docs() -> None:
    names = source_env_vars()
    # The settings every user meets, so a broken scan cannot pass by finding nothing.
    assert {"SWAPPROF_RUN_DIR", "SWAPPROF_READY_TIMEOUT", "SWAPPROF_PRELOAD", "SWAPPROF_TELEMETRY"} <= names
    text = docs_text()
    missing = sorted(name for name in names if not re.search(rf"\b{name}\b", text))
    assert not missing, f"SWAPPROF_* names in swapprof/ but not in docs/: {missing}"


def test_the_env_scan_reads_names_not_prefixes() -> None:
    sample = 'os.environ.get("SWAPPROF_RUN_DIR"); key.startswith("SWAPPROF_"); f"SWAPPROF_{k}"'
    assert ENV_RE.findall(sample) == ["SWAPPROF_RUN_DIR"]


def test_documented_matches_whole_flags_only() -> None:
    assert documented("--run", "use `--run` here")
    assert not documented("--run", "only --run-dir is here")
    assert not documented("--wait", "nothing")


def test_readme_is_a_first_screen_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (limit {README_MAX_LINES})"
    assert "make demo" in text
    assert "make test" in text


@pytest.mark.parametrize("target", ["demo", "test"])
def test_the_readme_commands_exist_in_the_makefile(target: str) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"Makefile has no '{target}' target"


def test_readme_links_to_docs_pages_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert links, "README.md links to no docs page"
    missing = sorted({link for link in links if not (ROOT / link).exists()})
    assert not missing, f"README.md links to missing files: {missing}"
