"""A worker with the standalone debug server beside it.

    .venv/bin/python examples/pprof/standalone.py [--seconds 60]

It prints the index URL, then keeps one thread busy (``crunch``), one allocating (``remember``)
and an asyncio task waiting (``wait_for_work``), so every profile shows something. Try::

    go tool pprof -top -seconds 5 http://127.0.0.1:PORT/debug/pprof/profile
    go tool pprof -top -sample_index=inuse_space http://127.0.0.1:PORT/debug/pprof/heap
    curl 'http://127.0.0.1:PORT/debug/pprof/goroutine?debug=2'
    swapprof profile http://127.0.0.1:PORT/debug/pprof/profile --seconds 5 --html flame.html
"""

from __future__ import annotations

import argparse
import asyncio
import threading

import swapprof.pprof


def crunch(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def remember(stop: threading.Event, kept: list[bytes]) -> None:
    while not stop.wait(0.01):
        kept.append(bytes(4096))
        del kept[:-2000]  # hold at most ~8 MB


async def wait_for_work(stop: threading.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    parser.add_argument("--port", type=int, default=0, help="debug port (default: any free one)")
    args = parser.parse_args()
    stop, kept = threading.Event(), []  # type: ignore[var-annotated]
    with swapprof.pprof.serve(
        port=args.port, tracemalloc=16, routes={"kept": lambda: {"blocks": len(kept)}}
    ) as server:
        print(
            f"debug server: {server.url}  (JSON: {server.url.replace('pprof', 'swapprof')}kept)", flush=True
        )
        workers = [
            threading.Thread(target=crunch, args=(stop,), name="crunch"),
            threading.Thread(target=remember, args=(stop, kept), name="remember"),
            threading.Thread(target=lambda: asyncio.run(wait_for_work(stop)), name="event-loop"),
        ]
        for worker in workers:
            worker.start()
        try:
            stop.wait(args.seconds)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for worker in workers:
                worker.join()


if __name__ == "__main__":
    main()
