"""Timing of one app page run headless through AppTest: one cold run, then warm reruns."""

from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_page(db: Path, page: str, warm_runs: int) -> tuple[float, list[float], object]:
    """Cold and warm wall-clock seconds of AppTest runs of ``page`` (e.g. ``"pages/drift.py"``).

    The app shell and the default page run first, untimed; then ``page`` once (cold: empty
    caches) and ``warm_runs`` more times. Returns ``(cold, warm, apptest)``.
    """
    os.environ["QUALITY_DB"] = str(db)
    os.environ["QUALITY_DEMO"] = "0"
    os.chdir(ROOT)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.run()
    assert not at.exception, at.exception
    at.switch_page(page)
    t0 = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t0
    assert not at.exception, at.exception
    warm = []
    for _ in range(warm_runs):
        t0 = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
    return cold, warm, at


def build_store_once(db: Path, dataset: str, labels: list[str], write_files) -> None:
    """Create the benchmark store at ``db`` by importing the files ``write_files(tmp_dir)`` writes.

    Done once: a store that already holds ``dataset`` is reused as it is.
    """
    import tempfile

    from core.ingest import import_file
    from core.store import open_store

    def summary() -> str:
        counts = store.table_counts()
        return (f"{counts['samples']:,} samples, {counts['annotations']:,} annotations, "
                f"{counts['predictions']:,} predictions")

    store = open_store(db)
    if store.has_dataset(dataset):
        print(f"reusing {db} ({summary()})", flush=True)
        store.close()
        return
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        t0 = time.perf_counter()
        paths = write_files(Path(tmp))
        print(f"generated {len(paths)} file(s) in {time.perf_counter() - t0:.1f} s", flush=True)
        for path in paths:
            t0 = time.perf_counter()
            res = import_file(store, path, dataset, labels=labels, actor="bench")
            print(f"imported {path.name}: {res.rows_ok:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"store: {summary()}", flush=True)
    store.close()
