"""Load generation and (later) the bench runner and regression gate."""

from swapprof.gate._load import ERROR_KINDS, LoadGenerator, Result, error_counts

__all__ = ["ERROR_KINDS", "LoadGenerator", "Result", "error_counts"]
