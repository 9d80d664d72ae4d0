"""Record your own upgrade procedure as one swapprof trace, in any server.

Here a tableflip-style handoff is played with plain processes: start the new version, wait
for it to say it is ready, then stop the old one. The three lines that matter are marked.

    python examples/handoff_recorder/upgrade_script.py   # spans go to ./spans.jsonl

With OTEL_EXPORTER_OTLP_ENDPOINT set, the same trace goes to your collector too.
"""

from __future__ import annotations

import subprocess
import sys
import time

from swapprof import HandoffRecorder
from swapprof.telemetry import configure

CHILD = """
import sys, time
from swapprof import HandoffRecorder
from swapprof.telemetry import configure

telemetry = configure("generation", generation=2, span_file="spans.jsonl")
recorder = HandoffRecorder.from_env()          # (3) the child continues the same trace
with recorder.phase("import"):
    time.sleep(0.05)                           # import your app here
with recorder.phase("ready"):
    time.sleep(0.01)                           # open sockets, warm caches
print("READY", flush=True)
telemetry.shutdown()                           # flush before exit
"""


def main() -> int:
    telemetry = configure("master", span_file="spans.jsonl")
    recorder = HandoffRecorder.start(attributes={"swapprof.trigger": "script"})  # (1) one trace per upgrade
    with recorder.phase("spawn"):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
            env=recorder.child_env(),                                          # (2) hand the context over
        )  # fmt: skip
    assert child.stdout is not None
    ok = child.stdout.readline().strip() == "READY"
    with recorder.phase("switch"):
        time.sleep(0.002)  # tell the old process to stop accepting
    child.wait()
    recorder.set_outcome("success" if ok else "rolled_back", None if ok else "not_ready")
    recorder.end()
    telemetry.shutdown()
    print(f"trace {recorder.trace_id} written to spans.jsonl; view it with: swapprof report spans.jsonl")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
