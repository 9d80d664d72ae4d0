"""Observe the servers people already run: their upgrades as swapprof's traces, records, metrics.

- ``swapprof.integrations.gunicorn``: a gunicorn config module (HUP and USR2 upgrades).
- ``swapprof.integrations.asgi``: an ASGI wrapper reporting each worker's lifecycle, for servers
  without hooks (uvicorn ``--workers``, granian, hypercorn), read by ``swapprof observe``.

Both write to ``SWAPPROF_RUN_DIR`` (default ``./.swapprof``) in ``swapprof serve``'s formats.
Nothing is imported here: a gunicorn master must not pay for the ASGI side, nor a worker for
the recorder.
"""

__all__: list[str] = []
