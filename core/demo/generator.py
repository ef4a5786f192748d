"""The demo generator: sizes and rates, planted problems, annotator labels, model predictions,
frames and files (see :mod:`core.demo` for what the data holds). Texts come from :mod:`.text`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .text import (
    INTENTS,
    PII_VALUES,
    PLANTED,
    SLOTS,
    _case_ws_variant,
    _Draw,
    _jaccard,
    _key,
    _message,
    _near_edit,
    _pick,
    _pii_sentence,
    _shingles,
    _truncate,
)

DEMO_DATASET = "demo-customer-service"
DEMO_LABELS: list[str] = list(INTENTS["labels"])
ANNOTATORS: tuple[str, ...] = ("alice", "bo", "chen")
BATCH_SIZES: dict[str, int] = {"r1": 900, "r2": 800, "r3": 700, "r4": 600}
CURRENT_SIZE = 600
F1_TARGETS: tuple[float, ...] = (0.83, 0.89, 0.92, 0.95)
FILE_NAMES = {
    "annotations": "demo_annotations.jsonl",
    "predictions": "demo_predictions.jsonl",
    "current": "demo_current.jsonl",
}
PLANTED_COUNTS: dict[str, int] = {
    "exact_duplicate": 20,
    "near_duplicate": 20,
    "pii": 30,
    "empty_output": 25,
    "truncated_output": 6,
    "html": 4,
    "url": 4,
    "label_error": 40,
    "missing_rating": 12,
}

_L = {lab: i for i, lab in enumerate(DEMO_LABELS)}
# Plausible confusions: where an annotator's or the model's error usually goes.
_NEIGHBOURS: dict[str, list[str]] = INTENTS["neighbours"]
_REF_MIX = {"cancel_order": 0.13, "refund": 0.14, "shipping_status": 0.20, "change_address": 0.10,
            "product_question": 0.16, "complaint": 0.08, "account_login": 0.10, "invoice": 0.09}
_CUR_MIX = {"cancel_order": 0.10, "refund": 0.24, "shipping_status": 0.06, "change_address": 0.07,
            "product_question": 0.10, "complaint": 0.28, "account_login": 0.08, "invoice": 0.07}
_ZH_SHARE_REF = 0.55
_ZH_SHARE_CUR = 0.70
# Per annotator: base error rate, share of errors that go to a confusable neighbour, and how
# strongly errors follow the sample's difficulty (careful annotators err on the hard ones).
_ANNOTATOR_ERR = {"alice": (0.055, 0.85, 0.5), "bo": (0.06, 0.85, 0.5), "chen": (0.45, 0.4, 0.15)}
# Model rounds: error rate (tuned to the macro-F1 targets) and share of uncertain samples.
_MODEL_ERR = (0.163, 0.105, 0.076, 0.046)
_MODEL_UNCERTAIN = (0.14, 0.10, 0.07, 0.05)
_ACCIDENTAL_MAX = 0.7  # 3-gram Jaccard above which an unplanned pair counts as a near-duplicate
_MONTH = {"r1": 1, "r2": 2, "r3": 3, "r4": 4, "current": 6}


# ---------------------------------------------------------------------------------------------
# Planted problems
# ---------------------------------------------------------------------------------------------
def _plant(rng: _Draw, samples: list[dict[str, Any]], n_ref: int) -> None:
    """Plant the documented problems in place (text first: labels and models follow the text)."""
    ref = np.arange(n_ref)
    cur = np.arange(n_ref, len(samples))
    perm_ref = [int(i) for i in rng.permutation(ref)]
    perm_cur = [int(i) for i in rng.permutation(cur)]

    def take(pool: list[int], k: int) -> list[int]:
        out = pool[:k]
        del pool[:k]
        return out

    for s in samples:
        s["planted"], s["planted_detail"], s["missing"] = None, None, None

    # Duplicates: targets and their sources are all distinct samples.
    exact_t, exact_s = take(perm_ref, 20), take(perm_ref, 20)
    near_t, near_s = take(perm_ref, 20), take(perm_ref, 20)
    for j, (t, src) in enumerate(zip(exact_t, exact_s)):
        a, b = samples[t], samples[src]
        for f in ("instruction", "input", "output", "true_label", "alt", "lang", "hard"):
            a[f] = b[f]
        if j % 2:
            a["instruction"] = _case_ws_variant(rng, b["instruction"], b["lang"])
        a["planted"], a["planted_detail"] = "exact_duplicate", b["id"]
    for t, src in zip(near_t, near_s):
        a, b = samples[t], samples[src]
        for f in ("input", "output", "true_label", "alt", "lang", "hard"):
            a[f] = b[f]
        edited = _near_edit(rng, b["instruction"], b["lang"])
        if len(_key(b)) > 80 and rng.random() < 0.5:
            edited = _near_edit(rng, edited, b["lang"])
        a["instruction"] = edited
        a["planted"], a["planted_detail"] = "near_duplicate", b["id"]

    # PII in the instruction: 24 reference + 6 current samples.
    pii_kinds = ["phone"] * 14 + ["email"] * 9 + ["cn_id"] * 4 + ["bank_card"] * 3
    pii_ids = take(perm_ref, 24) + take(perm_cur, 6)
    order = [int(i) for i in rng.permutation(len(pii_kinds))]
    for idx, k in zip(pii_ids, (pii_kinds[i] for i in order)):
        s = samples[idx]
        value = PII_VALUES[k](rng)
        s["instruction"] = s["instruction"] + _pii_sentence(k, value, s["lang"])
        s["planted"], s["planted_detail"] = "pii", k

    # Empty outputs: 15 "" and 10 whitespace-only; 20 reference + 5 current.
    empty_ids = take(perm_ref, 20) + take(perm_cur, 5)
    blanks = [""] * 15 + [" ", "  ", "\n", "\t", " \n ", "\u3000", "   ", "\r\n", " \t", "\n\n"]
    for idx, value in zip(empty_ids, (blanks[int(i)] for i in rng.permutation(len(blanks)))):
        samples[idx]["output"] = value
        samples[idx]["planted"] = "empty_output"
        samples[idx]["planted_detail"] = "empty" if value == "" else "whitespace"

    for idx in take(perm_ref, 6):
        s = samples[idx]
        s["output"] = _truncate(rng, s["output"])
        s["planted"] = "truncated_output"

    for j, idx in enumerate(take(perm_ref, 4)):
        s = samples[idx]
        s["output"] = PLANTED["html"][s["lang"]][j].format(o=s["output"])
        s["planted"] = "html"
    for j, idx in enumerate(take(perm_ref, 4)):
        s = samples[idx]
        if j < 2:
            link = PLANTED["url"]["output"][s["lang"]]
            s["output"] = s["output"] + link.format(p=s["true_label"].replace("_", "-"))
            s["planted_detail"] = "output"
        else:
            link = PLANTED["url"]["instruction"][s["lang"]]
            s["instruction"] = s["instruction"] + link.format(n=int(rng.integers(10000, 99999)))
            s["planted_detail"] = "instruction"
        s["planted"] = "url"

    for idx in take(perm_ref, 40):
        s = samples[idx]
        wrong = s["alt"] or _pick(rng, _NEIGHBOURS[s["true_label"]])
        s["planted"], s["planted_detail"] = "label_error", wrong

    missing = ["chen"] * 8 + ["bo"] * 2 + ["alice"] * 2
    for idx, who in zip(take(perm_ref, 9) + take(perm_cur, 3), missing):
        s = samples[idx]
        s["planted"], s["planted_detail"], s["missing"] = "missing_rating", who, who


# ---------------------------------------------------------------------------------------------
# Labels and predictions
# ---------------------------------------------------------------------------------------------
def _confusion_label(rng: Any, true: str, alt: str | None) -> str:
    return alt or _pick(rng, _NEIGHBOURS[true])


def _annotate(rng: np.random.Generator, samples: list[dict[str, Any]]) -> None:
    n = len(samples)
    hard = np.array([s["hard"] for s in samples])
    for name in ANNOTATORS:
        rate, neighbour_share, slope = _ANNOTATOR_ERR[name]
        weight = np.exp(slope * hard)
        weight /= weight.mean()
        p_err = np.clip(rate * weight, 0.0, 0.85)
        err = rng.random(n) < p_err
        to_neighbour = rng.random(n) < neighbour_share
        for i, s in enumerate(samples):
            true = s["true_label"]
            if s["planted"] == "label_error":
                label = s["planted_detail"]
            elif not err[i]:
                label = true
            elif to_neighbour[i]:
                label = _confusion_label(rng, true, s["alt"])
            else:
                label = _pick(rng, [lab for lab in DEMO_LABELS if lab != true])
            s.setdefault("labels", {})[name] = label


def _round_probs(p: np.ndarray) -> np.ndarray:
    """Round to 6 decimals; the largest entry absorbs the rounding so each row sums to 1."""
    r = np.round(p, 6)
    top = r.argmax(axis=1)
    rows = np.arange(r.shape[0])
    r[rows, top] = np.round(r[rows, top] + (1.0 - r.sum(axis=1)), 6)
    return r


def _predict(rng: np.random.Generator, ref: list[dict[str, Any]]) -> list[np.ndarray]:
    """Per model round an (n, 8) probability matrix over the reference samples."""
    n, k = len(ref), len(DEMO_LABELS)
    true = np.array([_L[s["true_label"]] for s in ref])
    hard = np.array([s["hard"] for s in ref])
    forced = np.array([s["planted"] == "label_error" for s in ref])
    confusion = np.array([_L[_confusion_label(rng, s["true_label"], s["alt"])] for s in ref])
    rows = np.arange(n)
    out = []
    for err_rate, unc_rate in zip(_MODEL_ERR, _MODEL_UNCERTAIN):
        score = hard + rng.normal(0.0, 0.7, n)
        score[forced] = -np.inf
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(-score, kind="stable")] = np.arange(n)
        n_wrong = int(round(err_rate * n))
        wrong = rank < n_wrong
        half = int(round(unc_rate * n / 2))
        uncertain = (rank >= n_wrong - half) & (rank < n_wrong + half) & ~forced
        # A wrong prediction goes to the sample's confusable label, sometimes anywhere else.
        random_other = (true + rng.integers(1, k, n)) % k
        wrong_label = np.where(rng.random(n) < 0.85, confusion, random_other)
        pred = np.where(wrong, wrong_label, true)
        second = np.where(wrong, true, confusion)

        logits = np.clip(rng.normal(-0.6, 0.6, (n, k)), -3.0, 0.4)
        top = rng.uniform(3.2, 6.5, n)                        # confident and right
        runner = rng.uniform(-0.5, 2.2, n)
        w_top = rng.uniform(2.5, 5.0, n)                      # wrong but over-confident
        w_run = w_top - rng.uniform(0.6, 2.5, n)
        u_top = rng.uniform(1.0, 2.6, n)                      # genuinely uncertain
        u_run = u_top - rng.uniform(0.03, 0.35, n)
        f_top = rng.uniform(4.0, 6.5, n)                      # planted label errors: model is right
        f_run = rng.uniform(0.0, 1.5, n)
        top = np.select([uncertain, wrong, forced], [u_top, w_top, f_top], top)
        runner = np.select([uncertain, wrong, forced], [u_run, w_run, f_run], runner)
        logits[rows, second] = np.maximum(runner, logits[rows, second])
        logits[rows, pred] = top
        temp = rng.uniform(0.9, 1.2, n)[:, None]
        z = logits / temp
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        out.append(_round_probs(p))
    return out


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def _counts(shares: list[float], size: int) -> list[int]:
    """Integer counts summing to ``size`` in the given proportions (largest remainder)."""
    raw = [w * size for w in shares]
    counts = [int(x) for x in raw]
    by_rest = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_rest[: size - sum(counts)]:
        counts[i] += 1
    return counts


def _draw(rng: _Draw, mix: dict[str, float], zh_share: float, size: int) -> tuple[list[str], list[str]]:
    """Exactly the label mix and Chinese share asked for, in random order."""
    labels = [lab for lab, c in zip(DEMO_LABELS, _counts([mix[lab] for lab in DEMO_LABELS], size)) for _ in range(c)]
    n_zh = _counts([zh_share, 1 - zh_share], size)[0]
    langs = ["zh"] * n_zh + ["en"] * (size - n_zh)
    return [labels[i] for i in rng.permutation(size)], [langs[i] for i in rng.permutation(size)]


def _build_samples(rng: _Draw) -> list[dict[str, Any]]:
    plan: list[tuple[str, int, str, str]] = []
    for r, (batch, size) in enumerate(BATCH_SIZES.items(), start=1):
        labels, langs = _draw(rng, _REF_MIX, _ZH_SHARE_REF, size)
        plan += [(batch, r, lab, lang) for lab, lang in zip(labels, langs)]
    labels, langs = _draw(rng, _CUR_MIX, _ZH_SHARE_CUR, CURRENT_SIZE)
    plan += [("current", len(BATCH_SIZES) + 1, lab, lang) for lab, lang in zip(labels, langs)]

    samples: list[dict[str, Any]] = []
    # Only planted duplicates may be near-duplicates: an accidental one (same templates, similar
    # slots) is redrawn. Texts from different instruction or reply templates are never that close.
    by_template: dict[tuple[str, str, int, int], list[set[str]]] = {}
    for i, (batch, rnd, label, lang) in enumerate(plan, start=1):
        for _ in range(100):
            msg = _message(rng, label, lang, long=batch == "current")
            sh = _shingles(_key(msg))
            if all(_jaccard(sh, other) < _ACCIDENTAL_MAX for other in by_template.get(msg["template"], ())):
                break
        by_template.setdefault(msg["template"], []).append(sh)
        alt = msg["alt"]
        hard = rng.normal() + (1.3 if alt else 0.0)
        samples.append({
            "id": f"cs-{i:05d}", "batch": batch, "round": rnd, "true_label": label, "lang": lang,
            "channel": SLOTS["channel"][int(rng.choice(3, p=[0.5, 0.35, 0.15]))],
            "created_at": f"2024-{_MONTH[batch]:02d}-{int(rng.integers(1, 29)):02d}",
            "instruction": msg["instruction"], "input": msg["input"], "output": msg["output"],
            "alt": alt, "hard": hard,
        })
    return samples


#: Every GOLD_EVERY-th reference sample (not a planted one) is a gold question: its true label is in the file.
GOLD_EVERY = 50


def _gold_label(s: dict[str, Any]) -> str | None:
    """The true label of a gold (honeypot) question, else None; chosen by id, so the random draws stay as they were."""
    if s["batch"] not in BATCH_SIZES or s.get("planted") or int(s["id"].rsplit("-", 1)[1]) % GOLD_EVERY != 25:
        return None
    return s["true_label"]


def _long_frame(samples: list[dict[str, Any]]) -> pl.DataFrame:
    rows = []
    for s in samples:
        for name in ANNOTATORS:
            if s.get("missing") == name:
                continue
            rows.append({
                "id": s["id"], "batch": s["batch"], "round": s["round"], "annotator": name,
                "label": s["labels"][name], "instruction": s["instruction"], "input": s["input"],
                "output": s["output"], "channel": s["channel"], "lang": s["lang"], "created_at": s["created_at"],
                "gold_label": _gold_label(s),
            })
    schema = {"id": pl.Utf8, "batch": pl.Utf8, "round": pl.Int64, "annotator": pl.Utf8, "label": pl.Utf8,
              "instruction": pl.Utf8, "input": pl.Utf8, "output": pl.Utf8, "channel": pl.Utf8, "lang": pl.Utf8,
              "created_at": pl.Utf8, "gold_label": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def generate_demo_frames(seed: int = 7) -> dict[str, pl.DataFrame]:
    """The demo data as polars frames: ``annotations``, ``predictions``, ``current`` and ``truth``.

    ``annotations`` and ``current`` are the long-form import files (one row per sample and
    annotator); ``predictions`` has ``id, pred_round, model, probs`` with ``probs`` a struct
    of one Float64 field per label in :data:`DEMO_LABELS` order. ``truth`` (never written to
    the import files) has one row per sample: ``id, batch, round, lang, true_label, planted,
    planted_detail`` (see the module docstring for the planted problems).
    """
    streams = np.random.SeedSequence(seed).spawn(4)
    text_rng, plant_rng, ann_rng, pred_rng = (np.random.default_rng(s) for s in streams)
    text_rng, plant_rng = _Draw(text_rng), _Draw(plant_rng)
    samples = _build_samples(text_rng)
    n_ref = sum(BATCH_SIZES.values())
    _plant(plant_rng, samples, n_ref)
    _annotate(ann_rng, samples)
    ref, cur = samples[:n_ref], samples[n_ref:]
    probs = _predict(pred_rng, ref)

    ids = [s["id"] for s in ref]
    pred_parts = []
    for r, p in enumerate(probs, start=1):
        pred_parts.append(pl.DataFrame({
            "id": ids,
            "pred_round": [r] * len(ids),
            "model": [f"intent-clf-r{r}"] * len(ids),
            "probs": pl.DataFrame({lab: p[:, j] for j, lab in enumerate(DEMO_LABELS)}).to_struct("probs"),
        }, schema_overrides={"pred_round": pl.Int64}))
    truth = pl.DataFrame({
        "id": [s["id"] for s in samples],
        "batch": [s["batch"] for s in samples],
        "round": [s["round"] for s in samples],
        "lang": [s["lang"] for s in samples],
        "true_label": [s["true_label"] for s in samples],
        "planted": [s["planted"] for s in samples],
        "planted_detail": [s["planted_detail"] for s in samples],
    }, schema={"id": pl.Utf8, "batch": pl.Utf8, "round": pl.Int64, "lang": pl.Utf8, "true_label": pl.Utf8,
               "planted": pl.Utf8, "planted_detail": pl.Utf8})
    return {
        "annotations": _long_frame(ref),
        "predictions": pl.concat(pred_parts),
        "current": _long_frame(cur).drop("gold_label"),
        "truth": truth,
    }


def _write_jsonl(frame: pl.DataFrame, path: Path) -> None:
    """One JSON object per line, UTF-8 as is (no \\u escapes for CJK), struct columns as objects."""
    frame.write_ndjson(path)


def generate_demo(out_dir: Path, seed: int = 7) -> dict[str, Path]:
    """Write the three demo import files into ``out_dir`` (created if missing); return their paths.

    Keys ``annotations``, ``predictions``, ``current``; import them in that order with
    ``import_file(store, path, DEMO_DATASET, labels=DEMO_LABELS)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = generate_demo_frames(seed)
    paths = {}
    for key, name in FILE_NAMES.items():
        path = out_dir / name
        _write_jsonl(frames[key], path)
        paths[key] = path
    return paths
