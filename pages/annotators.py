"""Annotators: who labels well? Quality by each consensus method, gold questions, rounds, confusions, methods compared."""

from __future__ import annotations

import math

import plotly.express as px
import polars as pl
import streamlit as st

from core import privacy
from core.analyses import annotators as analysis
from core.gold import set_consensus_method, set_gold_threshold
from core.queue import (
    more_from_pool,
    needs_more_annotations,
    needs_more_annotations_csv,
    queue_consensus_changes,
    queue_low_consensus,
)
from core.roles import Action
from core.vocab import REVIEW_CONFIDENCE, reason_name
from ui.cache import data_key
from ui.errors import shown_errors
from ui.format import safe_filename
from ui.format import table as table_view
from ui.jobs import job_result
from ui.session import (
    can,
    current_user,
    get_store,
    refresh_after_write,
    require_dataset,
)

NAMES = analysis.METHOD_NAMES
RETRAIN = analysis.RETRAIN
MAX_ROWS_SHOWN = 500  # compared samples drawn in the table; the CSV holds all of them

st.title("Annotators")
dataset = require_dataset()
data_id = data_key(dataset)


@st.cache_data(ttl=300, show_spinner=False, max_entries=16)
def needing_more(data_id: tuple, min_ratings: int, threshold: float) -> pl.DataFrame:
    return needs_more_annotations(get_store(), data_id[1], min_ratings=min_ratings, threshold=threshold)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _samples(n: int) -> str:
    return f"{n:,} sample" + ("" if n == 1 else "s")


def _interval(low: float | None, high: float | None) -> str:
    return "—" if _fmt(low) == "—" else f"{_fmt(low)} – {_fmt(high)}"


# computed by the "annotators" job (core.jobs), stored, and recomputed in the background when the data changes
view: analysis.AnnotatorsView | None = job_result(dataset, "annotators", key="annotators_job")
if view is None:
    st.stop()

notice = st.session_state.pop("annotators_notice", None)
if notice:
    st.success(notice)
if not view.annotators:
    st.info(f"No annotations in **{dataset}** yet. Import annotations with an `annotator` column on the **Import** "
            "page to score the annotators.")
    st.stop()

st.caption(
    f"**{dataset}** · {view.n_samples:,} labeled samples · {len(view.annotators)} annotators · gold labels by "
    f"**{NAMES[view.method]}** (a review, then a gold question, come first). The guideline: below "
    f"{RETRAIN:g} → retrain. An annotator is flagged when any of these holds: their {NAMES[view.method]} quality, "
    f"their kappa against the other annotators' majority (the Agreement page's flag) or against the consensus "
    f"is below {RETRAIN:g}, or their gold-question accuracy is below the gold threshold; **Why flagged** says "
    "which.")
for note in view.notes.values():
    st.caption(note)

# -- consensus method (leads) -------------------------------------------------------------------
if can(Action.SETTINGS):
    with st.form("annotators_settings"):
        left, right = st.columns(2)
        method = left.selectbox(
            "Consensus method of gold labels", list(NAMES), index=list(NAMES).index(view.method),
            format_func=NAMES.get, key="annotators_method",
            help="Used when a sample has no review and is not a gold question. Majority vote: the label with "
                 "strictly the most votes (a tie has none). Dawid-Skene: weighs each annotator by their estimated "
                 "confusion matrix. CROWDLAB: also weighs the model's probabilities (samples without them keep "
                 "their Dawid-Skene label).")
        threshold = right.number_input(
            "Flag gold-question accuracy below", min_value=0.0, max_value=1.0, step=0.05,
            value=float(view.gold_threshold), key="annotators_gold_threshold")
        if st.form_submit_button("Save", icon=":material/save:"):
            with shown_errors():
                saved = []
                if method != view.method:
                    set_consensus_method(get_store(), dataset, method, current_user())
                    saved.append(f"gold labels now use {NAMES[method]}")
                if abs(float(threshold) - view.gold_threshold) > 1e-9:
                    set_gold_threshold(get_store(), dataset, float(threshold), current_user())
                    saved.append(f"gold-question threshold {float(threshold):g}")
                if saved:
                    refresh_after_write()
                    st.session_state["annotators_notice"] = "Saved: " + "; ".join(saved) + "."
                    st.rerun()

# -- the weakest annotator ----------------------------------------------------------------------
table = view.table
if view.weakest is not None:
    weak = table.filter(pl.col("annotator") == view.weakest).row(0, named=True)
    others = table.filter(pl.col("annotator") != view.weakest)[view.weakest_by].to_list()
    text = (f"Weakest annotator: **{view.weakest}** — {NAMES[view.weakest_by]} quality "
            f"{_fmt(weak[view.weakest_by])} (others {', '.join(_fmt(v) for v in others)})")
    if weak["flagged"]:
        st.warning(f"{text}. Below the retrain line: {weak['why']}.", icon=":material/warning:")
    else:
        st.info(f"{text}; not below {RETRAIN:g}.", icon=":material/person_search:")

# -- the table ----------------------------------------------------------------------------------
st.subheader("Quality per annotator")
shown = table.with_columns(
    pl.struct("majority_low", "majority_high").map_elements(
        lambda r: _interval(r["majority_low"], r["majority_high"]), return_dtype=pl.Utf8).alias("majority_ci"),
    pl.struct("gold_accuracy_low", "gold_accuracy_high").map_elements(
        lambda r: _interval(r["gold_accuracy_low"], r["gold_accuracy_high"]), return_dtype=pl.Utf8)
    .alias("gold_accuracy_ci"),
    pl.struct("gold_kappa_low", "gold_kappa_high").map_elements(
        lambda r: _interval(r["gold_kappa_low"], r["gold_kappa_high"]), return_dtype=pl.Utf8).alias("gold_kappa_ci"),
)
columns = ["annotator", "flagged", "n_items", "majority", "majority_ci", "dawid_skene"]
if "crowdlab" in view.methods:
    columns.append("crowdlab")
columns += ["kappa_vs_majority", "kappa_vs_consensus", "n_gold", "gold_accuracy", "gold_accuracy_ci", "gold_kappa",
            "gold_kappa_ci", "worst_class", "why"]
table_view(
    shown.select(columns),
    column_config={
        "annotator": st.column_config.TextColumn("Annotator"),
        "flagged": st.column_config.CheckboxColumn(
            "Flagged", help=f"{NAMES[view.method]} quality, kappa against the others' majority or against the "
                            f"consensus below {RETRAIN:g}, or gold accuracy below the gold threshold"),
        "n_items": st.column_config.NumberColumn("Items labeled", format="%d"),
        # score columns are text ("—" when undefined, never "None"); the table formatter rounds them
        "majority": st.column_config.TextColumn(
            "Majority agreement",
            help="Share of their labels equal to the strict majority of the other annotators (their own vote left "
                 "out, as on the Agreement page), on the samples where the others have one"),
        "majority_ci": st.column_config.TextColumn(
            "95% interval", help=f"Percentile bootstrap over {view.n_boot} resamples of the items compared"),
        "dawid_skene": st.column_config.TextColumn(
            "Dawid-Skene",
            help="Mean of the diagonal of their estimated confusion matrix (their mean per-class accuracy). "
                 "No interval: a bootstrap would refit the model hundreds of times."),
        "crowdlab": st.column_config.TextColumn(
            "CROWDLAB", help="cleanlab's annotator quality (weighs the model's probabilities); "
                                            "no interval"),
        "n_gold": st.column_config.NumberColumn("Gold items", format="%d", help="Gold questions they labeled"),
        "gold_accuracy": st.column_config.TextColumn("Gold accuracy", help="Share of their gold questions right "
                                                     "(— without gold questions)"),
        "gold_accuracy_ci": st.column_config.TextColumn(
            "95% interval ", help=f"Percentile bootstrap over {view.n_boot} resamples of their gold items"),
        "gold_kappa": st.column_config.TextColumn("Kappa on gold",
                                                  help="Cohen's kappa against the gold questions' labels"),
        "gold_kappa_ci": st.column_config.TextColumn(
            "95% interval  ", help=f"Percentile bootstrap over {view.n_boot} resamples of their gold items"),
        "kappa_vs_majority": st.column_config.TextColumn(
            "Kappa vs majority", help="Cohen's kappa against the other annotators' majority (their own vote left "
                                      "out): the Agreement page's retrain flag"),
        "kappa_vs_consensus": st.column_config.TextColumn(
            "Kappa vs consensus",
            help=f"Cohen's kappa against the current gold labels ({NAMES[view.method]}; their own vote counts)"),
        "worst_class": st.column_config.TextColumn(
            "Worst confused class", help=f"The gold class they get wrong most often (≥ {analysis.MIN_CLASS_ITEMS} "
                                         "items) → the label they give instead"),
        "why": st.column_config.TextColumn("Why flagged"),
    },
)
if view.n_gold_questions == 0:
    st.caption("No gold questions in this dataset: import a `gold_label` column, or mark a sample as gold on the "
               "**Review** page after adjudication, to score annotators against known answers.")
else:
    st.caption(f"{view.n_gold_questions:,} gold questions; accuracy below {view.gold_threshold:g} is flagged.")

# -- per round ----------------------------------------------------------------------------------
st.subheader("Quality per round")
if view.per_round.height == 0:
    st.caption("The samples have no round: import a `round` column to follow the annotators over time.")
else:
    per_round = view.per_round.with_columns(pl.col("method").replace_strict(NAMES, return_dtype=pl.Utf8))
    fig = px.line(per_round.to_pandas(), x="round", y="quality", color="method", facet_col="annotator",
                  facet_col_wrap=4, markers=True, hover_data=["n_items"], range_y=[0, 1.02])
    fig.add_hline(y=RETRAIN, line_dash="dash", line_color="#d62728")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig.update_xaxes(dtick=1)
    fig.update_layout(height=320 * math.ceil(len(view.annotators) / 4), margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig, width="stretch", key="annotators_per_round")
    st.caption("Each method fitted on one round's samples only; dashed: the retrain line.")

# -- confusion of one annotator -----------------------------------------------------------------
st.subheader("Confusion matrix of one annotator")
if st.session_state.get("annotators_who") not in view.annotators:
    st.session_state["annotators_who"] = view.weakest or view.annotators[0]
left, right = st.columns([1, 2])
who = left.selectbox("Annotator", view.annotators, key="annotators_who")
kinds = ["Against the gold labels (counts)"] + (["Dawid-Skene estimate (probabilities)"] if view.ds_confusion else [])
kind = right.radio("Matrix", kinds, horizontal=True, key="annotators_matrix")
if kind.startswith("Dawid") and who in view.ds_confusion:
    classes, z = view.ds_confusion[who]
    fig = px.imshow(z, x=classes, y=classes, zmin=0, zmax=1, color_continuous_scale="Blues", text_auto=".2f",
                    aspect="auto")
    fig.update_traces(hovertemplate="true %{y} → %{x}: %{z:.3f}<extra></extra>")
else:
    classes, z = view.gold_confusion[who]
    fig = px.imshow(z, x=classes, y=classes, color_continuous_scale="Blues", text_auto="d", aspect="auto")
    fig.update_traces(hovertemplate="gold %{y}, labeled %{x}: %{z} samples<extra></extra>")
fig.update_layout(height=max(300, 45 * len(classes) + 140), margin=dict(l=10, r=10, t=30, b=10),
                  xaxis_title=f"{who}'s label", yaxis_title="true label" if kind.startswith("Dawid") else "gold label")
fig.update_xaxes(side="top", type="category")
fig.update_yaxes(type="category")
st.plotly_chart(fig, width="stretch", key="annotators_confusion")

# -- the methods compared -----------------------------------------------------------------------
st.subheader("Majority vote vs Dawid-Skene vs CROWDLAB")
changes = {r["method"]: r for r in view.changes.iter_rows(named=True)}
cards = st.columns(len(view.methods))
for col, method in zip(cards, view.methods):
    row = changes[method]
    if method == view.method:
        col.metric(NAMES[method], f"{row['n_gold']:,}", "gold labels · current method", delta_color="off",
                   delta_arrow="off", border=True)
    else:
        parts = [f"{row[k]:,} {word}" for k, word in (("n_relabeled", "relabeled"), ("n_new", "new"),
                                                        ("n_dropped", "dropped")) if row[k]]
        col.metric(NAMES[method], f"{row['n_changed']:,}", "would change" + (": " + ", ".join(parts) if parts else ""),
                   delta_color="off", delta_arrow="off", border=True,
                   help="Gold labels that differ from the current method's: another label, a label where the "
                        "current method has none (a tie), or none where it has one")
comparison = view.comparison
if comparison.height == 0:
    st.success("Every method gives the same gold labels.")
else:
    st.caption(f"{comparison.height:,} samples whose gold label depends on the method (reviewed samples and gold "
               f"questions never do), least confident first. **current** is the gold label now (empty: a tie), "
               f"**confidence** its {NAMES[view.method]} confidence.")
    if view.uncertain is None:  # a result stored before the job masked it (shown and downloaded: masked)
        comparison = privacy.mask_frame(comparison, columns=["text"])
    table_view(
        comparison.drop("priority").head(MAX_ROWS_SHOWN),
        column_config={"sample_id": st.column_config.TextColumn("Sample"),
                       "text": st.column_config.TextColumn("Text", width="large"),
                       "confidence": st.column_config.NumberColumn("Confidence", format="%.2f"),
                       **{m: st.column_config.TextColumn(NAMES[m]) for m in view.methods}},
    )
    st.download_button(f"Download the {comparison.height:,} samples (CSV)",
                       comparison.drop("priority").write_csv().encode("utf-8"),
                       file_name=safe_filename("consensus-changes", dataset) + ".csv", mime="text/csv",
                       icon=":material/download:", key="annotators_changes_csv")
    if can(Action.QUEUE_RULES):
        left, right = st.columns([1, 2])
        reason = left.selectbox("Queue reason", ["low_consensus", "disagreement"], format_func=reason_name,
                                key="annotators_queue_reason")
        if right.button(f"Queue the {comparison.height:,} changed samples for review", type="primary",
                        icon=":material/playlist_add:", key="annotators_queue_changes"):
            with shown_errors():
                added = queue_consensus_changes(get_store(), dataset, comparison.select("sample_id", "priority"),
                                                current_user(), reason=reason, detail={"method": view.method})
                refresh_after_write()
                st.session_state["annotators_notice"] = (
                    f"Queued {added:,} changed samples for review ({reason_name(reason)}).")
                st.rerun()

# -- routing uncertain samples ------------------------------------------------------------------
st.subheader("Uncertain samples")
left, right = st.columns(2)
threshold = left.number_input("Consensus confidence below", min_value=0.0, max_value=1.0, step=0.05,
                              value=float(REVIEW_CONFIDENCE), key="annotators_route_threshold")
min_ratings = int(right.number_input("Fewer ratings than", min_value=1, max_value=50, step=1, value=3,
                                     key="annotators_min_ratings"))
with shown_errors():
    more = (more_from_pool(view.uncertain, min_ratings, float(threshold)) if view.uncertain is not None
            else needing_more(data_id, min_ratings, float(threshold)))
    st.caption(f"{_samples(more.height)} with fewer than {min_ratings} ratings and a {NAMES[view.method]} "
               f"confidence below {threshold:g}: one more annotation would settle them. The CSV (ids, who rated them already, "
               "no text) is for the labeling tool.")
    st.download_button(f"Download the {_samples(more.height)} for another annotation (CSV)",
                       needs_more_annotations_csv(more), file_name=safe_filename("needs-annotation", dataset) + ".csv",
                       mime="text/csv", icon=":material/download:", key="annotators_more_csv",
                       disabled=more.height == 0)
if can(Action.QUEUE_RULES) and st.button(f"Queue samples with confidence below {threshold:g} for review",
                                         icon=":material/playlist_add:", key="annotators_queue_low"):
    with shown_errors():
        added = queue_low_consensus(get_store(), dataset, current_user(), threshold=float(threshold))
        refresh_after_write()
        st.session_state["annotators_notice"] = (f"Queued {added:,} samples with {NAMES[view.method]} confidence "
                                                 f"below {threshold:g} for review ({reason_name('low_consensus')}).")
        st.rerun()
