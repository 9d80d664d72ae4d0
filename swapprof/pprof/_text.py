"""Plain-text renderings: Go's ``debug=1`` legacy format and a ``top`` table for the CLI."""

from __future__ import annotations

from swapprof.pprof._model import Profile


def legacy_text(profile: Profile, name: str) -> str:
    """``<name> profile: total N``, then each sample's values, labels and frames, heaviest first."""
    totals = profile.totals()
    kinds = ", ".join(f"{kind}/{unit}" for kind, unit in profile.sample_types)
    lines = [f"{name} profile: total {totals[0] if totals else 0}", f"# sample types: {kinds}"]
    lines.extend(f"# {comment}" for comment in profile.comments)
    lines.append("")
    last = profile.sample_type_index()
    for (stack, labels), values in sorted(profile.samples.items(), key=lambda item: -abs(item[1][last])):
        tags = "".join(f" {key}={value}" for key, value in labels)
        lines.append(" ".join(map(str, values)) + " @" + tags)
        lines.extend(f"#\t{fn}\t{filename}:{line}" for fn, filename, _first, line in stack)
        lines.append("")
    return "\n".join(lines)


def human(value: float, unit: str) -> str:
    if unit == "nanoseconds":
        for scale, suffix in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
            if abs(value) >= scale:
                return f"{value / scale:.2f}{suffix}"
        return f"{value:.0f}ns"
    if unit == "bytes":
        for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.2f}{suffix}"
        return f"{value:.0f}B"
    return f"{value:.0f}"


def top(profile: Profile, sample_type: str | None = None, limit: int = 15) -> str:
    """Flat and cumulative weight per function, like ``go tool pprof -top``."""
    index = profile.sample_type_index(sample_type)
    kind, unit = profile.sample_types[index]
    flat: dict[str, int] = {}
    cum: dict[str, int] = {}
    for (stack, _labels), values in profile.samples.items():
        value = values[index]
        if stack:
            flat[stack[0][0]] = flat.get(stack[0][0], 0) + value
        for fn in {frame[0] for frame in stack}:
            cum[fn] = cum.get(fn, 0) + value
    total = profile.totals()[index] or 1
    lines = [f"{kind}/{unit}: total {human(profile.totals()[index], unit)}"]
    lines.append(f"{'flat':>10} {'flat%':>6} {'cum':>10} {'cum%':>6}  function")
    for fn in sorted(flat, key=lambda f: -abs(flat[f]))[:limit]:
        lines.append(
            f"{human(flat[fn], unit):>10} {100 * flat[fn] / total:5.1f}% "
            f"{human(cum[fn], unit):>10} {100 * cum[fn] / total:5.1f}%  {fn}"
        )
    return "\n".join(lines)
