"""Incremental quality job benchmark (issue 18): what a rerun costs once the per-sample passes are cached.

Imports N samples (``bench_scale.generate``: bilingual customer-service requests and replies), then times the
``quality`` job (:func:`core.jobs.runner.run_job`: :func:`core.quality_report.run_report`, result stored):

  1. cold: every per-sample pass computes every sample (and fills the cache);
  2. after importing 10 % new samples: the passes compute only those;
  3. after saving 100 reviews (gold labels change, no text does): the passes compute nothing;
  4. for reference, the same report without the cache (``run_report(..., cached=False)``), i.e. what every run
     cost before.

Prints the seconds of each and the ratio full / incremental.

    .venv/bin/python bench/bench_incremental.py                 # 100,000 samples
    .venv/bin/python bench/bench_incremental.py --samples 1000000
    .venv/bin/python bench/bench_incremental.py --quick         # smoke run: 1,000 samples
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_scale import generate


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _new_samples(path: Path, n: int, start: int, seed: int) -> None:
    """``n`` new samples (ids after ``start``): bench_scale's generator, renumbered."""
    tmp = path.with_suffix(".gen.jsonl")
    generate(tmp, n, seed=seed)
    with open(tmp, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as out:
        for line in src:
            row = json.loads(line)
            row["id"] = f"n{start + int(row['id'][1:]):07d}"
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="samples to import first (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 samples")
    parser.add_argument("--reviews", type=int, default=100, help="reviews saved before the last rerun")
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed after)")
    args = parser.parse_args(argv)
    n = args.samples or (1_000 if args.quick else 100_000)

    from core.ingest import import_file
    from core.jobs.runner import run_job
    from core.quality_report import run_report
    from core.review import save_review
    from core.store import open_store

    with tempfile.TemporaryDirectory(prefix="bench-incremental-", dir=args.dir) as tmp:
        work = Path(tmp)
        first, more = work / "first.jsonl", work / "more.jsonl"
        generate(first, n)
        _new_samples(more, max(1, n // 10), n, seed=11)
        store = open_store(work / "inc.duckdb")
        _, seconds = _timed(lambda: import_file(store, first, "bench"))
        print(f"import {n:,} samples: {seconds:.1f} s", flush=True)

        def quality():
            return run_job(store, "bench", "quality", actor="cli").value

        report, cold = _timed(quality)
        print(f"quality job, cold (computes and caches every sample): {cold:7.2f} s", flush=True)
        _, warm = _timed(quality)
        print(f"quality job, nothing changed:                         {warm:7.2f} s", flush=True)

        _, seconds = _timed(lambda: import_file(store, more, "bench"))
        report, after_import = _timed(quality)
        print(f"quality job after importing {max(1, n // 10):,} new samples:       {after_import:7.2f} s "
              f"({report.n_samples:,} samples)", flush=True)

        rng = random.Random(3)
        ids = rng.sample(report.sample_ids, min(args.reviews, len(report.sample_ids)))
        labels = store.get_dataset("bench").labels
        for sid in ids:
            save_review(store, "bench", sid, rng.choice(labels), "bench-reviewer", "bench", 0)
        _, after_reviews = _timed(quality)
        print(f"quality job after {len(ids)} reviews:                      {after_reviews:7.2f} s", flush=True)

        _, full = _timed(lambda: run_report(store, "bench", cached=False))
        print(f"quality job without the cache (every sample again):   {full:7.2f} s", flush=True)
        counts = store.pass_cache_counts("bench")
        print(f"cache: {counts['samples'].sum():,} sample entries over {counts.height} passes, "
              f"{counts['parts'].sum()} parts, {counts['rows'].sum():,} rows")
        print(f"ratio full / incremental: after import {full / after_import:.1f}x, after reviews "
              f"{full / after_reviews:.1f}x; cold run vs uncached {cold / full:.2f}x")
        print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared: wall times stretch)")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
