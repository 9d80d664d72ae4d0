"""The four hello apps of benchmarks/apps.py, written into a temporary directory.

Each is what its framework's user writes first: FastAPI returning a pydantic model as JSON, a
``django startproject`` site (ASGI and WSGI entry points) with one hello view, DEBUG=False and
ALLOWED_HOSTS=['*'], and Flask's hello.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FASTAPI_APP = """
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Hello(BaseModel):
    message: str
    framework: str


@app.get("/", response_model=Hello)
async def hello() -> Hello:
    return Hello(message="hello", framework="fastapi")
"""

FLASK_APP = """
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello from flask\\n"
"""

DJANGO_URLS = """
from django.http import HttpResponse


def hello(request):
    return HttpResponse("hello from django\\n")


urlpatterns += [path("", hello)]
"""

DJANGO_SETTINGS = "\nDEBUG = False\nALLOWED_HOSTS = ['*']\n"


@dataclass(frozen=True)
class App:
    name: str
    target: str  # MODULE:APP
    app_dir: Path
    interface: str  # asgi | wsgi


def write(root: Path) -> list[App]:
    """Write the apps under ``root``; return them in the order the benchmark runs them."""
    plain = root / "plain"
    plain.mkdir(parents=True)
    (plain / "hello_fastapi.py").write_text(FASTAPI_APP)
    (plain / "hello_flask.py").write_text(FLASK_APP)
    site = root / "django"
    site.mkdir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(site)], check=True, timeout=120
    )
    with open(site / "mysite" / "urls.py", "a") as urls:
        urls.write(DJANGO_URLS)
    with open(site / "mysite" / "settings.py", "a") as settings:
        settings.write(DJANGO_SETTINGS)
    return [
        App("fastapi", "hello_fastapi:app", plain, "asgi"),
        App("django-asgi", "mysite.asgi:application", site, "asgi"),
        App("django-wsgi", "mysite.wsgi:application", site, "wsgi"),
        App("flask", "hello_flask:app", plain, "wsgi"),
    ]
