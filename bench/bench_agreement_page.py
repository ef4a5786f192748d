"""Benchmark of the Agreement page: cold and warm AppTest runs on a large store (issue 3, part 4).

Run by hand: `.venv/bin/python bench/bench_agreement_page.py` (spec: 100,000 samples × 5
annotators, 6 categories, 10% of ratings missing = about 450,000 annotations) or `--quick`
(10,000 samples) for a smoke run.
Target: the page's metric cards render in under 2 s warm. The store is built once in a temporary
directory (through the ordinary importer, from a Parquet file); then the page is run headless
with ``streamlit.testing.v1.AppTest``: the first run of the page (cold: the annotations read, the
ratings matrix built, every metric with 1,000 bootstrap resamples, the disputed samples) and
then ``--warm`` further runs (cached results), timed one by one. An AppTest run draws the whole
page, so a warm run is an upper bound of the time until the cards are drawn.
``--keep DIR`` builds (or reuses) the store in DIR instead of a temporary one.
Exit status 1 when the page fails (an exception, or the three cards missing); the timing verdict
is printed (PASS/FAIL) but does not change the exit status (a busy machine inflates timings).
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

DATASET = "bench"
TARGET_WARM_S = 2.0
ANNOTATORS = ("alice", "bo", "chen", "dana", "eli")
CARDS = ("Percent agreement", "Fleiss' kappa", "Krippendorff's alpha")


def labels_for(categories: int) -> list[str]:
    return [f"intent_{k}" for k in range(categories)]


def write_annotations(out: Path, n_samples: int, categories: int, missing: float, seed: int = 0) -> Path:
    """Long-form annotations as Parquet: every annotator reports a sample's true label with
    probability 0.7, otherwise a uniformly random label (as bench_agreement.py); a share
    ``missing`` of the ratings is left out (a sample that would lose all of them keeps its
    first annotator's). 10 batches, 5 rounds (2 batches per round)."""
    rng = np.random.default_rng(seed)
    labels = np.array(labels_for(categories))
    truth = rng.integers(0, categories, n_samples)
    ids = np.array([f"a-{i:07d}" for i in range(n_samples)])
    batch_no = np.arange(n_samples) * 10 // n_samples  # 0..9, in id order
    texts = np.array([f"订单问题 {i}: sample text about order {i}" for i in range(n_samples)])
    keeps = rng.random((len(ANNOTATORS), n_samples)) >= missing
    keeps[0] |= ~keeps.any(axis=0)  # every sample keeps at least one rating (so all n_samples exist)
    frames = []
    for name, keep in zip(ANNOTATORS, keeps):
        given = np.where(rng.random(n_samples) < 0.7, truth, rng.integers(0, categories, n_samples))
        frames.append(pl.DataFrame({
            "id": ids[keep], "text": texts[keep], "batch": [f"b{b:02d}" for b in batch_no[keep]],
            "round": batch_no[keep] // 2 + 1, "annotator": name, "label": labels[given[keep]],
        }))
    path = out / "annotations.parquet"
    pl.concat(frames).write_parquet(path)
    return path


def build_store(db: Path, n_samples: int, categories: int, missing: float) -> None:
    """Create the benchmark store at ``db`` (once; an existing store with the dataset is reused)."""
    build_store_once(db, DATASET, labels_for(categories),
                     lambda tmp: [write_annotations(tmp, n_samples, categories, missing)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--categories", type=int, default=6)
    parser.add_argument("--missing", type=float, default=0.10, help="share of ratings left out")
    parser.add_argument("--warm", type=int, default=5, help="number of warm runs")
    parser.add_argument("--quick", action="store_true", help="10,000 samples")
    parser.add_argument("--keep", type=Path, default=None, help="directory for the store (kept)")
    args = parser.parse_args()
    if args.quick:
        args.samples = 10_000

    print(f"{args.samples:,} samples × {len(ANNOTATORS)} annotators, {args.categories} categories, "
          f"{args.missing:.0%} missing", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-agreement-page-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / f"bench_agreement_{args.samples}x{len(ANNOTATORS)}.duckdb"
        build_store(db, args.samples, args.categories, args.missing)
        try:
            cold, warm, at = time_page(db, "pages/agreement.py", args.warm)
        finally:
            from core.store import open_store

            open_store(db).close()  # release the file before the temporary directory goes
        cards = {m.label: (m.value, m.proto.delta) for m in at.metric}
        for label in CARDS:
            value, delta = cards.get(label, ("missing", ""))
            print(f"card {label}: {value}  ({delta})")
        disputed = [b.label for b in at.button if b.key == "agreement_queue"]
        if disputed:
            print(f"button: {disputed[0]}")
        print(f"cold run of the page (read, matrix, metrics with 1,000 resamples): {cold:6.2f} s")
        print("warm runs: " + ", ".join(f"{w:.2f}" for w in warm) + " s")
        med = statistics.median(warm) if warm else float("nan")
        verdict = "PASS" if warm and max(warm) < TARGET_WARM_S else "FAIL"
        print(f"warm median {med:.2f} s, max {max(warm, default=float('nan')):.2f} s "
              f"(target: cards in < {TARGET_WARM_S:.0f} s warm: {verdict})")
        if any(label not in cards for label in CARDS):
            print("the page did not draw the three metric cards", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
