"""Shared test factories: files shaped like users' files, written the one way every test writes them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Write rows (dicts as JSON, strings as raw lines) one per line, UTF-8, Chinese unescaped."""
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def import_rows(store, tmp_path: Path, rows: list[dict], name: str = "ds", labels: list[str] | None = None,
                actor: str = "cli", **kwargs: Any):
    """Write ``rows`` as JSONL under ``tmp_path`` and import them into dataset ``name``; the ImportResult."""
    from core.ingest import import_file

    path = write_jsonl(tmp_path / f"{name}-{len(rows)}.jsonl", rows)
    return import_file(store, path, name, labels=labels, actor=actor, **kwargs)


# The start of a child process that opens the store file sys.argv[1] with plain DuckDB. Our
# store may still linger on the file for a moment: the child waits for the lock (60 s at most).
CONNECT_WHEN_FREE = textwrap.dedent(
    """
    import sys, time, duckdb
    deadline = time.monotonic() + 60
    while True:
        try:
            con = duckdb.connect(sys.argv[1])
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    """
)

HOLDER = CONNECT_WHEN_FREE + textwrap.dedent(
    """
    print("ready", flush=True)
    # Hold the file until the parent closes our stdin (or 60 s at most, should the parent die).
    import select
    select.select([sys.stdin], [], [], 60)
    con.close()
    """
)


def spawn_holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"holder did not start: {line!r} {proc.stderr.read()}")
    return proc


def release_holder(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextmanager
def store_held_by_another_process(path: Path):
    """While inside, another process holds the DuckDB file ``path`` (the store is "busy")."""
    proc = spawn_holder(path)
    try:
        yield proc
    finally:
        release_holder(proc)
