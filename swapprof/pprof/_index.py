"""The HTML index at /debug/pprof/, laid out like Go's, plus the extra JSON routes."""

from __future__ import annotations

import html
import threading
import tracemalloc

from swapprof.pprof._settings import Settings
from swapprof.pprof._text import human
from swapprof.pprof._threads import pending_tasks

DESCRIPTIONS = {
    "allocs": "Memory allocations from tracemalloc (live blocks; ?seconds=N for what a window allocated)",
    "block": "Empty: Python has no blocking profile (valid profile with Go's sample types)",
    "cmdline": "The command line of this process, NUL separated",
    "goroutine": "Stack traces of all threads and asyncio tasks (debug=2: full dump)",
    "heap": "Live memory allocations from tracemalloc; gc=1 collects first",
    "mutex": "Empty: Python has no mutex contention profile (valid profile with Go's sample types)",
    "profile": "CPU profile; seconds=N (default 30), mode=wall, backend=py-spy",
    "threadcreate": "Empty: thread creation is not recorded (valid profile with Go's sample types)",
    "trace": "Not supported: execution traces are a Go runtime feature",
}


def _counts() -> dict[str, str]:
    tasks = len(pending_tasks())
    memory = human(tracemalloc.get_traced_memory()[0], "bytes") if tracemalloc.is_tracing() else "off"
    goroutines = str(threading.active_count() + tasks)
    return {
        "allocs": memory,
        "heap": memory,
        "goroutine": goroutines,
        "block": "0",
        "mutex": "0",
        "threadcreate": "0",
    }


def index_page(settings: Settings) -> str:
    counts = _counts()
    rows = "".join(
        f"<tr><td>{counts.get(name, '')}</td><td><a href='{name}?debug=1'>{name}</a></td></tr>\n"
        for name in sorted(DESCRIPTIONS)
    )
    docs = "".join(
        f"<li><div class=profile-name>{name}: </div> {html.escape(text)}</li>\n"
        for name, text in sorted(DESCRIPTIONS.items())
    )
    extra = "".join(
        f"<li><a href='../swapprof/{html.escape(name)}'>{html.escape(name)}</a></li>\n"
        for name in sorted(settings.routes)
    )
    extra_block = f"<p>swapprof JSON routes:</p><ul>\n{extra}</ul>\n" if extra else ""
    return f"""<html>
<head>
<title>/debug/pprof/</title>
<style>.profile-name{{display:inline-block; width:6rem;}}</style>
</head>
<body>
/debug/pprof/
<br>
<p>Set debug=1 as a query parameter to export in legacy text format</p>
<br>
Types of profiles available:
<table>
<thead><td>Count</td><td>Profile</td></thead>
{rows}</table>
<a href="goroutine?debug=2">full goroutine stack dump</a>
<br>
<p>Profile Descriptions:</p>
<ul>
{docs}</ul>
{extra_block}</body>
</html>
"""
