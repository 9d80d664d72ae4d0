"""A FastAPI app that instruments itself with OpenTelemetry, as many do: a span per request,
recorded through the process-global tracer provider (whatever it is when the request comes)."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import BaseModel

app = FastAPI()


class Greeting(BaseModel):
    hello: str


@app.get("/hello")
async def hello() -> Greeting:
    return Greeting(hello="otel")


FastAPIInstrumentor.instrument_app(app)
