"""The zygote process: a fork server that pre-imports dependencies so an upgrade costs a fork.

``_main`` is the process (``python -m swapprof.server.zygote``): it preloads, forks generations
and spares on request, and refuses when a preloaded file changed (``_filewatch``). The master's
side of it lives in ``swapprof.server.master`` (``_zygotes``, ``_zygote_client``, ``_spare``).
"""
