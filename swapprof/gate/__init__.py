"""Load generation, the bench runner, the statistical regression gate and its reports.

``bench(target, config)`` measures K hot upgrades of a target under load and returns a
``swapprof.bench/1`` results document; ``compare(baseline, current, options)`` judges two of
them; ``render_markdown`` / ``render_junit`` / ``render_html`` present the verdict.
"""

from swapprof.gate._bench import BenchConfig, LoadSpec
from swapprof.gate._bench import run as bench
from swapprof.gate._command import CommandTarget
from swapprof.gate._compare import compare
from swapprof.gate._junit import render_junit
from swapprof.gate._load import ERROR_KINDS, LoadGenerator, Result, error_counts
from swapprof.gate._report_html import render_html
from swapprof.gate._report_md import render_markdown
from swapprof.gate._schema import SCHEMA, load_results, validate, write_results
from swapprof.gate._stats import RatioEstimate, bootstrap_ratio
from swapprof.gate._target import ReferenceTarget, Target
from swapprof.gate._verdict import Check, GateOptions, Verdict

__all__ = [
    "ERROR_KINDS",
    "SCHEMA",
    "BenchConfig",
    "Check",
    "CommandTarget",
    "GateOptions",
    "LoadGenerator",
    "LoadSpec",
    "RatioEstimate",
    "ReferenceTarget",
    "Result",
    "Target",
    "Verdict",
    "bench",
    "bootstrap_ratio",
    "compare",
    "error_counts",
    "load_results",
    "render_html",
    "render_junit",
    "render_markdown",
    "validate",
    "write_results",
]
