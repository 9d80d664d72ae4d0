"""upgrades.jsonl is bounded: at its cap it becomes upgrades.jsonl.1, and readers see both."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from swapprof.gate._records import ServerRecords
from swapprof.server._rundir import RunDir


def records(n: int, start: int = 1) -> list[dict[str, object]]:
    return [{"id": i, "outcome": "success", "pad": "x" * 200} for i in range(start, start + n)]


def test_records_past_the_cap_rotate_into_one_previous_file_and_readers_see_both(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    cap = 2_000  # ~9 records of ~230 bytes
    for record in records(40):
        run_dir.append_upgrade(record, max_bytes=cap)
    assert run_dir.upgrades.stat().st_size <= cap
    assert run_dir.upgrades_rotated.stat().st_size <= cap
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upgrades.jsonl", "upgrades.jsonl.1"]
    ids = [r["id"] for r in run_dir.read_upgrades()]
    assert ids == list(range(ids[0], 41)) and 10 < len(ids) < 20  # the latest, in order, none twice
    assert [r["id"] for r in ServerRecords(tmp_path).read()] == ids
    for path in (run_dir.upgrades, run_dir.upgrades_rotated):
        assert all(json.loads(line)["outcome"] == "success" for line in path.read_text().splitlines())


def test_a_record_larger_than_the_cap_is_still_written_whole(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    run_dir.append_upgrade({"id": 1}, max_bytes=10)
    run_dir.append_upgrade({"id": 2, "pad": "y" * 100}, max_bytes=10)
    assert [r["id"] for r in run_dir.read_upgrades()] == [1, 2]
    assert [json.loads(x)["id"] for x in run_dir.upgrades.read_text().splitlines()] == [2]


def _append_many(path: str, first: int) -> None:
    run_dir = RunDir(path)
    for record in records(60, first):
        run_dir.append_upgrade(record, max_bytes=3_000)


def test_two_writers_rotating_one_file_lose_no_line_of_the_kept_files(tmp_path: Path) -> None:
    """Two processes append (two gunicorn masters during a USR2): every kept line is whole and
    no record is in both files."""
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_append_many, args=(str(tmp_path), first)) for first in (1, 1001)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    run_dir = RunDir(tmp_path)
    lines = run_dir.upgrades_rotated.read_text().splitlines() + run_dir.upgrades.read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]  # each line parses: none cut or interleaved
    assert len(ids) == len(set(ids)) and {60, 1060} & set(ids)  # the last writer's last record
    assert run_dir.upgrades.stat().st_size <= 3_000 and run_dir.upgrades_rotated.stat().st_size <= 3_000
