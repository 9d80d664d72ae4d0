"""Errors of the profiling endpoints, below ``swapprof._errors.SwapprofError``::

SwapprofError
 ├── ConfigError
 │    └── ProfileFormatError     the bytes are not a (gzipped) profile.proto
 └── ProfileError                a profile could not be collected or fetched
      ├── ProfilingInUseError    another CPU profile runs (HTTP 500, like Go)
      ├── ProfilerUnavailableError  py-spy missing or not permitted, tracemalloc off,
      │                          execution traces (HTTP 501)
      └── ProfileFetchError      ``swapprof profile URL`` got an error answer or none
"""

from __future__ import annotations

from swapprof._errors import ConfigError, SwapprofError


class ProfileFormatError(ConfigError):
    """The input is not a pprof profile (gzipped or plain profile.proto)."""


class ProfileError(SwapprofError):
    """A profile could not be collected or fetched; the message says why."""


class ProfilingInUseError(ProfileError):
    """A CPU profile is already running in this process; only one runs at a time."""


class ProfilerUnavailableError(ProfileError):
    """This process cannot produce the profile asked for; the message says how to enable it."""


class ProfileFetchError(ProfileError):
    """A profile endpoint answered with an error, or did not answer."""
