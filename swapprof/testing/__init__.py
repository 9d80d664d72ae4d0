"""Helpers for testing services that run under swapprof.

``ServerProcess`` runs ``swapprof serve APP`` as a child process on a free loopback port, waits
until it is ready, and talks to it (``status()``, ``upgrade()``, ``stop()``)::

    with ServerProcess("myapp:app") as server:
        server.upgrade(wait=True)
"""

from swapprof.testing._server import ServerProcess

__all__ = ["ServerProcess"]
