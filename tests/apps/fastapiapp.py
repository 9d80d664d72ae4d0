"""A FastAPI app with a pydantic model and a POST body (served as ASGI)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "fastapi"}


@app.post("/items")
async def create(item: Item) -> dict[str, object]:
    return {"name": item.name, "total": item.price * 2, "tags": item.tags}


@app.get("/slow")
async def slow(ms: int = 100) -> dict[str, int]:
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}
