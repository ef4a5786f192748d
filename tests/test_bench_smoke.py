"""Smoke test of the benchmarks: every ``bench/bench_*.py`` (and ``bench/al_simulation.py``) runs
with ``--quick`` and exits 0, so a benchmark cannot silently break again.

Each runs as a subprocess in its own temporary working directory, with ``TMPDIR`` and the store
(``QUALITY_DB``) pointing there. A new ``bench/bench_*.py`` is picked up automatically; it must
accept ``--quick`` and keep that run to a few seconds. A benchmark that needs a package outside
requirements-dev.txt fails here (with the package's name) rather than being skipped: its
``--quick`` mode must do without it (e.g. generated data instead of a dataset package).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SCRIPTS = sorted(BENCH.glob("bench_*.py")) + [BENCH / "al_simulation.py"]
TIMEOUT_S = 240  # per script; a quick run should take seconds, this only stops a hang


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_benchmark_quick_run(script: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update({
        "TMPDIR": str(tmp_path),
        "QUALITY_DB": str(tmp_path / "store.duckdb"),
        "QUALITY_DEMO": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    })
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script.name} --quick did not finish within {TIMEOUT_S} s; its --quick mode must be a "
                    f"smoke run of a few seconds\nstdout:\n{_tail(exc.stdout or '')}")
    elapsed = time.perf_counter() - t0
    print(f"{script.name} --quick: {elapsed:.1f} s")
    missing = re.search(r"ModuleNotFoundError: No module named '([^']+)'", done.stderr)
    if done.returncode != 0 and missing:
        pytest.fail(f"{script.name} --quick needs the package providing {missing.group(1)!r}, which "
                    f"requirements-dev.txt does not install; its --quick mode must not need it "
                    f"(use generated data)\nstderr:\n{_tail(done.stderr)}")
    assert done.returncode == 0, (f"{script.name} --quick exited {done.returncode}\n"
                                  f"stdout:\n{_tail(done.stdout)}\nstderr:\n{_tail(done.stderr)}")
    assert done.stdout.strip(), f"{script.name} --quick printed nothing\nstderr:\n{_tail(done.stderr)}"
