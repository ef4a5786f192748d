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
