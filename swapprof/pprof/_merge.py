"""Several processes' profiles as one: what ``go tool pprof a.pb.gz b.pb.gz`` would show.

Go's pprof merges profiles that share their sample types and period type; the merged one keeps
the largest period and spans from the earliest start to the latest end. Here each part may also
bring labels that every one of its samples gets (``{"worker": "1"}``), so the merged profile can
still be split with ``-tagfocus`` / ``-tagshow`` or by Pyroscope's label selectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from swapprof.pprof._errors import ProfileFormatError
from swapprof.pprof._model import Profile


def merge_profiles(parts: Sequence[tuple[Mapping[str, str], Profile]]) -> Profile:
    """One profile holding the samples of every ``(labels, profile)`` part, each sample labelled
    with its part's ``labels`` (they win over a sample's own label of the same key).

    Raises ``ProfileFormatError`` when there is nothing to merge or the parts measure different
    things (sample types or period type differ).
    """
    if not parts:
        raise ProfileFormatError("no profiles to merge")
    first = parts[0][1]
    merged = first.like()
    starts, ends = [], []
    for labels, profile in parts:
        if profile.sample_types != first.sample_types or profile.period_type != first.period_type:
            raise ProfileFormatError(
                f"cannot merge profiles of sample types {first.sample_types} and {profile.sample_types}"
            )
        merged.period = max(merged.period, profile.period)
        for comment in profile.comments:
            if comment not in merged.comments:
                merged.comments.append(comment)
        if profile.time_nanos:
            starts.append(profile.time_nanos)
            ends.append(profile.time_nanos + profile.duration_nanos)
        extra = dict(labels)
        for (stack, own), values in profile.samples.items():
            keyed = tuple(sorted({**dict(own), **extra}.items()))
            merged.add(stack, values, keyed)
    if starts:
        merged.time_nanos = min(starts)
        merged.duration_nanos = max(ends) - merged.time_nanos
    return merged
