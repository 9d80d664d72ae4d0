"""The in-memory profile every collector fills and every output format reads.

A sample is keyed by its stack (leaf first, as in profile.proto) and its labels; adding the same
key twice adds the values, so collectors never need to aggregate themselves. The model knows no
output format: ``_proto`` (profile.proto), ``_text`` and ``_flame`` read it, ``_decode`` builds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from swapprof._errors import ConfigError

#: One stack frame: (function name, filename, function start line, line).
Frame = tuple[str, str, int, int]
#: A call stack, leaf (innermost) frame first.
Stack = tuple[Frame, ...]
#: String labels as sorted (key, value) pairs.
Labels = tuple[tuple[str, str], ...]
ValueType = tuple[str, str]


def make_labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


@dataclass
class Profile:
    """A profile in pprof's terms: sample types, period, and aggregated samples."""

    sample_types: list[ValueType]
    period_type: ValueType
    period: int
    default_sample_type: str = ""
    time_nanos: int = 0
    duration_nanos: int = 0
    comments: list[str] = field(default_factory=list)
    samples: dict[tuple[Stack, Labels], list[int]] = field(default_factory=dict)

    def add(self, stack: Stack, values: Sequence[int], labels: Labels = ()) -> None:
        """Add ``values`` to the sample with this stack and labels."""
        if len(values) != len(self.sample_types):
            raise ValueError(f"{len(values)} values for {len(self.sample_types)} sample types")
        have = self.samples.get((stack, labels))
        if have is None:
            self.samples[(stack, labels)] = list(values)
        else:
            for index, value in enumerate(values):
                have[index] += value

    def like(self) -> Profile:
        """An empty profile with the same sample types, period and comments."""
        return Profile(
            list(self.sample_types),
            self.period_type,
            self.period,
            self.default_sample_type,
            comments=list(self.comments),
        )

    def minus(self, base: Profile) -> Profile:
        """``self - base`` sample by sample (a delta profile); all-zero samples are dropped."""
        if base.sample_types != self.sample_types:
            raise ValueError("cannot subtract profiles of different sample types")
        out = self.like()
        out.samples = {key: list(values) for key, values in self.samples.items()}
        for key, values in base.samples.items():
            out.add(key[0], [-v for v in values], key[1])
        out.samples = {key: values for key, values in out.samples.items() if any(values)}
        out.time_nanos = self.time_nanos
        out.duration_nanos = self.time_nanos - base.time_nanos
        return out

    def sample_type_index(self, name: str | None = None) -> int:
        """Index of sample type ``name``; without a name the default (pprof: the last)."""
        wanted = name or self.default_sample_type
        names = [kind for kind, _unit in self.sample_types]
        if wanted and wanted in names:
            return names.index(wanted)
        if name:
            raise ConfigError(f"no sample type {name!r}; the profile has {', '.join(names)}")
        return len(names) - 1

    def totals(self) -> list[int]:
        sums = [0] * len(self.sample_types)
        for values in self.samples.values():
            for index, value in enumerate(values):
                sums[index] += value
        return sums
