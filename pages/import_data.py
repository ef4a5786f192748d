"""Import: upload (or a server path), column mapping, preview, import with progress, error report."""

import tempfile
from pathlib import Path

import streamlit as st

from core.ingest import (
    ALIASES,
    ColumnMapping,
    ImportFileError,
    detect_format,
    detect_mapping,
    import_file,
)
from ui.errors import show_store_error
from ui.session import current_dataset, current_user, get_store, refresh_after_write

st.title("Import")
st.caption("JSONL, CSV or Parquet. Row-level problems are reported by row number and the valid rows land; "
           "a file-level problem changes nothing. Importing the same file twice changes nothing.")

store = get_store()
upload = st.file_uploader("File", type=["jsonl", "ndjson", "json", "csv", "tsv", "parquet", "pq"])
server_path = st.text_input("…or a path on the server (for large files)", key="import_path",
                            placeholder="/data/batch_07.jsonl")

source: Path | None = None
display_name = None
if upload is not None:
    # Keep the upload in a temp file named by its content, so reruns do not re-copy it.
    tmp_dir = Path(tempfile.gettempdir()) / "quality-uploads"
    tmp_dir.mkdir(exist_ok=True)
    source = tmp_dir / f"{upload.file_id}{Path(upload.name).suffix.lower()}"
    if not source.exists():
        source.write_bytes(upload.getbuffer())
    display_name = upload.name
elif server_path.strip():
    source = Path(server_path.strip()).expanduser()
    display_name = source.name

if source is None:
    st.info("Choose a file to see its columns and a preview.")
    st.stop()

try:
    fmt = detect_format(display_name or source)
    if not source.exists():
        raise ImportFileError(f"file not found: {source}")
    from core.ingest import preview_file

    @st.cache_data(show_spinner="Reading the file…", max_entries=4)
    def preview(path: str, fmt: str, mtime: float):
        return preview_file(store, path, fmt)

    head, n_rows, bad = preview(str(source), fmt, source.stat().st_mtime)
except Exception as exc:
    show_store_error(exc)
    st.stop()

columns = list(head.columns)
st.write(f"**{display_name}** · {fmt} · {n_rows + bad.height:,} rows · {len(columns)} columns")
st.dataframe(head, width="stretch", hide_index=True)
if bad.height:
    st.warning(f"{bad.height} rows cannot be parsed and will be reported as errors.")

auto = detect_mapping(columns)
with st.form("import_form"):
    names = store.dataset_names()
    default_name = current_dataset() or Path(display_name or "dataset").stem
    dataset = st.text_input("Dataset (new or existing)", value=default_name)
    st.markdown("**Column mapping** (auto-detected; change if needed)")
    none = "(none)"
    choice: dict[str, str] = {}
    grid = st.columns(4)
    for i, target in enumerate(ALIASES):
        current = getattr(auto, target)
        options = [none, *columns]
        choice[target] = grid[i % 4].selectbox(target, options, index=options.index(current) if current else 0,
                                               key=f"map_{target}")
    if auto.wide_labels:
        st.caption("Wide annotation columns: " + ", ".join(f"{c} → {a}" for a, c in auto.wide_labels.items()))
    if auto.prob_columns:
        st.caption("Probability columns: " + ", ".join(auto.prob_columns.values()))
    labels_text = st.text_input("Label set (comma-separated; empty = from the dataset or the file)", value="")
    submitted = st.form_submit_button("Import", type="primary")

if submitted:
    mapping = ColumnMapping(**{k: (None if v == none else v) for k, v in choice.items()},
                            wide_labels=auto.wide_labels, prob_columns=auto.prob_columns)
    used = mapping.used()
    mapping.meta = [c for c in columns if c not in used]
    labels = [x.strip() for x in labels_text.split(",") if x.strip()] or None
    bar = st.progress(0.0, text="Starting…")
    try:
        result = import_file(store, source, dataset, fmt=fmt, labels=labels, mapping=mapping,
                             actor=current_user(), display_name=display_name,
                             progress=lambda stage, f: bar.progress(min(max(f, 0.0), 1.0), text=stage))
    except Exception as exc:
        bar.empty()
        show_store_error(exc)
        st.stop()
    refresh_after_write()
    st.session_state["dataset_next"] = result.dataset
    st.session_state["last_import"] = result
    st.rerun()

result = st.session_state.get("last_import")
if result is not None:
    if result.already_imported:
        st.info(result.summary())
    elif result.rows_bad:
        st.warning(result.summary())
    else:
        st.success(result.summary())
    if result.rows_bad:
        st.subheader(f"Rejected rows ({result.rows_bad})")
        st.dataframe(result.errors, width="stretch", hide_index=True)
        st.download_button("Download the error report (CSV)", result.errors.write_csv(),
                           file_name=f"{Path(result.file).stem}_errors.csv", mime="text/csv")
