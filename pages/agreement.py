"""Agreement: can the labels be trusted? Metric cards, pairwise kappa, annotators, labels, batches, disputes."""

from __future__ import annotations

import math

import numpy as np
import plotly.express as px
import polars as pl
import streamlit as st

from core.agreement import (
    KAPPA_RETRAIN_THRESHOLD,
    REWORK_THRESHOLD,
    pair_confusion,
)
from core.analyses import agreement as analysis
from core.queue import queue_disputed
from core.roles import Action
from core.vocab import AGREEMENT_GOOD as BAND_GOOD
from core.vocab import AGREEMENT_RETRAIN as BAND_RETRAIN
from ui.cache import data_key
from ui.errors import shown_errors
from ui.format import band_color, safe_filename
from ui.format import table as table_view
from ui.jobs import job_result
from ui.session import (
    can,
    current_user,
    get_store,
    refresh_after_write,
    require_dataset,
)

N_BOOT = 1000
WIDE_INTERVAL = 0.2  # a 95% interval wider than this: too few samples to trust the band
MAX_ROWS_SHOWN = 1000  # disputed samples drawn in the table; the CSV holds all of them
CARDS = (
    ("percent_agreement", "Percent agreement", (
        "Share of agreeing annotator pairs per sample, averaged over samples with two or more ratings. "
        f"Coloured by the guideline's rule for double-annotated batches: green at {REWORK_THRESHOLD:.0%} or "
        "more, red below (rework) — not by the kappa bands.")),
    ("fleiss_kappa", "Fleiss' kappa", ("Agreement beyond chance for any number of annotators "
                                       "(missing ratings allowed).")),
    ("krippendorff_alpha", "Krippendorff's alpha", ("Nominal alpha: agreement beyond chance, "
                                                    "robust to missing ratings.")),
)

st.title("Agreement")
st.caption(
    f"Do the annotators agree well enough to trust the labels? Bands: ≥ {BAND_GOOD} good, "
    f"{BAND_RETRAIN}–{BAND_GOOD} fair, < {BAND_RETRAIN} retrain. Intervals are 95% bootstrap intervals "
    f"({N_BOOT:,} resamples of the samples)."
)
dataset = require_dataset()
data_id = data_key(dataset)


@st.cache_data(ttl=60, show_spinner=False)
def load_filters(data_id: tuple) -> tuple[list[int], list[str]]:
    store, name = get_store(), data_id[1]
    return store.rounds(name), store.batches(name)


@st.cache_data(ttl=300, show_spinner="Comparing the two annotators…", max_entries=32)
def confusion(data_id: tuple, batch: str | None, round_: int | None, a: str, b: str) -> tuple[list, np.ndarray]:
    """A pair's confusion matrix when the stored result has none (more annotators than it precomputes)."""
    ratings = analysis.load_ratings(get_store(), data_id[1], batch, round_)
    return pair_confusion(ratings.matrix, ratings.annotators.index(a), ratings.annotators.index(b))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _band(value: float) -> str:
    return {"green": "good", "orange": "fair", "red": "retrain"}.get(band_color(value), "undefined")


def _rule_color(metric: str, value: float) -> str:
    """A card's colour: percent agreement by the guideline's rework rule (the batch flag below), the
    chance-corrected coefficients by the kappa bands."""
    if metric != "percent_agreement":
        return band_color(value)
    return "gray" if value is None or math.isnan(value) else ("green" if value >= REWORK_THRESHOLD else "red")


def _rule_word(metric: str, value: float) -> str:
    if metric != "percent_agreement":
        return _band(value)
    return {"green": f"≥ {REWORK_THRESHOLD:.0%}", "red": f"rework (< {REWORK_THRESHOLD:.0%})"}.get(
        _rule_color(metric, value), "undefined")


#: Kappa colours by band, as on the cards: red < 0.6 (retrain), amber 0.6–0.8 (fair), green ≥ 0.8 (good).
BAND_SCALE = [[0.0, "#d62728"], [BAND_RETRAIN, "#d62728"], [BAND_RETRAIN, "#ffb000"], [BAND_GOOD, "#ffb000"],
              [BAND_GOOD, "#2ca02c"], [1.0, "#2ca02c"]]


def _heatmap(z: np.ndarray, x: list, y: list, zmin: float, zmax: float, scale: str, fmt: str, title: str):
    fig = px.imshow(z, x=[str(v) for v in x], y=[str(v) for v in y], zmin=zmin, zmax=zmax,
                    color_continuous_scale=scale, text_auto=fmt, aspect="auto")
    fig.update_layout(height=max(260, 60 * len(y) + 120), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      coloraxis_colorbar_title=title)
    fig.update_xaxes(side="top", type="category")
    fig.update_yaxes(type="category")
    return fig


# -- filters ------------------------------------------------------------------------------------
with shown_errors(stop=True):
    rounds, batches = load_filters(data_id)

for widget, options in (("agreement_round", rounds), ("agreement_batch", batches)):
    if st.session_state.get(widget) is not None and st.session_state[widget] not in options:
        st.session_state.pop(widget)  # a value of another dataset
left, right = st.columns(2)
round_ = left.selectbox("Round", [None, *rounds], key="agreement_round",
                        format_func=lambda r: "All rounds" if r is None else f"Round {r}",
                        help="Samples of one labeling round (a sample's round is set at import).")
batch = right.selectbox("Batch", [None, *batches], key="agreement_batch",
                        format_func=lambda b: "All batches" if b is None else b)

# computed by the "agreement" job (core.jobs), stored, and recomputed in the background when the data changes
stored = job_result(dataset, "agreement", {"batch": batch, "round": round_}, key="agreement_job")
if stored is None:
    st.stop()

where = " · ".join(p for p in (f"round {round_}" if round_ is not None else "",
                               f"batch {batch}" if batch is not None else "") if p) or "all rounds and batches"
if not stored.n_samples:
    st.info(f"No annotations in **{dataset}** ({where}). Import annotations with an `annotator` column on the "
            "**Import** page, or choose another round or batch.")
    st.stop()
if len(stored.annotators) < 2 or stored.view is None:
    st.info(f"Only one annotator (**{stored.annotators[0]}**) labeled **{dataset}** ({where}): agreement "
            "needs at least two annotators who label the same samples. Import a second annotator's labels "
            "on the **Import** page.")
    st.stop()

res = stored.view

st.caption(f"**{dataset}** · {where} · {res.n_samples:,} samples ({res.n_pairable:,} with two or more ratings) · "
           f"{len(res.annotators)} annotators")

# -- metric cards -------------------------------------------------------------------------------
summary = {row["metric"]: row for row in res.summary.iter_rows(named=True)}
cards = st.columns(len(CARDS))
wide = []
for col, (metric, label, help_text) in zip(cards, CARDS):
    row = summary[metric]
    value = row["value"]
    with col:
        if math.isnan(value):
            st.metric(label, "—", help=help_text, border=True)
            st.caption(f"Undefined: {row['reason']}.")
        else:
            interval = f"95% CI {_fmt(row['low'])} – {_fmt(row['high'])}"
            uncertain = not math.isnan(row["high"]) and row["high"] - row["low"] > WIDE_INTERVAL
            if uncertain:
                wide.append(f"{label} {_fmt(row['low'])}–{_fmt(row['high'])}")
            word = _rule_word(metric, value)
            band = f"{word}?" if uncertain else word
            st.metric(label, _fmt(value), delta=f"{band} · {interval}",
                      delta_color="gray" if uncertain else _rule_color(metric, value),
                      delta_arrow="off", help=help_text, border=True)
if wide:
    st.warning(f"Few samples ({res.n_pairable:,} with two or more ratings): the 95% intervals are wider than "
               f"{WIDE_INTERVAL:g} ({'; '.join(wide)}), so the band may be wrong either way. Label more "
               "samples twice before judging the annotators.", icon=":material/warning:")
st.caption(
    f"Two rules, two questions. The **kappa/alpha bands** (≥ {BAND_GOOD} good, {BAND_RETRAIN}–{BAND_GOOD} fair, "
    f"< {BAND_RETRAIN} retrain) judge agreement *beyond chance* over the whole selection. The **batch rework "
    f"flag** is the guideline's rule for double-annotated batches: raw percent agreement below "
    f"{REWORK_THRESHOLD:.0%} (the *Percent agreement* card is coloured by this rule). With a few dominant labels, chance agreement is high, so a batch can need rework "
    "at 85% raw agreement while kappa is still fair — both are shown because the guideline asks for both."
)

# -- pairwise kappa -----------------------------------------------------------------------------
st.subheader("Pairwise Cohen's kappa")
fig = _heatmap(res.kappa_grid, res.annotators, res.annotators, 0.0, 1.0, BAND_SCALE, ".2f", "kappa")
fig.update_traces(hovertemplate="%{y} vs %{x}: kappa %{z:.3f}<extra></extra>")
fig.update_layout(coloraxis_colorbar={"tickvals": [BAND_RETRAIN / 2, (BAND_RETRAIN + BAND_GOOD) / 2,
                                                   (BAND_GOOD + 1) / 2],
                                      "ticktext": [f"retrain < {BAND_RETRAIN}", "fair", f"good ≥ {BAND_GOOD}"]})
st.plotly_chart(fig, width="stretch", key="agreement_kappa_heatmap")
undefined_pairs = res.pairwise.filter(pl.col("kappa").is_nan())
if undefined_pairs.height:
    st.caption("No kappa (blank cells) for: " + ", ".join(
        f"{a} & {b} ({n} shared samples)" for a, b, n in
        undefined_pairs.select("annotator_a", "annotator_b", "n_items").iter_rows()) +
        " — too few shared samples or a single label.")

# -- annotators ---------------------------------------------------------------------------------
st.subheader("Annotators")
labels_order = res.per_label["label"].to_list()
shares = (res.distribution.group_by("annotator", maintain_order=True)
          .agg(pl.col("share").alias("label_distribution")))
table = res.report.join(shares, on="annotator", how="left", maintain_order="left").with_columns(
    pl.col("flag").fill_null(False).alias("retrain"))
st.dataframe(
    table.select("annotator", "n_items", "agreement_with_majority", "kappa_vs_majority", "retrain",
                 "label_distribution", "n_compared"),
    hide_index=True, width="stretch",
    column_config={
        "annotator": st.column_config.TextColumn("Annotator"),
        "n_items": st.column_config.NumberColumn("Items labeled", format="%d"),
        "agreement_with_majority": st.column_config.NumberColumn(
            "Agreement with majority", format="percent",
            help="Share of samples where the annotator gave the majority label of the other annotators"),
        "kappa_vs_majority": st.column_config.NumberColumn("Kappa vs majority", format="%.3f"),
        "retrain": st.column_config.CheckboxColumn(f"Below {KAPPA_RETRAIN_THRESHOLD}",
                                                   help="Kappa against the majority below the retrain band"),
        "label_distribution": st.column_config.BarChartColumn(
            "Label distribution", y_min=0.0, y_max=float(res.distribution["share"].fill_nan(0.0).max() or 1.0),
            help="Share of each label (same scale for every annotator), in order: " + ", ".join(
                str(x) for x in labels_order)),
        "n_compared": st.column_config.NumberColumn("Compared", format="%d",
                                                    help="Samples where the other annotators had a majority"),
    },
)
flagged = table.filter(pl.col("retrain"))["annotator"].to_list()
if flagged:
    st.warning(f"Below kappa {KAPPA_RETRAIN_THRESHOLD} against the majority (retrain): " + ", ".join(flagged))

# -- labels -------------------------------------------------------------------------------------
st.subheader("Labels")
left, right = st.columns(2)
with left:
    st.markdown("**Per-label agreement**")
    st.dataframe(
        res.per_label, hide_index=True, width="stretch",
        column_config={
            "label": st.column_config.TextColumn("Label"),
            "n_ratings": st.column_config.NumberColumn("Ratings", format="%d"),
            "agreement": st.column_config.ProgressColumn(
                "Specific agreement", min_value=0.0, max_value=1.0, format="percent",
                help="Of the ratings of this label, how often another annotator of the same sample gave it too"),
        },
    )
with right:
    st.markdown("**Confusion between two annotators**")
    for key, default in (("agreement_pair_a", res.annotators[0]), ("agreement_pair_b", res.annotators[1])):
        if st.session_state.get(key) not in res.annotators:
            st.session_state[key] = default
    ca, cb = st.columns(2)
    a = ca.selectbox("Annotator A (rows)", res.annotators, key="agreement_pair_a")
    b = cb.selectbox("Annotator B (columns)", res.annotators, key="agreement_pair_b")
    with shown_errors():
        axis, table_ab = stored.confusions.get((a, b)) or confusion(data_id, batch, round_, a, b)
        fig = _heatmap(table_ab, axis, axis, 0, max(1, int(table_ab.max(initial=0))), "Blues", "d", "samples")
        fig.update_layout(xaxis_title=f"{b}", yaxis_title=f"{a}")
        fig.update_traces(hovertemplate=f"{a}: %{{y}}<br>{b}: %{{x}}<br>%{{z}} samples<extra></extra>")
        st.plotly_chart(fig, width="stretch", key="agreement_confusion")

# -- batches ------------------------------------------------------------------------------------
st.subheader("Batches")
REWORK_NAMES = {True: f"rework (< {REWORK_THRESHOLD:.0%})", False: f"≥ {REWORK_THRESHOLD:.0%}"}
per_batch = res.per_batch.with_columns(pl.col("rework").fill_null(False))
if per_batch["group"].is_null().all():
    st.info(f"No batches in this selection: the samples have no `batch` column, so the guideline's "
            f"per-batch rule (rework below {REWORK_THRESHOLD:.0%} percent agreement) has nothing to split. Over "
            "the whole selection see the **Percent agreement** card above; import the data with a `batch` column "
            "to check batch by batch.")
else:
    per_batch = per_batch.with_columns(pl.col("group").fill_null("(no batch)"))
    chart = per_batch.with_columns(pl.col("rework").replace_strict(REWORK_NAMES, return_dtype=pl.Utf8)
                                   .alias("status"))
    fig = px.bar(chart.to_pandas(), x="group", y="percent_agreement", color="status",
                 color_discrete_map={REWORK_NAMES[True]: "#d62728", REWORK_NAMES[False]: "#2ca02c"},
                 category_orders={"status": [REWORK_NAMES[False], REWORK_NAMES[True]]},
                 labels={"group": "batch", "percent_agreement": "percent agreement", "status": "",
                         "n_samples": "samples", "n_compared": "with ≥ 2 ratings"},
                 hover_data=["n_samples", "n_compared"])
    fig.add_hline(y=REWORK_THRESHOLD, line_dash="dash", annotation_text=f"rework below {REWORK_THRESHOLD:.0%}")
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_range=[0, 1], legend_title_text="")
    fig.update_xaxes(type="category")
    st.plotly_chart(fig, width="stretch", key="agreement_batches")
    st.dataframe(
        per_batch, hide_index=True, width="stretch",
        column_config={
            "group": st.column_config.TextColumn("Batch"),
            "n_samples": st.column_config.NumberColumn("Samples", format="%d"),
            "n_compared": st.column_config.NumberColumn("With ≥ 2 ratings", format="%d"),
            "percent_agreement": st.column_config.NumberColumn("Percent agreement", format="percent"),
            "rework": st.column_config.CheckboxColumn(f"Rework (< {REWORK_THRESHOLD:.0%})"),
        },
    )
    rework = per_batch.filter(pl.col("rework"))["group"].to_list()
    if rework:
        st.warning(f"Rework: percent agreement below {REWORK_THRESHOLD:.0%} in "
                   f"{'batches' if len(rework) != 1 else 'batch'} " + ", ".join(rework))

# -- disputed samples ---------------------------------------------------------------------------
st.subheader("Disputed samples")
disputed = res.disputed
st.caption("Samples with two or more ratings where no label has a strict majority (including every tie). "
           "Queued samples are adjudicated on the **Review** page.")
if disputed.height == 0:
    st.success("No disputed samples in this selection: every sample with two or more ratings has a majority.")
else:
    label_columns = {f"label_by_{x}": st.column_config.TextColumn(x) for x in res.annotators}
    shown = disputed.sort("priority", "sample_id", descending=[True, False]).head(MAX_ROWS_SHOWN)
    table_view(  # missing ratings and unadjudicated samples as "—", never "None"
        shown.drop("priority"),
        column_config={
            "sample_id": st.column_config.TextColumn("Sample"),
            "text": st.column_config.TextColumn("Text", width="large"),
            "why": st.column_config.TextColumn("Why"),
            "top_share": st.column_config.NumberColumn("Top label share", format="percent"),
            "adjudicated": st.column_config.TextColumn(
                "Adjudicated", help="The label of the latest review on the Review page, if any"),
            **label_columns,
        },
    )
    if disputed.height > MAX_ROWS_SHOWN:
        st.caption(f"Showing the {MAX_ROWS_SHOWN:,} most split of {disputed.height:,}; the CSV holds all of them.")

    def _csv() -> bytes:
        return disputed.drop("priority").write_csv().encode("utf-8")

    stem = safe_filename("disputed", dataset, where)
    st.download_button(f"Download the {disputed.height:,} disputed samples (CSV)", _csv, file_name=f"{stem}.csv",
                       mime="text/csv", icon=":material/download:", key="agreement_csv")

    # samples already adjudicated on the Review page are not queued again
    pending = disputed.filter(pl.col("adjudicated").is_null())
    if pending.height < disputed.height:
        st.caption(f"{disputed.height - pending.height:,} of the {disputed.height:,} disputed samples are already "
                   "adjudicated (reviewed) and are not queued again.")
    if not can(Action.QUEUE_RULES):
        st.caption("Your role cannot queue samples for adjudication.")
    elif pending.height == 0:
        st.info("Every disputed sample of this selection is already adjudicated.")
    elif st.button(f"Queue {pending.height:,} disputed samples for adjudication", type="primary",
                   icon=":material/playlist_add:", key="agreement_queue"):
        with shown_errors():
            added, _ = queue_disputed(get_store(), dataset, disputed, current_user(),
                                      detail={"round": round_, "batch": batch})
            refresh_after_write()
            already = pending.height - added
            st.success(f"Queued {added:,} disputed samples for adjudication on the Review page"
                       + (f" ({already:,} were already in the queue)." if already else "."))
