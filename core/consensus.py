"""Consensus labels and annotator quality from a ratings matrix: majority vote, Dawid-Skene, CROWDLAB, gold scoring.

The ratings matrix
------------------
The input is the ratings matrix of :func:`core.agreement.ratings_matrix`: a 2-D array-like with
one row per sample and one column per annotator (a numpy array, a list of lists, or a polars or
pandas DataFrame whose columns are the annotators). Labels are as given — strings (Chinese or
English alike) or numbers; ``1``, ``1.0`` and ``True`` are the same label. A missing rating is
``None``, NaN or pandas' ``pd.NA``. The class list (``label_order``) is the ``labels`` argument
when given, else the distinct labels sorted (numbers ascending, then strings by code point); it
is the order of every per-class axis and of every tie-break.

Methods
-------
``majority``: strict plurality of the votes; ``dawid_skene``: the Dawid & Skene (1979) model
fitted by EM, exactly as crowd-kit's ``DawidSkene`` does it (same start, updates and stopping
rule); ``crowdlab``: cleanlab's CROWDLAB, which also weighs a model's predicted probabilities.

Degenerate input
----------------
When the data cannot support the method — no ratings, a single annotator, a single label, or no
sample rated by two annotators — :func:`consensus` still returns the majority vote where there is
one, and ``ConsensusResult.reason`` says in a sentence why the result is not what was asked for
(``None`` otherwise); Dawid-Skene and CROWDLAB qualities are then NaN. Arguments a user can get
wrong raise :class:`ValueError` naming the argument.

This module imports nothing from ``core`` (a leaf, like :mod:`core.agreement`).
"""

from __future__ import annotations

import math
import numbers
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy import sparse

from core.validation import _as_matrix

METHODS = ("majority", "dawid_skene", "crowdlab")
"""Consensus methods accepted by :func:`consensus`."""

PROBABILITY_TOLERANCE = 1e-3
"""How far from 1 a row of ``pred_probs`` may sum (the importer's rule)."""

_EPS = 1e-10  # crowd-kit's floor for probabilities before a log
_GLOBAL_RNG = threading.Lock()  # one seeded cleanlab call at a time (it draws from np.random's global state)
_NAN = float("nan")
_MISSING = -1


@dataclass(frozen=True)
class ConsensusResult:
    """What :func:`consensus` returns; n = rows of the ratings matrix, K = ``len(label_order)``.

    labels: object array (n,), the consensus label of each row (an element of ``label_order``);
      None where the row has no rating.
    confidence: float array (n,), the probability of that label in [0, 1] (majority: the winner's
      share of the votes; Dawid-Skene and CROWDLAB: its posterior probability); NaN where the row
      has no rating.
    method: the method that produced ``labels`` as asked for ("majority", "dawid_skene", "crowdlab").
    annotator_quality: polars DataFrame, one row per annotator in column order, with ``annotator``
      (str), ``quality`` (float in [0, 1], NaN when it cannot be estimated) and ``n_items`` (int,
      samples the annotator rated).
    confusion: Dawid-Skene only (empty otherwise): annotator -> ``(classes, matrix)``, ``matrix``
      a float array (C, C) whose row p is the estimated distribution of the annotator's label when
      the true label is ``classes[p]`` (rows sum to 1); ``classes`` are the classes of
      ``label_order`` that occur in the ratings. Annotators without ratings are left out.
    reason: None, or a sentence saying why the result is degenerate (see the module docstring).
    label_order: the class list (K,): tie-breaks, ``pred_probs`` columns and ``confusion`` follow it.
    iterations: EM iterations run (Dawid-Skene), else None.
    """

    labels: np.ndarray
    confidence: np.ndarray
    method: str
    annotator_quality: pl.DataFrame
    confusion: dict = field(default_factory=dict)
    reason: str | None = None
    label_order: list = field(default_factory=list)
    iterations: int | None = None


# ---------------------------------------------------------------------------------------------
# Input normalisation and label coding
# ---------------------------------------------------------------------------------------------
def _label_sort_key(value: Any) -> tuple:
    if isinstance(value, numbers.Real):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _sorted_labels(labels: set) -> list:
    try:
        return sorted(labels)
    except TypeError:  # mixed numbers and strings: numbers first, then strings
        return sorted(labels, key=_label_sort_key)


def _missing_mask(values: np.ndarray) -> np.ndarray:
    """True where a cell is missing: None, NaN or pd.NA (numeric arrays: NaN)."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "biu":
        return np.zeros(values.shape, dtype=bool)
    return pd.isna(values)


def _class_list(labels: Any) -> list | None:
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)):
        raise ValueError("labels: expected a sequence of class labels, got a single string")
    try:
        order = list(labels)
    except TypeError as exc:
        raise ValueError(f"labels: expected a sequence of class labels; {exc}") from exc
    if any(v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) for v in order):
        raise ValueError("labels: a class label cannot be missing (None/NaN)")
    try:
        distinct = len(set(order))
    except TypeError as exc:
        raise ValueError(f"labels: class labels must be strings or numbers; {exc}") from exc
    if distinct != len(order):
        raise ValueError("labels: expected distinct class labels")
    return order


def _encode(matrix: np.ndarray, labels: list | None, name: str = "ratings") -> tuple[np.ndarray, list]:
    """Codes (same shape as ``matrix``, int64, -1 = missing) indexing the class list, and the class list."""
    flat = matrix.reshape(-1)
    present = ~_missing_mask(flat)
    values = flat[present]
    try:
        # hashing, not sorting: O(n) on a million object cells
        raw, uniques = pd.factorize(values)
    except TypeError as exc:
        raise ValueError(f"{name}: labels must be strings or numbers (hashable); {exc}") from exc
    uniques = uniques.tolist() if isinstance(uniques, np.ndarray) else list(uniques)
    try:
        # a dict merges what pandas may keep apart: 1, 1.0 and True are one label
        order = labels if labels is not None else _sorted_labels(set(uniques))
        lookup = {label: code for code, label in enumerate(order)}
    except TypeError as exc:
        raise ValueError(f"{name}: labels must be strings or numbers (hashable); {exc}") from exc
    unknown = [u for u in uniques if u not in lookup]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise ValueError(f"labels: the ratings use {len(unknown)} label(s) not in labels, e.g. {shown}")
    remap = np.fromiter((lookup[u] for u in uniques), dtype=np.int64, count=len(uniques))
    codes = np.full(flat.shape, _MISSING, dtype=np.int64)
    codes[present] = remap[raw] if remap.size else raw
    return codes.reshape(matrix.shape), list(order)


def _annotator_names(annotators: Any, ratings: Any, n_columns: int) -> list[str]:
    if annotators is None:
        if isinstance(ratings, (pl.DataFrame, pd.DataFrame)):
            return [str(c) for c in ratings.columns]
        return [str(k) for k in range(n_columns)]
    if isinstance(annotators, (str, bytes)):
        raise ValueError("annotators: expected a sequence of names, one per ratings column, got a single string")
    names = [str(a) for a in annotators]
    if len(names) != n_columns:
        raise ValueError(f"annotators: expected {n_columns} names (one per ratings column), got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError("annotators: names must be unique")
    return names


def _unit_counts(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_samples, K) int64: how many annotators gave each class to each sample."""
    n_samples = codes.shape[0]
    present = codes >= 0
    rows = np.broadcast_to(np.arange(n_samples)[:, None], codes.shape)[present]
    flat = rows * n_classes + codes[present]
    return np.bincount(flat, minlength=n_samples * n_classes).reshape(n_samples, n_classes)


def _safe_divide(numerator: Any, denominator: Any) -> np.ndarray:
    """Elementwise numerator / denominator, NaN where the denominator is 0 (and no warning)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast_shapes(numerator.shape, denominator.shape), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _whole_number(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected a whole number ≥ {minimum}, got {value!r}")
    return int(value)


def _quality_frame(names: Sequence[str], quality: np.ndarray, n_items: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {"annotator": list(names), "quality": np.asarray(quality, dtype=float), "n_items": np.asarray(n_items)},
        schema={"annotator": pl.Utf8, "quality": pl.Float64, "n_items": pl.Int64},
    )


def _labels_of(codes: np.ndarray, order: list) -> np.ndarray:
    """Object array of class labels for codes, None where the code is -1."""
    out = np.full(codes.shape[0], None, dtype=object)
    if order:
        classes = np.empty(len(order), dtype=object)
        classes[:] = order
        known = codes >= 0
        out[known] = classes[codes[known]]
    return out


def _degenerate_reason(codes: np.ndarray, order: list, names: list[str]) -> str | None:
    """Why the ratings cannot support a model of annotator quality, or None."""
    if codes.size == 0:
        return "the ratings matrix is empty (no samples or no annotators)"
    present = codes >= 0
    if not present.any():
        return "the ratings matrix holds no ratings (every cell is missing)"
    raters = np.flatnonzero(present.any(axis=0))
    if raters.size == 1:
        return (
            f"only annotator {names[raters[0]]!r} gave ratings: with a single annotator there is no second "
            "opinion to estimate quality from, so the labels are that annotator's own"
        )
    used = np.flatnonzero(np.bincount(codes[present], minlength=len(order)))
    if used.size == 1:
        return (
            f"every rating is the same label ({order[used[0]]!r}): there is nothing to tell the annotators "
            "apart, so the labels are that label and quality cannot be estimated"
        )
    if not (present.sum(axis=1) >= 2).any():
        return (
            "no sample was rated by two or more annotators: without overlap between annotators quality "
            "cannot be estimated, so the labels are each sample's single rating"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Majority vote
# ---------------------------------------------------------------------------------------------
def _majority(codes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: winning code (-1 when unrated), its vote share (NaN when unrated), and whether it is tied."""
    counts = _unit_counts(codes, n_classes)
    m = counts.sum(axis=1)
    if n_classes == 0:
        empty = np.full(codes.shape[0], _MISSING, dtype=np.int64)
        return empty, np.full(codes.shape[0], np.nan), np.zeros(codes.shape[0], dtype=bool)
    top = counts.max(axis=1)
    winner = np.where(m > 0, counts.argmax(axis=1), _MISSING)  # argmax: the first tied class in label order
    tied = (m > 0) & ((counts == top[:, None]).sum(axis=1) >= 2)
    return winner, _safe_divide(top, m), tied


def _majority_quality(codes: np.ndarray, winner: np.ndarray, tied: np.ndarray) -> np.ndarray:
    """Per annotator: share of their ratings equal to the majority label, on samples with ≥ 2 ratings and no tie."""
    compared = ((codes >= 0).sum(axis=1) >= 2) & ~tied
    mine = (codes >= 0) & compared[:, None]
    agree = mine & (codes == winner[:, None])
    return _safe_divide(agree.sum(axis=0), mine.sum(axis=0))


# ---------------------------------------------------------------------------------------------
# Dawid-Skene
# ---------------------------------------------------------------------------------------------
def _rating_patterns(codes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of ``codes``: (patterns (P, r), inverse (n,) row -> pattern, multiplicity (P,)).

    Rows with the same ratings by the same annotators have the same posterior at every EM step,
    so EM runs once per pattern: 1M samples rated 3 of 5 annotators with 6 classes have ≤ 2,160.
    """
    n, r = codes.shape
    base = n_classes + 1
    if r * math.log2(base) >= 62:  # the row key would overflow int64: one pattern per row
        return codes, np.arange(n), np.ones(n, dtype=np.int64)
    key = np.zeros(n, dtype=np.int64)
    for j in range(r):
        key = key * base + (codes[:, j] + 1)
    _, first, inverse, multiplicity = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    return codes[first], inverse.reshape(-1), multiplicity


def _dawid_skene_em(
    codes: np.ndarray, n_classes: int, n_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Dawid-Skene by EM, step for step as crowd-kit 1.4.2's ``DawidSkene.fit``.

    codes: (n, r) int64 class codes in [0, K), -1 = missing; every row has ≥ 1 rating and every
    class occurs. Returns ``(posterior (n, K), errors (r, K, K), iterations)`` where
    ``errors[j, l, c]`` = P(annotator j says l | true class c) (columns sum to 1; all zeros for an
    annotator without ratings, and zero rows for labels the annotator never used, as in crowd-kit).
    """
    # hand-written: crowd-kit's DawidSkene (pandas joins per step) needs ~28 s of CPU on 1M samples
    # × 3 labels, over the 10 s target; this is its EM over distinct rating patterns with sparse
    # products (~1 s), tested against crowd-kit (same labels, qualities within 1e-6)
    r = codes.shape[1]
    K = n_classes
    patterns, inverse, multiplicity = _rating_patterns(codes, K)
    weight = multiplicity.astype(float)
    rows, cols = np.nonzero(patterns >= 0)
    given = patterns[rows, cols]
    # A[p, j*K + l] = 1 when pattern p holds annotator j's label l
    A = sparse.csr_array((np.ones(rows.size), (rows, cols * K + given)), shape=(patterns.shape[0], r * K))
    AT = A.T.tocsr()
    used = (AT @ weight) > 0  # (annotator, label) pairs that occur; crowd-kit keeps only those
    n_ratings = (patterns >= 0).sum(axis=1).astype(float)
    total_ratings = float(weight @ n_ratings)
    n_tasks = float(weight.sum())

    def m_step(probas: np.ndarray) -> np.ndarray:
        errors = AT @ (probas * weight[:, None])  # (r*K, K) expected counts
        errors = np.where(used[:, None], np.maximum(errors, _EPS), 0.0).reshape(r, K, K)
        totals = errors.sum(axis=1, keepdims=True)
        return np.divide(errors, totals, out=np.zeros_like(errors), where=totals > 0)

    def logs(errors: np.ndarray, log: Any) -> np.ndarray:
        flat = errors.reshape(r * K, K)
        return log(flat, out=np.zeros_like(flat), where=used[:, None])

    def e_step(priors: np.ndarray, errors: np.ndarray) -> np.ndarray:
        # base 2 and a row-max shift, as crowd-kit: products of many probabilities underflow
        loglik = np.log2(np.maximum(priors, _EPS)) + A @ logs(errors, np.log2)
        scaled = np.exp2(loglik - loglik.max(axis=1, keepdims=True))
        return scaled / scaled.sum(axis=1, keepdims=True)

    def evidence_lower_bound(probas: np.ndarray, priors: np.ndarray, errors: np.ndarray) -> float:
        # crowd-kit adds the log prior once per rating, not once per task; kept for the same stopping
        per_class = A @ logs(errors, np.log) + n_ratings[:, None] * np.log(np.maximum(priors, _EPS))
        joint = float(weight @ (probas * per_class).sum(axis=1))
        clipped = np.maximum(probas, _EPS)
        entropy = -float(weight @ (clipped * np.log(clipped)).sum(axis=1))
        return (joint + entropy) / total_ratings

    counts = np.bincount(rows * K + given, minlength=patterns.shape[0] * K).reshape(-1, K).astype(float)
    probas = counts / counts.sum(axis=1, keepdims=True)  # majority-vote start
    priors = (weight @ probas) / n_tasks
    errors = m_step(probas)
    loss = -np.inf
    iterations = 0
    for _ in range(n_iter):
        probas = e_step(priors, errors)
        priors = (weight @ probas) / n_tasks
        errors = m_step(probas)
        iterations += 1
        new_loss = evidence_lower_bound(probas, priors, errors)
        if new_loss - loss < tol:
            break
        loss = new_loss
    return probas[inverse], errors, iterations


# ---------------------------------------------------------------------------------------------
# CROWDLAB
# ---------------------------------------------------------------------------------------------
def _check_pred_probs(pred_probs: Any, n_rows: int, n_classes: int, rated: np.ndarray) -> np.ndarray:
    if pred_probs is None:
        raise ValueError(
            "pred_probs: CROWDLAB needs a model's predicted probabilities for the samples (n_samples × n_classes, "
            "columns in the order of labels); it runs only where a model round has probabilities — "
            "use method='dawid_skene' or 'majority' otherwise"
        )
    try:
        probs = np.asarray(pred_probs.to_numpy() if isinstance(pred_probs, pl.DataFrame) else pred_probs, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pred_probs: expected a numeric array (n_samples × n_classes); {exc}") from exc
    if probs.shape != (n_rows, n_classes):
        raise ValueError(
            f"pred_probs: expected shape ({n_rows}, {n_classes}) (one row per ratings row, one column per class "
            f"in labels), got {probs.shape}"
        )
    lacking = rated & ~np.isfinite(probs).all(axis=1)
    if lacking.any():
        rows = np.flatnonzero(lacking)
        raise ValueError(
            f"pred_probs: {rows.size} rated row(s) lack probabilities (NaN), e.g. row {rows[0]}; CROWDLAB runs only "
            "where a model round has probabilities for the samples — pass those samples only"
        )
    checked = probs[rated]
    bad = (checked < 0).any(axis=1) | (np.abs(checked.sum(axis=1) - 1.0) > PROBABILITY_TOLERANCE)
    if bad.any():
        row = int(np.flatnonzero(rated)[np.flatnonzero(bad)[0]])
        raise ValueError(
            f"pred_probs: {int(bad.sum())} row(s) are not probabilities (negative, or not summing to 1 within "
            f"{PROBABILITY_TOLERANCE:g}), e.g. row {row}"
        )
    return probs


def _crowdlab(codes: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CROWDLAB on the rated rows. Returns per-row codes and posterior of the consensus, per-annotator quality."""
    from cleanlab.multiannotator import get_label_quality_multiannotator

    n, r = codes.shape
    rated = (codes >= 0).any(axis=1)
    active = (codes[rated] >= 0).any(axis=0)  # cleanlab rejects annotators without a label
    sub = codes[rated][:, active].astype(float)
    sub[sub < 0] = np.nan
    frame = pd.DataFrame(sub, columns=range(int(active.sum())))
    with _GLOBAL_RNG:
        state = np.random.get_state()
        try:
            # cleanlab breaks its last ties with np.random: seed it for repeatable labels, then restore
            np.random.seed(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = get_label_quality_multiannotator(frame, probs[rated], verbose=False,
                                                       return_detailed_quality=False)
        finally:
            np.random.set_state(state)
    label_quality = out["label_quality"]
    winner = np.full(n, _MISSING, dtype=np.int64)
    winner[rated] = label_quality["consensus_label"].to_numpy().astype(np.int64)
    confidence = np.full(n, np.nan)
    confidence[rated] = label_quality["consensus_quality_score"].to_numpy(dtype=float)
    quality = np.full(r, np.nan)
    quality[active] = out["annotator_stats"]["annotator_quality"].reindex(frame.columns).to_numpy(dtype=float)
    return winner, confidence, quality


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def consensus(
    ratings: Any,
    method: str = "majority",
    annotators: Sequence | None = None,
    pred_probs: Any = None,
    labels: Sequence | None = None,
    n_iter: int = 100,
    tol: float = 1e-5,
) -> ConsensusResult:
    """One consensus label per sample, its confidence, and the quality of each annotator.

    ratings: ratings matrix, shape (n, r) (see the module docstring).
    method: "majority" (default), "dawid_skene" or "crowdlab".

    * majority — the label with the most votes; on a tie the tied label that comes first in
      ``label_order`` wins (deterministic; the same rule as ``core.agreement.majority_vote``).
      confidence = the winner's share of the votes (0.5 on an A/B tie). quality = share of the
      annotator's ratings equal to the majority label, over samples with ≥ 2 ratings and no tie
      (a tie has no majority to agree with; the annotator's own vote counts).
    * dawid_skene — EM with a full confusion matrix per annotator, started from the majority vote
      and stopped after ``n_iter`` iterations or when the per-rating evidence lower bound gains
      less than ``tol`` (crowd-kit's defaults and rule; a negative ``tol`` runs every iteration).
      confidence = posterior probability of the label; quality = mean of the diagonal of the
      annotator's confusion matrix over the classes that occur (its mean per-class accuracy);
      ``confusion`` holds the matrices.
    * crowdlab — cleanlab's ``get_label_quality_multiannotator`` (CROWDLAB): needs
      ``pred_probs`` and ``labels``. confidence = CROWDLAB's consensus quality score (the
      posterior probability of the label); quality = cleanlab's annotator quality. Samples without
      ratings are left out of the fit.

    annotators: r names in column order (default: the DataFrame's column names, or "0".."r-1").
    pred_probs: crowdlab only (ignored otherwise): float array (n, K), a model's out-of-sample
      probabilities, columns in the order of ``labels``; every rated row needs them (non-negative,
      summing to 1 within 1e-3).
    labels: the class list (default: the distinct labels of ``ratings``, sorted); must contain
      every label used; required for crowdlab, where it names the ``pred_probs`` columns.
    n_iter: maximum EM iterations (≥ 0, default 100); tol: EM stopping tolerance (default 1e-5).

    Degenerate input (no ratings, one annotator, one label, no sample rated twice) gives the
    majority vote with ``reason`` set (quality NaN for dawid_skene and crowdlab).
    Raises ValueError naming the argument on bad arguments.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    n_iter = _whole_number(n_iter, "n_iter", 0)
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or math.isnan(tol):
        raise ValueError(f"tol: expected a number, got {tol!r}")
    matrix = _as_matrix(ratings)
    names = _annotator_names(annotators, ratings, matrix.shape[1])
    order = _class_list(labels)
    if method == "crowdlab" and order is None:
        raise ValueError("labels: CROWDLAB needs the class list, in the order of the pred_probs columns")
    codes, order = _encode(matrix, order)
    n_items = (codes >= 0).sum(axis=0)
    rated = (codes >= 0).any(axis=1)
    probs = _check_pred_probs(pred_probs, codes.shape[0], len(order), rated) if method == "crowdlab" else None
    reason = _degenerate_reason(codes, order, names)

    if method == "majority" or reason is not None:
        winner, confidence, tied = _majority(codes, len(order))
        if method == "majority":
            quality = _majority_quality(codes, winner, tied)
            return ConsensusResult(_labels_of(winner, order), confidence, method,
                                   _quality_frame(names, quality, n_items), {}, reason, order)
        return ConsensusResult(_labels_of(winner, order), confidence, method,
                               _quality_frame(names, np.full(len(names), np.nan), n_items), {}, reason, order)
    if method == "crowdlab":
        winner, confidence, quality = _crowdlab(codes, probs)
        return ConsensusResult(_labels_of(winner, order), confidence, method, _quality_frame(names, quality, n_items),
                               {}, None, order)

    # EM over the classes that occur, so unused entries of the class list change nothing
    occurring = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(order)))
    local = np.full(len(order), _MISSING, dtype=np.int64)
    local[occurring] = np.arange(occurring.size)
    sub = np.where(codes >= 0, local[np.maximum(codes, 0)], _MISSING)
    posterior, errors, iterations = _dawid_skene_em(sub[rated], occurring.size, n_iter, float(tol))
    winner = np.full(codes.shape[0], _MISSING, dtype=np.int64)
    winner[rated] = occurring[posterior.argmax(axis=1)]  # an exact tie goes to the first in label order
    confidence = np.full(codes.shape[0], np.nan)
    confidence[rated] = posterior.max(axis=1)
    classes = [order[c] for c in occurring]
    quality = np.full(len(names), np.nan)
    confusion = {}
    for j, name in enumerate(names):
        if n_items[j]:
            matrix_j = errors[j].T.copy()  # rows: true class, columns: the annotator's label
            quality[j] = float(np.mean(np.diagonal(matrix_j)))
            confusion[name] = (classes, matrix_j)
    return ConsensusResult(_labels_of(winner, order), confidence, method, _quality_frame(names, quality, n_items),
                           confusion, None, order, iterations)


# ---------------------------------------------------------------------------------------------
# Gold (honeypot) questions
# ---------------------------------------------------------------------------------------------
def _kappa_from_pairs(pairs: np.ndarray, n_classes: int) -> np.ndarray:
    """Cohen's kappa of each row of (B, m) pair codes (a*K + g); NaN where chance agreement is 1."""
    B, m = pairs.shape
    if m == 0:
        return np.full(B, np.nan)
    offsets = (np.arange(B) * n_classes * n_classes)[:, None]
    table = np.bincount((pairs + offsets).reshape(-1), minlength=B * n_classes * n_classes)
    table = table.reshape(B, n_classes, n_classes).astype(float) / m
    observed = np.trace(table, axis1=1, axis2=2)
    expected = (table.sum(axis=2) * table.sum(axis=1)).sum(axis=1)
    return _safe_divide(observed - expected, 1.0 - expected)


def annotator_accuracy_on_gold(
    ratings: Any, gold: Any, annotators: Sequence | None = None, n_boot: int = 1000, seed: int | None = 0
) -> pl.DataFrame:
    """Each annotator scored against the gold (honeypot) labels of the samples they rated.

    ratings: ratings matrix, shape (n, r). gold: 1-D sequence of n gold labels, one per ratings
    row, missing (None/NaN/pd.NA) where the sample is not a gold question. annotators: r names
    (as in :func:`consensus`). n_boot: bootstrap resamples (≥ 1, default 1000). seed: seed of
    numpy's default_rng (default 0; the same seed gives the same interval), or None.
    An annotator's gold items are the gold samples they rated. accuracy = share of those where
    their label equals the gold label; kappa = Cohen's kappa between their labels and the gold
    labels on those items (scikit-learn's ``cohen_kappa_score``); kappa_low / kappa_high = the
    2.5 % and 97.5 % percentiles of kappa over ``n_boot`` resamples of those items with
    replacement (resamples where kappa is undefined are skipped).
    Returns a polars DataFrame, one row per annotator in column order: ``annotator`` (str),
    ``n_gold`` (int), ``accuracy``, ``kappa``, ``kappa_low``, ``kappa_high`` (float; NaN when
    undefined) and ``reason`` (str, why kappa is NaN; null when defined). Kappa is undefined
    without gold items, or when the annotator and the gold use one and the same single label.
    """
    n_boot = _whole_number(n_boot, "n_boot", 1)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed: expected a non-negative whole number or None, got {seed!r}")
    matrix = _as_matrix(ratings)
    names = _annotator_names(annotators, ratings, matrix.shape[1])
    if isinstance(gold, (str, bytes)) or gold is None:
        raise ValueError("gold: expected a sequence with one gold label (or a missing value) per ratings row")
    truth = gold.to_numpy() if isinstance(gold, (pl.Series, pd.Series)) else np.array(list(gold), dtype=object)
    if truth.ndim != 1 or truth.shape[0] != matrix.shape[0]:
        raise ValueError(f"gold: expected {matrix.shape[0]} labels (one per ratings row), got shape {truth.shape}")
    joined = np.empty((matrix.shape[0], matrix.shape[1] + 1), dtype=object)
    joined[:, :-1] = matrix
    joined[:, -1] = truth
    codes, order = _encode(joined, None)
    gold_codes, codes = codes[:, -1], codes[:, :-1]
    K = len(order)
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("annotator", "n_gold", "accuracy", "kappa", "kappa_low", "kappa_high",
                                             "reason")}
    for j, name in enumerate(names):
        both = (codes[:, j] >= 0) & (gold_codes >= 0)
        mine, true = codes[both, j], gold_codes[both]
        m = int(both.sum())
        pairs = (mine * K + true)[None, :]
        kappa = float(_kappa_from_pairs(pairs, K)[0]) if m else _NAN
        low = high = _NAN
        if m == 0:
            reason = "the annotator rated no gold question"
        elif np.isnan(kappa):
            reason = (f"the annotator and the gold both use only the label {order[int(true[0])]!r}; "
                      "kappa is undefined when only one label is used")
        else:
            reason = None
            stats = []
            batch = max(1, (1 << 22) // m)  # bounds memory to ~32 MB a batch
            for start in range(0, n_boot, batch):
                picked = pairs[0][rng.integers(0, m, size=(min(batch, n_boot - start), m))]
                stats.append(_kappa_from_pairs(picked, K))
            values = np.concatenate(stats)
            values = values[~np.isnan(values)]
            if values.size:
                low, high = (float(v) for v in np.quantile(values, [0.025, 0.975]))
        for column, value in zip(rows, (name, m, float(np.mean(mine == true)) if m else _NAN, kappa, low, high,
                                        reason)):
            rows[column].append(value)
    return pl.DataFrame(
        rows,
        schema={"annotator": pl.Utf8, "n_gold": pl.Int64, "accuracy": pl.Float64, "kappa": pl.Float64,
                "kappa_low": pl.Float64, "kappa_high": pl.Float64, "reason": pl.Utf8},
    )


__all__ = ["METHODS", "ConsensusResult", "annotator_accuracy_on_gold", "consensus"]
