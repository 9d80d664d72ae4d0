"""``swapprof profile URL|FILE``: fetch a profile from a /debug/pprof endpoint (or read a file),
save it, print its top functions, and optionally render a self-contained flame graph page.

Library side of the command: raises typed errors, never exits (``swapprof.cli`` maps them).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from swapprof._argtypes import Subparsers
from swapprof._errors import ConfigError
from swapprof.pprof._decode import decode
from swapprof.pprof._errors import ProfileFetchError
from swapprof.pprof._flame import flame_html
from swapprof.pprof._settings import DEFAULT_SECONDS, ENV_TOKEN
from swapprof.pprof._text import top

FETCH_GRACE_S = 30.0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of seconds, at least 1")
    return int(text)


def add_parser(subparsers: Subparsers) -> None:
    """Add the ``profile`` subcommand to ``swapprof``'s subparsers."""
    cmd = subparsers.add_parser(
        "profile",
        help="fetch a pprof profile (or read a file); save it, show its top, render a flame graph",
        description="URL: a /debug/pprof endpoint (a bare http://host:port means its CPU profile); "
        "FILE: a saved pprof file. Prints the top functions.",
    )
    cmd.add_argument("source", metavar="URL|FILE", help="e.g. http://127.0.0.1:6060/debug/pprof/heap")
    cmd.add_argument("--seconds", type=_positive_int, metavar="N", help="duration (sent as ?seconds=N)")
    cmd.add_argument(
        "-o", "--output", metavar="PATH", help="where to save a fetched profile (default NAME.pb.gz)"
    )
    cmd.add_argument("--html", metavar="PATH", help="also write a self-contained flame graph page here")
    cmd.add_argument(
        "--sample-type", metavar="TYPE", help="value to show, e.g. alloc_space (default: the profile's)"
    )
    cmd.add_argument("--token", metavar="T", help=f"bearer token for the endpoint (default ${ENV_TOKEN})")


def profile_url(source: str, seconds: int | None) -> str:
    """The URL to fetch: a bare host means its CPU profile; ``seconds`` goes into the query."""
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{source!r} is neither an existing file nor an http(s) URL")
    path = parts.path if parts.path.rstrip("/") not in ("", "/debug/pprof") else "/debug/pprof/profile"
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if seconds is not None:
        query["seconds"] = str(seconds)
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


def fetch(url: str, token: str | None, timeout: float) -> tuple[bytes, str]:
    """GET ``url``; returns the body and the profile's name (from Content-Disposition)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    handlers = [urllib.request.ProxyHandler({})] if loopback else []  # never proxy loopback
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout) as answer:
            data, disposition = answer.read(), answer.headers.get("Content-Disposition", "")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()
        raise ProfileFetchError(f"{url} answered {exc.code}: {detail or exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProfileFetchError(f"could not fetch {url}: {reason}") from None
    found = re.search(r'filename="?([^";]+)"?', disposition)
    name = found[1] if found else (urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "profile")
    return data, name


def run(args: argparse.Namespace) -> int:
    source: str = args.source
    if os.path.isfile(source):
        if args.seconds is not None:
            raise ConfigError("--seconds applies to URLs; a file's profile is already taken")
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None
        name, output = Path(source).name, args.output
    else:
        url = profile_url(source, args.seconds)
        token = args.token or os.environ.get(ENV_TOKEN) or None
        data, name = fetch(url, token, (args.seconds or DEFAULT_SECONDS) + FETCH_GRACE_S)
        output = args.output or f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.pb.gz"
    profile = decode(data)
    if output:
        _write(output, data)
        print(f"wrote {output} ({len(data)} bytes, {len(profile.samples)} samples)")
    print(top(profile, args.sample_type))
    if args.html:
        page = flame_html(profile, args.sample_type, title=f"{name} - swapprof")
        _write(args.html, page.encode())
        print(f"wrote {args.html}")
    return 0


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
