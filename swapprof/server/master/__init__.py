"""The master process: binds the listeners once, spawns generations, orchestrates upgrades.

``_master`` (lifecycle, recovery, status) runs ``_upgrade.Upgrade`` (one upgrade's state
machine) through ``_queue`` (coalescing), keeps ``_record`` s, watches each generation process
through ``_child`` (started by ``_spawn``), answers ``_control_server`` and ``_debug``, records
``_telemetry``; in zygote mode ``_zygotes`` (the ``ZygotePool``) talks to the zygote through
``_zygote_client`` and keeps its ``_spare`` and ``_strays``. Nothing is imported here.
"""
