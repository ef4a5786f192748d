"""Review: claim the next queue entry, read the sample, correct its label; bulk review of one reason.

A thin view over :mod:`core.queue` and :mod:`core.review`. Sample text is shown as plain text
(``st.text``), never as Markdown or HTML. Every write control is hidden when
``ui.session.can_write()`` is False.
"""

from datetime import datetime, timedelta, timezone

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from core.queue import (
    QUEUE_REASONS,
    TEXT_FIELDS,
    bulk_entries,
    changed_rows,
    claim_next,
    claim_ttl_seconds,
    close_entry,
    confidence_threshold,
    queue_disagreement,
    queue_low_confidence,
    queue_progress,
    release_entry,
    set_confidence_threshold,
    skip_entry,
    top_probabilities,
)
from core.review import (
    ReviewConflict,
    current_label,
    sample_version,
    save_review,
    save_reviews_bulk,
)
from ui.errors import show_store_error
from ui.session import (
    can_write,
    current_user,
    get_store,
    refresh_after_write,
    require_dataset,
)

REASON_NAMES = {
    "low_confidence": "Low model confidence",
    "disagreement": "Annotator disagreement",
    "label_issue": "Suspected label error",
    "active_learning": "Active-learning pick",
    "manual": "Flagged by hand",
}
BULK_LIMIT = 200
LONG_TEXT = 1500  # characters; longer fields scroll inside a box

st.title("Review")
dataset = require_dataset()
user = current_user()
write = can_write()
store = get_store()


def reason_name(reason: str) -> str:
    return REASON_NAMES.get(reason, reason)


# Cached reads are keyed by the store's path as well (one server process may serve several stores in tests).
@st.cache_data(ttl=30, show_spinner=False)
def load_info(db: str, name: str):
    info = get_store().get_dataset(name)
    return info.labels, info.settings


@st.cache_data(ttl=10, show_spinner=False)
def load_progress(db: str, name: str):
    return queue_progress(get_store(), name)


@st.cache_data(ttl=10, show_spinner=False)
def load_queue(db: str, name: str):
    return get_store().queue(name, status=["open", "claimed"]).head(500)


@st.cache_data(ttl=30, show_spinner=False)
def load_sample(db: str, name: str, sample_id: str):
    s = get_store()
    return (s.sample(name, sample_id), s.sample_annotations(name, sample_id),
            s.sample_predictions(name, sample_id), s.reviews(name, sample_id))


def flash(message: str, kind: str = "success") -> None:
    st.session_state["review_flash"] = (kind, message)


def loaded_entry(entry: dict) -> dict:
    """The claimed entry plus the sample's version and gold label, read now (the save's base)."""
    sid = entry["sample_id"]
    gold, source = current_label(store, dataset, sid)
    return {"dataset": dataset, "entry_id": int(entry["entry_id"]), "sample_id": sid, "reason": entry["reason"],
            "priority": float(entry["priority"]), "claimed_at": entry["claimed_at"],
            "base_version": sample_version(store, dataset, sid), "gold": gold, "gold_source": source}


def claim(reasons: list[str]) -> None:
    """Claim the next entry into the session (or clear it when the queue is empty)."""
    entry = claim_next(store, dataset, user, reasons or None)
    refresh_after_write()
    st.session_state.pop("review_conflict", None)
    if entry is None:
        st.session_state.pop("review_current", None)
        flash("Nothing left to review" + (f" for {', '.join(map(reason_name, reasons))}" if reasons else "") + ".",
              "info")
    else:
        st.session_state["review_current"] = loaded_entry(entry)


def save_and_next(cur: dict, label: str, note: str, base_version: int, reasons: list[str]) -> bool:
    """Save one review; on success claim the next entry. Returns True when the page should rerun."""
    try:
        version = save_review(store, dataset, cur["sample_id"], label, user, note.strip() or None, base_version)
    except ReviewConflict as exc:
        refresh_after_write()
        st.session_state["review_conflict"] = {
            "entry_id": cur["entry_id"], "message": str(exc), "theirs": dict(exc.current),
            "yours": {"label": label, "reason": note},
        }
        return True
    except Exception as exc:
        show_store_error(exc)
        return False
    flash(f"Saved {cur['sample_id']}: {label} (version {version}).")
    try:
        claim(reasons)
    except Exception as exc:
        show_store_error(exc)
        return False
    return True


# ------------------------------------------------------------------------------- header
try:
    labels, settings = load_info(store.path, dataset)
    progress = load_progress(store.path, dataset)
except Exception as exc:
    show_store_error(exc)
    st.stop()

st.markdown(
    f"Done today: **{progress['done_today']}** · Open: **{progress['open']}** · "
    f"Claimed: **{progress['claimed']}** · Skipped: **{progress['skipped']}**"
)
message = st.session_state.pop("review_flash", None)
if message:
    getattr(st, message[0])(message[1])
if not write:
    st.info("Read-only access: you can look at the queue and the samples, but not claim or save.")

if write:
    with st.expander("Fill the queue (team leads)"):
        left, right = st.columns(2)
        with left.form("rule_low_confidence"):
            threshold = st.number_input("Confidence threshold", min_value=0.0, max_value=1.0, step=0.05,
                                        value=confidence_threshold(settings), key="rule_threshold",
                                        help="Queue samples whose latest prediction is less confident than this.")
            keep_default = st.checkbox("Save as this dataset's default", key="rule_keep_default")
            run_low = st.form_submit_button("Queue low-confidence samples")
        with right.form("rule_disagreement"):
            ties_only = st.checkbox("Only ties (no strict majority)", key="rule_ties_only",
                                    help="Otherwise every sample whose annotators are not unanimous; ties come first.")
            run_dis = st.form_submit_button("Queue disagreements")
        if run_low or run_dis:
            try:
                if run_low:
                    if keep_default:
                        set_confidence_threshold(store, dataset, threshold, user)
                    n = queue_low_confidence(store, dataset, user, threshold=threshold)
                    text = f"Low confidence (< {threshold:.2f}): {n} entries added."
                else:
                    n = queue_disagreement(store, dataset, user, disputed_only=ties_only)
                    text = f"Disagreement: {n} entries added."
            except Exception as exc:
                show_store_error(exc)
            else:
                refresh_after_write()
                flash(text)
                st.rerun()
        by_reason = progress["open_by_reason"]
        if by_reason:
            fig = go.Figure(go.Bar(x=[by_reason[r] for r in by_reason], y=[reason_name(r) for r in by_reason],
                                   orientation="h"))
            fig.update_layout(height=60 + 40 * len(by_reason), margin=dict(l=10, r=10, t=10, b=10),
                              xaxis_title="open entries")
            st.plotly_chart(fig, width="stretch")

tab_next, tab_bulk = st.tabs(["Next entry", "Bulk review"])

# ------------------------------------------------------------------------------- one by one
with tab_next:
    reasons = st.multiselect("Reasons", QUEUE_REASONS, format_func=reason_name, key="review_reasons",
                             placeholder="All reasons")
    cur = st.session_state.get("review_current")
    if cur is not None and cur["dataset"] != dataset:
        st.session_state.pop("review_current", None)
        st.session_state.pop("review_conflict", None)
        cur = None

    if cur is None:
        if write and st.button("Claim next", type="primary", key="claim_next"):
            try:
                claim(reasons)
            except Exception as exc:
                show_store_error(exc)
            else:
                st.rerun()
        try:
            open_entries = load_queue(store.path, dataset)
        except Exception as exc:
            show_store_error(exc)
            st.stop()
        if open_entries.height:
            st.caption(f"Open and claimed entries (highest priority first, at most {open_entries.height}):")
            st.dataframe(open_entries.select("sample_id", "reason", "priority", "status", "claimed_by", "created_at"),
                         hide_index=True, width="stretch")
        else:
            st.caption("The queue is empty. Team leads can fill it above, or other pages flag samples.")
    else:
        sid = cur["sample_id"]
        try:
            sample, annotations, predictions, history = load_sample(store.path, dataset, sid)
        except Exception as exc:
            show_store_error(exc)
            st.stop()
        st.text(f"Sample {sid}")
        ttl = claim_ttl_seconds(settings)
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        left_min = max(0, int((cur["claimed_at"] + timedelta(seconds=ttl) - now).total_seconds() // 60)) \
            if cur["claimed_at"] is not None else 0
        m = st.columns(4)
        m[0].metric("Reason", reason_name(cur["reason"]))
        m[1].metric("Priority", f"{cur['priority']:.3f}")
        m[2].metric("Version", cur["base_version"])
        m[3].metric("Claim expires in", f"{left_min} min")

        if sample is None:
            st.error("This sample is no longer in the dataset.")
        else:
            for field in TEXT_FIELDS:
                value = sample.get(field)
                if value:
                    st.markdown(f"**{field.capitalize()}**")
                    box = st.container(height=320) if len(value) > LONG_TEXT else st.container()
                    box.text(value, width="stretch")

        info_left, info_right = st.columns(2)
        with info_left:
            st.markdown("**Annotators**")
            if annotations.height:
                st.dataframe(annotations.select("annotator", "label", "confidence"), hide_index=True, width="stretch")
            else:
                st.caption("No annotations.")
            gold_text = f"{cur['gold']} ({cur['gold_source']})" if cur["gold"] else "none (annotators tie)"
            st.text(f"Current gold label: {gold_text}")
        with info_right:
            st.markdown("**Model**")
            if predictions.height:
                latest = predictions.row(0, named=True)
                conf = "" if latest["confidence"] is None else f", confidence {latest['confidence']:.2f}"
                model = f", model {latest['model']}" if latest["model"] else ""
                st.text(f"Prediction (round {latest['round']}{model}): {latest['predicted']}{conf}")
                top = top_probabilities(latest["probs"], labels, 3)
                if top:
                    st.text("Top probabilities: " + " · ".join(f"{lab} {p:.2f}" for lab, p in top))
                    fig = go.Figure(go.Bar(x=[p for _, p in top][::-1], y=[lab for lab, _ in top][::-1],
                                           orientation="h", text=[f"{p:.2f}" for _, p in top][::-1]))
                    fig.update_layout(height=150, margin=dict(l=10, r=10, t=10, b=10), xaxis_range=[0, 1])
                    st.plotly_chart(fig, width="stretch")
            else:
                st.caption("No model prediction.")

        st.markdown("**Review history**")
        if history.height:
            st.dataframe(history.select("version", "reviewer", "old_label", "new_label", "reason", "created_at"),
                         hide_index=True, width="stretch")
        else:
            st.caption("Not reviewed yet.")

        conflict = st.session_state.get("review_conflict")
        if conflict is not None and conflict["entry_id"] != cur["entry_id"]:
            st.session_state.pop("review_conflict", None)
            conflict = None
        rerun = False
        if not write:
            pass
        elif conflict is not None:
            theirs, yours = conflict["theirs"], conflict["yours"]
            st.warning("Someone else changed this sample while you were reviewing it. " + conflict["message"])
            c_theirs, c_yours = st.columns(2)
            with c_theirs:
                st.markdown("**Theirs (saved)**")
                st.text(f"Label: {theirs.get('new_label')}\nBy: {theirs.get('reviewer')}\n"
                        f"Version: {theirs.get('version')}\nAt: {theirs.get('created_at')}\n"
                        f"Reason: {theirs.get('reason') or '-'}")
                keep = st.button("Keep theirs", key="conflict_keep", help="Write nothing; go to the next entry.")
            with c_yours:
                st.markdown("**Yours (not saved)**")
                st.text(f"Label: {yours['label']}\nReason: {yours['reason'] or '-'}")
                overwrite = st.button("Overwrite with mine", key="conflict_overwrite", type="primary",
                                      help="Save your label on top of their version (both stay in the history).")
            if keep:
                try:
                    close_entry(store, dataset, cur["entry_id"], user)
                    st.session_state.pop("review_conflict", None)
                    flash(f"Kept the saved label of {sid}.", "info")
                    claim(reasons)
                    rerun = True
                except Exception as exc:
                    show_store_error(exc)
            elif overwrite:
                base = theirs.get("version")
                if base is None:
                    base = sample_version(store, dataset, sid)
                st.session_state.pop("review_conflict", None)
                rerun = save_and_next(cur, yours["label"], yours["reason"], int(base), reasons)
        else:
            default = cur["gold"] if cur["gold"] in labels else None
            if default is None and predictions.height and predictions["predicted"][0] in labels:
                default = predictions["predicted"][0]
            with st.form(f"review_form_{cur['entry_id']}"):
                label = st.selectbox("Corrected label", labels,
                                     index=labels.index(default) if default in labels else 0,
                                     key=f"review_label_{cur['entry_id']}")
                note = st.text_input("Reason", key=f"review_note_{cur['entry_id']}",
                                     placeholder="Why this label? (Enter saves and opens the next entry)")
                b1, b2, b3 = st.columns(3)
                save = b1.form_submit_button("Save and next", type="primary")
                skip = b2.form_submit_button("Skip")
                release = b3.form_submit_button("Release")
            if save:
                rerun = save_and_next(cur, label, note, cur["base_version"], reasons)
            elif skip or release:
                try:
                    if skip:
                        skip_entry(store, cur["entry_id"], user)
                        flash(f"Skipped {sid}.", "info")
                        claim(reasons)
                    else:
                        release_entry(store, cur["entry_id"], user)
                        refresh_after_write()
                        st.session_state.pop("review_current", None)
                        flash(f"Released {sid} back to the queue.", "info")
                    rerun = True
                except Exception as exc:
                    show_store_error(exc)
        if rerun:
            st.rerun()

# ------------------------------------------------------------------------------- bulk
with tab_bulk:
    bulk_reason = st.selectbox("Reason", QUEUE_REASONS, format_func=reason_name, key="bulk_reason")
    loaded = st.session_state.get("bulk_loaded")
    reload = st.button("Reload the table", key="bulk_reload")
    if reload or loaded is None or loaded["key"] != (dataset, bulk_reason):
        try:
            table = bulk_entries(store, dataset, bulk_reason, limit=BULK_LIMIT)
        except Exception as exc:
            show_store_error(exc)
            st.stop()
        token = (loaded["token"] + 1) if loaded else 0
        loaded = {"key": (dataset, bulk_reason), "table": table, "token": token}
        st.session_state["bulk_loaded"] = loaded
    table = loaded["table"]
    if table.height == 0:
        st.info(f"No open entries for “{reason_name(bulk_reason)}”.")
    else:
        st.caption(f"{table.height} open entries, highest priority first (at most {BULK_LIMIT}). "
                   "Change the label of the rows you correct, then save them together: all of them are "
                   "saved, or none if someone changed one of the samples meanwhile.")
        columns = {
            "entry_id": None,
            "sample_id": st.column_config.TextColumn("Sample"),
            "priority": st.column_config.NumberColumn("Priority", format="%.3f"),
            "preview": st.column_config.TextColumn("Text", width="large"),
            "current_label": st.column_config.TextColumn("Current label"),
            "source": st.column_config.TextColumn("Source"),
            "base_version": st.column_config.NumberColumn("Version"),
            "label": st.column_config.SelectboxColumn("Corrected label", options=labels, required=True),
        }
        if write:
            with st.form("bulk_form"):
                edited = st.data_editor(table.to_pandas(), column_config=columns, hide_index=True, width="stretch",
                                        disabled=[c for c in table.columns if c != "label"], num_rows="fixed",
                                        key=f"bulk_editor_{loaded['token']}")
                bulk_note = st.text_input("Reason for these corrections", key="bulk_note")
                bulk_save = st.form_submit_button("Save changed rows", type="primary")
            if bulk_save:
                rows = changed_rows(pl.from_pandas(edited))
                if not rows:
                    st.info("Nothing changed: pick a new label in the “Corrected label” column first.")
                else:
                    try:
                        n = save_reviews_bulk(store, dataset, rows, user, bulk_note.strip() or None)
                    except ReviewConflict as exc:
                        st.error(str(exc))
                        if exc.current:
                            st.dataframe(pl.DataFrame([{"sample_id": k, **v} for k, v in exc.current.items()]),
                                         hide_index=True)
                    except Exception as exc:
                        show_store_error(exc)
                    else:
                        refresh_after_write()
                        st.session_state.pop("bulk_loaded", None)
                        flash(f"Saved {n} reviews in one transaction.")
                        st.rerun()
        else:
            st.dataframe(table.drop("entry_id"), column_config=columns, hide_index=True, width="stretch")
