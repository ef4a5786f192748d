"""Data quality checks: exact/near duplicates, completeness, cleaning findings, PII detection and masking, suspected label errors."""

from __future__ import annotations

import bisect
import datetime as _dt
import html
import ipaddress
import math
import numbers
import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "CLEANING_KINDS",
    "COMPLETENESS_KINDS",
    "DEFAULT_SHINGLE",
    "PII_KINDS",
    "clean_text",
    "cleaning_findings",
    "combine_fields",
    "completeness_issues",
    "exact_duplicates",
    "find_pii",
    "mask_pii",
    "near_duplicate_pairs",
    "near_duplicates",
    "normalize_text",
    "out_of_fold_probs",
    "shingles",
    "suspected_label_errors",
]

Finding = tuple[str, int, int, str]

# ---------------------------------------------------------------------------
# Normalization and shingles
# ---------------------------------------------------------------------------

#: Shingle scheme: overlapping character 3-grams of the normalized text, spaces included.
#: One scheme for both scripts, with no word segmentation: 3 characters are about one or two
#: Chinese words and a syllable-sized piece of English. A one-character edit changes at most
#: 3 shingles, so a 30-character Chinese sentence with one edit keeps Jaccard ~0.8, while
#: unrelated English texts (the worst case for short shingles) share well under 30% of their
#: 3-grams. A text shorter than 3 characters is a single shingle: itself.
DEFAULT_SHINGLE = 3


def normalize_text(text: str | None) -> str:
    """Return ``text`` in Unicode NFKC, case-folded, with whitespace runs collapsed to one space and ends stripped.

    ``None`` becomes ``""``. NFKC also folds full-width letters and digits to ASCII.
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ValueError(f"expected text as a string, got {type(text).__name__}")
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def shingles(text: str, k: int = DEFAULT_SHINGLE) -> set[str]:
    """Return the set of character ``k``-grams of ``text`` as given (normalize it first).

    An empty text has no shingles; a non-empty text shorter than ``k`` is one shingle, itself.
    """
    _check_shingle(k)
    if not text:
        return set()
    if len(text) < k:
        return {text}
    return {text[i : i + k] for i in range(len(text) - k + 1)}


def _check_shingle(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"shingle length must be a positive integer, got {k!r}")


def _jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def combine_fields(df: pl.DataFrame, fields: Sequence[str] = ("instruction", "input", "output"), sep: str = "\n") -> list[str]:
    """Join the chosen text fields of each row (missing columns and nulls skipped) into one text per row.

    Use it to feed :func:`exact_duplicates` / :func:`near_duplicates` "across the chosen text fields".
    A row whose ``text`` contains every other chosen field's value (a conversation's whole text, see
    ``core.records``) gives its ``text`` alone: joining would repeat the conversation.
    """
    if not isinstance(df, pl.DataFrame):
        raise ValueError("expected a polars DataFrame")
    present = [f for f in fields if f in df.columns]
    if not present:
        raise ValueError(f"none of the text fields {list(fields)} is a column of the data set")
    columns = [df.get_column(f).cast(pl.Utf8).to_list() for f in present]
    joined = [sep.join(v for v in row if v) for row in zip(*columns)]
    if "text" in present and len(present) > 1:
        # a conversation's `text` is the whole record (core.records: chat, ShareGPT, preference pairs), holding
        # its prompt, context and answer: use it alone, else every conversation is read twice (near-duplicate
        # views, embeddings). Told by content, so a file whose `text` column is independent keeps every field.
        t = present.index("text")
        for i, row in enumerate(zip(*columns)):
            whole = row[t]
            if whole and all(v in whole for j, v in enumerate(row) if j != t and v):
                joined[i] = whole
    return joined


# ---------------------------------------------------------------------------
# Duplicates
# ---------------------------------------------------------------------------


def exact_duplicates(texts: Sequence[str | None]) -> list[list[int]]:
    """Group row indices whose texts are equal after :func:`normalize_text`.

    Returns groups of two or more indices, each sorted, groups ordered by their first index.
    Texts that normalize to ``""`` are not grouped (empty fields are a completeness issue).
    """
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        n = normalize_text(t)
        if n:
            groups.setdefault(n, []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


_MASK32 = np.uint64(0xFFFFFFFF)
_MASK64 = (1 << 64) - 1
_FMIX64 = (33, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53)
# Polynomial base of the shingle key: 2**21 packs up to three code points (21 bits each)
# into 64 bits without loss; longer shingles use an odd 64-bit multiplier (a hash, not a packing).
_PACK_BASE = 1 << 21
_HASH_BASE = 0x9E3779B97F4A7C15


def _shingle_base(k: int) -> int:
    return _PACK_BASE if k <= 3 else _HASH_BASE


def _shingle_hash32(shingle: str, k: int = DEFAULT_SHINGLE) -> int:
    """32-bit hash of one shingle: the scalar twin of the vectorized hashing in ``_signatures``.

    Usable as ``hashfunc`` of a ``datasketch.MinHash`` (scheme ``affine32``) to reproduce our signatures.
    """
    base = _shingle_base(k)
    key = 0
    for ch in shingle:
        key = (key * base + ord(ch)) & _MASK64
    if len(shingle) < k:  # a short text is one shingle: pad so it cannot equal a real k-gram
        for _ in range(k - len(shingle)):
            key = (key * base + 0x1FFFFF) & _MASK64
    s, m1, m2 = _FMIX64
    key ^= key >> s
    key = (key * m1) & _MASK64
    key ^= key >> s
    key = (key * m2) & _MASK64
    key ^= key >> s
    return key & 0xFFFFFFFF


def _fmix64(h: np.ndarray) -> np.ndarray:
    s, m1, m2 = (np.uint64(x) for x in _FMIX64)
    h = h ^ (h >> s)
    h = h * m1
    h = h ^ (h >> s)
    h = h * m2
    return h ^ (h >> s)


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3 32-bit finalizer, the pre-mix datasketch's "affine32" scheme applies to each input hash.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _signatures(norm_texts: Sequence[str], k: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures (uint32, one row per non-empty text), identical to
    ``datasketch.MinHash(num_perm, seed, hashfunc=_shingle_hash32).update_batch(shingles)``.

    Vectorized with numpy because per-text datasketch updates hash each shingle in Python
    (~200k texts x ~100 shingles is minutes); the permutation parameters are datasketch's own.
    """
    from datasketch import MinHash

    perm_a, perm_b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    perm_a = perm_a.astype(np.uint32)[:, None]
    perm_b = perm_b.astype(np.uint32)[:, None]
    base = np.uint64(_shingle_base(k))
    pad = np.uint64(0x1FFFFF)
    out = np.empty((len(norm_texts), num_perm), dtype=np.uint32)
    # Chunks keep the (num_perm x shingles) work matrix near 64 MB; it is laid out permutation-major
    # because numpy's min.reduceat is several times faster along the contiguous axis.
    max_shingles = max(1, (64 << 20) // (4 * num_perm))
    work = np.empty(num_perm * max_shingles, dtype=np.uint32)
    i = 0
    while i < len(norm_texts):
        j, total = i, 0
        while j < len(norm_texts):
            size = max(1, len(norm_texts[j]) - k + 1)
            if j > i and total + size > max_shingles:
                break
            total += size
            j += 1
        chunk = norm_texts[i:j]
        lengths = np.fromiter((len(t) for t in chunk), dtype=np.int64, count=len(chunk))
        cps = np.frombuffer("".join(chunk).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        # Pad every text to at least k code points with a non-character so a short text is one shingle.
        if (lengths < k).any():
            pieces, start = [], 0
            for length in lengths.tolist():
                pieces.append(cps[start : start + length])
                if length < k:
                    pieces.append(np.full(k - length, pad, dtype=np.uint64))
                start += length
            cps = np.concatenate(pieces)
            lengths = np.maximum(lengths, k)
        n_pos = len(cps) - k + 1
        keys = np.zeros(n_pos, dtype=np.uint64)
        for off in range(k):
            keys = keys * base + cps[off : off + n_pos]
        n_sh = lengths - k + 1
        # keep positions whose k-gram lies inside one text: text t owns starts[t] .. starts[t] + n_sh[t] - 1
        valid = np.ones(n_pos, dtype=bool)
        ends = np.cumsum(lengths)
        for off in range(1, k):
            cut = ends[:-1] - off
            valid[cut[cut >= 0]] = False
        h32 = (_fmix64(keys[valid]) & _MASK32).astype(np.uint32)
        hv = _fmix32(h32)[None, :]
        if hv.shape[1] <= max_shingles:
            mat = work[: num_perm * hv.shape[1]].reshape(num_perm, hv.shape[1])
            np.multiply(perm_a, hv, out=mat)
            mat += perm_b
            seg = np.concatenate(([0], np.cumsum(n_sh)[:-1]))
            out[i:j] = np.minimum.reduceat(mat, seg, axis=1).T
        else:
            # A single text with more shingles than the work matrix holds (the chunking above
            # gives it a chunk of its own): fold the minimum over slices of its shingles. The
            # minimum does not depend on how the shingles are split, so the signature is the same.
            row = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
            for s in range(0, hv.shape[1], max_shingles):
                part = hv[:, s : s + max_shingles]
                mat = work[: num_perm * part.shape[1]].reshape(num_perm, part.shape[1])
                np.multiply(perm_a, part, out=mat)
                mat += perm_b
                np.minimum(row, mat.min(axis=1), out=row)
            out[i] = row
        i = j
    return out


def _lsh_params(threshold: float, num_perm: int, target: float = 0.99) -> tuple[int, int]:
    # datasketch's optimizer balances false positives against false negatives, which leaves recall
    # at the threshold itself near 0.4-0.9; we want >= 0.99 there and verify every pair exactly,
    # so pick the longest band (fewest false candidates) that still meets the target.
    best = (num_perm, 1)
    for r in range(1, num_perm // 2 + 1):
        b = num_perm // r
        if b < 2:
            break
        if 1.0 - (1.0 - threshold**r) ** b >= target:
            best = (b, r)
    return best


#: Largest LSH bucket whose pairs are all listed. A bucket holds the texts that agree on one band of
#: their signatures; on templated data (the same request phrase and canned reply with a few words
#: changed) a band often takes all its minima from the shared template, and its bucket grows with the
#: data set: thousands of texts whose pairs are mostly at Jaccard 0.4-0.6, so listing every pair is
#: quadratic in time and memory. A bucket above this size is split by the next band (cyclically), and
#: again, until its parts are small: its pairs must then agree on 2r, 3r... values. A pair at the
#: threshold is still found through its other bands, see :func:`near_duplicate_pairs`.
MAX_BUCKET = 32
_MIX = np.uint64(_HASH_BASE)


def _band_keys(sig: np.ndarray, band: int, r: int) -> np.ndarray:
    """64-bit key of each row's ``band``: its ``r`` values packed by a polynomial and mixed."""
    block = sig[:, band * r : (band + 1) * r]
    h = block[:, 0].astype(np.uint64)
    for col in range(1, r):
        h = h * _MIX + block[:, col]
    return _fmix64(h)


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs (2+) of equal values in sorted ``keys``."""
    if len(keys) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    lengths = np.diff(np.append(starts, len(keys)))
    keep = lengths > 1
    return starts[keep], lengths[keep]


def _run_pair_codes(members: np.ndarray, starts: np.ndarray, lengths: np.ndarray, n: int) -> np.ndarray:
    """Codes ``a * n + b`` (a < b) of every pair inside each run ``members[start : start + length]``."""
    parts = [np.zeros(0, dtype=np.int64)]
    for size in np.unique(lengths).tolist():
        st = starts[lengths == size]
        ia, ib = np.triu_indices(size, k=1)
        x, y = members[st[:, None] + ia[None, :]].ravel(), members[st[:, None] + ib[None, :]].ravel()
        parts.append(np.minimum(x, y) * n + np.maximum(x, y))
    return np.concatenate(parts)


def _band_pair_codes(sig: np.ndarray, b: int, r: int, max_bucket: int | None = None):
    """Yield, band by band, the codes ``a * n + b`` (a < b) of rows that share a bucket of that band.

    With ``max_bucket``, a bucket larger than that is split by the keys of the following bands until
    its parts are no larger (a part whose rows agree on every band is kept whole: they are equal
    signatures, real near duplicates), so a band yields at most ``n * max_bucket / 2`` codes.
    """
    n = len(sig)
    keys: dict[int, np.ndarray] = {}

    def key(band: int) -> np.ndarray:
        if band not in keys:
            keys[band] = _band_keys(sig, band, r)
        return keys[band]

    for band in range(b):
        idx = np.arange(n, dtype=np.int64)
        k = key(band)
        for ext in range(b):
            order = np.argsort(k, kind="stable")
            idx, k = idx[order], k[order]
            starts, lengths = _runs(k)
            small = np.ones(len(starts), dtype=bool) if max_bucket is None or ext == b - 1 else lengths <= max_bucket
            if small.any():
                yield _run_pair_codes(idx, starts[small], lengths[small], n)
            if small.all():
                break
            big_st, big_len = starts[~small], lengths[~small]
            # members of the big buckets, each bucket told apart by its key, extended with the next band's key
            pos = np.repeat(big_st - np.cumsum(np.concatenate(([0], big_len[:-1]))), big_len) + np.arange(big_len.sum())
            idx, k = idx[pos], k[pos]
            k = _fmix64(k * _MIX + key((band + ext + 1) % b)[idx])


def _estimates(sig: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """MinHash Jaccard estimate (share of equal signature values) of each pair code ``a * n + b``, in chunks."""
    n = len(sig)
    out = np.empty(len(codes), dtype=np.float64)
    step = 1 << 15
    for s in range(0, len(codes), step):
        c = codes[s : s + step]
        out[s : s + step] = (sig[c // n] == sig[c % n]).mean(axis=1)
    return out


def _candidate_pairs(sig: np.ndarray, b: int, r: int, seed: int, backend: str,
                     max_bucket: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a < b) of signature rows that agree on all ``r`` values of at least one of ``b`` bands
    (``max_bucket``: large buckets split further, see :func:`_band_pair_codes`; numpy backend only)."""
    n = len(sig)
    parts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    if backend == "datasketch":
        from datasketch import LeanMinHash, MinHashLSH

        lsh = MinHashLSH(num_perm=sig.shape[1], params=(b, r))
        sketches = [LeanMinHash(seed=seed, hashvalues=row, scheme="affine32") for row in sig]
        with lsh.insertion_session() as session:
            for idx, m in enumerate(sketches):
                session.insert(idx, m, check_duplication=False)
        for idx, m in enumerate(sketches):
            others = np.asarray([o for o in lsh.query(m) if o > idx], dtype=np.int64)
            parts.append(idx * n + others)
    else:
        # Hand-written banding: MinHashLSH inserts one key at a time in Python (~100 us each, 20+ s
        # for 200k texts); sorting each band's keys with numpy finds the same buckets in about a second.
        parts.extend(_band_pair_codes(sig, b, r, max_bucket))
    codes = np.unique(np.concatenate(parts))
    return codes // n, codes % n


def near_duplicate_pairs(
    texts: Sequence[str | None],
    threshold: float = 0.8,
    num_perm: int = 128,
    shingle: int = DEFAULT_SHINGLE,
    seed: int = 1,
    lsh_backend: str = "numpy",
    *,
    keys: Sequence[str | None] | None = None,
    signatures: np.ndarray | None = None,
) -> pl.DataFrame:
    """Find pairs of rows whose normalized texts have character-shingle Jaccard >= ``threshold``.

    MinHash signatures (datasketch permutations, scheme ``affine32``) are banded LSH-style
    with bands chosen for >= 99% recall at the threshold (``lsh_backend="numpy"``: vectorized
    bucketing; ``"datasketch"``: ``datasketch.MinHashLSH``, same candidates, 10-30x slower); each
    candidate pair is then checked against the exact Jaccard of its shingle sets, so LSH false
    positives are dropped (candidates whose MinHash estimate is more than 3 standard errors
    below the threshold are dropped without the exact check).

    Scale: with the numpy backend a bucket of more than :data:`MAX_BUCKET` texts (templated data,
    where one band of thousands of texts takes its minima from the shared template) is split by
    the following bands instead of listing its pairs, and candidates are filtered band by band, so
    time and memory grow linearly with the number of texts. A pair in such a bucket must then agree
    on more values of that band chain; pairs at the threshold collide in about a quarter of the
    bands each, so they are still found (bench_quality.py: recall 1.0 on planted near duplicates
    among templated texts). Small data sets never reach the split and are searched as before.

    Rows that are exact duplicates after :func:`normalize_text` are searched once: each later
    copy is paired with the first copy at Jaccard 1.0. Empty texts are ignored.

    ``keys`` and ``signatures``, given together, are each row's work done beforehand (cached per sample by
    :mod:`core.passes.minhash`): a key that stands for its normalized text (equal keys, equal texts; None or
    ``""`` for an empty text) and its MinHash signature with these ``num_perm``, ``shingle`` and ``seed`` (one row
    per text, rows of empty texts ignored). Then only the texts of candidate pairs are normalized; the result is
    the same.

    Returns a DataFrame with columns ``row_a < row_b``, ``estimated_jaccard`` (MinHash) and
    ``jaccard`` (exact), sorted by ``row_a, row_b``.
    """
    if lsh_backend not in ("numpy", "datasketch"):
        raise ValueError(f"lsh_backend must be 'numpy' or 'datasketch', got {lsh_backend!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
    if isinstance(num_perm, bool) or not isinstance(num_perm, (int, np.integer)) or num_perm < 4:
        raise ValueError(f"num_perm must be an integer of at least 4, got {num_perm!r}")
    _check_shingle(shingle)
    given = keys is not None
    if given != (signatures is not None):
        raise ValueError("keys and signatures go together: pass both or neither")
    if given and (len(keys) != len(texts) or signatures.shape != (len(texts), num_perm)):
        raise ValueError(f"keys and signatures must have one row per text ({len(texts)}) and signatures "
                         f"num_perm ({num_perm}) columns, got {len(keys)} keys and signatures of shape "
                         f"{signatures.shape}")

    rows_a: list[int] = []
    rows_b: list[int] = []
    est: list[float] = []
    exact: list[float] = []

    first: dict[str, int] = {}
    reps: list[int] = []
    rep_texts: list[str] = []
    for i, t in enumerate(texts):
        n = (keys[i] or "") if given else normalize_text(t)
        if not n:
            continue
        if n in first:
            rows_a.append(first[n])
            rows_b.append(i)
            est.append(1.0)
            exact.append(1.0)
        else:
            first[n] = i
            reps.append(i)
            rep_texts.append(n)

    if len(reps) > 1:
        sig = signatures[reps] if given else _signatures(rep_texts, shingle, num_perm, seed)
        b, r = _lsh_params(float(threshold), int(num_perm))
        # MinHash estimates of a pair at the threshold spread with sd sqrt(t(1-t)/num_perm) (0.035 for 0.8 and
        # 128): 3 sd below it lets through all but ~0.1% of pairs at the threshold (none at 0.85 and above), and
        # keeps most pairs of a templated data set at Jaccard 0.6-0.7 (their number grows faster than the data)
        # out of the exact check.
        margin = 3.0 * math.sqrt(float(threshold) * (1.0 - threshold) / num_perm)
        if lsh_backend == "datasketch":
            ca, cb = _candidate_pairs(sig, b, r, seed, lsh_backend)
            codes = ca * len(sig) + cb
        else:
            # Filter each band's candidates by their MinHash estimate as they come, so only the
            # plausible pairs (a few per text) are held, not every pair of every bucket.
            kept = [np.zeros(0, dtype=np.int64)]
            for band_codes in _band_pair_codes(sig, b, r, MAX_BUCKET):
                kept.append(band_codes[_estimates(sig, band_codes) >= threshold - margin])
            codes = np.unique(np.concatenate(kept))
        estimates = _estimates(sig, codes)
        keep = estimates >= threshold - margin
        codes, estimates = codes[keep], estimates[keep]
        ca, cb = codes // len(sig), codes % len(sig)
        # Exact Jaccard in batches of pairs (sorted by first row): the shingle sets of a batch's texts
        # are built, used and dropped, so memory stays bounded whatever the number of pairs.
        batch = 20_000
        cache: dict[int, set[str]] = {}

        def sh(x: int) -> set[str]:
            got = cache.get(x)
            if got is None:
                got = cache[x] = shingles(normalize_text(texts[reps[x]]) if given else rep_texts[x], shingle)
            return got

        for s in range(0, len(ca), batch):
            cache.clear()
            part = slice(s, s + batch)
            for x, y, e in zip(ca[part].tolist(), cb[part].tolist(), estimates[part].tolist()):
                j = _jaccard(sh(x), sh(y))
                if j >= threshold:
                    rows_a.append(reps[x])
                    rows_b.append(reps[y])
                    est.append(e)
                    exact.append(j)

    out = pl.DataFrame(
        {"row_a": rows_a, "row_b": rows_b, "estimated_jaccard": est, "jaccard": exact},
        schema={"row_a": pl.Int64, "row_b": pl.Int64, "estimated_jaccard": pl.Float64, "jaccard": pl.Float64},
    )
    return out.sort(["row_a", "row_b"])


def groups_from_pairs(pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components (union-find) of index pairs: sorted groups of 2+, by first index."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(find(x), []).append(x)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def near_duplicates(texts: Sequence[str | None], threshold: float = 0.8, **kwargs: Any) -> list[list[int]]:
    """Cluster rows connected by near-duplicate pairs (exact shingle Jaccard >= ``threshold``).

    Clusters are the connected components (union-find) of :func:`near_duplicate_pairs`, so they
    include exact duplicates; groups of two or more, each sorted, ordered by first index.
    Extra keyword arguments (``num_perm``, ``shingle``, ``seed``) go to :func:`near_duplicate_pairs`.
    """
    pairs = near_duplicate_pairs(texts, threshold=threshold, **kwargs)
    return groups_from_pairs(zip(pairs.get_column("row_a").to_list(), pairs.get_column("row_b").to_list()))


# ---------------------------------------------------------------------------
# PII
# ---------------------------------------------------------------------------

#: PII kinds in overlap priority order (an earlier kind wins a span claimed by a later one).
PII_KINDS: tuple[str, ...] = ("cn_id", "bank_card", "phone", "email", "ipv4", "ipv6")
_PII_PRIORITY = {k: i for i, k in enumerate(PII_KINDS)}

# Hand-written rules: no PII library is a dependency, and the usual ones (e.g. presidio) do not
# check Chinese ID check digits / birth dates or Chinese mobile numbers inside unsegmented text.
# Full-width ASCII (U+FF01-FF5E) and the ideographic space map 1:1 to ASCII for scanning, so
# "１３８…" is found and spans still index the original text.
_HALFWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_HALFWIDTH[0x3000] = 0x20
_RE_FULLWIDTH_ASCII = re.compile("[\uff10-\uff19\uff20\uff0b]")  # full-width digit, "@" or "+": worth translating
_RE_PII_HINT = re.compile("[0-9@\uff10-\uff19\uff20]")
# Cheap pre-checks: Python's re does not skip ahead to a pattern that starts with lookbehinds.
_RE_MOBILE_HINT = re.compile("1[3-9][0-9]")
_RE_LANDLINE_HINT = re.compile("0[1-9][0-9]")
_RE_IPV4_HINT = re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]")
_RE_IPV6_HINT = re.compile("[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:")

# Python's \b and \d are Unicode-aware (CJK characters are word characters), so digit runs are
# delimited with explicit ASCII lookarounds. _NOT_EMAIL keeps a number that is an e-mail local part out.
_NOT_EMAIL = r"(?![A-Za-z0-9._%+-]*@[A-Za-z0-9])"
# Addresses may hold non-ASCII letters (RFC 6531/IDNA: "josé.garcía@correo.es", "иван@почта.рф"):
# accented Latin, Greek and Cyrillic letters and combining accents are address characters, so the
# whole address is found, not just its ASCII tail. CJK characters are not: Chinese text runs into
# an address without a space ("联系我zhang@example.com").
_MAIL_LETTERS = (
    "A-Za-z"
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"  # Latin letters with accents (not × ÷)
    "\u0300-\u036f"  # combining accents (decomposed text)
    "\u0386\u0388-\u03ff\u0400-\u04ff"  # Greek, Cyrillic
)
_MAIL_CHAR = f"0-9{_MAIL_LETTERS}"
_RE_EMAIL = re.compile(
    rf"(?<![{_MAIL_CHAR}._%+-])[{_MAIL_CHAR}_%+-][{_MAIL_CHAR}._%+-]{{0,63}}@"
    rf"(?:[{_MAIL_CHAR}](?:[{_MAIL_CHAR}-]{{0,61}}[{_MAIL_CHAR}])?\.)+[{_MAIL_LETTERS}]{{2,24}}(?![{_MAIL_CHAR}-])"
)
# Mobile numbers: 3-4-4 digits whole, split by spaces or dashes, or by two dots (138.1234.5678).
_RE_CN_MOBILE = re.compile(
    r"(?<![0-9])(?<![0-9]\.)(?<![+0-9A-Za-z]\()"
    r"(?:(?:\+|00)?86[ -]?|\(\+?86\)[ -]?)?"
    r"1[3-9][0-9](?:[ -]?[0-9]{4}[ -]?[0-9]{4}|\.[0-9]{4}\.[0-9]{4})"
    r"(?![0-9])(?!\.[0-9])" + _NOT_EMAIL
)
# Landlines: area code 010 or 02x before an 8-digit local number, 0[3-9]xx before a 7- or 8-digit
# one (local numbers never start with 0); the area code set off by a dash or a space or put in
# parentheses ("010-12345678", "0755 1234567", "(021)12345678"), the local number whole or split
# in two, then an optional extension. Not when the number continues a longer digit group
# ("2023-0755-1234567"). Written without any separator ("01012345678") a number is a landline
# only right after a phone word, see _RE_PHONE_WORD: a bare 0-led run is as often a code.
_LOCAL8 = r"[1-9][0-9]{3}[ -]?[0-9]{4}"
_LOCAL7_8 = r"[1-9][0-9]{2,3}[ -]?[0-9]{4}"
_RE_CN_LANDLINE = re.compile(
    r"(?<![0-9A-Za-z+])(?<![0-9][ .\-])"
    r"(?:[(（]0(?:10|2[0-9])[)）] ?" + _LOCAL8 + r"|[(（]0[3-9][0-9]{2}[)）] ?" + _LOCAL7_8
    + r"|0(?:10|2[0-9])[ -]" + _LOCAL8 + r"|0[3-9][0-9]{2}[ -]" + _LOCAL7_8 + r")"
    r"(?:(?:-|转|ext\.? ?)[0-9]{1,6})?"
    r"(?![0-9])(?!\.[0-9])" + _NOT_EMAIL
)
_RE_CN_LANDLINE_BARE = re.compile(
    r"(?<![0-9A-Za-z+])(?:0(?:10|2[0-9])[1-9][0-9]{7}|0[3-9][0-9]{2}[1-9][0-9]{6,7})"
    r"(?![0-9])(?!\.[0-9])" + _NOT_EMAIL
)
_RE_PHONE_WORD = re.compile(
    r"(?:电话|座机|固话|传真|热线|致电|拨打|(?<![A-Za-z])(?:tel|phone|fax|call))[^0-9\n]{0,6}$",
    re.IGNORECASE,
)
_RE_INTL_PHONE = re.compile(r"(?<![0-9A-Za-z+])\+[1-9][0-9 .()\-]{5,22}[0-9](?![0-9])(?!\.[0-9])")
# Resident ID numbers: 18 characters (6-digit region, birth date yyyymmdd, 3-digit sequence, check
# character) or the first-generation 15 digits (birth date yymmdd, 19yy, no check character),
# whole or in region / birth date / rest groups split by one kind of space or dash
# ("110101 19900307 123X", "110101-900307-123").
_RE_CN_ID = re.compile(
    r"(?<![0-9])[1-9][0-9]{5}([ -]?)(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])\1[0-9]{3}[0-9Xx]"
    r"(?![0-9])" + _NOT_EMAIL
)
_RE_CN_ID15 = re.compile(
    r"(?<![0-9])[1-6][0-9]{5}([ -]?)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])\1[0-9]{3}"
    r"(?![0-9Xx])" + _NOT_EMAIL
)
# A 15-digit ID has no check character, so its region must be a mainland province (first-generation
# IDs were issued there only): this keeps IMEIs (mostly 35/86/01/99…) and most other 15-digit runs out.
_ID15_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65".split()
)
# Bank cards (the PAN): 16-19 digits, or 15 for American Express (34/37), whole, in groups of 4
# with one kind of separator, or Amex's 4-6-5; under an issuer prefix in use (see _card_prefix_ok);
# Luhn-valid. Shorter numbers are left out on purpose: a Luhn-valid 13-digit number is an EAN-13
# barcode far more often than a retired 13-digit Visa, 14 digits a legacy Diners card, and
# 15-digit numbers other than Amex are mostly IMEIs (which are Luhn-valid too).
_RE_CARD = [
    re.compile(r"(?<![0-9])[2-6][0-9]{14,18}(?![0-9])" + _NOT_EMAIL),
    re.compile(r"(?<![0-9])[2-6][0-9]{3}([ -])[0-9]{4}(?:\1[0-9]{4}){2}(?:\1[0-9]{1,3})?(?![0-9])" + _NOT_EMAIL),
    re.compile(r"(?<![0-9])3[47][0-9]{2}([ -])[0-9]{6}\1[0-9]{5}(?![0-9])" + _NOT_EMAIL),
]
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_RE_IPV4 = re.compile(rf"(?<![0-9.])(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9])(?!\.[0-9])")
# A dotted quad is a version or section number, not an address, when it follows a version or
# section word ("v1.2.3.4", "version 2.0.1.3", "版本 1.0.0.1", "第1.2.3.4节", "section 10.1.2.3"),
# a product token ("Chrome/120.0.0.0" in a user agent) or comes before 节/章/条/款/版.
_RE_VERSION_BEFORE = re.compile(
    r"(?:(?<![A-Za-z])(?:v|ver|version|release|build|rev|revision|section|sec|chapter|clause|step|fig|figure)\.?"
    r"|版本号?|第|§|条款|章节|[A-Za-z]/)\s*[:：#]?\s*$",
    re.IGNORECASE,
)
_RE_SECTION_AFTER = re.compile(r"\s*(?:节|章|条|款|版|项)")
# A quad of single digits ("1.2.3.4", "8.8.8.8") is far more often a version or outline number than
# an address: it counts only after a network word.
_RE_NETWORK_WORD = re.compile(
    r"(?<![A-Za-z])(?:ips?|ipv4|host|server|dns|gateway|router|proxy|subnet|netmask|mask|ping|addr|address)"
    r"(?![A-Za-z])|地址|服务器|主机|网关|路由|代理|子网|掩码|节点",
    re.IGNORECASE,
)
# IPv6: candidates are runs of hex groups and colons (an IPv4 tail allowed), checked with the
# standard library's parser; at least 3 groups, one of them 3+ hex digits, so "::1", times such as
# 12:30:45, MAC addresses and C++ names like "abc::def" are not taken.
_RE_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:.])[0-9A-Fa-f:]{2,39}(?:(?<=:)(?:[0-9]{1,3}\.){3}[0-9]{1,3})?(?![0-9A-Za-z:])"
)
# A number right after a label like "订单号：", "order no." or "IMEI" is an order/tracking/serial
# number, a barcode or a device id, not a phone, a card or a 15-digit ID.
_RE_NUMBER_LABEL = re.compile(
    r"(?:订单|单号|编号|流水号|交易号|序列号|工号|学号|批次"
    r"|条码|条形码|商品码|串号|设备号|注册号|税号"
    r"|order|invoice|tracking|serial|ref(?:erence)?|sku|batch|barcode"
    r"|(?<![A-Za-z])(?:ean|upc|gtin|isbn|imei|meid))"
    r"[^0-9\n]{0,10}$",
    re.IGNORECASE,
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def _cn_id_valid(s: str) -> bool:
    """An 18-character ID with a valid check character and birth date, or a 15-digit first-generation one."""
    s = s.upper()
    if len(s) == 15:
        if not s.isdigit() or s[:2] not in _ID15_PROVINCES:
            return False
        try:
            _dt.date(1900 + int(s[6:8]), int(s[8:10]), int(s[10:12]))
        except ValueError:
            return False
        return True
    if len(s) != 18 or not s[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS))
    if _ID_CHECK[total % 11] != s[17]:
        return False
    try:
        born = _dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return _dt.date(1900, 1, 1) <= born <= _dt.date.today()


def _luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_prefix_ok(digits: str) -> bool:
    """Length and issuer prefix (IIN) of a card number in use.

    15 digits: American Express 34/37. 16-19 digits: Visa 4; Mastercard and Maestro 5,
    Mastercard 2221-2720; Mir 2200-2204; JCB 3528-3589, Diners 300-305/3095/36/38/39;
    Discover, UnionPay, RuPay and Maestro 60/62/63/64/65/67. Other prefixes (20xx, 21xx, 61, 66,
    68, 69…) are not card ranges: a Luhn-valid order id such as 2024051712345678 is left alone.
    """
    n = len(digits)
    if n == 15:
        return digits[:2] in ("34", "37")
    if not 16 <= n <= 19:
        return False
    first, p2, p4 = digits[0], int(digits[:2]), int(digits[:4])
    if first in "45":
        return True
    if first == "2":
        return 2200 <= p4 <= 2204 or 2221 <= p4 <= 2720
    if first == "3":
        return 3528 <= p4 <= 3589 or 300 <= p4 // 10 <= 305 or p4 == 3095 or p2 in (36, 38, 39)
    return first == "6" and p2 in (60, 62, 63, 64, 65, 67)


def _labelled_as_other_number(scan: str, start: int) -> bool:
    return _RE_NUMBER_LABEL.search(scan[max(0, start - 24) : start]) is not None


def _ipv4_is_address(scan: str, start: int, end: int) -> bool:
    before = scan[max(0, start - 24) : start]
    if _RE_VERSION_BEFORE.search(before) or _RE_SECTION_AFTER.match(scan, end):
        return False
    if end - start == 7:  # four single-digit parts
        return _RE_NETWORK_WORD.search(before) is not None
    return True


def _ipv6_is_address(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    groups = [g for g in candidate.split(":") if g]
    return len(groups) >= 3 and any(len(g) >= 3 for g in groups) and any(c.isdigit() for c in candidate)


def _intl_phone_span(scan: str, m: re.Match) -> tuple[int, int] | None:
    # Validate the loose international match: 8-15 digits (E.164 allows 15), balanced
    # parentheses, no doubled separators; trim trailing groups that push it past 15 digits.
    start, text = m.start(), m.group()
    while True:
        digits = sum(c.isdigit() for c in text)
        if 8 <= digits <= 15 and text.count("(") == text.count(")") <= 1 and not re.search(r"[ .()\-]{3}|[ .\-]{2}", text):
            return start, start + len(text)
        if digits <= 15:
            return None
        cut = max(text.rfind(" "), text.rfind("-"), text.rfind("."))
        if cut <= 1:
            return None
        text = text[:cut].rstrip(" .-(")
        if not text or not text[-1].isdigit():
            return None


def _pii_candidates(text: str) -> list[Finding]:
    if not _RE_PII_HINT.search(text):  # every PII kind needs a digit or an "@"
        return []
    scan = text.translate(_HALFWIDTH) if _RE_FULLWIDTH_ASCII.search(text) else text
    found: list[Finding] = []

    def add(kind: str, start: int, end: int) -> None:
        found.append((kind, start, end, text[start:end]))

    for m in _RE_CN_ID.finditer(scan):
        if _cn_id_valid(m.group().replace(m.group(1), "") if m.group(1) else m.group()):
            add("cn_id", m.start(), m.end())
    for m in _RE_CN_ID15.finditer(scan):
        digits = m.group().replace(m.group(1), "") if m.group(1) else m.group()
        if _cn_id_valid(digits) and not _labelled_as_other_number(scan, m.start()):
            add("cn_id", m.start(), m.end())
    for rx in _RE_CARD:
        for m in rx.finditer(scan):
            digits = re.sub(r"[ -]", "", m.group())
            if _card_prefix_ok(digits) and _luhn_valid(digits) and not _labelled_as_other_number(scan, m.start()):
                add("bank_card", m.start(), m.end())
    for m in _RE_CN_MOBILE.finditer(scan) if _RE_MOBILE_HINT.search(scan) else ():
        if not _labelled_as_other_number(scan, m.start()):
            add("phone", m.start(), m.end())
    if _RE_LANDLINE_HINT.search(scan):
        for m in _RE_CN_LANDLINE.finditer(scan):
            if not _labelled_as_other_number(scan, m.start()):
                add("phone", m.start(), m.end())
        for m in _RE_CN_LANDLINE_BARE.finditer(scan):
            before = scan[max(0, m.start() - 16) : m.start()]
            if _RE_PHONE_WORD.search(before) and not _labelled_as_other_number(scan, m.start()):
                add("phone", m.start(), m.end())
    for m in _RE_INTL_PHONE.finditer(scan) if "+" in scan else ():
        span = _intl_phone_span(scan, m)
        if span and not _labelled_as_other_number(scan, span[0]):
            add("phone", span[0], span[1])
    for m in _RE_EMAIL.finditer(scan) if "@" in scan else ():
        add("email", m.start(), m.end())
    for m in _RE_IPV4.finditer(scan) if _RE_IPV4_HINT.search(scan) else ():
        if _ipv4_is_address(scan, m.start(), m.end()):
            add("ipv4", m.start(), m.end())
    for m in _RE_IPV6.finditer(scan) if _RE_IPV6_HINT.search(scan) else ():
        if _ipv6_is_address(m.group()):
            add("ipv6", m.start(), m.end())
    return found


def _resolve_overlaps(found: list[Finding], priority: dict[str, int]) -> list[Finding]:
    """Keep non-overlapping findings, preferring higher priority, then longer, then earlier; sorted by start."""
    kept: list[Finding] = []
    # The kept spans are disjoint, so sorted by start they are sorted by end too, and a new span
    # [s, e) can only overlap the last kept span starting before e: one bisect instead of a scan
    # of every kept span (a long text holds thousands of findings).
    starts: list[int] = []
    ends: list[int] = []
    for f in sorted(found, key=lambda f: (priority[f[0]], -(f[2] - f[1]), f[1])):
        at = bisect.bisect_left(starts, f[2])
        if at and ends[at - 1] > f[1]:
            continue
        kept.append(f)
        starts.insert(at, f[1])
        ends.insert(at, f[2])
    return sorted(kept, key=lambda f: (f[1], f[2]))


def find_pii(text: str | None) -> list[Finding]:
    """Find personal data in ``text``: a list of ``(kind, start, end, matched)`` sorted by start.

    Kinds (:data:`PII_KINDS`):

    - ``email``: the whole address, accented Latin, Greek and Cyrillic letters included
      (``josé.garcía@correo.es``); CJK characters end an address.
    - ``phone``: Chinese mobile numbers 1[3-9]xxxxxxxxx with optional +86/86 prefix, whole or split
      by spaces/dashes (``138 1234 5678``) or two dots (``138.1234.5678``); Chinese landlines, area
      code 010/02x + 8 digits or 0[3-9]xx + 7-8 digits, the area code set off by a dash, a space or
      parentheses (``010-12345678``, ``0755-1234567``, ``(021)12345678``), unseparated only right
      after a phone word (电话, 座机, tel…); "+"-prefixed international numbers of 8-15 digits.
    - ``cn_id``: 18-character resident ID with a valid ISO 7064 MOD 11-2 check character and a birth
      date between 1900 and today, or a 15-digit first-generation ID (mainland province code, a real
      19yy birth date); whole or grouped region / birth date / rest (``110101 19900307 123X``).
    - ``bank_card``: Luhn-valid, 16-19 digits under a card issuer prefix (Visa 4, Mastercard
      51-55/2221-2720, UnionPay 62, JCB 3528-3589…, see ``_card_prefix_ok``) or 15-digit American
      Express (34/37); whole, in groups of 4, or 4-6-5. 13- and 14-digit numbers (EAN-13 barcodes),
      15-digit IMEIs and Luhn-valid order ids under other prefixes (``2024…``) are not cards.
    - ``ipv4``: four dotted octets 0-255, not part of a longer dotted number; not after a version or
      section word (``v1.2.3.4``, ``版本``, ``第…节``, ``Chrome/120.0.0.0``); a quad of single digits
      (``1.2.3.4``) only after a network word (IP, server, DNS, 地址, 服务器…).
    - ``ipv6``: addresses the standard library parses, with 3+ groups, one of them 3+ hex digits.

    Numbers are delimited by ASCII-digit lookarounds, so they are found inside Chinese text but
    never inside longer digit runs; numbers labelled as order/tracking/serial numbers, barcodes or
    IMEIs (订单号, 条码, IMEI…) are not phones, cards or 15-digit IDs.
    Overlaps are resolved by priority cn_id > bank_card > phone > email > ipv4 > ipv6.
    Full-width digits and letters are recognized; ``start``/``end`` index the original text.
    Linear in the length of ``text``.
    """
    if text is None:
        return []
    if not isinstance(text, str):
        raise ValueError(f"expected text as a string, got {type(text).__name__}")
    return _resolve_overlaps(_pii_candidates(text), _PII_PRIORITY)


def mask_pii(text: str | None) -> str:
    """Replace every PII match with exactly three asterisks plus its last 4 characters.

    Same rule for every kind: ``13812345678`` -> ``***5678``, ``a.b@mail.com`` -> ``***.com``,
    an ID ending ``002X`` -> ``***002X``. ``None`` becomes ``""``.
    """
    if text is None:
        return ""
    out, last = [], 0
    for _kind, start, end, matched in find_pii(text):
        out.append(text[last:start])
        out.append("***" + matched[-4:])
        last = end
    out.append(text[last:])
    return "".join(out)


# ---------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------

#: Cleaning finding kinds in overlap priority order.
CLEANING_KINDS: tuple[str, ...] = (
    "mojibake",
    "control_char",
    "url",
    "html_tag",
    "html_entity",
    "repeated_punct",
    "fullwidth_form",
)
_CLEAN_PRIORITY = {k: i for i, k in enumerate(CLEANING_KINDS)}

_URL_STOP = "\\s<>\"'`\x00-\x1f\x7f\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
_RE_URL = re.compile(rf"(?:(?:https?|ftp)://|www\.)[^{_URL_STOP}]+", re.IGNORECASE)
_HTML_TAGS = (
    "a|abbr|article|aside|audio|b|big|blockquote|body|br|button|caption|center|cite|code|col|dd|del|div|dl|dt|em|"
    "embed|figcaption|figure|font|footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|ins|label|li|link|main|"
    "mark|meta|nav|noscript|ol|option|p|pre|s|script|section|select|small|source|span|strike|strong|style|sub|sup|"
    "table|tbody|td|textarea|tfoot|th|thead|title|tr|tt|u|ul|video"
)
# Only real HTML tag names, so generics like List<String> or <T> in code are not tags.
_RE_HTML_TAG = re.compile(rf"</?(?:{_HTML_TAGS})(?:\s[^<>]*)?/?>", re.IGNORECASE)
_RE_HTML_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")
_RE_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff\ufffe]+")
_RE_REPEATED_PUNCT = re.compile(r"[!?！？]{3,}|([。，、；：～])\1+|([,~])\2{2,}|\.{4,}|…{3,}")
_RE_FULLWIDTH = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]+")
# Markdown code: fenced blocks (``` or ~~~; an unclosed fence runs to the end of the text, as Markdown renders a
# truncated answer) and inline code spans. No cleaning fix touches code: a URL, a tag or "!!!" there is content.
_RE_CODE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]+`", re.DOTALL)
# Mojibake that cannot be recovered: U+FFFD, and "锟斤拷" (U+FFFD's UTF-8 bytes read as GBK).
_RE_MOJIBAKE_LOST = re.compile("(?:锟斤拷)+|\ufffd+")

# UTF-8 read as cp1252/latin-1: map each such character back to its byte.
_CP1252_BYTE: dict[str, int] = {}
for _b in range(0x80, 0x100):
    _CP1252_BYTE[chr(_b)] = _b  # latin-1 (also covers bytes cp1252 leaves undefined)
    try:
        _CP1252_BYTE[bytes([_b]).decode("cp1252")] = _b
    except UnicodeDecodeError:
        pass
_RE_LATIN_RUN = re.compile("[" + "".join(re.escape(c) for c in sorted(_CP1252_BYTE)) + "]{2,}")
_RE_UTF8_SEQ = re.compile(rb"(?:[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3})+")
# UTF-8 CJK read as GBK: runs of characters that are 2 bytes in GBK, checked for UTF-8 CJK bytes.
_RE_GBK_RUN = re.compile("[\u00a0-\uffff]{6,}")
_RE_UTF8_CJK3 = re.compile(rb"[\xe2-\xe9\xef][\x80-\xbf]{2}")  # punctuation, kana, CJK, full-width forms
_RE_UTF8_CJK3_RUN = re.compile(rb"(?:[\xe2-\xe9\xef][\x80-\xbf]{2}){4}")  # 4 in a row: what _gbk_spans needs
_RE_BEYOND_LATIN = re.compile("[\u2e80-\U0010ffff]")  # CJK and later blocks: where GBK mojibake can be


def _latin_mojibake(text: str) -> list[tuple[int, int, str]]:
    out = []
    for run in _RE_LATIN_RUN.finditer(text):
        raw = bytes(_CP1252_BYTE[c] for c in run.group())
        for m in _RE_UTF8_SEQ.finditer(raw):
            try:
                fixed = m.group().decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append((run.start() + m.start(), run.start() + m.end(), fixed))
    return out


def _gbk_mojibake(text: str) -> list[tuple[int, int, str]]:
    # Hand-written: ftfy (the usual library) is not a dependency and does not handle GBK.
    # A span counts when, read back as GBK bytes, it is >= 4 consecutive UTF-8 CJK characters
    # starting and ending on character boundaries (chance of that in real Chinese text: ~1e-8).
    out = []
    for run in _RE_GBK_RUN.finditer(text):
        chars = run.group()
        try:  # fast path: the whole run is 2 bytes a character in GBK (GBK is stateless: same bytes as char by char)
            raw = chars.encode("gbk")
        except UnicodeEncodeError:
            raw = b""
        if len(raw) == 2 * len(chars):
            if _RE_UTF8_CJK3_RUN.search(raw):  # cheap necessary condition for _gbk_spans
                out.extend(_gbk_spans(raw, run.start()))
            continue
        pos = 0
        while pos < len(chars):
            # split the run into pieces that are 2 bytes each in GBK
            end = pos
            raw = bytearray()
            while end < len(chars):
                try:
                    b = chars[end].encode("gbk")
                except UnicodeEncodeError:
                    break
                if len(b) != 2:
                    break
                raw += b
                end += 1
            if end - pos >= 6 and _RE_UTF8_CJK3_RUN.search(raw):
                out.extend(_gbk_spans(bytes(raw), run.start() + pos))
            pos = end + 1
    return out


def _gbk_spans(raw: bytes, offset: int) -> list[tuple[int, int, str]]:
    out = []
    start = 0
    while start < len(raw):
        n = 0
        while start + 3 * (n + 1) <= len(raw) and _RE_UTF8_CJK3.fullmatch(raw, start + 3 * n, start + 3 * (n + 1)):
            n += 1
        n -= n % 2  # whole GBK characters: an even number of 3-byte UTF-8 characters
        if n >= 4:
            try:
                fixed = raw[start : start + 3 * n].decode("utf-8")
            except UnicodeDecodeError:
                fixed = None
            if fixed is not None:
                # "锟斤拷" decodes to U+FFFD: still lost, so it is removed
                out.append((offset + start // 2, offset + (start + 3 * n) // 2, fixed.replace("\ufffd", "")))
                start += 3 * n
                continue
        start += 2
    return out


def _html_tag_spans(text: str) -> list[tuple[int, int]]:
    """Spans of HTML comments and tags, in order; a tag inside a comment is part of the comment.

    Comments are found with str.find, not a lazy regex: ``<!--.*?-->`` rescans to the end of the
    text from every unclosed ``<!--`` (minutes for a long text full of them). Once one ``<!--`` has
    no closing ``-->``, no later one has either. A tag cannot hold a ``<``, so tags and comments
    never straddle each other.
    """
    comments: list[tuple[int, int]] = []
    pos = text.find("<!--")
    while pos >= 0:
        close = text.find("-->", pos + 4)
        if close < 0:
            break
        comments.append((pos, close + 3))
        pos = text.find("<!--", close + 3)
    if not comments:
        return [(m.start(), m.end()) for m in _RE_HTML_TAG.finditer(text)]
    starts = [c[0] for c in comments]
    spans = list(comments)
    for m in _RE_HTML_TAG.finditer(text):
        at = bisect.bisect_right(starts, m.start())
        if not (at and m.start() < comments[at - 1][1]):
            spans.append((m.start(), m.end()))
    return sorted(spans)


def _url_end(text: str, start: int, end: int) -> int:
    url = text[start:end]
    while url and url[-1] in ".,;:!?)]}'\"":
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return start + len(url)


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Spans of Markdown code (fenced blocks and inline code), disjoint and in order."""
    if "`" not in text and "~~~" not in text:
        return []
    return [(m.start(), m.end()) for m in _RE_CODE.finditer(text)]


def _cleaning_candidates(text: str) -> list[tuple[str, int, int, str]]:
    """Candidate findings as (kind, start, end, replacement); none that overlaps Markdown code."""
    found: list[tuple[str, int, int, str]] = []

    for s, e, fixed in _latin_mojibake(text):
        found.append(("mojibake", s, e, fixed))
    if _RE_BEYOND_LATIN.search(text):
        for s, e, fixed in _gbk_mojibake(text):
            found.append(("mojibake", s, e, fixed))
    for m in _RE_MOJIBAKE_LOST.finditer(text):
        found.append(("mojibake", m.start(), m.end(), ""))
    for m in _RE_CONTROL.finditer(text):
        found.append(("control_char", m.start(), m.end(), ""))
    for m in _RE_URL.finditer(text):
        end = _url_end(text, m.start(), m.end())
        if end - m.start() > 7:
            found.append(("url", m.start(), end, ""))
    for start, end in _html_tag_spans(text):
        tag = text[start:end].lower()
        block = re.match(r"<(?:br|/p|/div|/li|/tr|/h[1-6])\b", tag) is not None
        found.append(("html_tag", start, end, "\n" if block else ""))
    for m in _RE_HTML_ENTITY.finditer(text):
        fixed = html.unescape(m.group()).replace("\xa0", " ")
        if fixed != m.group():
            found.append(("html_entity", m.start(), m.end(), fixed))
    for m in _RE_REPEATED_PUNCT.finditer(text):
        g = m.group()
        fixed = "..." if g[0] == "." else "……" if g[0] == "…" else g[0]
        found.append(("repeated_punct", m.start(), m.end(), fixed))
    if re.search(r"[A-Za-z0-9]", text):
        for m in _RE_FULLWIDTH.finditer(text):
            found.append(("fullwidth_form", m.start(), m.end(), unicodedata.normalize("NFKC", m.group())))
    code = _code_spans(text) if found else []
    if not code:
        return found
    code_starts = [cs for cs, _ in code]
    ends = [ce for _, ce in code]

    def touches_code(s: int, e: int) -> bool:
        # code spans are disjoint and in order: only the last one starting before e can overlap [s, e)
        at = bisect.bisect_left(code_starts, e)
        return at > 0 and ends[at - 1] > s

    return [f for f in found if not touches_code(f[1], f[2])]


def _resolved_cleaning(text: str) -> list[tuple[str, int, int, str]]:
    return _resolve_overlaps(_cleaning_candidates(text), _CLEAN_PRIORITY)  # type: ignore[arg-type]


def cleaning_findings(text: str | None) -> list[Finding]:
    """Find things to clean in ``text``: a list of ``(kind, start, end, matched)`` sorted by start.

    Kinds (:data:`CLEANING_KINDS`): ``url`` (http/https/ftp/www), ``html_tag`` (real HTML tag
    names and comments, not inside Markdown code), ``html_entity`` (named/numeric entities that
    decode), ``control_char`` (C0/C1 controls except tab/newline/CR, zero-width space, BOM),
    ``mojibake`` (UTF-8 read as cp1252/latin-1 like ``Ã©``/``â€™``; UTF-8 Chinese read as GBK
    like ``浣犲ソ涓栫晫``; unrecoverable ``锟斤拷`` and U+FFFD), ``repeated_punct`` (``!!!``,
    ``？？？``, ``。。``, ``，，``, ``....``, ``………``), ``fullwidth_form`` (full-width letters or
    digits such as ``ＡＢＣ１２３`` in text that also has half-width ones).

    Nothing inside Markdown code is a finding: fenced blocks (```` ``` ```` or ``~~~``, an unclosed
    fence running to the end of the text) and inline code spans are content (a URL in a Python
    example, ``<div>`` in an HTML lesson), so :func:`clean_text` leaves them as they are.
    """
    if text is None:
        return []
    if not isinstance(text, str):
        raise ValueError(f"expected text as a string, got {type(text).__name__}")
    return [(k, s, e, text[s:e]) for k, s, e, _ in _resolved_cleaning(text)]


def clean_text(text: str | None, kinds: Iterable[str] | None = None) -> str:
    """Return ``text`` with the :func:`cleaning_findings` of ``kinds`` (default: all) fixed.

    URLs and control characters are removed; HTML tags removed (``<br>`` and block ends become a
    newline); entities decoded; recoverable mojibake decoded, ``锟斤拷``/U+FFFD removed; repeated
    punctuation collapsed to one mark (``...`` / ``……`` for dots and ellipses); full-width
    letters/digits made half-width. Where a removal leaves two spaces, one is dropped. Markdown code
    (fenced blocks and inline code) is never changed.
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ValueError(f"expected text as a string, got {type(text).__name__}")
    wanted = set(CLEANING_KINDS if kinds is None else kinds)
    unknown = wanted - set(CLEANING_KINDS)
    if unknown:
        raise ValueError(f"unknown cleaning kind(s) {sorted(unknown)}; choose from {list(CLEANING_KINDS)}")
    out, last = [], 0
    for kind, start, end, fixed in _resolved_cleaning(text):
        if kind not in wanted:
            continue
        out.append(text[last:start])
        if not fixed and out and out[-1].endswith(" ") and text[end : end + 1] in (" ", ""):
            out[-1] = out[-1][:-1]
        out.append(fixed)
        last = end
    out.append(text[last:])
    return "".join(out)


# ---------------------------------------------------------------------------
# Completeness
# ---------------------------------------------------------------------------

#: Completeness issue kinds.
COMPLETENESS_KINDS: tuple[str, ...] = (
    "missing_field",
    "empty_field",
    "truncated_output",
    "output_repeats_instruction",
    "length_outlier",
)
# Closing quotes/brackets are skipped before looking for the terminal mark.
_CLOSERS = "\"'”’」』）)》】]"
# Sentence-final marks (ASCII and CJK), plus ends that close a structure: code fences, tables, emoticons.
_TERMINALS = set(".!?。！？…⋯;；~～`|>}") | set(_CLOSERS)


def _is_truncated(text: str) -> bool:
    stripped = text.rstrip()
    if not stripped:
        return False
    core = stripped.rstrip(_CLOSERS)
    last = (core or stripped)[-1]
    if last in _TERMINALS:
        return False
    # emoji and other symbols end a message as well as a full stop does
    return not unicodedata.category(last).startswith("S")


def completeness_issues(
    df: pl.DataFrame,
    required: Sequence[str] = ("instruction", "output"),
    *,
    instruction_col: str = "instruction",
    output_col: str = "output",
    id_col: str = "sample_id",
    z_threshold: float = 3.5,
    truncation_min_chars: int = 10,
    repeat_threshold: float = 0.9,
) -> pl.DataFrame:
    """List completeness problems, one row per (row, field, kind).

    Columns: ``row`` (0-based), ``sample_id`` (``id_col`` as text, null if absent), ``field``,
    ``kind``, ``detail``. Kinds: ``missing_field`` (required column absent or value null),
    ``empty_field`` (empty or whitespace-only), ``truncated_output`` (output of at least
    ``truncation_min_chars`` characters whose last character, after closing quotes/brackets, is
    not terminal punctuation such as ``. ! ? 。 ！ ？ …``), ``output_repeats_instruction``
    (normalized texts equal or 3-gram Jaccard >= ``repeat_threshold``), ``length_outlier``
    (robust z-score of character length with median and MAD, ``|z| > z_threshold``, per required
    field over its non-empty values; skipped when fewer than 5 values or MAD is 0).
    """
    if not isinstance(df, pl.DataFrame):
        raise ValueError("expected a polars DataFrame")
    if isinstance(required, str) or not required:
        raise ValueError("required must be a non-empty list of column names")
    if not z_threshold > 0:
        raise ValueError("z_threshold must be positive")
    from scipy.stats import median_abs_deviation

    n = df.height
    ids = df.get_column(id_col).cast(pl.Utf8).to_list() if id_col in df.columns else [None] * n
    rows: list[int] = []
    fields: list[str] = []
    kinds: list[str] = []
    details: list[str] = []

    def add(r: int, field: str, kind: str, detail: str) -> None:
        rows.append(r)
        fields.append(field)
        kinds.append(kind)
        details.append(detail)

    values: dict[str, list[str | None]] = {}
    for field in required:
        if field not in df.columns:
            for r in range(n):
                add(r, field, "missing_field", f"column '{field}' is absent")
            continue
        col = df.get_column(field)
        vals = col.cast(pl.Utf8).to_list() if col.dtype != pl.Utf8 else col.to_list()
        values[field] = vals
        for r, v in enumerate(vals):
            if v is None:
                add(r, field, "missing_field", "null")
            elif not v.strip():
                add(r, field, "empty_field", "empty" if v == "" else "whitespace only")
        present = [(r, len(v)) for r, v in enumerate(vals) if v is not None and v.strip()]
        if len(present) >= 5:
            lengths = np.array([x for _, x in present], dtype=np.float64)
            med = float(np.median(lengths))
            mad = float(median_abs_deviation(lengths, scale="normal"))
            if mad > 0:
                z = (lengths - med) / mad
                for (r, length), zr in zip(present, z.tolist()):
                    if abs(zr) > z_threshold:
                        add(r, field, "length_outlier", f"length {length}, median {med:g}, robust z {zr:+.1f}")

    out_vals = values.get(output_col)
    if out_vals is None and output_col in df.columns:
        out_vals = df.get_column(output_col).cast(pl.Utf8).to_list()
    ins_vals = values.get(instruction_col)
    if ins_vals is None and instruction_col in df.columns:
        ins_vals = df.get_column(instruction_col).cast(pl.Utf8).to_list()
    if out_vals is not None:
        for r, v in enumerate(out_vals):
            if v and len(v.strip()) >= truncation_min_chars and _is_truncated(v):
                tail = v.rstrip()[-12:]
                add(r, output_col, "truncated_output", f"ends with '{tail}'")
        if ins_vals is not None:
            for r, (ins, out) in enumerate(zip(ins_vals, out_vals)):
                a, b = normalize_text(ins), normalize_text(out)
                if not a or not b:
                    continue
                j = 1.0 if a == b else _jaccard(shingles(a), shingles(b))
                if j >= repeat_threshold:
                    add(r, output_col, "output_repeats_instruction", f"3-gram Jaccard {j:.2f} with {instruction_col}")

    order = {k: i for i, k in enumerate(COMPLETENESS_KINDS)}
    result = pl.DataFrame(
        {
            "row": rows,
            "sample_id": [ids[r] for r in rows],
            "field": fields,
            "kind": kinds,
            "detail": details,
        },
        schema={"row": pl.Int64, "sample_id": pl.Utf8, "field": pl.Utf8, "kind": pl.Utf8, "detail": pl.Utf8},
    )
    return (
        result.with_columns(pl.col("kind").replace_strict(order, return_dtype=pl.Int32).alias("_k"))
        .sort(["row", "_k", "field"])
        .drop("_k")
    )


# ---------------------------------------------------------------------------
# Label errors
# ---------------------------------------------------------------------------


def suspected_label_errors(labels: Sequence[Any], pred_probs: Any, label_names: Sequence[str]) -> pl.DataFrame:
    """Rows whose given label is probably wrong, via ``cleanlab.filter.find_label_issues``.

    ``labels`` are class indices into ``label_names`` or the names themselves; ``pred_probs``
    is an (n, len(label_names)) array of out-of-fold probabilities (column order = ``label_names``).
    Returns columns ``row``, ``given_label``, ``suggested_label`` (argmax of ``pred_probs``) and
    ``self_confidence`` (``cleanlab.rank.get_label_quality_scores``, the probability of the given
    label), most suspicious first.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    names = list(label_names)
    if len(names) < 2:
        raise ValueError("need at least two label names")
    if len(set(names)) != len(names):
        raise ValueError("label names must be unique")
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(names):
        raise ValueError(f"pred_probs must have shape (n, {len(names)}), got {probs.shape}")
    y = _encode_labels(labels, names)
    if len(y) != probs.shape[0]:
        raise ValueError(f"{len(y)} labels but {probs.shape[0]} rows of probabilities")
    if len(y) == 0:
        return pl.DataFrame(schema={"row": pl.Int64, "given_label": pl.Utf8, "suggested_label": pl.Utf8, "self_confidence": pl.Float64})
    if not np.all(np.isfinite(probs)) or np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("each row of pred_probs must be non-negative and sum to 1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
    scores = get_label_quality_scores(y, probs, method="self_confidence")
    ranked = np.asarray(ranked, dtype=np.int64)
    suggested = probs.argmax(axis=1)
    return pl.DataFrame(
        {
            "row": ranked.tolist(),
            "given_label": [names[y[i]] for i in ranked],
            "suggested_label": [names[suggested[i]] for i in ranked],
            "self_confidence": scores[ranked].astype(np.float64).tolist(),
        },
        schema={"row": pl.Int64, "given_label": pl.Utf8, "suggested_label": pl.Utf8, "self_confidence": pl.Float64},
    )


def _encode_labels(labels: Sequence[Any], names: list[str]) -> np.ndarray:
    arr = np.asarray(list(labels), dtype=object)
    if arr.ndim != 1:
        raise ValueError("labels must be a flat list")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arr):
        y = arr.astype(np.int64)
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise ValueError(f"label indices must be in 0..{len(names) - 1}")
        return y
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({str(v) for v in arr if v not in index})
    if unknown:
        raise ValueError(f"labels not among label_names: {unknown[:5]}")
    return np.array([index[v] for v in arr], dtype=np.int64)


def out_of_fold_probs(features: Any, labels: Sequence[Any], n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-validated ``LogisticRegression`` probabilities, one row per sample.

    Uses ``sklearn.model_selection.cross_val_predict(method="predict_proba")`` with a shuffled
    ``StratifiedKFold``. Columns follow the sorted distinct labels (``np.unique(labels)``).
    Fold rule: ``k = max(2, min(n_splits, size of the smallest class))``, so every class with at
    least k members appears in every training fold; a class with a single member can only be
    predicted from the other classes, so its column is 0 for that sample (cleanlab will flag it).
    Needs at least two classes with two or more samples each.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("features must be a 2-D array (samples x dimensions)")
    y_raw = np.asarray(list(labels))
    if len(y_raw) != x.shape[0]:
        raise ValueError(f"{len(y_raw)} labels but {x.shape[0]} feature rows")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError("n_splits must be an integer of at least 2")
    classes, y = np.unique(y_raw, return_inverse=True)
    counts = np.bincount(y, minlength=len(classes))
    if len(classes) < 2 or int((counts >= 2).sum()) < 2:
        raise ValueError("need at least two labels with two or more samples each")
    k = max(2, min(int(n_splits), int(counts.min())))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    model = LogisticRegression(max_iter=1000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fold-size and missing-class-in-fold warnings are expected here
        probs = cross_val_predict(model, x, y, cv=cv, method="predict_proba")
    return np.asarray(probs, dtype=np.float64)
