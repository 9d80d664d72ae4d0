"""A machine-speed yardstick, measured next to every upgrade so the gate can discount noise.

On a shared 2-core runner the same build's time_to_ready moves by tens of percent from one run
to the next, with whatever else the machine is doing; a within-run confidence interval cannot
see that. The yardstick is the same kind of work as a spawn plus an import (start a fresh
interpreter, import a fixed set of standard-library modules) and independent of the build under
test (``-I``: no site-packages, no environment). It is timed just before each upgrade, under
the same load, and the gate judges ``time_to_ready / yardstick``: a slower machine slows both.
"""

from __future__ import annotations

import subprocess
import sys
import time

CODE = "import asyncio, concurrent.futures, email.parser, http.client, json, logging, ssl"
TIMEOUT_S = 60.0


def measure() -> float | None:
    """Milliseconds to start ``python -I`` and import the yardstick modules; None on failure."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", CODE],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    elapsed = (time.perf_counter() - start) * 1000
    return round(elapsed, 3) if done.returncode == 0 else None
