"""Overview: KPI cards, label and batch distribution, recent activity of the chosen dataset."""

import plotly.express as px
import polars as pl
import streamlit as st

from core import privacy
from ui.cache import data_key
from ui.errors import shown_errors
from ui.format import action_name, audit_value, table
from ui.session import get_store, require_dataset

NO_BATCH = "(none)"  # Store.samples_per_batch's name for samples without a batch

st.title("Overview")
dataset = require_dataset()


@st.cache_data(ttl=30, show_spinner=False)
def load_overview(key: tuple):
    name = key[1]
    store = get_store()
    info = store.get_dataset(name)
    return (info.labels, store.overview_counts(name), store.label_counts(name),
            store.samples_per_batch(name), store.audit_log(dataset=name, limit=20), store.imports(name))


with shown_errors(stop=True):
    # keyed by the latest audit id: open queue entries and recent activity change without a data write
    labels, counts, label_counts, per_batch, activity, imports = load_overview(data_key(dataset, audit=True))

st.caption(f"Dataset **{dataset}** · {len(labels)} labels: {', '.join(labels)}")
cols = st.columns(5)
# short titles (five cards share the width), the long form in the help
cols[0].metric("Samples", f"{counts['samples']:,}")
cols[1].metric("Labeled", f"{counts['labeled']:,}", help="Samples with at least one annotation or review")
cols[2].metric("Annotators", f"{counts['annotators']:,}")
cols[3].metric("Rounds (incl. current)", f"{counts['rounds']:,}",
               help="Distinct rounds of the samples and the model predictions; the latest (current) round counts "
                    "too, even while it is still being labeled")
cols[4].metric("To review", f"{counts['open_review']:,}", help="Open entries of the review queue")

if counts["samples"] == 0:
    st.info("This dataset has no samples yet: import a file on the **Import** page.")
    st.stop()

left, right = st.columns(2)
with left:
    st.subheader("Annotations per label")
    if label_counts.height:
        fig = px.bar(label_counts.to_pandas(), x="label", y="n", labels={"n": "annotations"})
        fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10})
        st.plotly_chart(fig, width="stretch")
    else:
        st.caption("No annotations yet.")
with right:
    st.subheader("Samples per batch")
    if per_batch.height == 0 or set(per_batch["batch"].to_list()) == {NO_BATCH}:
        st.caption(f"No batches: the {counts['samples']:,} samples of this dataset were imported without a "
                   "`batch` column. Import with one to compare batches here and on the Agreement and Drift pages.")
    else:
        fig = px.bar(per_batch.with_columns(pl.col("batch").replace(NO_BATCH, "(no batch)")).to_pandas(),
                     x="batch", y="n", labels={"n": "samples"})
        fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10})
        fig.update_xaxes(type="category")
        st.plotly_chart(fig, width="stretch")

st.subheader("Recent activity")
if activity.height:
    # values can be free text (review notes): personal data masked (the Audit page can reveal it to a lead)
    shown = privacy.mask_frame(activity.select("logged_at", "actor", "action", "sample_id", "old_value", "new_value"),
                               columns=["old_value", "new_value"])
    # actions by name, a dataset's labels as "a, b, c" (the Audit page filters by the raw action)
    table(shown.with_columns(pl.col("action").map_elements(action_name, return_dtype=pl.Utf8),
                             *[pl.col(c).map_elements(audit_value, return_dtype=pl.Utf8)
                               for c in ("old_value", "new_value")]))
else:
    st.caption("Nothing recorded yet.")

with st.expander(f"Imports ({imports.height})"):
    table(imports.select("import_id", "file", "format", "rows_total", "rows_ok", "rows_bad", "samples_new",
                         "annotations_new", "predictions_new", "actor", "imported_at"),
          column_config={"import_id": "Import", "rows_total": "Rows", "rows_ok": "Rows kept",
                         "rows_bad": "Rows rejected", "samples_new": "New samples",
                         "annotations_new": "New annotations", "predictions_new": "New predictions"})
if st.button("Refresh", help="Reload figures (e.g. after a command-line import)"):
    st.cache_data.clear()
    st.rerun()
