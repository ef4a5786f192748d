"""Benchmark core.agreement against the krippendorff package and statsmodels (issue 3, part 4).

Default (the spec): 100,000 samples × 5 annotators, 6 categories, 10% of ratings missing.
Prints each value next to the reference library's (they must agree to 1e-9), best-of-N wall
times and the ratio reference / ours (> 1 means ours is faster). Exit status 1 on a mismatch.

    python bench/bench_agreement.py            # spec sizes
    python bench/bench_agreement.py --quick    # 10,000 samples, one repetition: smoke run
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import krippendorff  # noqa: E402
from statsmodels.stats.inter_rater import aggregate_raters  # noqa: E402
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa  # noqa: E402

from core import agreement  # noqa: E402

TOLERANCE = 1e-9


def best_time(fn, repeat: int) -> tuple[float, object]:
    """Best wall time in seconds over `repeat` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def best_times(ours, reference, repeat: int) -> tuple[float, object, float, object]:
    """Best wall times of two functions called alternately (fair when the machine's load drifts)."""
    t_ours, t_ref = float("inf"), float("inf")
    for _ in range(repeat):
        t, out_ours = best_time(ours, 1)
        t_ours = min(t_ours, t)
        t, out_ref = best_time(reference, 1)
        t_ref = min(t_ref, t)
    return t_ours, out_ours, t_ref, out_ref


def make_ratings(n: int, raters: int, categories: int, missing: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(complete, with_missing) float matrices, samples × annotators; labels 0..categories-1.

    Annotators agree more than chance: each sample has a true label that an annotator reports
    with probability 0.7, otherwise a uniformly random label.
    """
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, categories, size=(n, 1))
    noise = rng.integers(0, categories, size=(n, raters))
    complete = np.where(rng.random((n, raters)) < 0.7, truth, noise).astype(float)
    with_missing = complete.copy()
    with_missing[rng.random((n, raters)) < missing] = np.nan
    return complete, with_missing


def as_strings(matrix: np.ndarray) -> np.ndarray:
    """Object matrix of string labels (Chinese and English), None where missing."""
    names = np.array([f"类别{k}-label{k}" for k in range(int(np.nanmax(matrix)) + 1)], dtype=object)
    out = np.full(matrix.shape, None, dtype=object)
    present = ~np.isnan(matrix)
    out[present] = names[matrix[present].astype(int)]
    return out


def row(name: str, ours: float, reference: float, t_ours: float, t_ref: float) -> bool:
    ok = abs(ours - reference) <= TOLERANCE
    print(
        f"{name:<38} ours={ours:.12f} ref={reference:.12f} |diff|={abs(ours - reference):.1e} "
        f"{'OK' if ok else 'MISMATCH'}  t_ours={t_ours * 1e3:8.1f} ms  t_ref={t_ref * 1e3:8.1f} ms  "
        f"ref/ours={t_ref / t_ours:6.2f}x"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 samples, 1 repetition")
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=5)
    parser.add_argument("--categories", type=int, default=6)
    parser.add_argument("--missing", type=float, default=0.10)
    parser.add_argument("--repeat", type=int, default=5, help="best of N timings")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.repeat = 10_000, 1

    complete, with_missing = make_ratings(args.samples, args.annotators, args.categories, args.missing, args.seed)
    print(
        f"{args.samples:,} samples × {args.annotators} annotators, {args.categories} categories, "
        f"{args.missing:.0%} missing; best of {args.repeat}\n"
    )
    all_ok = True

    print("Krippendorff's alpha (10% missing) vs krippendorff.alpha")
    for level in agreement.LEVELS:
        t_ours, ours, t_ref, ref = best_times(
            lambda: agreement.krippendorff_alpha(with_missing, level),
            lambda: krippendorff.alpha(reliability_data=with_missing.T, level_of_measurement=level),
            args.repeat,
        )
        all_ok &= row(f"  alpha {level}", ours, float(ref), t_ours, t_ref)
    strings = as_strings(with_missing)
    t_str, ours_str, t_ref, ref = best_times(
        lambda: agreement.krippendorff_alpha(strings, "nominal"),
        lambda: krippendorff.alpha(reliability_data=with_missing.T, level_of_measurement="nominal"),
        args.repeat,
    )
    all_ok &= row("  alpha nominal, string labels (ours)", ours_str, float(ref), t_str, t_ref)

    print("\nFleiss' kappa (complete: statsmodels needs equal ratings per sample)")
    t_ours, ours, t_ref, ref = best_times(
        lambda: agreement.fleiss_kappa(complete), lambda: sm_fleiss_kappa(aggregate_raters(complete)[0]), args.repeat
    )
    all_ok &= row("  matrix → kappa (aggregate_raters+fk)", ours, float(ref), t_ours, t_ref)
    table = aggregate_raters(complete)[0]
    t_ours, ours, t_ref, ref = best_times(
        lambda: agreement.fleiss_kappa_from_counts(table), lambda: sm_fleiss_kappa(table), args.repeat
    )
    all_ok &= row("  counts table → kappa", ours, float(ref), t_ours, t_ref)
    t_ours, ours = best_time(lambda: agreement.fleiss_kappa(with_missing), args.repeat)
    print(f"  {'fleiss_kappa, 10% missing (no ref.)':<36} ours={ours:.12f}  t_ours={t_ours * 1e3:8.1f} ms")

    print(f"\nMetric cards (point estimate + bootstrap_ci, n_boot={args.n_boot}), 10% missing")
    cards = {
        "percent_agreement": agreement.percent_agreement,
        "fleiss_kappa": agreement.fleiss_kappa,
        "krippendorff_alpha": agreement.krippendorff_alpha,
        "krippendorff_alpha ordinal": functools.partial(agreement.krippendorff_alpha, level="ordinal"),
    }
    for label, matrix in (("numeric labels", with_missing), ("string labels", strings)):
        total = 0.0
        for name, metric in list(cards.items())[:3]:
            t_point, value = best_time(lambda: metric(matrix), args.repeat)
            t_ci, (low, high) = best_time(
                lambda: agreement.bootstrap_ci(metric, matrix, n_boot=args.n_boot), args.repeat
            )
            total += t_point + t_ci
            print(
                f"  {label:<15} {name:<28} {value:.4f} [{low:.4f}, {high:.4f}]  "
                f"point {t_point * 1e3:7.1f} ms  ci {t_ci * 1e3:7.1f} ms"
            )
        print(f"  {label:<15} three cards, separate calls: {total:.2f} s (page budget: 2 s warm)")
        t_summary, summary = best_time(lambda: agreement.agreement_summary(matrix, n_boot=args.n_boot), args.repeat)
        print(f"  {label:<15} three cards, agreement_summary (one encoding): {t_summary:.2f} s")
    t_ci, (low, high) = best_time(
        lambda: agreement.bootstrap_ci(cards["krippendorff_alpha ordinal"], with_missing, n_boot=args.n_boot),
        args.repeat,
    )
    print(f"  numeric labels  krippendorff_alpha ordinal CI  [{low:.4f}, {high:.4f}]  ci {t_ci * 1e3:7.1f} ms")

    print("\nOther page work, 10% missing, string labels")
    long_form = pl.DataFrame(
        {
            "sample_id": np.repeat([f"s{i:06d}" for i in range(args.samples)], args.annotators),
            "annotator": np.tile([f"ann{j}" for j in range(args.annotators)], args.samples),
            "label": strings.reshape(-1),
        }
    ).drop_nulls("label")
    others = {
        "ratings_matrix (long form → matrix)": lambda: agreement.ratings_matrix(long_form),
        "majority_vote": lambda: agreement.majority_vote(strings),
        "disputed_samples": lambda: agreement.disputed_samples(strings),
        "pairwise_cohen_kappa": lambda: agreement.pairwise_cohen_kappa(strings),
        "annotator_report": lambda: agreement.annotator_report(strings),
        "per_label_agreement": lambda: agreement.per_label_agreement(strings),
    }
    for name, fn in others.items():
        t, _ = best_time(fn, args.repeat)
        print(f"  {name:<36} {t * 1e3:8.1f} ms")

    print("\nall values match to 1e-9" if all_ok else "\nMISMATCH against a reference library")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
