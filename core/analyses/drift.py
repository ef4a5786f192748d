"""The Drift page's numbers for one comparison (a reference and a current batch or round), persisted by the
``drift`` job: the report, the charts' data and the texts to embed, so the page reads no samples itself."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from core.drift import TEXT_FIELDS, text_features
from core.drift_features import (
    Selection,
    SideData,
    compare_sides,
    default_pair,
    embedding_rows,
    embedding_texts,
    label_shares,
    order_batches,
    psi_across,
)
from core.store import Store
from core.store.results import register_result_type

#: Values per side kept for a numeric feature's histogram (a uniform subsample beyond this: same shape).
MAX_HISTOGRAM_VALUES = 20_000
#: Texts per side kept for embedding drift (enough for PCA and the domain classifier, seconds to embed).
MAX_EMBED_TEXTS = 1000


@register_result_type
@dataclass(frozen=True)
class DriftView:
    """One comparison, ready to draw.

    batches (in time order) and rounds: the selectable sides. ref / cur: the compared selections' labels
    ("batch r1", "round 3"); both None when the dataset has fewer than two batches and two rounds. ref_n /
    cur_n: their samples (a side without samples: ``report`` is None). report, unavailable, ref_pred_round,
    cur_pred_round: :class:`core.drift_features.Comparison`'s. shares: feature -> :func:`label_shares` frame
    (sides named by ref and cur) for every categorical feature and the label columns. values: ``feature,
    side, value`` (Float64) of the numeric features, at most :data:`MAX_HISTOGRAM_VALUES` per side and
    feature. trend: :func:`psi_across` of every round against ref (None with fewer than two rounds).
    ref_texts / cur_texts: the texts embedding drift embeds.
    """

    batches: list[str]
    rounds: list[int]
    ref: str | None
    cur: str | None
    bins: int
    ref_n: int = 0
    cur_n: int = 0
    report: pl.DataFrame | None = None
    unavailable: pl.DataFrame | None = None
    ref_pred_round: int | None = None
    cur_pred_round: int | None = None
    shares: dict | None = None
    values: pl.DataFrame | None = None
    trend: pl.DataFrame | None = None
    ref_texts: list | None = None
    cur_texts: list | None = None


_FEATURE_NAMES = {"label": "Label (majority)", "predicted_label": "Predicted label",
                  "pred_confidence": "Prediction confidence"}


def feature_name(feature: str) -> str:
    """A drift feature as people read it: ``instruction_tokens`` -> ``Instruction length (tokens)``,
    ``label_by_bo`` -> ``Label by bo`` (the annotator's name as it is), ``label`` -> ``Label (majority)``."""
    feature = str(feature)
    if feature in _FEATURE_NAMES:
        return _FEATURE_NAMES[feature]
    if feature.startswith("label_by_"):
        return f"Label by {feature[len('label_by_'):]}"
    for suffix, unit in (("_chars", "characters"), ("_tokens", "tokens")):
        if feature.endswith(suffix) and len(feature) > len(suffix):
            field = feature[: -len(suffix)].replace("_", " ")
            return f"{field[:1].upper()}{field[1:]} length ({unit})"
    words = feature.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else feature


def parse_selection(label: str) -> Selection:
    """``"batch r1"`` / ``"round 3"`` as a :class:`Selection` (ValueError naming what was expected)."""
    kind, _, value = str(label).partition(" ")
    if kind == "round":
        try:
            return Selection("round", int(value))
        except ValueError:
            raise ValueError(f"a round selection is 'round N', got {label!r}") from None
    if kind == "batch" and value:
        return Selection("batch", value)
    raise ValueError(f"a selection is 'batch NAME' or 'round N', got {label!r}")


#: Samples per page of the length pass: one page of texts in memory at a time.
PAGE_ROWS = 100_000


def length_frame(store: Store, dataset: str, progress=None) -> pl.DataFrame:
    """``sample_id, batch, round`` and :func:`core.drift.text_features`'s lengths of every sample (excluded ones
    too, as the sides of a comparison always had), computed page by page: at a million samples the texts
    (gigabytes) are never held at once, only their lengths (tens of MB)."""
    total = max(1, store.overview_counts(dataset).get("samples", 0))
    parts, seen = [], 0
    for page in store.sample_pages(dataset, page_rows=PAGE_ROWS):
        lengths = text_features(page.select("sample_id", *TEXT_FIELDS)).drop("sample_id")
        parts.append(pl.concat([page.select("sample_id", "batch", "round"), lengths], how="horizontal"))
        seen += page.height
        if progress:
            progress("measuring the texts", 0.02 + 0.25 * min(1.0, seen / total))
    if not parts:
        return pl.DataFrame(schema={"sample_id": pl.String, "batch": pl.String, "round": pl.Int32})
    return pl.concat(parts, how="vertical_relaxed")


def _side(store: Store, dataset: str, selection: Selection, lengths: pl.DataFrame) -> SideData:
    args = selection.store_args()
    column = "batch" if selection.kind == "batch" else "round"
    return SideData(lengths.filter(pl.col(column) == selection.value), store.annotations(dataset, **args),
                    store.selection_predictions(dataset, **args))


def _embedding_texts(store: Store, dataset: str, side: SideData, seed: int) -> list[str]:
    """:func:`core.drift_features.embedding_texts` of a side, reading only the texts it keeps."""
    if side.n_samples == 0:
        return []
    keep = embedding_rows(side.n_samples, MAX_EMBED_TEXTS, seed)
    ids = side.samples["sample_id"] if keep is None else side.samples["sample_id"].gather(keep)
    return embedding_texts(store.samples_by_ids(dataset, ids.to_list()), MAX_EMBED_TEXTS)


def _subsample(frame: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    return frame if frame.height <= n else frame.sample(n, seed=seed).sort("sample_id")


def drift_view(store: Store, dataset: str, ref: str | None = None, cur: str | None = None, bins: int = 10,
               progress=None) -> DriftView:
    """Compare ``ref`` with ``cur`` (labels as :func:`parse_selection` reads them; None: the default pair, the
    earliest vs the latest batch, else round)."""
    def report(stage: str, fraction: float) -> None:
        if progress:
            progress(stage, fraction)

    report("loading the selections", 0.02)
    batches, rounds = store.batches(dataset), store.rounds(dataset)
    lengths = length_frame(store, dataset, progress)
    round_sides = {r: _side(store, dataset, Selection("round", r), lengths) for r in rounds}
    placed = [s.samples.select("batch", "round") for s in round_sides.values()]
    batches = order_batches(batches, pl.concat(placed) if placed else None)
    pair = default_pair(batches, rounds)
    if pair is None and (ref is None or cur is None):
        return DriftView(batches, rounds, None, None, bins)
    ref_sel = parse_selection(ref) if ref is not None else pair[0]
    cur_sel = parse_selection(cur) if cur is not None else pair[1]

    def side(sel: Selection) -> SideData:
        return (round_sides[sel.value] if sel.kind == "round" and sel.value in round_sides
                else _side(store, dataset, sel, lengths))

    ref_side, cur_side = side(ref_sel), side(cur_sel)
    view = DriftView(batches, rounds, ref_sel.label, cur_sel.label, bins, ref_side.n_samples, cur_side.n_samples)
    if ref_side.n_samples == 0 or cur_side.n_samples == 0 or ref_sel == cur_sel:
        return view
    report("comparing the two selections", 0.3)
    result = compare_sides(ref_side, cur_side, bins=bins)
    names = (ref_sel.label, cur_sel.label)
    kinds = dict(zip(result.report["feature"], result.report["kind"]))
    shares = {f: label_shares(result.reference, result.current, f, names=names)
              for f in [*kinds, "label", "predicted_label"] if kinds.get(f) != "numeric"}
    numeric = [f for f, k in kinds.items() if k == "numeric"]
    parts = []
    for name, frame, seed in ((names[0], result.reference, 0), (names[1], result.current, 1)):
        sub = _subsample(frame, MAX_HISTOGRAM_VALUES, seed)
        for f in numeric:
            if f in sub.columns:
                parts.append(sub.select(pl.lit(f).alias("feature"), pl.lit(name).alias("side"),
                                        pl.col(f).cast(pl.Float64).alias("value")).drop_nulls())
    values = (pl.concat(parts) if parts else
              pl.DataFrame(schema={"feature": pl.String, "side": pl.String, "value": pl.Float64}))
    trend = None
    if len(rounds) >= 2:
        report("comparing every round with the reference", 0.6)
        trend = psi_across(ref_side, {f"round {r}": s for r, s in round_sides.items()}, bins=bins)
    report("choosing the texts to embed", 0.95)
    return DriftView(
        batches, rounds, ref_sel.label, cur_sel.label, bins, ref_side.n_samples, cur_side.n_samples,
        report=result.report, unavailable=result.unavailable, ref_pred_round=result.ref_pred_round,
        cur_pred_round=result.cur_pred_round, shares=shares, values=values, trend=trend,
        ref_texts=_embedding_texts(store, dataset, ref_side, 0),
        cur_texts=_embedding_texts(store, dataset, cur_side, 1),
    )
