"""Go's ``/debug/pprof`` for Python: Go's routes, and profiles that ``go tool pprof``, Pyroscope
and speedscope read unchanged.

Serve them::

    server = swapprof.pprof.serve()                 # standalone, 127.0.0.1, a free port
    app = swapprof.pprof.asgi_app(app)              # in front of an ASGI app (FastAPI, Starlette)
    app = swapprof.pprof.wsgi_app(app)              # in front of a WSGI app (Flask, Django)
    server.add_route("upgrades", upgrades_as_json)  # JSON at /debug/swapprof/upgrades

or take them in code: ``encode_profile(cpu_profile(5))`` is a gzipped profile.proto, ``flame_html``
renders any profile as a self-contained page, ``read_profile`` parses any pprof producer's file,
``merge_profiles`` makes one profile of several processes' (each part's samples labelled).
"""

from swapprof.pprof._api import (
    cpu_profile,
    encode_profile,
    goroutine_dump,
    goroutine_profile,
    heap_profile,
    read_profile,
)
from swapprof.pprof._asgi import asgi_app
from swapprof.pprof._errors import (
    ProfileError,
    ProfileFormatError,
    ProfilerUnavailableError,
    ProfilingInUseError,
)
from swapprof.pprof._flame import flame_html
from swapprof.pprof._merge import merge_profiles
from swapprof.pprof._model import Profile
from swapprof.pprof._server import PprofServer, serve
from swapprof.pprof._wsgi import wsgi_app

__all__ = [
    "PprofServer",
    "Profile",
    "ProfileError",
    "ProfileFormatError",
    "ProfilerUnavailableError",
    "ProfilingInUseError",
    "asgi_app",
    "cpu_profile",
    "encode_profile",
    "flame_html",
    "goroutine_dump",
    "goroutine_profile",
    "heap_profile",
    "merge_profiles",
    "read_profile",
    "serve",
    "wsgi_app",
]
