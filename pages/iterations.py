"""Iterations: model quality per labeling round against labeled volume, lagging classes, stop signal."""

import math
import re

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from core.metrics import (
    METRIC_NAMES,
    combine_imported,
    confusion_shares,
    empty_imported,
    merge_imported_rounds,
    parse_imported_csv,
    plateau,
)
from core.roles import Action
from ui.errors import show_store_error
from ui.format import safe_filename
from ui.format import table as table_view
from ui.jobs import job_result
from ui.report import report_html
from ui.session import (
    can,
    current_user,
    get_store,
    refresh_after_write,
    require_dataset,
)

TITLES = {"macro_f1": "macro-F1", "accuracy": "accuracy", "weighted_f1": "weighted F1", "micro_f1": "micro-F1"}
COLORS = {"macro_f1": "#1f4e9c", "accuracy": "#e07b00", "weighted_f1": "#2e8b57", "micro_f1": "#8e44ad"}
BAR_COLOR = "#b9c6da"
IMPORT_MODES = {
    "Add: rounds in the file replace the same rounds already imported": False,
    "Replace every imported round with the file": True,
}
TEMPLATE_CSV = "round,n_labeled,metric,value\n1,50000,macro_f1,0.832\n1,50000,accuracy,0.861\n2,68000,macro_f1,0.891\n"
MAX_TEXT_LABELS = 15  # cell values are written in the heatmaps up to this many labels

st.title("Iterations")
st.caption(
    "Is the labeling-and-training loop paying off? Each round's model predictions are scored against the gold "
    "labels (a sample's latest review, else its annotators' majority; a tie gives no gold label), next to the "
    "labeled volume. Rounds evaluated elsewhere can be imported and are shown beside the computed ones."
)
dataset = require_dataset()


def import_section(computed: pl.DataFrame, imported: pl.DataFrame) -> None:
    """The uploader/form for an evaluation table computed elsewhere, and the imported rounds."""
    message = st.session_state.pop("iter_import_message", None)
    writable = can(Action.EVALUATION)
    with st.expander("Import rounds evaluated elsewhere", icon=":material/upload_file:",
                     expanded=message is not None):
        if message:
            st.success(message)
        st.markdown(
            "A CSV file with the header `round, n_labeled, metric, value`: one row per round and metric; "
            f"metric is one of {', '.join(f'`{m}`' for m in METRIC_NAMES)}; value is a fraction between 0 and 1; "
            "n_labeled (the labeled volume the model was trained on) may be empty."
        )
        if writable:
            import_form(computed, imported)
        else:
            st.caption("Importing or removing evaluation tables needs a role that may change data and import "
                       "evaluations (team leads); the imported rounds are shown here read-only.")
        if imported.height:
            st.markdown(f"**Imported values** ({imported.height} in {imported['round'].n_unique()} round(s))")
            table_view(imported)
            if writable:
                remove_form()


def import_form(computed: pl.DataFrame, imported: pl.DataFrame) -> None:
    """Upload, validate (core.metrics) and save an evaluation table; rounds in it replace the same rounds."""
    st.download_button("Download a template", TEMPLATE_CSV, file_name="evaluation_rounds_template.csv",
                       mime="text/csv", icon=":material/description:", on_click="ignore", key="iter_template")
    with st.form("iter_import_form", clear_on_submit=True):
        upload = st.file_uploader("Evaluation table (CSV)", type=["csv"], key="iter_import_file")
        mode = st.radio("Rounds imported before", list(IMPORT_MODES), key="iter_import_mode")
        submitted = st.form_submit_button("Import evaluation table", type="primary")
    if not submitted:
        return
    if upload is None:
        st.warning("Choose a CSV file first.")
        return
    try:
        new = parse_imported_csv(upload.getvalue())
        rows = combine_imported(imported, new, replace=IMPORT_MODES[mode])
        merge_imported_rounds(computed, rows)  # the rows as they will be shown: validated once more
        get_store().save_imported_round_metrics(dataset, rows, current_user())
    except Exception as exc:
        show_store_error(exc)
        return
    rounds = sorted(set(new["round"].to_list()))
    st.session_state["iter_import_message"] = (
        f"Imported {new.height} value(s) for {len(rounds)} round(s) from {upload.name}: "
        f"round(s) {', '.join(map(str, rounds))}. {rows['round'].n_unique()} imported round(s) in all."
    )
    refresh_after_write()
    st.rerun()


def remove_form() -> None:
    """Remove every imported round of the dataset, after a confirmation tick."""
    with st.form("iter_remove_form"):
        sure = st.checkbox("Yes, remove every imported round of this dataset", key="iter_remove_sure")
        submitted = st.form_submit_button("Remove imported rounds")
    if not submitted:
        return
    if not sure:
        st.warning("Tick the box to confirm.")
        return
    try:
        get_store().save_imported_round_metrics(dataset, empty_imported(), current_user())
    except Exception as exc:
        show_store_error(exc)
        return
    st.session_state["iter_import_message"] = "Removed every imported round."
    refresh_after_write()
    st.rerun()


MAX_ROUND_TICKS = 20  # rounds up to which the progress chart labels every round


def slanted(n_ticks: int, n_chars: int) -> int:
    """Tick label angle: level while the labels fit side by side, else slanted so they do not overlap."""
    return 0 if n_ticks <= 4 and n_chars <= 48 else -45


def tidy(fig: go.Figure) -> go.Figure:
    """Room for tick labels (long label names) in the app and in the standalone report."""
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def score_ticks(low: float, high: float = 1.0, most: int = 8) -> list[float]:
    """Round score ticks from ``low`` to ``high``: the smallest step of 0.01, 0.02, 0.05, 0.1, 0.2 that gives at
    most ``most`` ticks (the score axis gets its own ticks, not ones synced to the volume bars' axis)."""
    for step in (0.01, 0.02, 0.05, 0.1, 0.2):
        first = math.ceil(round(low / step, 6)) * step
        ticks = [round(first + i * step, 2) for i in range(int((high - first) / step + 1e-6) + 1)]
        if len(ticks) <= most:
            return ticks
    return [0.0, 0.5, 1.0]


def progress_figure(table: pl.DataFrame, bars: pl.DataFrame, extra: list[str]) -> go.Figure:
    """Metric lines per round (computed solid, imported dashed) over labeled-volume bars."""
    fig = go.Figure()
    for source, name, pattern in (("computed", "labeled samples", ""), ("imported", "labeled samples (imported)", "/")):
        part = bars.filter(pl.col("source") == source)
        if part.height:
            fig.add_bar(x=part["round"].to_list(), y=part["n_labeled"].to_list(), name=name, yaxis="y",
                        marker=dict(color=BAR_COLOR, pattern_shape=pattern), opacity=0.7,
                        hovertemplate="round %{x}<br>%{y:,} labeled samples<extra></extra>")
    lows = []
    for metric in ["macro_f1", *extra]:
        for source in ("computed", "imported"):
            part = table.filter((pl.col("source") == source) & pl.col(metric).is_not_null())
            if not part.height:
                continue
            imported = source == "imported"
            main = metric == "macro_f1"
            lows.append(float(part[metric].min()))
            fig.add_scatter(
                x=part["round"].to_list(), y=part[metric].to_list(), yaxis="y2",
                name=TITLES[metric] + (" (imported)" if imported else ""), mode="lines+markers",
                line=dict(color=COLORS[metric], width=3 if main else 1.8, dash="dash" if imported else "solid"),
                marker=dict(symbol="diamond-open" if imported else "circle", size=10 if main else 7,
                            line=dict(width=2) if imported else None),
                hovertemplate=f"round %{{x}}<br>{TITLES[metric]} %{{y:.3f}}"
                              + (" (imported)" if imported else "") + "<extra></extra>",
            )
    low = max(0.0, min(lows, default=0.0) - 0.05)
    # The bars' axis (y, right) is the base; the metric axis (y2, left) overlays it so the lines are drawn on top.
    fig.update_layout(
        height=430, margin=dict(l=10, r=10, t=30, b=10), barmode="overlay", hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        # a tick per round while they fit; with many rounds plotly spaces them (labels would overlap)
        xaxis=dict(title="round", dtick=1 if table["round"].n_unique() <= MAX_ROUND_TICKS else None),
        yaxis=dict(title="labeled samples (cumulative)", side="right", showgrid=False, rangemode="tozero",
                   tickformat=","),
        yaxis2=dict(title="score", side="left", overlaying="y", range=[low, 1.0], tickmode="array",
                    tickvals=score_ticks(low), tickformat=".2f"),
    )
    return tidy(fig)


def heatmap_figure(matrix: pl.DataFrame) -> go.Figure:
    """Per-class F1 (rows: labels, lagging ones first; columns: rounds)."""
    round_cols = [c for c in matrix.columns if c != "label"]
    if round_cols:
        matrix = matrix.sort(round_cols[-1], nulls_last=True)
    z = [list(row) for row in matrix.select(round_cols).iter_rows()]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"round {c}" for c in round_cols], y=[str(v) for v in matrix["label"].to_list()],
        zmin=0, zmax=1, colorscale="RdYlGn", colorbar=dict(title="F1"), hoverongaps=False,
        texttemplate="%{z:.2f}" if matrix.height <= MAX_TEXT_LABELS * 2 else None,
        hovertemplate="%{y} · %{x}<br>F1 %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(height=max(300, 26 * matrix.height + 140), margin=dict(l=10, r=10, t=30, b=10),
                      yaxis=dict(autorange="reversed", type="category"),
                      xaxis=dict(type="category", tickangle=slanted(len(round_cols), 8 * len(round_cols))))
    return tidy(fig)


def confusion_figure(metrics: dict, shares: bool) -> go.Figure:
    """The confusion matrix of one round: rows true (gold) labels, columns predicted labels."""
    labels = [str(v) for v in metrics["labels"]]
    counts = metrics["confusion"]
    z = confusion_shares(counts) if shares else counts
    small = len(labels) <= MAX_TEXT_LABELS
    fig = go.Figure(go.Heatmap(
        z=z.tolist(), x=labels, y=labels, customdata=counts.tolist(), colorscale="Blues",
        colorbar=dict(title="share" if shares else "samples"),
        texttemplate=("%{z:.0%}" if shares else "%{z:,}") if small else None,
        hovertemplate="true %{y} → predicted %{x}<br>%{customdata:,} samples"
                      + (" (%{z:.1%} of the true label)" if shares else "") + "<extra></extra>",
    ))
    fig.update_layout(height=max(360, 34 * len(labels) + 140), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(title="predicted", type="category", side="top",
                                 tickangle=slanted(len(labels), sum(len(v) for v in labels))),
                      yaxis=dict(title="true (gold)", type="category", autorange="reversed"))
    return tidy(fig)


# -- data -----------------------------------------------------------------------------------------
# computed by the "iterations" job (core.jobs), stored, and recomputed in the background when the data changes
data = job_result(dataset, "iterations", key="iter_job")
if data is None:
    try:
        stored = get_store().imported_round_metrics(dataset)
    except Exception:
        st.stop()
    import_section(pl.DataFrame(schema={"round": pl.Int64, "n_eval": pl.Int64,
                                        **{m: pl.Float64 for m in METRIC_NAMES}}), stored)
    st.stop()

table, curve, computed = data["table"], data["curve"], data["computed"]
n_rounds_pred = len(data["prediction_rounds"])
if data["n_predictions"] == 0:
    why = (f"No model predictions in **{dataset}** yet. Import a file with predictions (a `prediction` or "
           "`probs` column and a `pred_round`) on the **Import** page: each round is then scored against the "
           "gold labels.")
elif data["n_gold"] == 0:
    why = (f"**{dataset}** has {data['n_predictions']:,} predictions in {n_rounds_pred} round(s), but no sample "
           "has a gold label yet: a gold label is a sample's latest review, else its annotators' majority (a tie "
           "gives none). Import annotations on the **Import** page or review samples to score the rounds.")
elif computed.height == 0:
    why = (f"None of the {data['n_gold']:,} samples with a gold label has a prediction in **{dataset}**: "
           "predictions and labels are on different samples, so no round can be scored.")
else:
    why = None

if curve.height == 0:
    st.info(why or "No round has a macro-F1 yet.")
    st.caption("Rounds evaluated elsewhere can be imported below.")
    import_section(computed, data["imported"])
    st.stop()
if why:
    st.info(why + " The rounds shown are the imported ones.")

# -- headline -------------------------------------------------------------------------------------
cards_box = st.container()
with st.expander("Stop criterion", icon=":material/tune:"):
    c1, c2 = st.columns(2)
    threshold = c1.number_input("Minimum macro-F1 gain per round", min_value=0.0, max_value=1.0, value=0.005,
                                step=0.001, format="%.3f", key="iter_threshold",
                                help="A gain below this counts as no real improvement.")
    patience = int(c2.number_input("Rounds in a row", min_value=1, max_value=20, value=2, step=1,
                                   key="iter_patience",
                                   help="The plateau is reached when this many consecutive gains are below "
                                        "the minimum."))

last = curve.row(-1, named=True)
prev = curve.row(-2, named=True) if curve.height > 1 else None
at_plateau = plateau(curve["macro_f1"], threshold=threshold, patience=patience)
volume = data["volume"]
if data["n_gold"]:
    labeled = f"{data['n_gold']:,}"
    new_rows = volume.filter(pl.col("new_labeled") > 0)
    labeled_delta = (f"+{new_rows['new_labeled'][-1]:,} in round {new_rows['round'][-1]}" if new_rows.height
                     else None)
elif last["n_labeled"] is not None:
    labeled, labeled_delta = f"{last['n_labeled']:,}", f"imported, round {last['round']}"
else:
    labeled, labeled_delta = "—", None
n_imported_rounds = table.filter(pl.col("source") == "imported")["round"].n_unique()
f1_delta = f"{last['change']:+.3f} vs round {prev['round']}" if prev else None
if curve.height < patience + 1:
    plateau_value = "Too early"
    plateau_note = f"Needs {patience + 1} rounds with a macro-F1 to judge; {curve.height} so far."
elif at_plateau:
    plateau_value = "Reached"
    plateau_note = (f"The last {patience} macro-F1 gain(s) were below {threshold:.3f}: the curve has flattened, "
                    "so more labeling of the same kind is unlikely to pay off. Consider stopping the loop "
                    "or changing what gets labeled.")
else:
    plateau_value = "Not yet"
    plateau_note = (f"At least one of the last {patience} macro-F1 gain(s) is {threshold:.3f} or more: "
                    "the loop is still improving the model.")
cards = [
    ("Latest macro-F1", f"{last['macro_f1']:.3f}", f1_delta or f"round {last['round']}"),
    ("Labeled samples", labeled, labeled_delta or ""),
    ("Rounds evaluated", f"{curve.height}", f"{computed.height} computed, {n_imported_rounds} imported"),
    ("Plateau", plateau_value, f"gain < {threshold:.3f} for {patience} round(s)"),
]
with cards_box:
    m = st.columns(4)
    m[0].metric("Latest macro-F1", cards[0][1], delta=f1_delta,
                help=f"Round {last['round']} ({'imported' if last['source'] == 'imported' else 'computed'}); "
                     "the change is from the previous round with a macro-F1.")
    m[1].metric("Labeled samples", labeled, delta=labeled_delta, delta_color="off",
                help="Samples with a gold label (latest review, else the annotators' majority); "
                     f"{data['n_review_gold']:,} of them from reviews.")
    m[2].metric("Rounds evaluated", cards[2][1], help=cards[2][2])
    m[3].metric("Plateau", plateau_value, help=plateau_note)
    if at_plateau:
        st.success(plateau_note, icon=":material/flag:")
    else:
        st.caption(plateau_note)

# -- progress chart -------------------------------------------------------------------------------
st.subheader("Macro-F1 per round")
extra_titles = {TITLES[m]: m for m in ("accuracy", "weighted_f1", "micro_f1")}
extra = st.columns([2, 3])[0].multiselect("Also show", list(extra_titles), default=[], key="iter_extra",
                                         help="More metric lines on the same axis.")
progress_fig = progress_figure(table, data["bars"], [extra_titles[e] for e in extra])
st.plotly_chart(progress_fig, width="stretch")
st.caption("Lines: scores per round (left axis); dashed lines with open diamonds are imported rounds. Bars: "
           "cumulative labeled samples (right axis); a computed round's volume is what was labeled up to it.")

figures: list[tuple[str, go.Figure]] = [("Macro-F1 per round and labeled volume", progress_fig)]

# -- per-class F1 ---------------------------------------------------------------------------------
st.subheader("Per-class F1 across rounds")
matrix = data["f1_matrix"]
if matrix.width > 1 and matrix.height:
    heat_fig = heatmap_figure(matrix)
    st.plotly_chart(heat_fig, width="stretch")
    st.caption("Lagging classes first (ordered by F1 in the latest computed round); a blank cell is a label that "
               "was neither true nor predicted in that round.")
    figures.append(("Per-class F1 across rounds", heat_fig))
else:
    st.caption("Per-class F1 needs computed rounds: imported rounds carry summary metrics only.")

# -- confusion matrix -----------------------------------------------------------------------------
st.subheader("Confusion matrix")
per_round = data["per_round"]
if per_round:
    rounds = sorted(per_round)
    c1, c2 = st.columns([1, 2])
    chosen = c1.selectbox("Round", rounds, index=len(rounds) - 1, key="iter_cm_round",
                          format_func=lambda r: f"round {r}")
    as_share = c2.toggle("Share of each true label", value=False, key="iter_cm_share",
                         help="Each row divided by its number of samples (the recall of the row's label on the "
                              "diagonal).")
    metrics = per_round[chosen]
    cm_fig = confusion_figure(metrics, as_share)
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(cm_fig, width="stretch")
    with right:
        table_view(metrics["per_class"], column_config={
            "f1": st.column_config.NumberColumn("F1", format="%.3f"),
            "support": st.column_config.NumberColumn("Support", help="Samples whose gold label is this label"),
        })
        st.caption(f"Round {chosen}: {metrics['n']:,} predictions of samples with a gold label; rows are the true "
                   "(gold) labels, columns the predicted ones.")
    figures.append((f"Confusion matrix, round {chosen}", cm_fig))
else:
    st.caption("The confusion matrix needs computed rounds: imported rounds carry summary metrics only.")

# -- table and downloads --------------------------------------------------------------------------
st.subheader("Rounds")
score = {c: st.column_config.NumberColumn(TITLES[c], format="%.3f") for c in METRIC_NAMES}
change = [None if v is None or math.isnan(v) else f"{v:+.3f}" for v in table["macro_f1_change"].to_list()]
table_view(table.with_columns(pl.Series("macro_f1_change", change, dtype=pl.Utf8)), column_config={
    **score,
    "source": st.column_config.TextColumn("Source", help="computed here from the predictions and gold labels, "
                                                         "or imported"),
    "n_labeled": st.column_config.NumberColumn("Labeled (cumulative)", format="localized"),
    "new_labeled": st.column_config.NumberColumn("Labeled in round", format="localized"),
    "n_eval": st.column_config.NumberColumn("Evaluated", help="Predictions of samples with a gold label",
                                            format="localized"),
    # text: "—" for a round without a previous one (a number column would show "None")
    "macro_f1_change": st.column_config.TextColumn("Macro-F1 change", help="From the previous round with a macro-F1"),
})
base = safe_filename("iterations", dataset, default="dataset")
notes = [plateau_note]
if why:
    notes.append(re.sub(r"\*\*|`", "", why))
d1, d2, _ = st.columns(3)
d1.download_button("Download the table (CSV)", table.write_csv(), file_name=f"{base}.csv", mime="text/csv",
                   icon=":material/download:", on_click="ignore", key="iter_csv", width="stretch")
d2.download_button("Download the charts (HTML report)",
                   lambda: report_html(f"Iterations · {dataset}", cards, figures, table, notes),
                   file_name=f"{base}.html", mime="text/html", icon=":material/download:", on_click="ignore",
                   key="iter_html", width="stretch",
                   help="One standalone file (plotly.js included) that opens without the app.")

import_section(computed, data["imported"])
