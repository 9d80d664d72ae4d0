"""The generation process: one serving copy of the app (``python -m swapprof.server.generation``).

Nothing is imported here: a generation pays at spawn only for the modules it runs.
``_main`` is the entry point, ``_app`` finds and checks the app object, ``_serving`` serves it
on the inherited listeners and drains it, ``_probe`` proves readiness through the listener,
``_reload`` reloads modules in place, ``_telemetry`` records this process's spans.
"""
