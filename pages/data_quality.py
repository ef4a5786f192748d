"""Data quality: duplicates, completeness, cleaning, personal data and suspected label errors of a dataset.

A card per check, a tab per check with the offending samples (matched spans shown as
before / match / after), near duplicates side by side, sending selected samples to the review
queue or excluding them from export, and a cleaned, PII-masked JSONL export. All checks live in
:mod:`core.quality_report`; this page only draws them. The report is the stored result of the
``quality`` job (and suspected label errors of the ``label_errors`` job, on request), read through
:mod:`ui.jobs`: computed in the background when the data changed, never inside a page run.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import plotly.express as px
import polars as pl
import streamlit as st

from core import checks as check_registry
from core import privacy
from core.checks.base import SEVERITIES
from core.checks.contamination import NOT_RUN, read_eval_texts
from core.checks.pii import pii_findings
from core.checks.refusal import refusal_patterns, set_refusal_patterns
from core.jobs.quality import DEFAULT_THRESHOLD
from core.quality_report import (
    CHECKS,
    LabelErrorResult,
    cleaned_jsonl,
    diff_segments,
    exclude_samples,
    filter_findings,
    label_error_priorities,
    near_duplicates_at,
    report_to_dict,
    send_to_review,
)
from core.roles import Action
from core.vocab import reason_name
from ui.cache import data_key
from ui.errors import show_store_error, shown_errors
from ui.format import table as table_view
from ui.jobs import job_result, job_stored, peek, submit
from ui.privacy import reveal_toggle
from ui.session import (
    can,
    current_user,
    get_store,
    refresh_after_write,
    require_dataset,
)

MAX_ROWS = 5000  # rows drawn per table; the JSON report holds all of them
MAX_PICK_OPTIONS = 2000  # sample ids the picker offers per check (with the suggested ones)
MAX_PAIRS = 1000  # near-duplicate pairs offered for the side-by-side view
CARDS_PER_ROW = 5  # more and the card titles and their "… of the dataset" lines are clipped
#: Finding kinds spelled for people (others: underscores become spaces).
KIND_NAMES = {"cn_id": "Chinese ID number", "bank_card": "bank card", "ipv4": "IPv4 address",
              "ipv6": "IPv6 address", "url": "URL", "html_tag": "HTML tag", "html_entity": "HTML entity",
              "control_char": "control character", "fullwidth_form": "full-width form"}
NO_LABEL = "(no gold label)"
HELP = {c.name: c.help for c in check_registry.ordered()}
#: Checks drawn by a tab of their own below; every other registered check gets the generic table.
SPECIAL_TABS = {"exact_duplicates", "near_duplicates", "completeness", "cleaning", "pii", "label_errors"}

st.title("Data quality")
st.caption("What is wrong with the samples before they go to annotators or into training. Select rows in a table "
           "(or pick ids) to send them to the review queue or exclude them from export.")
dataset = require_dataset()
may_send, may_exclude = can(Action.QUEUE_RULES), can(Action.EXCLUDE)  # a lead's (core.roles.ALLOWED)
writer = may_send or may_exclude
store = get_store()


@st.cache_resource(show_spinner="Masking personal data…", max_entries=8)
def masked_report(stored_key: tuple, _report):
    """The stored report with personal data masked (shared by the sessions: never changed in place);
    ``stored_key`` names the stored result (dataset, parameters, version, when it was computed)."""
    return privacy.mask_report(_report)


@st.cache_resource(show_spinner=False, max_entries=8)
def masked_check(stored_key: tuple, _result):
    """A stored check result (near duplicates at another threshold) with personal data masked."""
    return replace(_result, frame=privacy.mask_frame(_result.frame),
                   extra={k: privacy.mask_frame(v) if isinstance(v, pl.DataFrame) else v
                          for k, v in _result.extra.items()})


@st.cache_resource(show_spinner=False, max_entries=16)
def at_threshold(stored_key: tuple, masked: bool, threshold: float, _report):
    """The report's near duplicates at a threshold at or above the stored one, from its stored pairs."""
    return near_duplicates_at(_report, threshold)


@st.cache_data(ttl=300, show_spinner="Reading the personal data…", max_entries=4)
def raw_pii(key: tuple, include_excluded: bool, _reveal):
    return pii_findings(get_store(), key[1], _reveal, include_excluded=include_excluded)


def shown_report(stored, include_excluded: bool, threshold: float, reveal):
    """The stored report as this session may see and download it (a copy this run may change): personal data
    masked in every table unless a lead turned "Show personal data" on (then the personal-data findings are
    the raw ones), near duplicates at ``threshold`` when it is at or above the stored report's."""
    key = (stored.dataset, str(sorted(stored.params.items())), stored.data_version, str(stored.computed_at))
    report = stored.value if reveal is not None else masked_report(key, stored.value)
    if threshold >= report.threshold:
        report = at_threshold(key, reveal is None, float(threshold), report)
    report = replace(report, results=dict(report.results))
    if reveal is not None and "pii" in report.results:
        raw = raw_pii(data_key(dataset), include_excluded, reveal)
        report.results["pii"] = replace(report.results["pii"], frame=raw)
    return report


def readable_kinds(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its ``kind`` values spelled for people (``cn_id`` → ``Chinese ID number``)."""
    if "kind" not in frame.columns or frame.height == 0:
        return frame
    names = {k: KIND_NAMES.get(k, k.replace("_", " ")) for k in frame["kind"].drop_nulls().unique().to_list()}
    return frame.with_columns(pl.col("kind").replace_strict(names, default=None, return_dtype=pl.Utf8))


@st.cache_data(show_spinner=False, max_entries=4)
def parse_eval_set(data: bytes, name: str):
    return read_eval_texts(data, name)


def md_escape(text: str | None) -> str:
    """User text made inert for st.markdown: every ASCII punctuation mark backslash-escaped, line breaks kept."""
    text = re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text or "")
    lines = [re.sub(r"^[ \t]+", lambda m: "\u00a0" * len(m.group()), line) for line in text.split("\n")]
    return "  \n".join(lines)


def highlighted(segments: list[tuple[str, bool]]) -> str:
    """Markdown of text segments with the marked ones on a red background (all text escaped)."""
    return "".join(f":red-background[{md_escape(t)}]" if mark and t.strip() else md_escape(t)
                   for t, mark in segments) or "*(empty)*"


def flash(message: str) -> None:
    st.session_state["dq_flash"] = message


def selected_rows(check: str, frame: pl.DataFrame, columns: list[str], config: dict | None = None) -> list[str]:
    """Draw ``frame`` as a selectable table; return the sample ids of the selected rows."""
    shown = frame.head(MAX_ROWS)
    if frame.height > MAX_ROWS:
        st.caption(f"Showing the first {MAX_ROWS:,} of {frame.height:,} rows; the JSON report below holds all.")
    event = table_view(readable_kinds(shown.select(columns)), config, key=f"dq_table_{check}", on_select="rerun",
                       selection_mode="multi-row")
    rows = list(event.selection.rows) if event is not None and hasattr(event, "selection") else []
    ids = shown["sample_id"].to_list()
    return [ids[i] for i in rows if 0 <= i < len(ids)]


def actions(check: str, frame: pl.DataFrame, from_table: list[str], priorities: dict[str, float] | None = None,
            suggest: list[str] | None = None, suggest_label: str = "") -> None:
    """Queue / exclude the selected samples of one check."""
    if not writer:
        st.caption("Your role is read-only here: sending to the review queue and excluding from export "
                   "are for team leads.")
        return
    pick_key = f"dq_pick_{check}"
    # the picker's options go to the browser with every run: at a million samples a check can flag hundreds of
    # thousands (seconds of transfer and drawing per run), so it offers the first MAX_PICK_OPTIONS flagged ids
    suggest = list(dict.fromkeys(suggest or []))[:MAX_PICK_OPTIONS]
    flagged = frame["sample_id"].unique(maintain_order=True)
    held = [str(x) for x in st.session_state.get(pick_key, [])]
    still = pl.Series(held, dtype=pl.Utf8)
    held = still.filter(still.is_in(flagged.cast(pl.Utf8).implode())).to_list() if held else []  # still flagged
    options = list(dict.fromkeys([*flagged.head(MAX_PICK_OPTIONS).to_list(), *suggest, *held]))
    if st.session_state.get(pick_key):
        offered = set(options)
        st.session_state[pick_key] = [s for s in st.session_state[pick_key] if s in offered]
    left, right = st.columns([3, 1])
    with right:
        if suggest:
            st.button(suggest_label, key=f"dq_suggest_{check}", width="stretch",
                      on_click=lambda: st.session_state.update({pick_key: list(suggest)}))
    picked = left.multiselect("Samples (selected table rows are added)", options, key=pick_key,
                              placeholder="Pick sample ids, or select rows in the table",
                              help=None if flagged.len() <= MAX_PICK_OPTIONS else
                              f"The first {MAX_PICK_OPTIONS:,} of the {flagged.len():,} flagged samples; send the "
                              "rest from the review queue rules or the JSON report.")
    chosen = list(dict.fromkeys([*from_table, *picked]))
    st.caption(f"**{len(chosen)}** sample(s) selected" + (f": {', '.join(chosen[:8])}" + ("…" if len(chosen) > 8
                                                                                           else "") if chosen else ""))
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    reasons = list(dict.fromkeys([check_registry.CHECKS[check].queue_reason, "manual"]))
    reason = c1.selectbox("Queue reason", reasons, format_func=reason_name, key=f"dq_reason_{check}")
    send = c2.button("Send to review queue", key=f"dq_send_{check}", disabled=not (chosen and may_send),
                     width="stretch")
    drop = c3.button("Exclude from export", key=f"dq_exclude_{check}", disabled=not (chosen and may_exclude),
                     width="stretch")
    if not (send or drop):
        return
    try:
        if send:
            added = send_to_review(store, dataset, chosen, reason, current_user(), check=check, priorities=priorities)
            skipped = len(chosen) - added
            flash(f"Sent {added} sample(s) to the review queue ({reason_name(reason)})."
                  + (f" {skipped} already had an open entry for that reason." if skipped else ""))
        else:
            changed = exclude_samples(store, dataset, chosen, current_user(), check=check)
            skipped = len(chosen) - changed
            flash(f"Excluded {changed} sample(s) from export."
                  + (f" {skipped} were already excluded." if skipped else ""))
    except Exception as exc:
        show_store_error(exc)
        return
    refresh_after_write()
    for key in (pick_key, f"dq_table_{check}"):
        st.session_state.pop(key, None)
    st.rerun()


# -- settings and the report ----------------------------------------------------------------------
message = st.session_state.pop("dq_flash", None)
if message:
    st.success(message)

left, mid = st.columns(2, vertical_alignment="bottom")
threshold = left.slider("Near-duplicate threshold (Jaccard)", 0.5, 1.0, DEFAULT_THRESHOLD, 0.05, key="dq_threshold",
                        help="Character 3-gram Jaccard similarity from which two samples are near duplicates. "
                             f"From {DEFAULT_THRESHOLD:g} up it filters the stored pairs at once; below, the "
                             "near-duplicate check runs again in the background.")
include_excluded = mid.toggle("Include samples excluded from export", key="dq_include_excluded")
decision = reveal_toggle(dataset, "data quality page", "dq_reveal", mid)  # a lead's, audited; else masked

with st.expander("Evaluation set for the contamination check", icon=":material/quiz:"):
    upload = st.file_uploader("Evaluation questions (JSON lines, JSON array, CSV / TSV or Parquet)",
                              type=["jsonl", "ndjson", "json", "csv", "tsv", "parquet"], key="dq_eval_file",
                              help="Questions in a column question, prompt, text or instruction (else the first "
                                   "text column). Same as `python -m core quality --eval-file FILE`.")
    eval_set = None
    if upload is not None:
        with shown_errors():
            eval_set = parse_eval_set(upload.getvalue(), upload.name)
    if eval_set is not None:
        st.caption(f"**{md_escape(eval_set.name)}**: {len(eval_set.texts):,} questions from column "
                   f"`{md_escape(eval_set.column)}`.")
    else:
        st.caption("Without an evaluation set the contamination check is not run.")

# computed by the "quality" job (core.jobs), stored, and recomputed in the background when the data changes
stored_report = job_stored(dataset, "quality", {"include_excluded": include_excluded}, key="dq_job")
if stored_report is None:
    st.stop()
with shown_errors(stop=True):
    report = shown_report(stored_report, include_excluded, float(threshold), decision)
if float(threshold) < report.threshold:  # below the stored pairs' threshold: the one check, as a job of its own
    near = job_stored(dataset, "near_duplicates", {"threshold": float(threshold), "include_excluded": include_excluded},
                      key="dq_near_job", quiet=True)
    if near is not None:
        report.results["near_duplicates"] = near.value if decision is not None else masked_check(
            (dataset, str(sorted(near.params.items())), near.data_version, str(near.computed_at)), near.value)
        report.threshold = float(threshold)

if report.n_samples == 0:
    st.info(f"**{dataset}** has no samples to check" + ("" if include_excluded else " (excluded samples are skipped)")
            + ". Import a file on the **Import** page.")
    st.stop()

# suspected label errors: the "label_errors" job, run on request (it may embed every text) and stored, so
# they survive a reload and every lead sees them; the method radio below picks which stored result is shown
label_methods = ["model", "embeddings"] if report.prediction_round is not None else ["embeddings"]
if st.session_state.get("dq_label_method") not in label_methods:
    st.session_state.pop("dq_label_method", None)
label_method = st.session_state.get("dq_label_method", label_methods[0])
label_params = {"method": label_method, "include_excluded": include_excluded}
stored: LabelErrorResult | None = None
if report.n_labeled:
    found = peek(dataset, "label_errors", label_params)
    stored = found.value if found is not None else None
if stored is not None and decision is None:
    stored = replace(stored, frame=privacy.mask_frame(stored.frame))
if stored is not None and stored.computed:
    current = set(report.sample_ids)  # samples excluded since the computation drop out
    stored = LabelErrorResult(stored.frame.filter(pl.col("sample_id").is_in(current)), stored.method,
                              stored.source, stored.n_labeled, stored.n_checked, stored.note)
report.label_errors = stored
if eval_set is not None and "contamination" in CHECKS:
    # the "contamination" job, in the background worker (a large evaluation set against a million samples takes
    # minutes), stored per evaluation set: a reload or another lead with the same questions reads it
    contamination = job_stored(dataset, "contamination", {"eval_texts": list(eval_set.texts),
                                                          "eval_name": eval_set.name,
                                                          "include_excluded": include_excluded},
                               key="dq_contamination_job", quiet=True)
    if contamination is not None:
        found = contamination.value
        if decision is None:
            found = replace(found, frame=privacy.mask_frame(found.frame))
        report.results["contamination"] = found
summary = {row["check"]: row for row in report.summary.iter_rows(named=True)}

st.caption(f"**{dataset}** · {report.n_samples:,} samples checked"
           + ("" if include_excluded else " (excluded from export: skipped)")
           + f" · fields: {', '.join(report.fields) or 'none'}")
if not report.has_output:
    st.info("This dataset has no **output** field (e.g. a plain `text` classification set): completeness checks "
            "only the fields it has, and the truncated-output and repeated-instruction checks do not apply.")

# -- cards ------------------------------------------------------------------------------------------
cards = [c for start in range(0, len(CHECKS), CARDS_PER_ROW) for c in st.columns(CARDS_PER_ROW)]
for col, (check, title) in zip(cards, CHECKS.items()):
    row = summary[check]
    with col:
        if row["count"] is None:
            st.metric(title, "—", help=HELP[check], border=True)
            st.caption(row["detail"] if stored is not None or check != "label_errors" else
                       "Not computed yet: see its tab.")
        else:
            st.metric(title, f"{row['count']:,}", delta=f"{row['share']:.1%} of the dataset", delta_color="off",
                      delta_arrow="off", help=HELP[check], border=True)

counted = [(CHECKS[c], summary[c]["share"]) for c in CHECKS if summary[c]["share"] is not None]
fig = px.bar(x=[s * 100 for _, s in counted], y=[t for t, _ in counted], orientation="h",
             labels={"x": "% of the dataset", "y": ""})
fig.update_layout(height=max(200, 24 * len(counted)), margin=dict(l=10, r=10, t=10, b=10))
fig.update_yaxes(autorange="reversed")
st.plotly_chart(fig, width="stretch", key="dq_share_chart")

# -- tabs -------------------------------------------------------------------------------------------
# Tab titles stay fixed (counts are on the cards): a changed title would reset the open tab after a write.
# Severity and label filters of the checks whose findings carry both (the instruction-data checks).
with shown_errors(stop=True):
    dataset_labels = list(store.get_dataset(dataset).labels)
f_sev, f_label = st.columns(2)
severity_filter = f_sev.multiselect("Severity", list(SEVERITIES), key="dq_filter_severity", placeholder="All",
                                    help="Show only findings of these severities (instruction-data checks).")
label_filter = f_label.multiselect("Label", [*dataset_labels, NO_LABEL],
                                   key="dq_filter_label", placeholder="All",
                                   help="Show only findings of samples with these gold labels.")
tabs = st.tabs(list(CHECKS.values()))
tab = dict(zip(CHECKS, tabs))

with tab["exact_duplicates"]:
    frame = report.exact_duplicates
    st.caption(HELP["exact_duplicates"] + " **Keep** marks the copy to keep; **Identical** is unticked when the copies "
                                          "differ in case or whitespace only.")
    if frame.height == 0:
        st.success("No exact duplicates.")
    else:
        ids = selected_rows("exact_duplicates", frame,
                            ["group", "sample_id", "group_size", "first", "identical", "similarity", "text"],
                            {"similarity": st.column_config.NumberColumn("Similarity", format="%.2f"),
                             "first": st.column_config.CheckboxColumn("Keep", help="The copy to keep"),
                             "text": st.column_config.TextColumn("Text", width="large")})
        actions("exact_duplicates", frame, ids, suggest=frame.filter(~pl.col("first"))["sample_id"].to_list(),
                suggest_label="Select the later copies")

with tab["near_duplicates"]:
    frame, pairs = report.near_duplicates, report.near_duplicate_pairs
    st.caption(HELP["near_duplicates"] + f" Threshold {report.threshold:g}.")
    if frame.height == 0:
        st.success(f"No near duplicates at Jaccard ≥ {report.threshold:g}.")
    else:
        ids = selected_rows("near_duplicates", frame,
                            ["cluster", "sample_id", "cluster_size", "first", "max_jaccard", "text"],
                            {"max_jaccard": st.column_config.NumberColumn("Max Jaccard", format="%.3f"),
                             "first": st.column_config.CheckboxColumn("Keep", help="The first sample of the cluster"),
                             "text": st.column_config.TextColumn("Text", width="large")})
        actions("near_duplicates", frame, ids, suggest=frame.filter(~pl.col("first"))["sample_id"].to_list(),
                suggest_label="Select later copies")
        st.markdown("**Side by side**")
        shown = pairs.head(MAX_PAIRS)
        labels = [f"cluster {c}: {a} ↔ {b} · Jaccard {j:.3f}"
                  for c, a, b, j in shown.select("cluster", "sample_id_a", "sample_id_b", "jaccard").iter_rows()]
        choice = st.selectbox("Pair", range(shown.height), format_func=labels.__getitem__, key="dq_pair")
        pair = shown.row(choice or 0, named=True)
        seg_a, seg_b = diff_segments(pair["text_a"], pair["text_b"])
        st.metric("Jaccard similarity (character 3-grams)", f"{pair['jaccard']:.3f}")
        col_a, col_b = st.columns(2)
        with col_a:
            st.markdown(f"**{md_escape(pair['sample_id_a'])}**")
            st.markdown(highlighted(seg_a))
        with col_b:
            st.markdown(f"**{md_escape(pair['sample_id_b'])}**")
            st.markdown(highlighted(seg_b))
        st.caption("Characters that differ between the two are highlighted.")

with tab["completeness"]:
    frame = report.completeness
    st.caption(HELP["completeness"])
    if frame.height == 0:
        st.success("No completeness issues.")
    else:
        kinds = frame.group_by("kind").len().sort("len", descending=True)
        st.caption(" · ".join(f"{KIND_NAMES.get(k, k.replace('_', ' '))}: {n}" for k, n in kinds.iter_rows()))
        ids = selected_rows("completeness", frame, ["sample_id", "kind", "field", "detail", "value"],
                            {"detail": st.column_config.TextColumn("Detail", width="large")})
        actions("completeness", frame, ids)


def span_tab(check: str, frame: pl.DataFrame, fixed: str, fixed_title: str, none_text: str) -> None:
    st.caption(HELP[check])
    if frame.height == 0:
        st.success(none_text)
        return
    kinds = frame.group_by("kind").agg(pl.col("sample_id").n_unique().alias("samples")).sort("samples",
                                                                                               descending=True)
    st.caption(" · ".join(f"{KIND_NAMES.get(k, k.replace('_', ' '))}: {n} samples" for k, n in kinds.iter_rows()))
    ids = selected_rows(check, frame, ["sample_id", "kind", "field", "before", "match", "after", fixed],
                        {"match": st.column_config.TextColumn("Match", help="The matched span"),
                         fixed: st.column_config.TextColumn(fixed_title, width="large")})
    actions(check, frame, ids)
    shown = frame.head(MAX_PAIRS)
    labels = [f"{s} · {f} · {KIND_NAMES.get(k, k.replace('_', ' '))}: {m[:40]}"
              for s, f, k, m in shown.select("sample_id", "field", "kind", "match").iter_rows()]
    choice = st.selectbox("Show a finding", range(shown.height), format_func=labels.__getitem__,
                          key=f"dq_show_{check}")
    row = shown.row(choice or 0, named=True)
    st.markdown(highlighted([(row["before"], False), (row["match"], True), (row["after"], False)]))
    st.caption(f"{fixed_title} ({row['field']}):")
    st.code(row[fixed], language=None, wrap_lines=True)


with tab["cleaning"]:
    span_tab("cleaning", report.cleaning, "cleaned", "Cleaned preview", "Nothing to clean.")

with tab["pii"]:
    span_tab("pii", report.pii, "masked", "Masked preview", "No personal data found.")

with tab["label_errors"]:
    st.caption(HELP["label_errors"])
    if report.n_labeled == 0:
        st.info("No labels in this dataset" + (" and no model predictions" if report.prediction_round is None else "")
                + ": the label-error check needs gold labels (annotations or reviews). Import annotations with a "
                  "`label` column on the **Import** page.")
    else:
        methods = label_methods
        method_names = {"model": f"Model probabilities (round {report.prediction_round})",
                        "embeddings": "Cross-validated embeddings (logistic regression, 5 folds)"}
        method = st.radio("Probabilities from", methods, format_func=method_names.get, horizontal=True,
                          key="dq_label_method")
        if method == "model":
            st.caption("Uses the latest round's predictions. cleanlab assumes out-of-fold probabilities: fine for "
                       "predictions made before the samples were labeled; if that model was trained on these labels "
                       "it is over-confident on them and finds fewer errors — use the embeddings then.")
        else:
            st.caption("Embeds the texts (first time only: vectors are cached in the store), then trains a "
                       "logistic regression per fold, so every probability is out of fold." +
                       ("" if report.prediction_round is not None else " No model predictions in this dataset."))
        # the stored result, when and on which version it was computed (a stale one is marked), the progress
        job_result(dataset, "label_errors", {**label_params, "method": method}, key="dq_label_info", start=False)
        if st.button("Find suspected label errors" if stored is None else "Find them again", type="primary",
                     key="dq_label_run", help="Runs in the background; the result is stored for everyone."):
            with shown_errors(stop=True):
                submit(dataset, "label_errors", {**label_params, "method": method})
            st.rerun()
        if stored is not None and not stored.computed:
            st.warning(f"Not computed: {stored.note}.")
        elif stored is not None:
            frame = stored.frame
            st.caption(f"{stored.source} · {stored.n_checked:,} of {stored.n_labeled:,} labeled samples checked · "
                       "lowest self-confidence (the model's probability of the given label) first.")
            if frame.height == 0:
                st.success("No suspected label errors.")
            else:
                ids = selected_rows("label_errors", frame, ["sample_id", "given_label", "suggested_label",
                                                            "self_confidence", "label_source", "text"],
                                    {"self_confidence": st.column_config.ProgressColumn(
                                        "Self-confidence", min_value=0.0, max_value=1.0, format="%.3f"),
                                     "text": st.column_config.TextColumn("Text", width="large")})
                actions("label_errors", frame, ids, priorities=label_error_priorities(frame))

# -- export -----------------------------------------------------------------------------------------
st.subheader("Export")
left, right = st.columns(2)
with left:
    st.markdown("**Cleaned, PII-masked copy** (JSONL)")
    st.caption("Samples with a gold label (latest review, else the annotators' majority), excluded samples left out, "
               "text fields cleaned and personal data masked as `***` + the last 4 characters.")
    if report.n_labeled == 0:
        st.info("No gold labels yet: nothing to export.")
    else:
        do_clean = st.checkbox("Apply the cleaning fixes", value=True, key="dq_export_clean")
        # unmasked only for a lead who turned "Show personal data" on (audited); everyone else: masked
        do_mask = decision is None or st.checkbox("Mask personal data", value=True, key="dq_export_mask")
        st.download_button("Download cleaned JSONL",
                           data=lambda: cleaned_jsonl(store, dataset, clean=do_clean, mask=do_mask),
                           file_name=f"{dataset}_cleaned.jsonl", mime="application/jsonl", on_click="ignore",
                           key="dq_export_jsonl", icon=":material/download:")
with right:
    st.markdown("**Full report** (JSON)")
    st.caption("Every finding of every check (as `python -m core quality --out report.json`).")
    st.download_button("Download the report",
                       data=lambda: json.dumps(report_to_dict(report), ensure_ascii=False, default=str),
                       file_name=f"{dataset}_quality.json", mime="application/json", on_click="ignore",
                       key="dq_export_report", icon=":material/download:")


# -- every other registered check: its findings, filtered, with the span marked --------------------------
HIDDEN = {"check", "start", "end", "span_text", "before", "after"}


def refusal_settings() -> None:
    """A lead's extra refusal phrases for this dataset (core.checks.refusal.set_refusal_patterns, audited)."""
    if not can(Action.SETTINGS):
        return
    with st.expander("Extra refusal phrases of this dataset"), st.form("dq_refusal_form"):
        current = refusal_patterns(store.get_dataset(dataset).settings)
        text = st.text_area("One phrase a line (matched as written, any case, any spacing)", "\n".join(current),
                            key="dq_refusal_patterns", height=120)
        if st.form_submit_button("Save phrases", icon=":material/save:"):
            with shown_errors():
                saved = set_refusal_patterns(store, dataset, text.splitlines(), current_user())
                refresh_after_write()
                flash(f"Saved {len(saved)} extra refusal phrase(s); the checks ran again.")
                st.rerun()


def findings_tab(check: str) -> None:
    st.caption(HELP[check])
    if check == "refusal":
        refusal_settings()
    result = report.results.get(check)
    if result is None or result.count is None:
        note = result.detail if result is not None else "not run"
        st.info(f"Not run: {note}." if note != NOT_RUN else
                "Not run: no evaluation set. Upload one under **Evaluation set for the contamination check** "
                "above, or run `python -m core quality --eval-file FILE`.")
        return
    frame = result.frame
    if frame.height == 0:
        st.success("No findings.")
        return
    if "excerpt" not in frame.columns:  # a check of another kind: its own columns
        actions(check, frame, selected_rows(check, frame, frame.columns))
        return
    shown = filter_findings(frame, severity_filter or None,
                            [None if x == NO_LABEL else x for x in label_filter] if label_filter else None)
    st.caption(f"{shown.height:,} of {frame.height:,} findings" + (" (filtered)" if shown.height < frame.height
                                                                   else "") + f" · {result.detail}")
    if shown.height == 0:
        st.info("No findings match the severity and label filters.")
        return
    # the message first after the id: it says what is wrong; the long excerpt goes last
    columns = ["sample_id", "message", "severity", "kind", "label", "field"]
    columns += [c for c in shown.columns if c not in columns and c not in HIDDEN and c != "excerpt"]
    columns.append("excerpt")
    ids = selected_rows(check, shown, columns, {
        "sample_id": st.column_config.TextColumn("Sample", width="small"),
        "message": st.column_config.TextColumn("Message", width="large"),
        "excerpt": st.column_config.TextColumn("Text (span «marked»)", width="large")})
    actions(check, shown, ids)
    head = shown.head(MAX_PAIRS)
    labels = [f"{s} · {k} · {(m or '')[:60]}" for s, k, m in head.select("sample_id", "kind", "message").iter_rows()]
    choice = st.selectbox("Show a finding", range(head.height), format_func=labels.__getitem__,
                          key=f"dq_show_{check}")
    row = head.row(choice if choice is not None and choice < head.height else 0, named=True)
    if row["span_text"] is not None and row["before"] is not None:
        st.markdown(highlighted([(row["before"], False), (row["span_text"], True), (row["after"] or "", False)]))
    else:
        st.markdown(md_escape(row["excerpt"]) or "*(empty)*")
    st.caption(md_escape(row["message"]))


for _name in CHECKS:
    if _name not in SPECIAL_TABS:
        with tab[_name]:
            findings_tab(_name)
