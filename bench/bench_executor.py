"""Benchmark of core.executor's backends on real per-sample maps: language identification of bilingual texts.

Run by hand, not collected by pytest:

    .venv/bin/python bench/bench_executor.py              # 200,000 texts; inline, a pool of 2, Ray local on 2 CPUs
    .venv/bin/python bench/bench_executor.py --quick      # smoke run: 5,000 texts, no Ray, a few seconds
    .venv/bin/python bench/bench_executor.py --quick --ray

The texts are bench_scale.py's bilingual customer requests and replies (Chinese and English, order numbers,
amounts). Two maps, both per sample:

- ``langid``: langid's model on every text (:func:`core.textchecks.langid_identifier`): the heavy part of language
  identification, compute-bound;
- ``profile``: :func:`core.textchecks.language_profile`, what the language-mismatch check runs: a vectorised
  script / English-word pre-pass decides most texts, langid only the rest; light.

Each runs as the bare call on all texts at once (the reference), then through LocalExecutor(workers=1) (inline
batches), LocalExecutor(workers=2) (the shared pool of 2 spawned processes) and RayExecutor("local", num_cpus=2),
in batches of core.executor.DEFAULT_BATCH_ROWS. Starting Ray, and each backend's first small maps (which start its
worker processes and load langid's model in each), are timed apart: the figures are for warm workers, as in a
server that has mapped before. Each prints seconds and the ratio to the bare call (< 1: faster than it); every
backend's frame must equal the bare call's.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # langid's numpy: BLAS threads would fight over 2 shared cores
os.environ.setdefault("OMP_NUM_THREADS", "1")

import polars as pl

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(BENCH, ".."), BENCH]

from core import textchecks
from core.executor import DEFAULT_BATCH_ROWS, LocalExecutor


def langid_languages(batch: pl.DataFrame) -> pl.DataFrame:
    """Per sample: langid's language for the text."""
    return batch.select("i", pl.Series("language", textchecks.langid_identifier(batch["text"].to_list()),
                                       dtype=pl.String))


def profile_languages(batch: pl.DataFrame) -> pl.DataFrame:
    """Per sample: the language check's profile (language, script shares, how it was decided)."""
    return pl.concat([batch.select("i"), textchecks.language_profile(batch["text"])], how="horizontal")


MAPS = {"langid": langid_languages, "profile": profile_languages}


def texts(n: int, seed: int = 18) -> pl.DataFrame:
    from bench_scale import templated_request

    rng = random.Random(seed)
    out = []
    for i in range(n):
        _, instruction, output = templated_request(rng, second=i % 3 == 0)
        out.append(output if i % 2 else instruction)
    return pl.DataFrame({"i": range(n), "text": out}, schema={"i": pl.Int64, "text": pl.String})


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 texts and no Ray: a smoke run")
    parser.add_argument("--ray", action="store_true", help="with --quick: include Ray anyway")
    parser.add_argument("--n", type=int, default=None, help="number of texts (default 200,000; 5,000 with --quick)")
    parser.add_argument("--maps", default=",".join(MAPS), help=f"comma-separated, of {', '.join(MAPS)}")
    args = parser.parse_args()
    n = args.n or (5_000 if args.quick else 200_000)
    batch_rows = DEFAULT_BATCH_ROWS if n >= 100_000 else max(1, n // 8)
    with_ray = not args.quick or args.ray

    frame, secs = timed(lambda: texts(n))
    print(f"{n:,} bilingual texts (generated in {secs:.1f} s), batches of {batch_rows:,} rows; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    names = args.maps.split(",")
    for name in names:
        MAPS[name](frame.head(100))  # langid's model loads here, not inside the reference's timing
    bare = {name: timed(lambda name=name: MAPS[name](frame)) for name in names}
    seconds: dict[str, dict[str, float]] = {name: {} for name in names}

    def measure(label: str, executor) -> None:
        # Both backends keep their workers between maps (the pool for the process's life, Ray its worker
        # processes): the first maps start them and load langid's model in each, timed apart from the figures.
        sample = frame.head(800)
        _, secs = timed(lambda: [executor.map_batches(MAPS[name], sample, batch_rows=100) for name in names])
        print(f"{label}: first maps of {len(sample)} texts (starting workers, loading langid) {secs:.1f} s")
        for name in names:
            out, secs = timed(lambda name=name: executor.map_batches(MAPS[name], frame, batch_rows=batch_rows))
            if not out.equals(bare[name][0]):
                raise SystemExit(f"{label}, map {name}: the frame differs from the bare call's")
            seconds[name][label] = secs

    measure("LocalExecutor(workers=1)", LocalExecutor(workers=1))
    # pool_min_rows=0: the pool whatever the size (by default frames under 40,000 rows run inline).
    measure("LocalExecutor(workers=2)", LocalExecutor(workers=2, pool_min_rows=0))
    if with_ray:
        from core import executor as local_executor
        from core.executor_ray import RayExecutor, shutdown

        # The pool's idle processes are stopped first (when the executor keeps one), Ray's are started after the
        # local figures: neither backend's workers sit beside the other's measurement.
        getattr(local_executor, "shutdown_pools", lambda: None)()
        ray_executor = RayExecutor("local", num_cpus=2)
        _, start_s = timed(ray_executor.connect)
        print(f"Ray started (local, 2 CPUs) in {start_s:.1f} s")
        try:
            measure("RayExecutor(local, 2 CPUs)", ray_executor)
        finally:
            shutdown()
    for name in names:
        bare_s = bare[name][1]
        print(f"\nmap {name}, {n:,} texts\n  {'bare call, all texts at once':32s} {bare_s:7.2f} s   ratio 1.00")
        for label, secs in seconds[name].items():
            print(f"  {label:32s} {secs:7.2f} s   ratio {secs / bare_s:.2f}")
        if not with_ray:
            print("  RayExecutor: skipped in --quick (add --ray)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
