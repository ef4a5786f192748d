"""Audit: the filterable audit log with CSV download, one sample's history, and the gold-label
export with the provenance of each label (review, gold question or the annotators' consensus).

A thin view: filters go to ``Store.audit_log`` as parameters, time ranges through
``core.queue.day_bounds``, files through ``core.export``. Personal data in the log (review notes,
values) and in the export is masked unless a team lead asks for it (``core.privacy``: audited); apart
from those audit rows nothing here writes to the store.
"""

import json
import tempfile
from datetime import date, timedelta
from pathlib import Path

import plotly.express as px
import polars as pl
import streamlit as st

from core import privacy
from core.export import EXPORT_FORMATS, export_gold
from core.queue import day_bounds
from core.roles import Action
from core.vocab import TEXT_FIELDS
from ui.errors import show_store_error, shown_errors
from ui.format import action_name, audit_value, table
from ui.jobs import job_result
from ui.privacy import reveal_toggle
from ui.session import can, current_dataset, current_user, get_store

ALL = "(all)"
LOG_LIMIT = 10_000
MIME = {"jsonl": "application/x-ndjson", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
FORMAT_NAMES = {"jsonl": "JSONL (instruction format)", "csv": "CSV", "parquet": "Parquet"}

st.title("Audit")
store = get_store()
dataset = current_dataset()
decision = reveal_toggle(dataset, "audit page", "audit_reveal") if dataset else None
LOG_TEXT = ["old_value", "new_value", "detail"]  # free text (review notes, values): masked unless revealed


@st.cache_data(ttl=15, show_spinner=False)
def load_facets(db):
    return get_store().audit_facets()


@st.cache_data(ttl=15, show_spinner=False)
def load_log(db, ds, actor, action, since, until):
    return get_store().audit_log(dataset=ds, actor=actor, action=action, since=since, until=until, limit=LOG_LIMIT)


@st.cache_data(ttl=15, show_spinner=False)
def load_sample_history(db, ds, sample_id):
    s = get_store()
    return (s.sample(ds, sample_id), s.sample_annotations(ds, sample_id), s.reviews(ds, sample_id),
            s.audit_log(dataset=ds, sample_id=sample_id))


#: Histogram buckets by the time span of the log: (longest span in seconds, bucket, its length in ms, name).
BUCKETS = ((2 * 3600, "1m", 60_000, "minute"), (3 * 86400, "1h", 3_600_000, "hour"),
           (float("inf"), "1d", 86_400_000, "day"))


def activity_chart(log: pl.DataFrame):
    """Audit rows per minute, hour or day (whichever suits the log's time span), stacked by action."""
    first, last = log["logged_at"].min(), log["logged_at"].max()
    span = (last - first).total_seconds() if first is not None and last is not None else 0.0
    _, every, width_ms, unit = next(b for b in BUCKETS if span <= b[0])
    counts = (log.select(pl.col("logged_at").dt.truncate(every).alias("time"),
                         pl.col("action").map_elements(action_name, return_dtype=pl.Utf8))
              .group_by("time", "action").len().sort("time", "action"))
    fig = px.bar(counts.to_pandas(), x="time", y="len", color="action",
                 labels={"time": f"time (UTC, per {unit})", "len": "rows", "action": "action"})
    fig.update_traces(width=width_ms * 0.9, hovertemplate="%{x}<br>%{y} rows<extra>%{fullData.name}</extra>")
    fig.update_layout(height=240, margin={"l": 10, "r": 10, "t": 10, "b": 10}, barmode="stack")
    return fig


def readable_log(frame: pl.DataFrame) -> pl.DataFrame:
    """Audit rows as people read them: actions by name, label lists as ``a, b, c``."""
    values = [c for c in ("old_value", "new_value") if c in frame.columns]
    return frame.with_columns(
        pl.col("action").map_elements(action_name, return_dtype=pl.Utf8),
        *[pl.col(c).map_elements(audit_value, return_dtype=pl.Utf8) for c in values])


def sample_text(sample: dict) -> list[tuple[str, str]]:
    """The sample's text fields (field, text), personal data masked unless a lead revealed it; a record
    kept in its own shape (a chat) as its JSON when it has no text field."""
    fields = [(f, sample.get(f)) for f in TEXT_FIELDS if sample.get(f)]
    if not fields and sample.get("record"):
        record = sample["record"]
        record = json.loads(record) if isinstance(record, str) else record
        return [("record", json.dumps(privacy.mask_record(record, decision, dataset), ensure_ascii=False,
                                      indent=1))]
    return [(f, privacy.mask_text(v, decision, dataset)) for f, v in fields]


@st.cache_data(ttl=15, show_spinner=False)
def load_reviewed(db, ds):
    return get_store().latest_reviews(ds).sort("created_at", descending=True).head(500)["sample_id"].to_list()


def export_bytes(ds: str, fmt: str, mask: bool, include_excluded: bool) -> tuple[bytes, int]:
    """Write the export through core.export into a temporary file and return its bytes and row count
    (unmasked only for a team lead: core checks and audits it)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"gold.{fmt}"
        n = export_gold(get_store(), ds, out, fmt=fmt, mask_pii=mask, include_excluded=include_excluded,
                        actor=current_user())
        return out.read_bytes(), n


tab_log, tab_sample, tab_export = st.tabs(["Audit log", "Sample history", "Gold export"])

# ---------------------------------------------------------------------------------- the log
with tab_log:
    with shown_errors(stop=True):
        facets = load_facets(store.path)
    datasets = sorted({d for d in facets["dataset"].to_list() if d is not None})
    actors = sorted(set(facets["actor"].to_list()))
    actions = sorted(set(facets["action"].to_list()))
    c = st.columns(5)
    ds_options = [ALL, *datasets]
    pick_ds = c[0].selectbox("Dataset", ds_options, index=ds_options.index(dataset) if dataset in datasets else 0,
                             key="audit_dataset")
    pick_actor = c[1].selectbox("Who", [ALL, *actors], key="audit_actor")
    pick_action = c[2].selectbox("Action", [ALL, *actions], key="audit_action",
                                 format_func=lambda a: a if a == ALL else f"{action_name(a)} ({a})")
    today = date.today()
    start = c[3].date_input("From", value=today - timedelta(days=30), key="audit_from")
    end = c[4].date_input("To", value=today, key="audit_to")
    with shown_errors(stop=True):
        since, until = day_bounds(start, end)
        log = load_log(store.path, None if pick_ds == ALL else pick_ds, None if pick_actor == ALL else pick_actor,
                       None if pick_action == ALL else pick_action, since, until)
    log = privacy.mask_frame(log, decision, None if pick_ds == ALL else pick_ds, columns=LOG_TEXT)
    note = f" (the newest {LOG_LIMIT:,}; narrow the filters to see older rows)" if log.height >= LOG_LIMIT else ""
    st.caption(f"{log.height:,} rows{note}. Times are UTC.")
    if log.height:
        st.plotly_chart(activity_chart(log), width="stretch")
        table(readable_log(log.select("logged_at", "actor", "action", "dataset", "sample_id", "old_value",
                                      "new_value", "detail")))
        st.download_button("Download the filtered log (CSV)", log.write_csv(), file_name="audit_log.csv",
                           mime="text/csv", on_click="ignore", key="audit_csv")
    else:
        st.info("No audit rows match these filters.")

# ------------------------------------------------------------------------- one sample's history
with tab_sample:
    if not dataset:
        st.info("No dataset yet: import one on the **Import** page, then look up its samples here.")
    else:
        try:
            reviewed = load_reviewed(store.path, dataset)
        except Exception as exc:  # noqa: BLE001 - a busy store: shown, the rest of the page still draws
            show_store_error(exc)
            reviewed = []
        left, right = st.columns(2)
        picked = left.selectbox("Recently reviewed samples", reviewed, index=None, key="audit_pick",
                                placeholder="Pick a sample" if reviewed else "No sample reviewed yet")
        typed = right.text_input("…or any sample id", key="audit_sample_id",
                                 help="A sample id as imported (the `id` column).").strip()
        sample_id = typed or picked
        if not sample_id:
            st.info("Pick a recently reviewed sample or type any sample id to see its text, its annotations, "
                    "its reviews and every audit row about it."
                    + ("" if reviewed else " Nothing in this dataset is reviewed yet: type an id (the Review "
                       "and Data quality pages show them)."))
        else:
            with shown_errors(stop=True):
                sample, annotations, reviews, rows = load_sample_history(store.path, dataset, sample_id)
                reviews = privacy.mask_frame(reviews, decision, dataset, columns=["reason"])
                rows = privacy.mask_frame(rows, decision, dataset, columns=LOG_TEXT)
            if sample is None and not rows.height:
                st.warning(f"No sample “{sample_id}” in dataset “{dataset}”. Check the id (ids are "
                           "case-sensitive), or pick the dataset it belongs to in the sidebar.")
            else:
                st.text(f"Sample {sample_id}")
                if sample is None:
                    st.caption("This sample is no longer in the dataset; its audit rows remain.")
                else:
                    where = " · ".join(p for p in (f"batch {sample['batch']}" if sample.get("batch") else "",
                                                   f"round {sample['round']}" if sample.get("round") is not None
                                                   else "", "excluded from export" if sample.get("excluded")
                                                   else "") if p)
                    if where:
                        st.caption(where)
                    shown = sample_text(sample)
                    for field, value in shown:
                        st.markdown(f"**{field.capitalize()}**")
                        st.text(value, width="stretch")
                    if not shown:
                        st.caption("No text.")
                st.markdown(f"**Annotations** ({annotations.height})")
                if annotations.height:
                    table(annotations.select("annotator", "label", "confidence", "created_at"))
                else:
                    st.caption("No annotator labeled this sample.")
                st.markdown(f"**Reviews** ({reviews.height})")
                if reviews.height:
                    table(reviews.select("version", "base_version", "reviewer", "old_label", "new_label",
                                         "reason", "created_at"))
                else:
                    st.caption("Never reviewed: its gold label is a gold question's or the annotators' consensus, "
                               "if any.")
                st.markdown(f"**Audit rows** ({rows.height})")
                table(readable_log(rows.select("logged_at", "actor", "action", "old_value", "new_value",
                                               "detail")))

# ---------------------------------------------------------------------------------- export
with tab_export:
    if not dataset:
        st.info("No dataset yet: import one on the **Import** page, then export its gold labels here.")
    else:
        c = st.columns(3)
        fmt = c[0].radio("Format", EXPORT_FORMATS, format_func=FORMAT_NAMES.get, key="export_format")
        # masked for everyone; a team lead may export raw values (core checks the role and audits the export)
        raw = can(Action.RAW_PII) and c[1].checkbox(
            "Export personal data unmasked (audited)", key="export_raw",
            help="E-mails, phone, ID and card numbers and IP addresses are masked as *** + the last 4 characters "
                 "unless you tick this. Each unmasked export is recorded in the audit log.")
        if not raw:
            c[1].caption("Personal data is masked (*** + the last 4 characters).")
        mask = not raw
        include_excluded = c[2].checkbox("Include samples marked excluded", key="export_excluded")
        # the "gold_summary" job (core.jobs): counts and first rows, stored and recomputed in the background
        summary = job_result(dataset, "gold_summary", {"include_excluded": include_excluded}, key="audit_gold_job",
                             quiet=True)
        if summary is None:
            st.stop()
        counts = summary.by_source
        m = st.columns(3)
        m[0].metric("Gold labels", f"{summary.n:,}", help="Samples with a gold label")
        m[1].metric("From a review", f"{counts.get('review', 0):,}")
        m[2].metric("From the annotators", f"{summary.n - counts.get('review', 0):,}",
                    help="A gold question's label, else the annotators' consensus by the dataset's method")
        st.caption("Each row carries `label_source` and `label_confidence`: `review` (the latest review), "
                   "`gold_question`, or the consensus of the annotators by the dataset's method (`majority`, "
                   "`dawid_skene`, `crowdlab`). Samples whose annotators tie and that nobody reviewed have no "
                   "gold label and are left out.")
        if summary.n:
            table(summary.head.select("sample_id", "label", "label_source", "label_confidence", "batch", "round"))
            key = (dataset, fmt, mask, include_excluded)
            if st.button("Prepare the file", key="export_prepare", type="primary"):
                with shown_errors():
                    data, n = export_bytes(dataset, fmt, mask, include_excluded)
                    st.session_state["export_file"] = {"key": key, "data": data, "rows": n}
            prepared = st.session_state.get("export_file")
            if prepared is not None and prepared["key"] == key:
                st.download_button(f"Download {prepared['rows']:,} gold labels ({FORMAT_NAMES[fmt]})",
                                   prepared["data"], file_name=f"{dataset}_gold.{fmt}", mime=MIME[fmt],
                                   on_click="ignore", key="export_download")
