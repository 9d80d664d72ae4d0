"""Telling an ASGI app from a WSGI app from no app, on real frameworks; the serving settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from swapprof._errors import ConfigError
from swapprof.server._config import ServerConfig
from swapprof.server._contract import GenerationContract
from swapprof.server._stack import loop_factory, loop_name, missing, preload_modules
from swapprof.server.generation._app import ASGI, WSGI, AppInvalid, check_app, detect


@pytest.fixture(scope="module")
def django_settings() -> Iterator[None]:
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEBUG=True, SECRET_KEY="test", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"])
    yield


urlpatterns: list[Any] = []  # Django's ROOT_URLCONF for the fixture above


def test_flask_is_wsgi() -> None:
    from flask import Flask

    assert detect(Flask("t")) == WSGI


def test_fastapi_and_starlette_are_asgi() -> None:
    from fastapi import FastAPI
    from starlette.applications import Starlette

    assert detect(FastAPI()) == ASGI
    assert detect(Starlette()) == ASGI


def test_django_handlers(django_settings: None) -> None:
    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application

    assert detect(get_wsgi_application()) == WSGI
    assert detect(get_asgi_application()) == ASGI


def test_plain_functions_and_classes() -> None:
    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        return None

    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        return []

    class AsgiObject:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            return None

    class WsgiObject:
        def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
            return []

    class WsgiClass:  # PEP 3333: a class whose instances are the response iterable
        def __init__(self, environ: Any, start_response: Any) -> None:
            self.items: list[bytes] = []

    assert detect(asgi) == ASGI
    assert detect(AsgiObject()) == ASGI
    assert detect(wsgi) == WSGI
    assert detect(WsgiObject()) == WSGI
    assert detect(WsgiClass) == WSGI
    assert detect(42) is None
    assert detect(lambda request: None) is None
    assert detect(lambda: None) is None

    async def two(scope: Any, receive: Any) -> None:
        return None

    assert detect(two) is None  # a coroutine function that cannot take (scope, receive, send)


def test_refusals_are_one_line_naming_object_and_expectation() -> None:
    with pytest.raises(AppInvalid) as info:
        check_app(42, "myapp:app")
    assert str(info.value) == (
        "myapp:app is int 42: expected an ASGI app (async callable(scope, receive, send)) "
        "or a WSGI app (callable(environ, start_response))"
    )

    def handler(request: Any) -> None:
        return None

    with pytest.raises(AppInvalid, match=r"^myapp:handler is function handler\(request\): expected an ASGI"):
        check_app(handler, "myapp:handler")


def test_interface_forced_against_the_app() -> None:
    from fastapi import FastAPI
    from flask import Flask

    with pytest.raises(AppInvalid) as info:
        check_app(FastAPI(), "m:app", "wsgi")
    assert "m:app is an ASGI app (FastAPI object) but --interface wsgi wants a WSGI app" in str(info.value)
    with pytest.raises(AppInvalid, match=r"is a WSGI app .* but --interface asgi wants an ASGI app"):
        check_app(Flask("t"), "m:app", "asgi")
    assert check_app(Flask("t"), "m:app", "wsgi") == WSGI
    assert check_app(FastAPI(), "m:app", "asgi") == ASGI


def test_config_validates_and_reads_the_environment() -> None:
    cfg = ServerConfig.from_env(
        "m:app",
        env={
            "SWAPPROF_INTERFACE": "wsgi",
            "SWAPPROF_THREADS": "4",
            "SWAPPROF_LOOP": "asyncio",
            "SWAPPROF_HTTP": "h11",
        },
    )
    assert (cfg.interface, cfg.threads, cfg.loop, cfg.http) == ("wsgi", 4, "asyncio", "h11")
    defaults = ServerConfig("m:app")
    assert (defaults.interface, defaults.threads, defaults.loop, defaults.http) == (
        "auto",
        10,
        "auto",
        "auto",
    )
    with pytest.raises(ConfigError, match="--loop 'tokio': expected one of auto, asyncio, uvloop"):
        ServerConfig("m:app", loop="tokio")
    with pytest.raises(ConfigError, match="--http 'h2': expected one of auto, h11, httptools"):
        ServerConfig("m:app", http="h2")
    with pytest.raises(ConfigError, match="--interface 'asgi2': expected one of auto, asgi, wsgi"):
        ServerConfig("m:app", interface="asgi2")
    for bad in (0, -1, True):
        with pytest.raises(ConfigError, match="--threads"):
            ServerConfig("m:app", threads=bad)
    with pytest.raises(ConfigError, match="SWAPPROF_THREADS='many'"):
        ServerConfig.from_env("m:app", env={"SWAPPROF_THREADS": "many"})


def test_not_installed_names_the_pip_install(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # shadow uvloop with a package whose spec cannot be found: find_spec(...) raises/returns None
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    assert missing("loop", "uvloop") == (
        "--loop uvloop needs uvloop, which is not installed: pip install 'swapprof[fast]' (or pip install uvloop)"
    )
    assert missing("loop", "auto") is None  # auto falls back to asyncio, as uvicorn's does
    with pytest.raises(ConfigError, match=r"pip install 'swapprof\[fast\]'"):
        ServerConfig("m:app", loop="uvloop")


def test_contract_carries_the_settings() -> None:
    contract = GenerationContract(
        app="m:app", run_dir="/r", interface="wsgi", threads=3, loop="uvloop", http="h11"
    )
    env = contract.to_env({})
    assert (
        env["SWAPPROF_INTERFACE"],
        env["SWAPPROF_THREADS"],
        env["SWAPPROF_LOOP"],
        env["SWAPPROF_HTTP"],
    ) == (
        "wsgi",
        "3",
        "uvloop",
        "h11",
    )
    assert GenerationContract.from_env(env) == contract
    assert GenerationContract.from_env({"SWAPPROF_APP": "m:app"}).loop == "auto"


def test_loop_factories_and_preloads() -> None:
    for name, expected in (("asyncio", "asyncio"), ("uvloop", "uvloop"), ("auto", "uvloop")):
        loop = loop_factory(name)()
        try:
            assert loop_name(loop) == expected
        finally:
            loop.close()
    assert "uvloop" in preload_modules("auto", "auto") and "httptools" in preload_modules("auto", "auto")
    assert "uvloop" not in preload_modules("asyncio", "h11")
    assert "httptools" not in preload_modules("asyncio", "h11")
    assert os.environ.get("SWAPPROF_LOOP") is None  # nothing above leaked into this process
