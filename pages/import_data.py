"""Import: upload (or a file in the import folder), record shape, column mapping, preview, import with progress, error report."""

import tempfile
from pathlib import Path

import streamlit as st

from core.ingest import (
    ALIASES,
    ColumnMapping,
    import_dir,
    import_file,
    inspect_file,
    plural,
    resolve_server_path,
)
from core.record_rows import TOOL_SHAPES
from core.records import SHAPES
from core.vocab import TEXT_FIELDS
from ui.errors import show_store_error, shown_errors
from ui.session import current_user, get_store, refresh_after_write

SHAPE_NAMES = {"label_studio": "Label Studio export", "argilla": "Argilla records", "preference": "preference pairs",
               "chat": "OpenAI chat (messages)", "sharegpt": "ShareGPT (conversations)",
               "instruction": "Alpaca / instruction", "text": "plain text"}
AUTO = "auto"

st.title("Import")
st.caption("JSON lines, a JSON array, CSV / TSV or Parquet, told apart by content. Chat, ShareGPT, preference "
           "pairs, Alpaca, plain text, Label Studio and Argilla exports are recognised. Row-level problems are "
           "reported by row number and the valid rows land; a file-level problem changes nothing. Importing "
           "the same file twice changes nothing.")

store = get_store()
upload = st.file_uploader("File", type=["jsonl", "ndjson", "json", "csv", "tsv", "parquet", "pq"])
server_path = st.text_input(f"…or a file in the import folder `{import_dir()}` (for large files)",
                            key="import_path", placeholder="batch_07.jsonl")

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
    with shown_errors(stop=True):
        source = resolve_server_path(server_path)  # only inside the import folder, symlinks followed
    display_name = source.name

if source is None:
    st.info("Choose a file to see its columns and a preview.")
    st.stop()


@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def inspect(path: str, mtime: float):
    return inspect_file(get_store(), path)


with shown_errors(stop=True):
    if not source.is_file():
        raise ValueError(f"file not found: {server_path.strip() or display_name}")
    info = inspect(str(source), source.stat().st_mtime)

columns = info.columns
shapes = ", ".join(f"{SHAPE_NAMES.get(s, s)} ({n:,})" for s, n in info.record_shapes.items())
st.write(f"**{display_name}** · {info.format} · {plural(info.rows + info.bad.height, 'row')} · "
         f"{plural(len(columns), 'column')} · shape: {SHAPE_NAMES.get(info.shape, 'none recognised')}")
if shapes and info.shape not in TOOL_SHAPES:
    st.caption(f"Shapes of the first records: {shapes}")
st.dataframe(info.head, width="stretch", hide_index=True)
if info.bad.height:
    st.warning(f"{plural(info.bad.height, 'row')} cannot be parsed and will be reported as errors.")

auto = info.mapping
tool = info.shape in TOOL_SHAPES
with st.form("import_form"):
    names = store.dataset_names()
    st.markdown("**Dataset** (choose one, or type a new name)")
    pick = st.columns(2)
    existing = pick[0].selectbox("Existing dataset", names, index=None, placeholder="Choose a dataset",
                                 key="import_existing")
    new_name = pick[1].text_input("New dataset", value="", placeholder="a new name", key="import_new")
    shape_choice = st.selectbox(
        "Record shape", [AUTO, *SHAPES], key="import_shape",
        format_func=lambda s: f"auto ({SHAPE_NAMES.get(info.shape, 'none recognised')})" if s == AUTO
        else SHAPE_NAMES[s],
        help="How each record is read. Auto reads each record as its own shape (a file may mix chat "
             "records and preference pairs).")
    question = None
    if len(info.questions) > 1:
        question = st.selectbox("Label question", info.questions, index=None, key="import_question",
                                placeholder="Which question is the label?",
                                help="The file holds several questions; the answers to this one become labels.")
    elif info.questions:
        st.caption(f"Label question: {info.questions[0]}")
    choice: dict[str, str] = {}
    none = "(none)"
    if tool:
        st.caption(f"{SHAPE_NAMES[info.shape]}: annotators, labels and model predictions are read from each "
                   "record; no column mapping is needed.")
    else:
        st.markdown("**Column mapping** (auto-detected; change if needed)")
        if info.derived:
            st.caption("The texts (prompt, response, whole conversation) are derived from each record"
                       + ("; records without an id get one from their content." if auto.id is None else "."))
        targets = [t for t in ALIASES if not (info.derived and t in TEXT_FIELDS)]
        grid = st.columns(4)
        for i, target in enumerate(targets):
            current = getattr(auto, target)
            options = [none, *columns]
            choice[target] = grid[i % 4].selectbox(target, options,
                                                   index=options.index(current) if current else 0,
                                                   key=f"map_{target}")
        if auto.wide_labels:
            st.caption("Wide annotation columns: " + ", ".join(f"{c} → {a}" for a, c in auto.wide_labels.items()))
        if auto.prob_columns:
            st.caption("Probability columns: " + ", ".join(auto.prob_columns.values()))
    labels_text = st.text_input("Label set (comma-separated; empty = from the dataset or the file)", value="",
                                key="import_labels")
    add_labels = st.checkbox("Add new labels", key="import_add_labels",
                             help="Labels the dataset does not have yet are added to its label set. Unticked, "
                                  "a row with an unknown label is rejected (reported with its row number).")
    submitted = st.form_submit_button("Import", type="primary")

if submitted:
    dataset = (new_name or "").strip() or (existing or "")
    problem = None
    if new_name.strip() and existing:
        problem = "Choose an existing dataset or type a new name, not both."
    elif not dataset:
        problem = "Choose the dataset to import into, or type a new name: nothing was imported."
    elif len(info.questions) > 1 and question is None:
        problem = f"Choose the label question ({', '.join(info.questions)}): nothing was imported."
    if problem:
        st.error(problem)
        st.stop()
    mapping = None
    if not tool:
        # text fields not shown (derived from each record) keep the detected columns, for a shape override
        mapped = {t: getattr(auto, t) for t in TEXT_FIELDS} | {k: (None if v == none else v) for k, v in choice.items()}
        mapping = ColumnMapping(**mapped, wide_labels=auto.wide_labels, prob_columns=auto.prob_columns)
        used = mapping.used()
        mapping.meta = [c for c in columns if c not in used]
    labels = [x.strip() for x in labels_text.split(",") if x.strip()] or None
    bar = st.progress(0.0, text="Starting…")
    try:
        result = import_file(store, source, dataset, labels=labels, mapping=mapping,
                             actor=current_user(), display_name=display_name,
                             shape=None if shape_choice == AUTO else shape_choice, question=question,
                             add_labels=add_labels,
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
        st.subheader(f"Rejected rows ({result.rows_bad:,})")
        st.dataframe(result.errors, width="stretch", hide_index=True)
        st.download_button("Download the error report (CSV)", result.errors.write_csv(),
                           file_name=f"{Path(result.file).stem}_errors.csv", mime="text/csv")
