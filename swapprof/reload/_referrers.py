"""Short paths from a root to objects that should be gone: ``plugin_registry.SUBSCRIBERS[3]``.

One breadth-first search for all targets over ``gc.get_referrers`` (one heap scan per level),
stopping at module namespaces and foreign thread frames. Frames of the calling stack and the
search's own containers are skipped. Costly on large heaps: give it a handful of targets.
"""

from __future__ import annotations

import gc
import re
import sys
import types
from typing import Any

_ATTR = re.compile(r"\.__dict__\['([A-Za-z_][A-Za-z0-9_]*)'\]")
Hops = dict[int, tuple[int, str]]  # id(referrer) -> (id(child), edge label)


def referrer_paths(targets: list[Any], max_depth: int = 6, max_width: int = 64) -> list[str]:
    """For each target, ``root.attr[i]...`` leading to it; ``<type>...`` if no root is within
    ``max_depth``; "" if nothing (but the caller) refers to it."""
    roots = {id(vars(m)): name for name, m in list(sys.modules.items()) if isinstance(m, types.ModuleType)}
    skip = {id(roots)}
    frame: types.FrameType | None = sys._getframe()
    while frame is not None:
        skip.add(id(frame))
        frame = frame.f_back
    hops: list[Hops] = [{} for _ in targets]
    paths = [""] * len(targets)
    leads: dict[int, set[int]] = {id(t): {i} for i, t in enumerate(targets)}  # node -> target indexes
    alive: dict[int, Any] = {id(t): t for t in targets}  # keeps every node alive, so ids stay unique
    skip.update((id(hops), id(paths), id(leads), id(alive), id(skip), id(targets)))
    frontier = list(targets)
    for _ in range(max_depth):
        wanted = {id(o): o for o in frontier}
        args = tuple(frontier)
        found = gc.get_referrers(*args)
        nxt: list[Any] = []
        for mine in (frontier, args, found, nxt, wanted):
            skip.add(id(mine))
            alive[id(mine)] = mine
        for ref in found:
            if id(ref) in skip:
                continue
            root, new = _root(ref, roots), False
            for child in gc.get_referents(ref):
                for i in leads.get(id(child), ()) if id(child) in wanted else ():
                    if paths[i] or id(ref) in hops[i]:
                        continue
                    hops[i][id(ref)] = (id(child), _edge(ref, child))
                    leads.setdefault(id(ref), set()).add(i)
                    new = True
                    if root:
                        paths[i] = _render(root, id(ref), hops[i], id(targets[i]))
            if new:
                alive[id(ref)] = ref
                if not root:
                    nxt.append(ref)
        del found
        if all(paths) or not nxt:
            break
        frontier = nxt[:max_width]
    for i, target in enumerate(targets):
        if not paths[i] and hops[i]:
            last = next(reversed(hops[i]))
            paths[i] = _render(f"<{type(alive[last]).__name__}>", last, hops[i], id(target))
    return paths


def _root(ref: Any, roots: dict[int, str]) -> str:
    if id(ref) in roots:
        return roots[id(ref)] + ".__dict__"
    if isinstance(ref, types.FrameType):
        return f"<frame {ref.f_code.co_name}>"
    return ""


def _render(root: str, start: int, hops: Hops, target: int) -> str:
    labels, node = [], start
    while node != target and node in hops:
        node, label = hops[node]
        labels.append(label)
    return _ATTR.sub(r".\1", root + "".join(labels))


def _edge(parent: Any, child: Any) -> str:
    """How ``parent`` refers to ``child``, as an expression suffix."""
    if isinstance(parent, dict):
        for key, value in parent.items():
            if value is child:
                return f"[{key!r}]"
        return ".keys()"
    if isinstance(parent, list | tuple):
        for i, value in enumerate(parent):
            if value is child:
                return f"[{i}]"
    if isinstance(parent, type) and isinstance(child, dict) and vars(parent) == child:
        return ".__dict__"  # the type's own namespace (vars() gives a proxy of it)
    if isinstance(parent, types.CellType):
        return ".cell_contents"
    if isinstance(parent, types.FrameType):
        for key, value in parent.f_locals.items():
            if value is child:
                return f".f_locals[{key!r}]"
    for attr in ("__dict__", "__closure__", "__defaults__", "__func__", "__self__", "__wrapped__"):
        try:
            if getattr(parent, attr, None) is child:
                return f".{attr}"
        except Exception:
            pass
    try:
        for key, value in vars(parent).items():
            if value is child:
                return f".{key}"
    except TypeError:
        pass
    return f" -> <{type(child).__name__}>"
