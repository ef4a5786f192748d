"""Benchmark of core.quality: near-duplicate search (time, recall of planted pairs) and PII scan (rows/second).

Run by hand, not collected by pytest:

    .venv/bin/python bench/bench_quality.py            # spec size: 200,000 samples
    .venv/bin/python bench/bench_quality.py --quick    # smoke run: 5,000 samples

Then the same search on templated texts (bench_scale's generator: 40 request phrases and canned replies
with random words, order numbers and amounts), where many pairs sit at Jaccard 0.4-0.7 and LSH buckets grow
with the data: time at n/2 and n (the ratio should stay near 2) and the recall of near duplicates planted
among them (a copy with 1-4 character edits).

Synthetic data: mixed Chinese / English / code-switched texts of 30-200 characters from
Zipf-weighted vocabularies, plus planted exact duplicates (case/space variants) and planted
near-duplicates (1-4 small character or word edits). Only plants whose true 3-gram Jaccard
(same normalization and shingling as the library) is >= the threshold count in the recall.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from core.quality import (
    DEFAULT_SHINGLE,
    find_pii,
    groups_from_pairs,
    near_duplicate_pairs,
    normalize_text,
    shingles,
)

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "er", "an", "in")]
_CJK_PUNCT = "，，，。、；"
_EN_PUNCT = ",,,.;"


def _vocab(rng: np.random.Generator) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    words = sorted({"".join(rng.choice(_SYLLABLES, size=rng.integers(1, 4))) for _ in range(12000)})
    en_w = 1.0 / np.arange(1, len(words) + 1) ** 1.05
    chars = [chr(c) for c in rng.choice(np.arange(0x4E00, 0x9FA6), size=3500, replace=False)]
    zh_w = 1.0 / np.arange(1, len(chars) + 1) ** 1.0
    return words, en_w / en_w.sum(), chars, zh_w / zh_w.sum()


class _Stream:
    """Zipf-weighted tokens drawn in large batches (numpy's choice with p is slow per call)."""

    def __init__(self, rng, items, p, batch=1_000_000):
        self.rng, self.items, self.p, self.batch = rng, np.asarray(items), p, batch
        self.buf, self.pos = self.items[:0], 0

    def take(self, n: int):
        if self.pos + n > len(self.buf):
            self.buf, self.pos = self.items[self.rng.choice(len(self.items), size=self.batch, p=self.p)], 0
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


# Numbers as they appear in instruction data: PII and many look-alikes (prices, dates, versions, order numbers).
_EXTRAS = [
    " 电话13812345678",
    "，手机：+86 139-1234-5678",
    " call +44 20 7946 0958",
    " mail a.b@example.com",
    " 身份证11010519491231002X",
    " card 4111 1111 1111 1111",
    " ip 10.0.0.1",
    " order 20230101123456",
    " 订单号 13812345678",
    " 共 1234 件，单价 99.50 元",
    " 发布于 2023-10-01 12:30:00",
    " version 3.11.4",
    " 第 3 章第 12 节",
    " ts=1699999999123",
]


def _make_text(rng, en: _Stream, zh: _Stream) -> str:
    target = int(rng.integers(30, 201))
    style = rng.random()
    parts: list[str] = []
    length = 0
    while length < target:
        if style < 0.45 or (style < 0.7 and rng.random() < 0.5):  # Chinese run
            seg = "".join(zh.take(int(rng.integers(4, 16)))) + _CJK_PUNCT[int(rng.integers(0, len(_CJK_PUNCT)))]
        else:  # English run
            seg = " ".join(en.take(int(rng.integers(3, 10)))) + _EN_PUNCT[int(rng.integers(0, len(_EN_PUNCT)))] + " "
        parts.append(seg)
        length += len(seg)
    text = "".join(parts)[:target].strip()
    if rng.random() < 0.3:  # numbers in 30% of texts, PII in about a third of those
        text += _EXTRAS[int(rng.integers(0, len(_EXTRAS)))]
    return text


def _edit(rng, text: str, chars) -> str:
    t = list(text)
    for _ in range(int(rng.integers(1, 5))):
        if len(t) < 5:
            break
        op = rng.random()
        i = int(rng.integers(0, len(t)))
        if op < 0.4:
            t[i] = chars[int(rng.integers(0, len(chars)))] if "\u4e00" <= t[i] <= "\u9fff" else chr(97 + int(rng.integers(0, 26)))
        elif op < 0.7:
            del t[i]
        else:
            t.insert(i, chars[int(rng.integers(0, len(chars)))] if rng.random() < 0.5 else chr(97 + int(rng.integers(0, 26))))
    return "".join(t)


def _variant(rng, text: str) -> str:
    # same text after normalization: upper-case letters, doubled spaces, full-width space
    out = text.upper() if rng.random() < 0.5 else text
    return ("  " + out.replace(" ", "  ", 1) + "\u3000") if rng.random() < 0.5 else out


def build(n: int, seed: int, threshold: float):
    """Build n texts with planted exact and near duplicates; return texts and the planted pairs."""
    rng = np.random.default_rng(seed)
    words, en_p, chars, zh_p = _vocab(rng)
    n_exact = n // 20
    n_near = n // 10
    n_base = n - n_exact - n_near
    batch = min(1_000_000, max(100_000, 50 * n))  # smaller draws for small runs (--quick)
    en, zh = _Stream(rng, words, en_p, batch), _Stream(rng, chars, zh_p, batch)
    texts = [_make_text(rng, en, zh) for _ in range(n_base)]
    exact_pairs = []
    near_pairs = []
    near_jaccards = []
    for _ in range(n_exact):
        src = int(rng.integers(0, n_base))
        texts.append(_variant(rng, texts[src]))
        exact_pairs.append((src, len(texts) - 1))
    for _ in range(n_near):
        src = int(rng.integers(0, n_base))
        texts.append(_edit(rng, texts[src], chars))
        j = _true_jaccard(texts[src], texts[-1])
        near_pairs.append((src, len(texts) - 1))
        near_jaccards.append(j)
    perm = rng.permutation(len(texts))  # shuffle so plants are not at the end
    where = np.empty_like(perm)
    where[perm] = np.arange(len(perm))
    shuffled = [texts[i] for i in perm]
    exact_pairs = [(int(where[a]), int(where[b])) for a, b in exact_pairs]
    near_pairs = [(int(where[a]), int(where[b])) for a, b in near_pairs]
    return shuffled, exact_pairs, near_pairs, np.asarray(near_jaccards)


def _true_jaccard(a: str, b: str) -> float:
    sa, sb = shingles(normalize_text(a), DEFAULT_SHINGLE), shingles(normalize_text(b), DEFAULT_SHINGLE)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def build_templated(n: int, seed: int) -> tuple[list[str], list[tuple[int, int]]]:
    """n texts like bench_scale's (instruction + reply joined), 2% of them edited copies of another: (texts, plants)."""
    import random

    from bench_import import REPLY_ZH, ZH
    from bench_scale import templated_request

    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    chars = sorted({c for t in ZH + REPLY_ZH for c in t if "\u4e00" <= c <= "\u9fff"})
    n_plant = n // 50
    texts: list[str] = []
    for s in range(n - n_plant):
        second = s >= n // 2
        _, ins, out = templated_request(rng, second)
        texts.append(ins + "\n" + out)
    plants = []
    for _ in range(n_plant):
        src = rng.randrange(len(texts))
        texts.append(_edit(nprng, texts[src], chars))
        plants.append((src, len(texts) - 1))
    return texts, plants


def templated(n: int, seed: int, threshold: float) -> None:
    times = []
    for size in (n // 2, n):
        texts, plants = build_templated(size, seed)
        t0, c0 = time.perf_counter(), time.process_time()
        pairs = near_duplicate_pairs(texts, threshold=threshold)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    eligible = [p for p in plants if _true_jaccard(texts[p[0]], texts[p[1]]) >= threshold]
    groups = groups_from_pairs(zip(pairs["row_a"].to_list(), pairs["row_b"].to_list()))
    cluster = {r: g for g, members in enumerate(groups) for r in members}
    recall = sum(a in cluster and cluster.get(a) == cluster.get(b) for a, b in eligible) / max(1, len(eligible))
    (w1, c1), (w2, c2) = times
    print(f"templated near-dup   {n // 2:,}: {w1:.1f} s wall, {c1:.1f} s CPU; {n:,}: {w2:.1f} s wall, {c2:.1f} s CPU "
          f"(CPU ratio {c2 / max(c1, 1e-9):.2f}); {pairs.height:,} verified pairs")
    print(f"templated recall     {recall:.4f} of {len(eligible):,} planted near duplicates at Jaccard >= {threshold}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with 5,000 samples")
    ap.add_argument("-n", type=int, default=None, help="number of samples (default 200,000; 5,000 with --quick)")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--templated", type=int, default=None,
                    help="size of the templated run (default 100,000; 4,000 with --quick; 0 to skip)")
    args = ap.parse_args()
    n = args.n or (5_000 if args.quick else 200_000)
    n_templated = args.templated if args.templated is not None else (4_000 if args.quick else 100_000)

    t0 = time.perf_counter()
    texts, exact_pairs, near_pairs, near_j = build(n, args.seed, args.threshold)
    lengths = np.array([len(t) for t in texts])
    print(f"samples              {len(texts):,} (length {lengths.min()}-{lengths.max()}, mean {lengths.mean():.0f}); built in {time.perf_counter() - t0:.1f} s")
    eligible = [p for p, j in zip(near_pairs, near_j) if j >= args.threshold]
    print(f"planted exact dups   {len(exact_pairs):,}")
    print(f"planted near dups    {len(near_pairs):,}, of which {len(eligible):,} at Jaccard >= {args.threshold} (median {np.median(near_j):.2f})")

    t0, c0 = time.perf_counter(), time.process_time()
    pairs = near_duplicate_pairs(texts, threshold=args.threshold)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    groups = groups_from_pairs(zip(pairs["row_a"].to_list(), pairs["row_b"].to_list()))
    cluster = {}
    for g_id, g in enumerate(groups):
        for r in g:
            cluster[r] = g_id
    found_pairs = set(zip(pairs["row_a"].to_list(), pairs["row_b"].to_list()))

    def same(a: int, b: int) -> bool:
        return a in cluster and cluster.get(a) == cluster.get(b)

    near_recall = sum(same(a, b) for a, b in eligible) / max(1, len(eligible))
    # pairs are listed between first copies of each normalized text; later exact copies join via their first copy
    first: dict[str, int] = {}
    for i, t in enumerate(texts):
        first.setdefault(normalize_text(t), i)
    listed = [(a, b) for a, b in eligible if first[normalize_text(texts[a])] == a and first[normalize_text(texts[b])] == b]
    pair_recall = sum((min(a, b), max(a, b)) in found_pairs for a, b in listed) / max(1, len(listed))
    exact_recall = sum(same(a, b) for a, b in exact_pairs) / max(1, len(exact_pairs))
    print(f"near-dup search      {elapsed:.1f} s wall, {cpu:.1f} s CPU, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} ({len(texts) / elapsed:,.0f} texts/s); {pairs.height:,} verified pairs, {len(groups):,} clusters")
    print(f"recall near          {near_recall:.4f} (same cluster; target >= 0.95); pair listed directly: {pair_recall:.4f} of {len(listed):,} plants between first copies")
    print(f"recall exact         {exact_recall:.4f}")
    print(f"mean |estimated - exact| Jaccard over pairs: {(pairs['estimated_jaccard'] - pairs['jaccard']).abs().mean():.4f}")

    t0, c0 = time.perf_counter(), time.process_time()
    hits = 0
    for t in texts:
        hits += len(find_pii(t))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"PII scan             {len(texts) / elapsed:,.0f} rows/s wall, {len(texts) / cpu:,.0f} rows/s CPU ({elapsed:.1f} s, {hits:,} findings)")
    digit_rows = [t for t in texts if any("0" <= c <= "9" for c in t)]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in digit_rows:
        find_pii(t)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"PII scan, rows with digits only ({len(digit_rows):,}): {len(digit_rows) / elapsed:,.0f} rows/s wall, {len(digit_rows) / cpu:,.0f} rows/s CPU")
    if n_templated:
        templated(n_templated, args.seed, args.threshold)


if __name__ == "__main__":
    main()
