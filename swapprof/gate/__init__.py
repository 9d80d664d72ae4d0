"""The bench runner, the statistical regression gate and its reports.

``bench(target, config)`` measures K hot upgrades of a target (``ReferenceTarget`` for the
reference server, ``CommandTarget`` for any other) under load and returns a ``swapprof.bench/1``
results document (``write_results`` / ``load_results`` keep it as JSON); ``compare(baseline,
current, options)`` judges two of them; ``render_markdown`` / ``render_junit`` / ``render_html``
present the verdict.
"""

from swapprof.gate._bench import BenchConfig, LoadSpec
from swapprof.gate._bench import run as bench
from swapprof.gate._command import CommandTarget
from swapprof.gate._compare import compare
from swapprof.gate._junit import render_junit
from swapprof.gate._report_html import render_html
from swapprof.gate._report_md import render_markdown
from swapprof.gate._schema import load_results, write_results
from swapprof.gate._target import ReferenceTarget
from swapprof.gate._verdict import GateOptions, Verdict

__all__ = [
    "BenchConfig",
    "CommandTarget",
    "GateOptions",
    "LoadSpec",
    "ReferenceTarget",
    "Verdict",
    "bench",
    "compare",
    "load_results",
    "render_html",
    "render_junit",
    "render_markdown",
    "write_results",
]
