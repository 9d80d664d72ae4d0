"""swapprof's telemetry lives beside the app's own OpenTelemetry: by default the app's request
spans go nowhere of swapprof's (the span file holds swapprof's own spans only); with
``--otel-global`` swapprof's SDK becomes the app's global provider and a real OTLP receiver gets
the app's spans, still never the span file. A real FastAPI app with FastAPIInstrumentor."""

from __future__ import annotations

import os
from pathlib import Path

from swapprof.telemetry import read_spans
from swapprof.testing import ServerProcess
from tests._helpers import http_get, wait_for
from tests._otlp_receiver import OTLPReceiver

APPS = str(Path(__file__).parent / "apps")
REQUESTS = 1000


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SWAPPROF_"))}
    env.update(extra)
    return env


def _is_request_span(span: dict[str, object]) -> bool:
    return "GET" in str(span.get("name")) or "http" in str(span.get("name"))


def test_the_app_spans_stay_out_of_the_span_file(tmp_path: Path) -> None:
    with ServerProcess("fastapi_otel:app", args=["--app-dir", APPS], env=_env(), run_dir=tmp_path) as server:
        wait_for(lambda: server.status()["generations"][0]["state"] == "serving", what="serving")
        for _ in range(REQUESTS):
            assert http_get(server.url + "/hello")[0] == 200
        record = server.upgrade()  # swapprof's own spans are written: the file is in use
        assert record["outcome"] == "success", record
        spans = wait_for(
            lambda: (
                [s for s in read_spans(tmp_path / "spans.jsonl") if s["name"] == "swapprof.upgrade"]
                and read_spans(tmp_path / "spans.jsonl")
            ),
            what="the upgrade's trace in the span file",
        )
    assert not [s for s in spans if _is_request_span(s)]
    assert {s["name"] for s in spans} >= {"swapprof.upgrade", "ready", "drain"}
    assert (tmp_path / "spans.jsonl").stat().st_size < 1_000_000  # not a span per request


def test_otel_global_sends_the_app_spans_to_otlp_only(tmp_path: Path) -> None:
    with OTLPReceiver() as receiver:
        env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_SERVICE_NAME="otel-app")
        args = ["--app-dir", APPS, "--otel-global"]
        with ServerProcess("fastapi_otel:app", args=args, env=env, run_dir=tmp_path) as server:

            def app_spans() -> list[dict[str, object]]:
                http_get(server.url + "/hello")
                return [s for s in list(receiver.spans) if _is_request_span(s)]

            spans = wait_for(app_spans, what="the app's request spans at the OTLP receiver")
            assert server.upgrade()["outcome"] == "success"
    assert any(s["attributes"].get("http.route") == "/hello" for s in spans), spans[:3]  # type: ignore[union-attr]
    assert {s["resource"].get("service.name") for s in spans} == {"otel-app"}  # type: ignore[union-attr]
    file = tmp_path / "spans.jsonl"
    assert not [s for s in (read_spans(file) if file.exists() else []) if _is_request_span(s)]


def test_otel_global_with_nowhere_to_send_the_app_spans_says_so(tmp_path: Path) -> None:
    import subprocess
    import sys

    runs: list[str] = []

    def stderr(**extra: str) -> str:
        runs.append(str(tmp_path / f"run{len(runs)}"))
        argv = [sys.executable, "-m", "swapprof", "serve", "no_such_module_here:app", "--otel-global"]
        argv += ["--run-dir", runs[-1], "--ready-timeout", "20"]
        done = subprocess.run(argv, env=_env(**extra), capture_output=True, text=True, timeout=120)
        assert done.returncode != 0  # the app does not exist: the start fails after the notice
        return done.stderr

    assert "--otel-global: neither OTEL_EXPORTER_OTLP_ENDPOINT nor" in stderr()
    assert "--otel-global" not in stderr(OTEL_TRACES_EXPORTER="none")
    assert "--otel-global" not in stderr(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:9/v1/traces")
