"""A real Prometheus (Debian's package) on 127.0.0.1, scraping what the test tells it to.

Skips when the binary is missing, except under CI (CI is set), where that is a failure.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests._helpers import require

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, targets: dict[str, list[str]], rule_files: list[str] | None = None) -> None:
        self.binary = require("prometheus", "prometheus")
        self.dir = Path(tempfile.mkdtemp(prefix="swapprof-prom-"))
        jobs = []
        for job, addresses in targets.items():
            jobs.append(
                f"  - job_name: {job}\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n"
                f"    static_configs:\n      - targets: {json.dumps(addresses)}\n"
            )
        rules = "rule_files:\n" + "".join(f"  - {r}\n" for r in rule_files) if rule_files else ""
        (self.dir / "prometheus.yml").write_text(
            f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rules}scrape_configs:\n"
            + "".join(jobs)
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Prometheus:
        for _ in range(5):  # a free port can be taken between our check and Prometheus's bind
            port = _free_port()
            self.url = f"http://127.0.0.1:{port}"
            log = open(self.dir / "prometheus.log", "ab")
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={self.dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                stdout=log, stderr=log,
            )  # fmt: skip
            log.close()
            if self._wait_ready():
                return self
            self._stop()
        raise RuntimeError(f"prometheus did not start:\n{(self.dir / 'prometheus.log').read_text()[-3000:]}")

    def _wait_ready(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with OPENER.open(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self._stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with OPENER.open(url, timeout=10) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def wait_value(self, expr: str, predicate: Any, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = self.query(expr)
            if last and predicate(float(last[0]["value"][1])):
                return float(last[0]["value"][1])
            time.sleep(0.25)
        raise AssertionError(f"{expr}: last result {last}")
