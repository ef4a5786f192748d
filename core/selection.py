"""Active-learning selection: uncertainty scores, uncertain/diverse/hybrid picks, fast exact k-center greedy."""

from __future__ import annotations

import contextlib
import math
import operator
import warnings
from collections.abc import Iterable

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import entr
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import pairwise_distances_argmin, pairwise_distances_argmin_min
from threadpoolctl import ThreadpoolController

__all__ = [
    "METHODS",
    "adaptive_hybrid",
    "adaptive_pool_factor",
    "covering_radius",
    "diversity_weight",
    "hybrid",
    "hybrid_pool",
    "k_center_greedy",
    "kmeans_diverse",
    "select_uncertain",
    "uncertainty_scores",
]

#: Uncertainty methods accepted by :func:`uncertainty_scores` (higher score = more uncertain).
METHODS: tuple[str, ...] = ("least_confidence", "margin", "entropy")

#: Tolerance on each probability row summing to 1.
PROB_SUM_TOL = 1e-3

#: Largest pool factor of the adaptive schedule (round 0); the last round uses 1.
ADAPTIVE_MAX_POOL_FACTOR = 20.0


# --------------------------------------------------------------------------- validation


def _as_probs(probs, name: str = "probs") -> np.ndarray:
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        got = type(probs).__name__
        raise ValueError(f"{name}: expected a 2-D array of class probabilities, got {got}") from exc
    if p.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_classes), got shape {p.shape}")
    if p.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one row, got shape {p.shape}")
    if p.shape[1] < 2:
        raise ValueError(f"{name}: expected at least 2 classes (columns), got {p.shape[1]}")
    if not np.isfinite(p).all():
        bad = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise ValueError(f"{name}: expected finite probabilities, row {bad} has NaN or inf")
    if (p < 0).any() or (p > 1).any():
        bad = int(np.flatnonzero(((p < 0) | (p > 1)).any(axis=1))[0])
        raise ValueError(f"{name}: expected probabilities in [0, 1], row {bad} has {p[bad].tolist()}")
    sums = p.sum(axis=1)
    off = np.abs(sums - 1.0) > PROB_SUM_TOL
    if off.any():
        bad = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{name}: expected each row to sum to 1 (within {PROB_SUM_TOL:g}), "
            f"row {bad} sums to {sums[bad]:.6g}"
        )
    return p


def _as_embeddings(embeddings, name: str = "embeddings") -> np.ndarray:
    try:
        x = np.asarray(embeddings)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a 2-D numeric array, got {type(embeddings).__name__}") from exc
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, dim), got shape {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one row and one column, got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
            raise ValueError(f"{name}: expected real numbers, got dtype {x.dtype}")
        x = x.astype(np.float64)
    x = np.ascontiguousarray(x)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name}: expected finite vectors, row {bad} has NaN or inf")
    return x


def _as_k(k, pool: int, name: str = "k", pool_desc: str = "the pool") -> int:
    if isinstance(k, bool):
        raise ValueError(f"{name}: expected an integer >= 1, got {k!r}")
    try:
        k = operator.index(k)
    except TypeError:
        raise ValueError(f"{name}: expected an integer >= 1, got {k!r}") from None
    if k < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {k}")
    if k > pool:
        raise ValueError(f"{name}: expected at most {pool} (the size of {pool_desc}), got {k}")
    return k


def _as_indices(idx, n: int, name: str) -> np.ndarray:
    """Unique sorted int64 row indices from None / an iterable of ints; ValueError if out of [0, n)."""
    if idx is None:
        return np.empty(0, dtype=np.int64)
    if isinstance(idx, (set, frozenset)) or (isinstance(idx, Iterable) and not isinstance(idx, np.ndarray)):
        idx = list(idx)
    a = np.asarray(idx)
    if a.size == 0:
        return np.empty(0, dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D list of row indices, got shape {a.shape}")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name}: expected integer row indices, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.min() < 0 or a.max() >= n:
        bad = int(a[(a < 0) | (a >= n)][0])
        raise ValueError(f"{name}: expected row indices in [0, {n}), got {bad}")
    return np.unique(a)


def _check_method(method) -> str:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    return method


def _check_same_rows(probs: np.ndarray, emb: np.ndarray) -> None:
    if probs.shape[0] != emb.shape[0]:
        raise ValueError(
            f"probs and embeddings: expected the same number of rows, got {probs.shape[0]} and {emb.shape[0]}"
        )


_CONTROLLER: ThreadpoolController | None = None


@contextlib.contextmanager
def _threads(limit: int | None, api: str):
    """Cap the threads of a native thread pool (``"blas"`` or ``"openmp"``); None = leave as is."""
    global _CONTROLLER
    if limit is None:
        yield
        return
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()  # scanning the loaded libraries costs ~50 ms: once
    with _CONTROLLER.limit(limits=limit, user_api=api):
        yield


# --------------------------------------------------------------------------- uncertainty


def uncertainty_scores(probs, method: str) -> np.ndarray:
    """Uncertainty score of each row; higher = more uncertain.

    probs: (n, c) class probabilities, n >= 1, c >= 2, entries in [0, 1], rows summing to 1
    within 1e-3, no NaN/inf. method: ``"least_confidence"`` (1 - max p, range [0, 1 - 1/c]),
    ``"margin"`` (1 - (p1 - p2) with p1 >= p2 the two largest, range [0, 1]) or ``"entropy"``
    (-sum p ln p, natural log, 0 ln 0 = 0, range [0, ln c]). Returns float64 of shape (n,).
    """
    method = _check_method(method)
    p = _as_probs(probs)
    if method == "least_confidence":
        return 1.0 - p.max(axis=1)
    if method == "margin":
        top2 = np.partition(p, -2, axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])
    return entr(p).sum(axis=1)  # scipy's entr is -x ln x with entr(0) = 0, no warnings


def _rank_desc(scores: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")  # stable: equal scores keep the lower index first
    if exclude.size:
        order = order[~np.isin(order, exclude)]
    return order[:k].astype(np.int64)


def select_uncertain(probs, k: int, method: str, exclude=None) -> np.ndarray:
    """The k most uncertain rows, most uncertain first.

    probs: (n, c) as in :func:`uncertainty_scores`; k: 1 <= k <= n - len(exclude);
    method: one of :data:`METHODS`; exclude: row indices never picked (default none).
    Ranking is by descending score, ties to the lower row index. Returns int64 of shape (k,).
    """
    method = _check_method(method)
    p = _as_probs(probs)
    ex = _as_indices(exclude, p.shape[0], "exclude")
    k = _as_k(k, p.shape[0] - ex.size, pool_desc="the pool after exclusions")
    return _rank_desc(uncertainty_scores(p, method), ex, k)


# --------------------------------------------------------------------------- k-center greedy


def _first_center(x: np.ndarray, block: int = 8192) -> int:
    """Row nearest the mean of all rows (float64 distances, ties to the lower index)."""
    mean = x.mean(axis=0, dtype=np.float64)
    d = np.empty(x.shape[0], dtype=np.float64)
    for s in range(0, x.shape[0], block):  # blocked so a float64 copy of x is never made whole
        d[s : s + block] = np.linalg.norm(x[s : s + block] - mean, axis=1)
    return int(np.argmin(d))


def _gamma(m: int, u: float) -> float:
    """Higham's gamma_m = m u / (1 - m u): bound on the relative error of m rounded operations."""
    return m * u / (1.0 - m * u)


def _exact_dist(rows: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """sqrt(sum((row - center)**2)) row by row in the input precision: bit-for-bit the textbook
    ``np.linalg.norm(X - X[c], axis=1)`` value for each pair (the definition the picks follow)."""
    diff = rows - centers
    np.multiply(diff, diff, out=diff)
    return np.sqrt(diff.sum(axis=1))


def _kcenter_fast(x: np.ndarray, k: int, selected: np.ndarray, active_size: int | None = None) -> np.ndarray:
    # Hand-written: no library has an exact greedy k-center that scales; this reproduces the
    # textbook loop's picks exactly while touching only a small "active" set of rows per step.
    #
    # Invariants. ``ub[i]`` is the textbook min-distance of row i over the first ``last[i]``
    # centers (bit-exact, so an upper bound on its current value); picked rows hold -inf.
    # ``A`` (sorted rows) is kept exact after every pick and every row outside A has
    # ub < tau. While max over A >= tau, the textbook argmax (ties to the lower index) lies in A.
    # When it drops below tau, ``refresh`` lowers tau and catches stale rows up.
    # Filter: the norms trick ||x||^2 + ||c||^2 - 2 x.c with a rigorous rounding bound
    # (gamma_D for the dot product, gamma_{D+4} for the textbook formula) proves which rows a new
    # center cannot change; only the others are recomputed with the textbook formula, so every
    # stored value is bit-identical to the textbook loop's.
    n, dim = x.shape
    dt = x.dtype
    u = float(np.finfo(dt).eps) / 2
    r = _gamma(dim + 4, u)  # |textbook d - true d| <= r * true d
    one_minus_r = 1.0 - r
    gdot = _gamma(dim, u)  # |fl(x.c) - x.c| <= gdot * |x| |c|
    e64 = _gamma(4 * dim + 16, float(np.finfo(np.float64).eps) / 2)  # float64 bookkeeping slack

    xx = np.empty(n, dtype=np.float64)
    for s in range(0, n, 8192):
        b = x[s : s + 8192].astype(np.float64)
        xx[s : s + 8192] = np.einsum("ij,ij->i", b, b)
    nrm = np.sqrt(xx)

    m = active_size if active_size is not None else max(512, n // 32)
    n_cent = selected.size + k
    cidx = np.empty(n_cent, dtype=np.int64)
    cmat = np.empty((n_cent, dim), dtype=dt)
    nc = 0
    picked = np.zeros(n, dtype=bool)
    ub = np.full(n, np.inf, dtype=dt)
    last = np.zeros(n, dtype=np.int64)
    out: list[int] = []

    def add_center(c: int) -> None:
        nonlocal nc
        cidx[nc] = c
        cmat[nc] = x[c]
        nc += 1
        picked[c] = True

    for c in selected:
        add_center(int(c))
    ub[selected] = -np.inf
    if selected.size == 0:
        first = _first_center(x)
        add_center(first)
        ub[first] = -np.inf
        out.append(first)

    def catch_up(stale: np.ndarray) -> None:
        # Brings rows up to date with the centers added since their ``last``, grouped by ``last``.
        # t = ||c||^2 - 2 x.c in the input precision (one GEMM, two in-place passes); a per-row
        # bound ``err`` covers the GEMM, the rounding of ||c||^2 and of t itself.
        lasts = last[stale]
        for lv in np.unique(lasts):
            rows_all = stale[lasts == lv]
            cs = cmat[lv:nc]
            cxx = xx[cidx[lv:nc]]
            cxx_dt = cxx.astype(dt)
            cn_max = float(nrm[cidx[lv:nc]].max())
            cxx_max = float(cxx.max())
            step = min(16384, max(64, (1 << 21) // (nc - lv)))  # block of t stays about 8 MB
            for s in range(0, rows_all.size, step):
                rows = rows_all[s : s + step]
                xb = x[rows]
                t = xb @ cs.T
                t *= -2
                t += cxx_dt
                rxx = xx[rows]
                err = (2 * gdot + 4 * u) * nrm[rows] * cn_max + 4 * u * cxx_max + e64 * (rxx + cxx_max)
                hi = np.sqrt(np.maximum(rxx + t.min(axis=1) + err, 0.0)) * (1.0 + r)
                bound = np.minimum(ub[rows].astype(np.float64), hi) / one_minus_r
                thr = bound * bound - rxx + err
                thr_dt = thr.astype(dt)
                low = thr_dt < thr
                thr_dt[low] = np.nextafter(thr_dt[low], np.inf)  # round the threshold up: stays safe
                ri, ci = np.nonzero(t <= thr_dt[:, None])
                if ri.size:
                    dd = _exact_dist(xb[ri], cs[ci])
                    vals = ub[rows]
                    np.minimum.at(vals, ri, dd)
                    ub[rows] = vals
                last[rows] = nc

    A = np.empty(0, dtype=np.int64)
    XA = np.empty((0, dim), dtype=dt)
    nA2 = nA = thr2 = np.empty(0)
    mA = np.empty(0, dtype=dt)
    tau = np.inf

    def thr_of(v: np.ndarray) -> np.ndarray:
        v64 = v.astype(np.float64) / one_minus_r
        return np.where(v64 >= 0, v64 * v64, -np.inf)

    def refresh() -> None:
        nonlocal A, XA, nA2, nA, mA, thr2, tau
        if A.size:
            ub[A] = mA
            last[A] = nc
        while True:
            n_rem = n - int(picked.sum())
            if n_rem <= m:
                tau = -np.inf
                sel = ~picked
            else:
                tau = np.partition(ub, n - m)[n - m]  # the m-th largest value
                sel = (ub >= tau) & ~picked
            stale = np.flatnonzero(sel & (last < nc))
            if stale.size == 0:
                break
            catch_up(stale)
        A = np.flatnonzero(sel)
        XA = x[A]
        nA2 = xx[A]
        nA = nrm[A]
        mA = ub[A].copy()
        thr2 = thr_of(mA)

    while len(out) < k:
        if A.size:
            j = int(np.argmax(mA))
            best = mA[j]
        if not A.size or best < tau or best == -np.inf:
            refresh()
            continue
        c = int(A[j])
        out.append(c)
        add_center(c)
        mA[j] = -np.inf
        thr2[j] = -np.inf
        if len(out) == k:
            break
        cv = x[c]
        d2 = nA2 + xx[c] - 2.0 * (XA @ cv)
        err = 2.0 * gdot * nrm[c] * nA + e64 * (nA2 + xx[c])
        need = np.flatnonzero((d2 - err) <= thr2)
        if need.size:
            dd = _exact_dist(XA[need], cv)
            lower = dd < mA[need]
            if lower.any():
                upd = need[lower]
                mA[upd] = dd[lower]
                thr2[upd] = thr_of(dd[lower])
    return np.asarray(out, dtype=np.int64)


def k_center_greedy(embeddings, k: int, already_selected=None) -> np.ndarray:
    """Greedy k-center (core-set) picks, in pick order.

    embeddings: (n, d) finite vectors (float32/float64 kept, other numeric types become float64).
    k: 1 <= k <= n - len(already_selected). already_selected: row indices already labeled or
    queued (default none); they act as centers and are never picked.
    Each step picks the row farthest (Euclidean) from its nearest center, ties to the lower row
    index; with nothing already selected the first pick is the row nearest the mean of all rows.
    Distances are ``np.linalg.norm(x - c)`` in the input precision, so the picks are exactly
    those of the textbook loop (argmax of the min-distance array, then a full update); rows
    identical to a center are taken, lowest index first, only once nothing else is left.
    Returns int64 of shape (k,), distinct, in pick order.
    """
    x = _as_embeddings(embeddings)
    sel = _as_indices(already_selected, x.shape[0], "already_selected")
    k = _as_k(k, x.shape[0] - sel.size, pool_desc="the pool minus already_selected")
    return _kcenter(x, k, sel)


def _kcenter(x: np.ndarray, k: int, selected: np.ndarray) -> np.ndarray:
    # one BLAS thread: the many small GEMV/GEMM calls lose badly to thread hand-offs when the
    # 2 cores are shared (measured 14x slower under load), and the textbook loop is single-threaded
    with _threads(1 if x.size >= 1_000_000 else None, "blas"):  # tiny inputs: BLAS stays serial
        return _kcenter_fast(x, k, selected)


def covering_radius(embeddings, picks) -> float:
    """Largest Euclidean distance from any row to its nearest pick (float64, >= 0).

    embeddings: (n, d) finite vectors; picks: non-empty row indices in [0, n) (duplicates ignored).
    """
    x = _as_embeddings(embeddings)
    p = _as_indices(picks, x.shape[0], "picks")
    if p.size == 0:
        raise ValueError("picks: expected at least one row index, got none")
    if x.shape[0] * p.size <= 2_000_000:  # small: scipy's exact cdist, no OpenMP start-up (~100 ms)
        return float(cdist(x, x[p]).min(axis=1).max())
    _, dist = pairwise_distances_argmin_min(x, x[p])  # large: sklearn's chunked BLAS path
    return float(dist.max())


# --------------------------------------------------------------------------- k-means


def kmeans_diverse(embeddings, k: int, seed: int = 0, exclude=None) -> np.ndarray:
    """One representative row per k-means cluster.

    embeddings: (n, d) finite vectors; k: 1 <= k <= n - len(exclude); seed: random state of
    scikit-learn's KMeans (k-means++, n_init=1, max_iter=100: deterministic per seed);
    exclude: row indices never picked and left out of the clustering (default none).
    Each centroid takes the row nearest to it; clusters are served largest first (ties to the
    lower cluster id), and a centroid whose nearest row is already taken gets its nearest unused
    row (ties to the lower index), so the k picks are distinct.
    Returns int64 of shape (k,) in that order (largest cluster first).
    """
    x = _as_embeddings(embeddings)
    ex = _as_indices(exclude, x.shape[0], "exclude")
    keep = np.setdiff1d(np.arange(x.shape[0]), ex)
    k = _as_k(k, keep.size, pool_desc="the pool after exclusions")
    xs = x[keep]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    km = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed)
    # small inputs: one OpenMP thread (sklearn's thread start-up costs ~0.1 s a call on 2 shared cores)
    with warnings.catch_warnings(), _threads(1 if xs.size * k < 5_000_000 else None, "openmp"):
        # fewer distinct points than k: sklearn warns, the distinct-pick rule below still holds
        warnings.simplefilter("ignore", ConvergenceWarning)
        km.fit(xs)
        centroids = km.cluster_centers_
        nearest = pairwise_distances_argmin(centroids, xs)
    sizes = np.bincount(km.labels_, minlength=k)
    order = np.lexsort((np.arange(k), -sizes))
    used = np.zeros(keep.size, dtype=bool)
    picks = np.empty(k, dtype=np.int64)
    for pos, cl in enumerate(order):
        i = int(nearest[cl])
        if used[i]:
            d = np.linalg.norm(xs - centroids[cl].astype(np.float64), axis=1)
            d[used] = np.inf
            i = int(np.argmin(d))
        used[i] = True
        picks[pos] = i
    return keep[picks]


# --------------------------------------------------------------------------- hybrids


def hybrid_pool(probs, k: int, method: str = "margin", pool_factor: float = 10, exclude=None) -> np.ndarray:
    """The rows :func:`hybrid` runs k-center greedy on: the ceil(pool_factor * k) most uncertain (capped
    at the available rows), sorted by row index. k-center in :func:`hybrid` uses no other row (it starts
    from no already-chosen center), so these are the only rows whose embeddings it reads.

    Arguments as in :func:`hybrid`. Returns int64 row indices, ascending.
    """
    method = _check_method(method)
    p = _as_probs(probs)
    try:
        pf = float(pool_factor)
    except (TypeError, ValueError):
        raise ValueError(f"pool_factor: expected a number >= 1, got {pool_factor!r}") from None
    if not math.isfinite(pf) or pf < 1:
        raise ValueError(f"pool_factor: expected a number >= 1, got {pool_factor!r}")
    ex = _as_indices(exclude, p.shape[0], "exclude")
    avail = p.shape[0] - ex.size
    k = _as_k(k, avail, pool_desc="the pool after exclusions")
    size = min(avail, math.ceil(pf * k - 1e-9))
    return np.sort(_rank_desc(uncertainty_scores(p, method), ex, size))


def hybrid(
    probs, embeddings, k: int, method: str = "margin", pool_factor: float = 10, exclude=None
) -> np.ndarray:
    """Uncertain first, then diverse: k-center greedy among the most uncertain rows.

    probs: (n, c) as in :func:`uncertainty_scores`; embeddings: (n, d) finite vectors, same n;
    k: 1 <= k <= n - len(exclude); method: one of :data:`METHODS` (default ``"margin"``);
    pool_factor: >= 1 (default 10): the ceil(pool_factor * k) most uncertain rows (capped at the
    available rows) form the pool; exclude: row indices never picked (default none).
    k-center greedy runs on the pool sorted by row index (so its ties go to the lower row index).
    Returns int64 row indices into the full arrays, shape (k,), in k-center pick order.
    """
    p = _as_probs(probs)
    x = _as_embeddings(embeddings)
    _check_same_rows(p, x)
    pool = hybrid_pool(p, k, method, pool_factor, exclude)
    return pool[_kcenter(x[pool], int(k), np.empty(0, dtype=np.int64))]


def _check_round(round_index, n_rounds) -> tuple[int, int]:
    try:
        n_rounds = operator.index(n_rounds)
        round_index = operator.index(round_index)
    except TypeError:
        got = f"{round_index!r}, {n_rounds!r}"
        raise ValueError(f"round_index, n_rounds: expected integers, got {got}") from None
    if n_rounds < 1:
        raise ValueError(f"n_rounds: expected an integer >= 1, got {n_rounds}")
    if not 0 <= round_index < n_rounds:
        raise ValueError(f"round_index: expected 0 <= round_index < n_rounds = {n_rounds}, got {round_index}")
    return round_index, n_rounds


def diversity_weight(round_index: int, n_rounds: int) -> float:
    """Weight of diversity in round ``round_index`` (0-based) of ``n_rounds``: in [0, 1].

    Linear schedule: 1.0 in the first round, 0.0 in the last, 1 - round_index / (n_rounds - 1)
    in between; a single round gets 1.0.
    """
    round_index, n_rounds = _check_round(round_index, n_rounds)
    if n_rounds == 1:
        return 1.0
    return 1.0 - round_index / (n_rounds - 1)


def adaptive_pool_factor(
    round_index: int, n_rounds: int, max_factor: float = ADAPTIVE_MAX_POOL_FACTOR
) -> float:
    """Pool factor of :func:`adaptive_hybrid`: max_factor ** diversity_weight, in [1, max_factor].

    Geometric from ``max_factor`` (default 20: k-center over the 20k most uncertain, diversity
    first) in the first round down to 1 in the last (the pool is exactly the k most uncertain, so
    the picks are pure uncertainty sampling).
    """
    w = diversity_weight(round_index, n_rounds)
    try:
        mf = float(max_factor)
    except (TypeError, ValueError):
        raise ValueError(f"max_factor: expected a number >= 1, got {max_factor!r}") from None
    if not math.isfinite(mf) or mf < 1:
        raise ValueError(f"max_factor: expected a number >= 1, got {max_factor!r}")
    return mf**w


def adaptive_hybrid(
    probs, embeddings, k: int, round_index: int, n_rounds: int, method: str = "margin", exclude=None
) -> np.ndarray:
    """:func:`hybrid` with ``pool_factor = adaptive_pool_factor(round_index, n_rounds)``.

    Leans to diversity early (pool of 20k uncertain rows in round 0) and to uncertainty later
    (pool of exactly k in the last round). Arguments and return as in :func:`hybrid`;
    round_index: 0-based, 0 <= round_index < n_rounds.
    """
    pf = adaptive_pool_factor(round_index, n_rounds)
    return hybrid(probs, embeddings, k, method=method, pool_factor=pf, exclude=exclude)
