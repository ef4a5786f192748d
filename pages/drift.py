"""Drift: how far a current batch or round moved from a reference one (PSI, KS, embeddings)."""

import math
import re

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from core.analyses.drift import MAX_EMBED_TEXTS, feature_name
from core.drift import KS_ALPHA, PSI_MODERATE, PSI_SIGNIFICANT
from core.drift_features import LABEL, PREDICTED, selection_options
from ui.errors import shown_errors
from ui.format import MISSING
from ui.jobs import job_result, submit
from ui.session import require_dataset

STATUS_COLORS = {"stable": "#d7f0d7", "moderate": "#ffe7b3", "significant": "#f7c6c5"}
DEFAULT_BINS = 10

st.title("Drift")
st.caption(
    f"How far a **current** batch or round moved from a **reference** one, feature by feature. "
    f"PSI below {PSI_MODERATE} is stable, {PSI_MODERATE}–{PSI_SIGNIFICANT} moderate, {PSI_SIGNIFICANT} and "
    f"above significant; numeric features whose KS p-value is below {KS_ALPHA} are flagged."
)
dataset = require_dataset()

# The "drift" job (core.jobs) computes a comparison and stores it; the default one (the earliest vs the
# latest batch, else round) also says which batches and rounds there are to choose from.
base = job_result(dataset, "drift", None, key="drift_base_job", quiet=True)
if base is None:
    st.stop()
batches, rounds = base.batches, base.rounds
if base.ref is None:
    st.info(
        f"Drift compares two selections, but **{dataset}** has {len(batches)} batch(es) and "
        f"{len(rounds)} round(s). Import another batch (or a later round) on the **Import** page "
        "to compare it with this one."
    )
    st.stop()

options = {o.label: o for o in selection_options(batches, rounds)}
labels = list(options)
for key, default in (("drift_ref", base.ref), ("drift_cur", base.cur)):
    if st.session_state.get(key) not in options:
        st.session_state[key] = default
c1, c2, c3 = st.columns([3, 3, 1])
ref_label = c1.selectbox("Reference", labels, key="drift_ref",
                         help="The data the model was trained on (default: the earliest batch).")
cur_label = c2.selectbox("Current", labels, key="drift_cur",
                         help="The data to check against the reference (default: the latest batch).")
bins = int(c3.number_input("PSI bins", min_value=2, max_value=50, value=DEFAULT_BINS, key="drift_bins",
                           help="Quantile bins of the reference for numeric features."))
if ref_label == cur_label:
    st.info("Reference and current are the same selection: pick two different ones.")
    st.stop()

# the default comparison keeps the default parameters, so it is the one `python -m core analyze` stored
is_default = (ref_label, cur_label) == (base.ref, base.cur)
params = {"ref": None if is_default else ref_label, "cur": None if is_default else cur_label, "bins": bins}
view = job_result(dataset, "drift", params, key="drift_job")
if view is None:
    st.stop()
empty = [(role, label) for role, label, n in (("reference", ref_label, view.ref_n), ("current", cur_label, view.cur_n))
         if n == 0]
if empty:
    st.info(" ".join(
        f"The {role} selection **{label}** has no samples (a round may hold only model predictions)."
        for role, label in empty) + " Pick a batch or round with samples.")
    st.stop()
if view.report is None:
    st.info("Nothing to compare between these two selections.")
    st.stop()
report = view.report
names = (ref_label, cur_label)

# -- summary ------------------------------------------------------------------------------------
counts = dict(report.group_by("status").len().iter_rows())
m = st.columns(5)
m[0].metric("Reference samples", f"{view.ref_n:,}")
m[1].metric("Current samples", f"{view.cur_n:,}")
m[2].metric("Significant features", counts.get("significant", 0), help=f"PSI ≥ {PSI_SIGNIFICANT}")
m[3].metric("Moderate features", counts.get("moderate", 0), help=f"{PSI_MODERATE} ≤ PSI < {PSI_SIGNIFICANT}")
m[4].metric("KS flagged", int(report["flagged"].sum() or 0), help=f"Numeric features with KS p-value < {KS_ALPHA}")

st.subheader("Summary")


def _num(value, spec: str) -> str:
    return MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


# KS applies to numeric features only: "—" for the categorical ones (text, so it never reads "None")
shown = report.select(
    pl.col("feature").map_elements(feature_name, return_dtype=pl.Utf8), "kind", "psi", "status", "flagged",
    pl.col("ks_statistic").map_elements(lambda v: _num(v, ".3f"), return_dtype=pl.Utf8, skip_nulls=False),
    pl.col("ks_pvalue").map_elements(lambda v: _num(v, ".2e"), return_dtype=pl.Utf8, skip_nulls=False),
    "ref_n", "cur_n", "ref_missing", "cur_missing",
).to_pandas()
styled = (shown.style
          .map(lambda s: f"background-color: {STATUS_COLORS.get(s, '')}" if s in STATUS_COLORS else "",
               subset=["status"])
          .map(lambda f: "font-weight: bold" if f is True else "", subset=["flagged"])
          .format({"psi": "{:.4f}"}, na_rep=MISSING))
st.dataframe(
    styled, width="stretch", hide_index=True,
    column_config={
        "feature": st.column_config.Column("Feature"),
        "kind": st.column_config.Column("Kind", help="numeric (PSI over quantile bins, and KS) or categorical (PSI)"),
        "psi": st.column_config.Column("PSI", help="Population stability index, current vs reference"),
        "status": st.column_config.Column(
            "Status", help=f"stable < {PSI_MODERATE} ≤ moderate < {PSI_SIGNIFICANT} ≤ significant"),
        "flagged": st.column_config.CheckboxColumn("KS flagged", help=f"KS p-value < {KS_ALPHA}"),
        "ks_statistic": st.column_config.Column("KS statistic", help="Numeric features only"),
        "ks_pvalue": st.column_config.Column("KS p-value", help="Numeric features only"),
        "ref_n": st.column_config.Column("Reference values"), "cur_n": st.column_config.Column("Current values"),
        "ref_missing": st.column_config.Column("Missing in reference"),
        "cur_missing": st.column_config.Column("Missing in current"),
    },
)
notes = []
rr, cr = view.ref_pred_round, view.cur_pred_round
if rr is not None and rr == cr:
    notes.append(f"Predicted labels and confidence from prediction round {rr} on both sides.")
elif rr is not None and cr is not None:
    notes.append(f"Predicted labels from prediction round {rr} (reference) and {cr} (current): "
                 "the sides share no prediction round.")
elif rr is not None or cr is not None:
    has, lacks = ("reference", "current") if rr is not None else ("current", "reference")
    notes.append(f"Predicted labels: prediction round {rr if rr is not None else cr} in the {has}; "
                 f"the {lacks} selection has no predictions.")
if view.unavailable is not None and view.unavailable.height:
    notes.append("Not compared: " + "; ".join(f"{feature_name(f)} ({r})" for f, r in view.unavailable.iter_rows())
                 + ".")
notes.append("*Label (majority)* is each sample's majority annotated label (ties count as missing); "
             "*Label by <name>* is one annotator's labels.")
st.caption(" ".join(notes))
csv = report.select(pl.lit(dataset).alias("dataset"), pl.lit(ref_label).alias("reference"),
                    pl.lit(cur_label).alias("current"), pl.all()).write_csv()
safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"drift_{dataset}_{ref_label}_vs_{cur_label}")
st.download_button("Download the report (CSV)", csv, file_name=f"{safe}.csv", mime="text/csv",
                   icon=":material/download:")

# -- one feature --------------------------------------------------------------------------------
st.subheader("Distribution of a feature")
kinds = dict(zip(report["feature"], report["kind"]))
if st.session_state.get("drift_feature") not in kinds:
    st.session_state.pop("drift_feature", None)  # a feature of an earlier comparison
feature = st.selectbox("Feature", list(kinds), key="drift_feature", format_func=feature_name,
                       help="Ordered by PSI, the most shifted first.")
if kinds[feature] == "numeric":
    values = view.values.filter(pl.col("feature") == feature).select("side", "value")
    fig = px.histogram(values.to_pandas(), x="value", color="side", barmode="overlay",
                       histnorm="probability", opacity=0.55, nbins=40,
                       category_orders={"side": list(names)}, labels={"value": feature_name(feature)})
    fig.update_traces(bingroup="shared")
    fig.update_layout(yaxis_title="share of samples")
else:
    shares = view.shares[feature]
    fig = px.bar(shares.to_pandas(), x="category", y="share", color="side", barmode="group",
                 hover_data=["count"], category_orders={"side": list(names)},
                 labels={"category": feature_name(feature)})
fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend_title_text="")
st.plotly_chart(fig, width="stretch")

# -- labels -------------------------------------------------------------------------------------
st.subheader("Label distribution")
which = st.radio("Labels", ["Annotated (majority)", "Predicted"], horizontal=True, key="drift_labels",
                 label_visibility="collapsed")
column = LABEL if which.startswith("Annotated") else PREDICTED
shares = view.shares[column]
if shares.height == 0 or shares["count"].sum() == 0:
    st.caption("No labels of this kind in either selection.")
else:
    lacking = [n for n in names if shares.filter(pl.col("side") == n)["count"].sum() == 0]
    # a side without labels of this kind gets no (empty) legend entry; the caption below names it
    fig = px.bar(shares.filter(~pl.col("side").is_in(lacking)).to_pandas(), x="category", y="share", color="side",
                 barmode="group", hover_data=["count"],
                 category_orders={"side": [n for n in names if n not in lacking]},
                 labels={"category": "label", "share": "share of samples"})
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend_title_text="",
                      yaxis_tickformat=".0%")
    st.plotly_chart(fig, width="stretch")
    if lacking:
        st.caption(f"No {column.replace('_', ' ')}s in {' and '.join(lacking)}.")

# -- across rounds ------------------------------------------------------------------------------
st.subheader("PSI across rounds")
if len(rounds) < 2:
    st.caption("This dataset has a single round: nothing to chart across rounds.")
else:
    trend = view.trend
    if trend is not None and trend.height:
        features = trend["feature"].unique(maintain_order=True).to_list()
        default = [f for f in report["feature"].to_list() if f in features][:6]
        if not set(st.session_state.get("drift_trend_features") or []) <= set(features):
            st.session_state.pop("drift_trend_features", None)  # features of an earlier comparison
        picked = st.multiselect("Features", features, default=default, key="drift_trend_features",
                                format_func=feature_name, help="Each round compared with the reference selection.")
        data = (trend.filter(pl.col("feature").is_in(picked)).sort("order", "feature")
                .with_columns(pl.col("feature").map_elements(feature_name, return_dtype=pl.Utf8)))
        log_y = st.toggle("Log scale", key="drift_trend_log",
                          help="Shows small and large PSI values together (a PSI of 0 is not drawn).")
        fig = px.line(data.to_pandas(), x="selection", y="psi", color="feature", markers=True, log_y=log_y,
                      labels={"selection": "round", "psi": "PSI", "feature": "feature"},
                      category_orders={"selection": trend.sort("order")["selection"].unique(maintain_order=True).to_list()})
        top = max(float(data["psi"].max() or 0.0), PSI_SIGNIFICANT) * 1.15
        low = 1e-3 if log_y else 0.0
        for y0, y1, color in ((low, PSI_MODERATE, "green"), (PSI_MODERATE, PSI_SIGNIFICANT, "orange"),
                              (PSI_SIGNIFICANT, top, "red")):
            fig.add_hrect(y0=y0, y1=y1, fillcolor=color, opacity=0.05, line_width=0, layer="below")
        # the band thresholds are named in the legend (a label on the plot collides with ticks and lines)
        for y, color, name in ((PSI_SIGNIFICANT, "red", f"significant ≥ {PSI_SIGNIFICANT}"),
                               (PSI_MODERATE, "orange", f"moderate ≥ {PSI_MODERATE}")):
            fig.add_hline(y=y, line_dash="dot", line_color=color)
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, legendgroup="bands",
                                     legendgrouptitle_text="PSI bands", hoverinfo="skip",
                                     line={"dash": "dot", "color": color}))
        y_range = [math.log10(low), math.log10(top)] if log_y else [0, top]
        fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_range=y_range)
        st.plotly_chart(fig, width="stretch")
        st.caption(f"Each round's samples against the reference ({ref_label}); rounds without samples are left out.")
    elif trend is not None:
        st.caption("No round has samples to compare with the reference.")

# -- missing values -----------------------------------------------------------------------------
st.subheader("Missing values")
missing = report.filter((pl.col("ref_missing") > 0) | (pl.col("cur_missing") > 0)).select(
    pl.col("feature").map_elements(feature_name, return_dtype=pl.Utf8), "ref_missing", "cur_missing", "ref_n",
    "cur_n")
if missing.height:
    st.dataframe(missing, width="stretch", hide_index=True, column_config={
        "feature": "Feature", "ref_missing": "Missing in reference", "cur_missing": "Missing in current",
        "ref_n": "Values in reference", "cur_n": "Values in current"})
    st.caption("Missing values are counted, never binned: PSI and KS use the values present. "
               "A tie between annotators leaves *Label (majority)* missing.")
else:
    st.caption("No missing values in the compared features.")

# -- embeddings ---------------------------------------------------------------------------------
st.subheader("Embedding drift")
ref_texts, cur_texts = list(view.ref_texts or []), list(view.cur_texts or [])
try:
    from core.embeddings import describe_choice

    choice = describe_choice(ref_texts + cur_texts)
except Exception as exc:  # a broken embeddings install: say so, keep the rest of the page
    choice = f"embedding model unavailable ({type(exc).__name__})"
st.caption(f"{len(ref_texts):,} + {len(cur_texts):,} texts (at most {MAX_EMBED_TEXTS:,} per side) · {choice}. "
           "Vectors are cached in the store, so a second run is quick.")
# the "embedding_drift" job: on request (it embeds every text of both sides), on the background worker with
# progress and Cancel, stored for every user (a reload or another lead sees it)
emb = job_result(dataset, "embedding_drift", params, key="drift_emb_job", start=False)
if st.button("Compute embedding drift" if emb is None else "Compute it again", key="drift_embed",
             icon=":material/scatter_plot:", help="Runs in the background; the result is stored for everyone."):
    with shown_errors(stop=True):
        submit(dataset, "embedding_drift", params)
    st.rerun()
if emb is None:
    st.caption("Projects both sides on the reference's principal components (PSI per component) and "
               "trains a classifier to tell them apart (domain AUC: 0.5 means no detectable shift).")
else:
    e = st.columns(3)
    e[0].metric("Domain AUC", f"{emb['domain_auc']:.3f}",
                help="Cross-validated ROC AUC of a logistic regression telling reference from current; "
                     "about 0.5 = no detectable shift, 1.0 = fully separable.")
    e[1].metric("Max component PSI", f"{emb['max_psi']:.3f}", help="Largest PSI over the principal components")
    e[2].metric("Status", emb["status"])
    comp = pl.DataFrame({"component": [f"PC{i + 1}" for i in range(len(emb["component_psi"]))],
                         "psi": emb["component_psi"], "explained variance": emb["explained_variance_ratio"]})
    if comp.height:
        fig = px.bar(comp.to_pandas(), x="component", y="psi", hover_data=["explained variance"],
                     labels={"psi": "PSI"})
        fig.add_hline(y=PSI_MODERATE, line_dash="dot", line_color="orange")
        fig.add_hline(y=PSI_SIGNIFICANT, line_dash="dot", line_color="red")
        fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10})
        st.plotly_chart(fig, width="stretch")
    st.caption(f"{emb['n_ref']:,} reference and {emb['n_cur']:,} current texts, "
               f"{emb['n_components']} principal components.")
