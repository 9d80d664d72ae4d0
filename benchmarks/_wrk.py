"""wrk as a load generator: run it for a fixed time, or until told to stop, and parse its report.

wrk prints, with --latency, lines such as:

    Latency Distribution
       50%  512.00us
       99%    3.21ms
    20480 requests in 10.00s, 2.54MB read
    Socket errors: connect 0, read 3, write 0, timeout 0
    Non-2xx or 3xx responses: 2
    Requests/sec:   2047.91

"Socket errors" and "Non-2xx" lines appear only when non-zero. SIGINT makes wrk stop early and
print the same report over the time it ran.
"""

from __future__ import annotations

import re
import signal
import subprocess
from typing import Any

WRK = "/usr/bin/wrk"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def version() -> str:
    out = subprocess.run([WRK, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stdout + out.stderr).splitlines()[0].split(" Copyright")[0].strip()


def start(url: str, seconds: float, connections: int = 16, threads: int = 2) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [WRK, f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str], stop: bool = False, timeout: float = 120.0) -> dict[str, Any]:
    """Wait for wrk's report (after SIGINT if ``stop``); parse it."""
    if stop:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise RuntimeError(f"wrk did not finish: {out}") from None
    return parse(out)


def run(url: str, seconds: float, connections: int = 16, threads: int = 2) -> dict[str, Any]:
    return finish(start(url, seconds, connections, threads), timeout=seconds + 60)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse(out: str) -> dict[str, Any]:
    latency = {f"p{q}_ms": _ms(v) for q, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M)}
    done = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+),", out, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not (latency and done and rps):
        raise RuntimeError(f"could not parse wrk's report:\n{out}")
    errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors = dict(zip(errors, map(int, socket_errors.groups()), strict=True))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors["non_2xx_3xx"] = int(non_2xx.group(1)) if non_2xx else 0
    return {
        "requests": int(done.group(1)),
        "seconds": _ms(done.group(2) + done.group(3)) / 1000,
        "rps": float(rps.group(1)),
        **latency,
        "errors": errors,
        "failed": sum(errors.values()),
    }
