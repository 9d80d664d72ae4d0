"""The zygote: a fork server that pre-imports dependencies so an upgrade costs a fork.

Master side: ``_pool`` (the ``ZygotePool`` that owns the zygote, its spare and the stray
reaper) and ``_client`` (the request protocol). Zygote process: ``_main`` (``python -m
swapprof.server.zygote``), ``_spare`` (a generation forked and warmed ahead), ``_filewatch``
(stale-file detection). ``_strays`` reaps re-parented children nobody waits for.
"""
