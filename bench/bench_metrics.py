"""Benchmark of the Iterations page: cold and warm AppTest runs on a large store.

Run by hand: `.venv/bin/python bench/bench_metrics.py` (spec: 20 model rounds x 100,000
predictions = 2,000,000 predictions, 100,000 samples labeled over 20 rounds by 3 annotators)
or `--quick` (5 rounds x 10,000 predictions) for a smoke run.
Target (issue 6, part 3): the page renders in under 2 s warm. The store is built once in a
temporary directory (through the ordinary importer, from Parquet files); then the page is run
headless with ``streamlit.testing.v1.AppTest``: the first run of the page (cold: every query
and the per-round metrics computed) and then ``--warm`` further runs (cached results), timed
one by one. ``--keep DIR`` builds (or reuses) the store in DIR instead of a temporary one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from page_timing import build_store_once, time_page  # noqa: E402  (bench/ is on the path when run as a script)

LABELS = [f"intent_{i:02d}" for i in range(10)]
DATASET = "bench"
TARGET_WARM_S = 2.0


def _model_error_rate(r: int, rounds: int) -> float:
    """Error rate of model round r (1-based): a learning curve that flattens at the end."""
    return 0.04 + 0.20 * np.exp(-4.0 * (r - 1) / max(rounds - 1, 1))


def write_files(out: Path, rounds: int, n_samples: int, seed: int = 0) -> tuple[Path, Path]:
    """Annotations (long form, 3 annotators) and predictions (every sample in every round) as Parquet."""
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    labels = np.array(LABELS)
    ids = np.array([f"b-{i:07d}" for i in range(n_samples)])
    truth = rng.integers(0, k, n_samples)
    sample_round = np.sort(rng.integers(1, rounds + 1, n_samples))  # labeling round of each sample

    def noisy(accuracy: float) -> np.ndarray:
        wrong = rng.random(n_samples) > accuracy
        return np.where(wrong, (truth + rng.integers(1, k, n_samples)) % k, truth)

    ann = pl.concat([
        pl.DataFrame({
            "id": ids, "text": [f"sample text {i}" for i in range(n_samples)],
            "batch": [f"r{r:02d}" for r in sample_round],
            "round": sample_round, "annotator": name, "label": labels[noisy(acc)],
        })
        for name, acc in (("alice", 0.93), ("bo", 0.92), ("chen", 0.75))
    ])
    ann_path = out / "annotations.parquet"
    ann.write_parquet(ann_path)

    preds = []
    for r in range(1, rounds + 1):
        err = _model_error_rate(r, rounds)
        wrong = rng.random(n_samples) < err
        pred = np.where(wrong, (truth + rng.integers(1, k, n_samples)) % k, truth)
        preds.append(pl.DataFrame({"id": ids, "pred_round": np.full(n_samples, r), "model": f"clf-r{r:02d}",
                                   "prediction": labels[pred]}))
    pred_path = out / "predictions.parquet"
    pl.concat(preds).write_parquet(pred_path)
    return ann_path, pred_path


def build_store(db: Path, rounds: int, n_samples: int) -> None:
    """Create the benchmark store at ``db`` (once; an existing store with the dataset is reused)."""
    build_store_once(db, DATASET, LABELS, lambda tmp: list(write_files(tmp, rounds, n_samples)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--samples", type=int, default=100_000, help="samples = predictions per round")
    parser.add_argument("--warm", type=int, default=5, help="number of warm runs")
    parser.add_argument("--quick", action="store_true", help="5 rounds x 10,000 predictions")
    parser.add_argument("--keep", type=Path, default=None, help="directory for the store (kept)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.samples = 5, 10_000

    print(f"{args.rounds} rounds x {args.samples:,} predictions = {args.rounds * args.samples:,} predictions",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / f"bench_{args.rounds}x{args.samples}.duckdb"
        build_store(db, args.rounds, args.samples)
        cold, warm, at = time_page(db, "pages/iterations.py", args.warm)
        cards = {m.label: m.value for m in at.metric}
        print(f"cards: {cards}")
        print(f"cold run of the page (queries + metrics): {cold:6.2f} s")
        print("warm runs: " + ", ".join(f"{w:.2f}" for w in warm) + " s")
        med = statistics.median(warm) if warm else float("nan")
        verdict = "PASS" if warm and max(warm) < TARGET_WARM_S else "FAIL"
        print(f"warm median {med:.2f} s, max {max(warm, default=float('nan')):.2f} s "
              f"(target < {TARGET_WARM_S:.0f} s: {verdict})")
        from core.store import open_store

        open_store(db).close()  # release the file before the temporary directory goes


if __name__ == "__main__":
    main()
