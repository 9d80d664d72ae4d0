"""A Flask app: hello, a POST echo and a streaming response (served as WSGI)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Flask, Response, request

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello from flask\n"


@app.post("/echo")
def echo() -> Response:
    return Response(request.get_data(), mimetype="application/octet-stream")


@app.get("/stream")
def stream() -> Response:
    count = int(request.args.get("n", "5"))
    pause = float(request.args.get("ms", "0")) / 1000

    def chunks() -> Iterator[bytes]:
        for i in range(count):
            if pause:
                time.sleep(pause)
            yield f"chunk {i}\n".encode()

    return Response(chunks(), mimetype="text/plain")


@app.get("/slow")
def slow() -> str:
    time.sleep(float(request.args.get("ms", "100")) / 1000)
    return "slow\n"
