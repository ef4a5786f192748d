"""Benchmark of selection speed: fast exact k-center greedy against the textbook loop (picks must match).

Run by hand, not collected by pytest:

    .venv/bin/python bench/bench_selection.py            # spec size: 100,000 x 384 float32, k = 1,000
    .venv/bin/python bench/bench_selection.py --quick    # smoke run: 10,000 x 384, k = 100

Prints both times (wall, and this process's CPU time: both are single-threaded, so the CPU ratio
is the fair one when other jobs share the 2 cores), their ratio (target >= 5x) and the covering
radius of each pick list, and exits non-zero if the fast picks differ from the textbook loop's.
One function per measurement; ``main`` runs them in turn.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.selection import covering_radius, k_center_greedy  # noqa: E402

SPEC = {"n": 100_000, "dim": 384, "k": 1_000}
QUICK = {"n": 10_000, "dim": 384, "k": 100}


def make_embeddings(n: int, dim: int, seed: int = 0, kind: str = "clustered") -> np.ndarray:
    """(n, dim) float32 L2-normalized vectors: ``clustered`` = 200 topics of uneven size with noise
    (like sentence embeddings), ``gaussian`` = isotropic (no structure: the hard case for pruning)."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        x = rng.standard_normal((n, dim), dtype=np.float32)
    else:
        topics = rng.standard_normal((200, dim), dtype=np.float32)
        label = rng.choice(200, size=n, p=rng.dirichlet(np.ones(200)))
        x = topics[label] + 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def textbook_k_center(x: np.ndarray, k: int) -> np.ndarray:
    """The reference: each step one full distance update, then argmax of the min-distance array."""
    mean = x.mean(axis=0, dtype=np.float64)
    c = int(np.argmin(np.linalg.norm(x - mean, axis=1)))
    mind = np.full(x.shape[0], np.inf, dtype=x.dtype)
    picks = [c]
    while len(picks) < k:
        np.minimum(mind, np.linalg.norm(x - x[c], axis=1), out=mind)
        mind[c] = -np.inf  # a picked row is never picked again
        c = int(np.argmax(mind))
        picks.append(c)
    return np.asarray(picks, dtype=np.int64)


def normtrick_k_center(x: np.ndarray, k: int) -> np.ndarray:
    """For context only: the same loop with float32 ||x||^2 - 2 x.c + ||c||^2 updates (one GEMV a
    step). Fast but inexact (cancellation), so its picks may differ from the textbook's."""
    xx = np.einsum("ij,ij->i", x, x)
    mean = x.mean(axis=0, dtype=np.float64)
    c = int(np.argmin(np.linalg.norm(x - mean, axis=1)))
    mind = np.full(x.shape[0], np.inf, dtype=x.dtype)
    picks = [c]
    while len(picks) < k:
        d2 = xx - 2.0 * (x @ x[c]) + xx[c]
        np.minimum(mind, np.sqrt(np.maximum(d2, 0.0)), out=mind)
        mind[c] = -np.inf
        c = int(np.argmax(mind))
        picks.append(c)
    return np.asarray(picks, dtype=np.int64)


def _timed(fn, *args):
    """(result, wall seconds, CPU seconds of this process) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


def bench_k_center(
    n: int, dim: int, k: int, seed: int = 0, kind: str = "clustered", normtrick: bool = True
) -> dict:
    """Times textbook vs fast k-center greedy on one data set; prints and returns the figures."""
    x = make_embeddings(n, dim, seed, kind)
    print(f"k-center greedy: {n:,} x {dim} float32 ({kind}), k = {k:,}")
    ref, t_ref, c_ref = _timed(textbook_k_center, x, k)
    print(f"  textbook loop      {t_ref:8.2f} s  (cpu {c_ref:7.2f} s)")
    fast, t_fast, c_fast = _timed(k_center_greedy, x, k)
    ratio = t_ref / t_fast
    print(f"  k_center_greedy    {t_fast:8.2f} s  (cpu {c_fast:7.2f} s)   ratio {ratio:6.1f}x  (target >= 5x),"
          f" cpu ratio {c_ref / c_fast:6.1f}x")
    same = bool(np.array_equal(ref, fast))
    r_ref = covering_radius(x, ref)
    r_fast = r_ref if same else covering_radius(x, fast)
    rand = np.random.default_rng(seed + 1).choice(n, size=k, replace=False)
    r_rand = covering_radius(x, rand)
    print(f"  same picks: {same}")
    print(f"  covering radius    textbook {r_ref:.6f}   fast {r_fast:.6f}   random {r_rand:.6f}")
    res = {"n": n, "dim": dim, "k": k, "kind": kind, "t_textbook": t_ref, "t_fast": t_fast, "ratio": ratio,
           "cpu_textbook": c_ref, "cpu_fast": c_fast,
           "same_picks": same, "radius_textbook": r_ref, "radius_fast": r_fast, "radius_random": r_rand}
    if normtrick:
        nt, t_nt, _ = _timed(normtrick_k_center, x, k)
        agree = int(np.argmax(np.concatenate([nt != ref, [True]])))  # length of the common prefix
        print(f"  (norms-trick loop  {t_nt:8.2f} s   fast is {t_nt / t_fast:5.1f}x faster; "
              f"its first {agree} of {k} picks match the textbook's)")
        res.update(t_normtrick=t_nt, normtrick_prefix=agree)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run at 10,000 x 384, k = 100")
    ap.add_argument("--n", type=int, help="rows (default 100,000; 10,000 with --quick)")
    ap.add_argument("--dim", type=int, help="dimensions (default 384)")
    ap.add_argument("--k", type=int, help="picks (default 1,000; 100 with --quick)")
    ap.add_argument("--data", choices=("clustered", "gaussian"), default="clustered")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-normtrick", action="store_true", help="skip the context-only norms-trick loop")
    a = ap.parse_args(argv)
    size = dict(QUICK if a.quick else SPEC)
    size.update({key: v for key, v in (("n", a.n), ("dim", a.dim), ("k", a.k)) if v is not None})
    print(f"numpy {np.__version__}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}")
    res = bench_k_center(size["n"], size["dim"], size["k"], a.seed, a.data, normtrick=not a.no_normtrick)
    if not res["same_picks"]:
        print("FAIL: fast k-center picks differ from the textbook loop", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
