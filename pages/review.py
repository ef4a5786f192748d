"""Review desk: claim the next queue entry and label it from the keyboard beside its record; bulk review
of claimed rows; a lead's list of excluded samples with "include again".

A thin view over :mod:`core.queue` and :mod:`core.review`. Sample text is shown as plain text
(``st.text``), never as Markdown or HTML; a record with a shape goes through
``ui.records.render_record`` when that module exists (:func:`draw_record`). Write controls are drawn
only for a session that may take the action core would otherwise refuse (``ui.session.can``).

Keys on the desk: 1–9 pick a label, Enter saves and claims the next entry, S skips, U undoes the last
save or skip (Streamlit's button shortcuts: they are not taken while the cursor is in a text field).
"""

import json
from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from core import privacy
from core.queue import (
    QUEUE_REASONS,
    TEXT_FIELDS,
    bulk_claimed,
    bulk_entries,
    changed_rows,
    claim_entries,
    claim_next,
    claim_ttl_seconds,
    close_entry,
    confidence_threshold,
    held_claims,
    queue_disagreement,
    queue_listing,
    queue_low_confidence,
    queue_progress,
    release_claims,
    release_entry,
    set_confidence_threshold,
    skip_entry,
    top_probabilities,
    votes_text,
)
from core.review import (
    ReviewConflict,
    excluded_samples,
    include_again,
    review_item,
    sample_version,
    save_review,
    save_reviews_bulk,
    undo_save,
)
from core.roles import Action
from core.vocab import reason_name
from ui.errors import show_store_error, shown_errors
from ui.format import MISSING
from ui.format import table as table_view
from ui.privacy import reveal_toggle
from ui.session import (
    can,
    can_write,
    current_user,
    get_store,
    refresh_after_write,
    require_dataset,
)

try:  # records in their own shape (chat turns, preference pairs, ...); plain text fields until it exists
    from ui.records import render_record
except ImportError:
    render_record = None

BULK_LIMIT = 200
BULK_DEFAULT = 50
LONG_TEXT = 1500  # characters; a longer record scrolls inside a box so the form beside it stays in view
RECORD_HEIGHT = 430  # pixels of that box: with the header it fits a 1400×900 screen
HOTKEY_LABELS = 9  # labels 1..9 get a digit key

# A compact header: the record and the label form must both fit a 1400×900 screen without scrolling.
st.html("<style>[data-testid='stMainBlockContainer']{padding-top:2.5rem}</style>")
# the reveal switch's column is wide enough for its whole label ("Show personal data")
head_title, head_progress, head_reveal = st.columns([1, 2.4, 1.6], vertical_alignment="bottom")
head_title.title("Review")
dataset = require_dataset()
user = current_user()
write = can_write()
store = get_store()
# Personal data in the texts is masked for everyone unless a team lead turns it on (audited).
decision = reveal_toggle(dataset, "review page", "review_reveal", head_reveal)


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
    return queue_listing(get_store(), name, limit=500)


@st.cache_data(ttl=10, show_spinner=False)
def load_claims(db: str, reviewer: str):
    return held_claims(get_store(), reviewer, include_expired=True)


@st.cache_data(ttl=30, show_spinner=False)
def load_sample(db: str, name: str, sample_id: str):
    s = get_store()
    return (s.sample(name, sample_id), s.sample_annotations(name, sample_id),
            s.sample_predictions(name, sample_id), s.reviews(name, sample_id))


@st.cache_data(ttl=30, show_spinner=False)
def load_excluded(db: str, name: str):
    return excluded_samples(get_store(), name)


def flash(message: str, kind: str = "success") -> None:
    st.session_state["review_flash"] = (kind, message)


def shown_sample(sample: dict) -> dict:
    """The sample with personal data masked in its text fields and record, unless a lead revealed it."""
    if privacy.is_revealed(decision, dataset):
        return sample
    out = {**sample, **{f: privacy.mask_text(sample.get(f)) for f in TEXT_FIELDS if f in sample}}
    record = sample.get("record")
    if record is not None:
        out["record"] = privacy.mask_record(json.loads(record) if isinstance(record, str) else record)
    return out


def masked(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """``frame`` with personal data masked in ``columns`` (previews, notes), unless a lead revealed it."""
    present = [c for c in columns if c in frame.columns]
    return privacy.mask_frame(frame, decision, dataset, columns=present) if present else frame


def draw_record(sample: dict) -> None:
    """The sample's record: in its own shape through ``ui.records.render_record`` when it has one and
    that module is there, else its text fields as plain text (personal data masked unless revealed)."""
    sample = shown_sample(sample)
    shape, record = sample.get("shape"), sample.get("record")
    if shape and record is not None and render_record is not None:
        render_record(json.loads(record) if isinstance(record, str) else record, shape)
        return
    for field in TEXT_FIELDS:
        value = sample.get(field)
        if value:
            st.markdown(f"**{field.capitalize()}**")
            st.text(value, width="stretch")


def record_length(sample: dict) -> int:
    record = sample.get("record")
    if sample.get("shape") and record is not None and render_record is not None:
        return len(record if isinstance(record, str) else json.dumps(record, ensure_ascii=False))
    return sum(len(sample.get(f) or "") for f in TEXT_FIELDS)


def claim(reasons: list[str]) -> None:
    """Claim the next entry into the session (or clear it when the queue is empty)."""
    st.session_state.pop("review_current", None)
    st.session_state.pop("review_conflict", None)
    entry = claim_next(store, dataset, user, reasons or None)
    refresh_after_write()
    if entry is None:
        flash("Nothing left to review" + (f" for {', '.join(map(reason_name, reasons))}" if reasons else "") + ".",
              "info")
    else:
        st.session_state["review_current"] = review_item(store, dataset, entry)


def claim_after(done: str, reasons: list[str]) -> None:
    """Claim the next entry after a write that succeeded; a failure to claim (a busy store) is said
    next to the success, and the claim, if it committed, comes back on the next run."""
    try:
        claim(reasons)
    except Exception as exc:  # noqa: BLE001 - the write stands; say why no next entry is shown
        refresh_after_write()
        flash(f"{done} Could not claim the next entry: {exc}", "warning")


def save_and_next(cur: dict, label: str, note: str, base_version: int, reasons: list[str],
                  as_gold: bool = False) -> bool:
    """Save one review (and, for a lead who asked, mark the sample a gold question with that label); on
    success claim the next entry. Returns True when the page should rerun."""
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
    # The save committed: from here on this entry is done, whatever happens to the next claim.
    st.session_state["review_last"] = {"kind": "save", "dataset": dataset, "entry_id": cur["entry_id"],
                                       "sample_id": cur["sample_id"], "version": version, "label": label}
    done = f"Saved {cur['sample_id']}: {label} (version {version})."
    if as_gold:  # after adjudication: the decided label becomes the sample's known answer (leads only, audited)
        try:
            store.set_gold_question(dataset, cur["sample_id"], label, user, source="review")
            done += " Marked as a gold question."
        except Exception as exc:  # noqa: BLE001 - the review stands; say why the gold mark did not
            done += f" Not marked as a gold question: {exc}"
    flash(done)
    claim_after(done, reasons)
    return True


def undo_last(last: dict, reasons: list[str]) -> None:
    """Undo the session's last save or skip: the entry is claimed again and shown."""
    if last["kind"] == "save":
        result = undo_save(store, dataset, last["sample_id"], user, last["version"], last["entry_id"])
        entry = result["entry"]
        text = (f"Undid your save of {last['sample_id']} (version {result['version']} restores the label before it)."
                if result["version"] else f"{last['sample_id']} is yours to label again.")
    else:
        from core.queue import reopen_entry

        entry = reopen_entry(store, last["entry_id"], user)
        text = f"Took {last['sample_id']} back from the skipped entries."
    st.session_state.pop("review_last", None)
    st.session_state.pop("review_conflict", None)
    refresh_after_write()
    st.session_state["review_current"] = review_item(store, dataset, entry)
    flash(text, "info")


def pick_label(key: str, label: str) -> None:
    st.session_state[key] = label


# ------------------------------------------------------------------------------- header
with shown_errors(stop=True):
    labels, settings = load_info(store.path, dataset)
    progress = load_progress(store.path, dataset)

head_progress.markdown(
    f"Done today: **{progress['done_today']}** · Open: **{progress['open']}** · "
    f"Claimed: **{progress['claimed']}** · Skipped: **{progress['skipped']}**"
)
message = st.session_state.pop("review_flash", None)
if message:
    getattr(st, message[0])(message[1])
if not write:
    st.info("Read-only access: you can look at the queue and the samples, but not claim or save.")

claims = None  # every claim of this reviewer, expired ones included (None: not read)
if write:
    try:
        claims = load_claims(store.path, user)
    except Exception as exc:  # noqa: BLE001 - a busy store: the desk still shows what it holds in the session
        show_store_error(exc)
mine = claims.filter(~pl.col("expired")) if claims is not None else pl.DataFrame()

# Claims held in another dataset stay visible with a way back to them (they are nobody else's until they expire).
if mine.height:
    for other, group in mine.filter(pl.col("dataset") != dataset).group_by("dataset", maintain_order=True):
        other = other[0]
        ids = group["sample_id"].to_list()
        with st.container(border=True):
            st.warning(f"You hold {len(ids)} claim{'s' if len(ids) != 1 else ''} in dataset “{other}”: "
                       f"{', '.join(ids[:5])}{' …' if len(ids) > 5 else ''}. Nobody else gets "
                       f"{'them' if len(ids) != 1 else 'it'} until you release {'them' if len(ids) != 1 else 'it'} "
                       "or the claim expires.")
            c_switch, c_release, _ = st.columns([1, 1, 3])
            if c_switch.button("Switch", key=f"claims_switch_{other}", help=f"Switch to dataset “{other}”"):
                st.session_state["dataset_next"] = other
                st.rerun()
            if c_release.button("Release", key=f"claims_release_{other}",
                                help="Give these entries back to the queue of that dataset."):
                with shown_errors():
                    n = release_claims(store, other, group["entry_id"].to_list(), user)
                    refresh_after_write()
                    flash(f"Released {n} entr{'ies' if n != 1 else 'y'} of “{other}” back to the queue.", "info")
                    st.rerun()

if can(Action.QUEUE_RULES):  # queue rules and the default threshold: a lead's (core.roles.ALLOWED)
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
            with shown_errors():
                if run_low:
                    if keep_default:
                        set_confidence_threshold(store, dataset, threshold, user)
                    n = queue_low_confidence(store, dataset, user, threshold=threshold)
                    text = f"Low confidence (< {threshold:.2f}): {n} entries added."
                else:
                    n = queue_disagreement(store, dataset, user, disputed_only=ties_only)
                    text = f"Disagreement: {n} entries added."
                refresh_after_write()
                flash(text)
                st.rerun()
        by_reason = progress["open_by_reason"]
        if by_reason:
            fig = go.Figure(go.Bar(x=[by_reason[r] for r in by_reason], y=[reason_name(r) for r in by_reason],
                                   orientation="h"))
            fig.update_layout(height=60 + 40 * len(by_reason), margin={"l": 10, "r": 10, "t": 10, "b": 10},
                              xaxis_title="open entries")
            st.plotly_chart(fig, width="stretch")

# Stateful tabs: the one open stays open across reruns (a bulk save), and only its body runs.
lead_tabs = ["Excluded samples"] if can(Action.EXCLUDE) else []
tab_next, tab_bulk, *tab_lead = st.tabs(["Next entry", "Bulk review", *lead_tabs], key="review_tab",
                                        on_change="rerun")

# ------------------------------------------------------------------------------- one by one
def draw_next_entry() -> None:
    """The one-by-one desk: the claimed record on the left, the evidence and the label keys on the right."""
    cur = st.session_state.get("review_current")
    if cur is not None and cur["dataset"] != dataset:
        cur = None  # held in another dataset: the notice above shows it, and it comes back there
    conflict_on = (st.session_state.get("review_conflict") or {}).get("entry_id")
    if (cur is not None and claims is not None and cur["entry_id"] != conflict_on
            and cur["entry_id"] not in claims["entry_id"].to_list()):
        # No longer this reviewer's (saved in bulk review, released, taken after the claim expired).
        st.info(f"Sample {cur['sample_id']} is no longer claimed by you (saved, released, or taken by someone "
                "else after your claim expired).")
        st.session_state.pop("review_current", None)
        cur = None
    if cur is None and write and mine.height:
        here = mine.filter(pl.col("dataset") == dataset)
        if here.height:  # a claim no view shows (a reload, a step cut short by a busy store): resume it
            with shown_errors():
                cur = review_item(store, dataset, here.row(0, named=True))
                st.session_state["review_current"] = cur
                st.session_state.pop("review_conflict", None)

    def pick_reasons(where) -> list[str]:
        return where.multiselect("Reasons", QUEUE_REASONS, format_func=reason_name, key="review_reasons",
                                 placeholder="All reasons", label_visibility="collapsed",
                                 help="Claim only entries queued for these reasons.")

    if cur is None:
        r_reasons, r_claim = st.columns([4, 1], vertical_alignment="bottom")
        reasons = pick_reasons(r_reasons)
        if write and r_claim.button("Claim next", type="primary", key="claim_next", shortcut="Enter",
                                    width="stretch"):
            with shown_errors():
                claim(reasons)
                st.rerun()
        with shown_errors(stop=True):
            open_entries = masked(load_queue(store.path, dataset), "preview")
        if open_entries.height:
            st.caption(f"Open and claimed entries (highest priority first, at most {open_entries.height}):")
            table_view(
                open_entries.drop("entry_id"),
                column_config={
                    "sample_id": st.column_config.TextColumn("Sample"),
                    "preview": st.column_config.TextColumn("Text", width="large"),
                    "reason": st.column_config.TextColumn("Reason"),
                    "priority": st.column_config.NumberColumn("Priority", format="%.3f"),
                    "status": st.column_config.TextColumn("Status"),
                    "claimed_by": st.column_config.TextColumn("Claimed by"),
                    "created_at": st.column_config.DatetimeColumn("Queued", format="YYYY-MM-DD HH:mm"),
                })
        else:
            st.caption("The queue is empty. Team leads can fill it above, or other pages flag samples.")
    else:
        sid, eid = cur["sample_id"], cur["entry_id"]
        reasons = list(st.session_state.get("review_reasons") or [])  # its picker is drawn below the form
        with shown_errors(stop=True):
            sample, annotations, predictions, history = load_sample(store.path, dataset, sid)
            history = masked(history, "reason")
        ttl = claim_ttl_seconds(settings)
        now = datetime.now(UTC).replace(tzinfo=None)
        left_min = max(0, int((cur["claimed_at"] + timedelta(seconds=ttl) - now).total_seconds() // 60)) \
            if cur["claimed_at"] is not None else 0
        col_record, col_form = st.columns([3, 2], gap="medium")

        with col_record:
            st.text(f"Sample {sid}")
            if sample is None:
                st.error("This sample is no longer in the dataset.")
            else:
                box = st.container(height=RECORD_HEIGHT) if record_length(sample) > LONG_TEXT else st.container()
                with box:
                    draw_record(sample)
            st.markdown("**Annotators**")
            if annotations.height:
                table_view(annotations.select("annotator", "label", "confidence"))
            else:
                st.caption("No annotations.")
            latest = predictions.row(0, named=True) if predictions.height else None
            top = top_probabilities(latest["probs"], labels, 3) if latest else []
            if top:
                fig = go.Figure(go.Bar(x=[p for _, p in top][::-1], y=[lab for lab, _ in top][::-1],
                                       orientation="h", text=[f"{p:.2f}" for _, p in top][::-1]))
                fig.update_layout(height=150, margin={"l": 10, "r": 10, "t": 10, "b": 10}, xaxis_range=[0, 1])
                st.plotly_chart(fig, width="stretch")
            st.markdown("**Review history**")
            if history.height:
                table_view(history.select("version", "reviewer", "old_label", "new_label", "reason", "created_at"))
            else:
                st.caption("Not reviewed yet.")

        with col_form:
            with st.container(gap=None):  # the evidence for the decision, tight above the label keys
                st.caption(f"{reason_name(cur['reason'])} · claimed by you, expires in {left_min} min")
                votes = votes_text(annotations.select("annotator", "label").to_dicts()) if annotations.height else ""
                st.text(f"Votes: {votes or 'none'}")
                gold_text = f"{cur['gold']} ({cur['gold_source']})" if cur["gold"] else "none (annotators tie)"
                st.text(f"Current gold label: {gold_text}")
                if latest:
                    conf = "" if latest["confidence"] is None else f", confidence {latest['confidence']:.2f}"
                    model = f", model {latest['model']}" if latest["model"] else ""
                    st.text(f"Prediction (round {latest['round']}{model}): {latest['predicted']}{conf}")
                    if top:
                        st.text("Top probabilities: " + " · ".join(f"{lab} {p:.2f}" for lab, p in top))
                else:
                    st.caption("No model prediction.")

            conflict = st.session_state.get("review_conflict")
            if conflict is not None and conflict["entry_id"] != eid:
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
                            f"Reason: {privacy.mask_text(theirs.get('reason'), decision, dataset) or '-'}")
                    keep = st.button("Keep theirs", key="conflict_keep", help="Write nothing; go to the next entry.")
                with c_yours:
                    st.markdown("**Yours (not saved)**")
                    st.text(f"Label: {yours['label']}\nReason: {yours['reason'] or '-'}")
                    overwrite = st.button("Overwrite with mine", key="conflict_overwrite", type="primary",
                                          help="Save your label on top of their version (both stay in the history).")
                if keep:
                    with shown_errors():
                        close_entry(store, dataset, eid, user)
                        st.session_state.pop("review_conflict", None)
                        flash(f"Kept the saved label of {sid}.", "info")
                        claim_after(f"Kept the saved label of {sid}.", reasons)
                        rerun = True
                elif overwrite:
                    base = theirs.get("version")
                    if base is None:
                        base = sample_version(store, dataset, sid)
                    st.session_state.pop("review_conflict", None)
                    rerun = save_and_next(cur, yours["label"], yours["reason"], int(base), reasons)
            else:
                label_key = f"review_label_{eid}"
                if st.session_state.get(label_key) not in labels:
                    default = cur["gold"] if cur["gold"] in labels else None
                    if default is None and latest and latest["predicted"] in labels:
                        default = latest["predicted"]
                    # no majority, no gold and no prediction: nothing is pre-selected (Enter must not save
                    # a label nobody chose)
                    st.session_state[label_key] = default if default in labels else None
                chosen = st.session_state[label_key]
                with st.container(horizontal=True, gap="small"):
                    for i, lab in enumerate(labels):
                        key_hint = str(i + 1) if i < HOTKEY_LABELS else None
                        st.button(lab, key=f"pick_{eid}_{i}", on_click=pick_label, args=(label_key, lab),
                                  type="primary" if lab == chosen else "secondary", shortcut=key_hint,
                                  help=f"Pick “{lab}”" + (f" (key {key_hint})" if key_hint else ""))
                with st.form(f"review_form_{eid}", border=False):
                    label = st.selectbox("Corrected label", labels, key=label_key, label_visibility="collapsed",
                                         index=None, placeholder="Pick a label (keys 1–9)")
                    note = st.text_input("Reason", key=f"review_note_{eid}", label_visibility="collapsed",
                                         placeholder="Reason (optional; Enter saves)")
                    as_gold = st.checkbox(
                        "Mark as gold question", key=f"review_gold_{eid}",
                        help="After adjudication: the saved label becomes this sample's known answer, and the "
                             "annotators are scored against it (Annotators page). Team leads only; audited.",
                    ) if can(Action.GOLD) else False
                    save = st.form_submit_button("Save and next", type="primary", shortcut="Enter", width="stretch")
                last = st.session_state.get("review_last")
                last = last if last and last.get("dataset") == dataset else None
                undo_help = ("Undo your last " + ("save of " if last["kind"] == "save" else "skip of ") +
                             f"{last['sample_id']}" if last else "Nothing to undo yet")
                b_skip, b_undo, b_release = st.columns(3)
                skip = b_skip.button("Skip", key="review_skip", shortcut="S", width="stretch",
                                     help="Leave this entry for later; the next one comes.")
                undo = b_undo.button("Undo last", key="review_undo", shortcut="U", disabled=last is None,
                                     help=undo_help, width="stretch")
                release = b_release.button("Release", key="review_release", width="stretch",
                                           help="Give the entry back to the queue.")
                if save and label is None:
                    st.warning("Pick a label first: the annotators tie and there is no model prediction.")
                elif save:
                    rerun = save_and_next(cur, label, note, cur["base_version"], reasons, as_gold=bool(as_gold))
                elif skip or release:
                    with shown_errors():
                        if skip:
                            skip_entry(store, eid, user)
                            st.session_state["review_last"] = {"kind": "skip", "dataset": dataset, "entry_id": eid,
                                                               "sample_id": sid}
                            flash(f"Skipped {sid}.", "info")
                            claim_after(f"Skipped {sid}.", reasons)
                        else:
                            release_entry(store, eid, user)
                            refresh_after_write()
                            st.session_state.pop("review_current", None)
                            flash(f"Released {sid} back to the queue.", "info")
                        rerun = True
                elif undo and last:
                    try:
                        undo_last(last, reasons)
                        rerun = True
                    except ReviewConflict as exc:
                        st.error(f"Cannot undo: {exc}")
                    except Exception as exc:  # noqa: BLE001 - shown as a message
                        show_store_error(exc)
            pick_reasons(st)
            m = st.columns(3)
            m[0].metric("Priority", f"{cur['priority']:.3f}")
            m[1].metric("Version", cur["base_version"])
            m[2].metric("Expires", f"{left_min} min", help="Your claim on this entry ends in this many minutes")
        if rerun:
            st.rerun()

# ------------------------------------------------------------------------------- bulk
BULK_COLUMNS = {
    "entry_id": None,
    "reason": None,
    "sample_id": st.column_config.TextColumn("Sample"),
    "priority": st.column_config.NumberColumn("Priority", format="%.3f"),
    "preview": st.column_config.TextColumn("Text", width="medium"),
    "votes": st.column_config.TextColumn("Annotator votes", width="medium"),
    "predicted": st.column_config.TextColumn("Model"),
    "confidence": st.column_config.NumberColumn("Confidence", format="%.2f"),
    "current_label": st.column_config.TextColumn("Current label"),
    "source": st.column_config.TextColumn("Source"),
    "base_version": st.column_config.NumberColumn("Version"),
}

BULK_ORDER = ("sample_id", "reason", "preview", "votes", "predicted", "confidence", "current_label", "label", "source",
              "priority", "base_version")

def bulk_reason_picker(where) -> str | None:
    """The bulk review's reason (None: all reasons), each option with its open entries; it starts on
    all reasons, or on the one reason that has open entries."""
    open_by = progress["open_by_reason"]
    options = [None, *QUEUE_REASONS]
    if st.session_state.get("bulk_reason", "unset") not in options:
        with_open = [r for r in QUEUE_REASONS if open_by.get(r)]
        st.session_state["bulk_reason"] = with_open[0] if len(with_open) == 1 else None

    def name(reason: str | None) -> str:
        n = sum(open_by.values()) if reason is None else open_by.get(reason, 0)
        return f"{bulk_reason_name(reason)} ({n:,} open)"

    return where.selectbox("Reason", options, format_func=name, key="bulk_reason",
                           help="Queue entries of this reason (the number of open entries of each in brackets).")


def bulk_reason_name(reason: str | None) -> str:
    return "All reasons" if reason is None else reason_name(reason)


def draw_bulk_review() -> None:
    """Bulk review of the rows this reviewer claimed (read-only sessions see the open entries)."""
    if not write:
        bulk_reason = bulk_reason_picker(st)
        with shown_errors(stop=True):
            wanted = [bulk_reason] if bulk_reason is not None else \
                [r for r in QUEUE_REASONS if progress["open_by_reason"].get(r)]
            parts = [bulk_entries(store, dataset, r, limit=BULK_LIMIT) for r in wanted]
            entries = pl.concat(parts, how="diagonal_relaxed").sort("priority", descending=True).head(BULK_LIMIT) \
                if parts else None
            entries = masked(entries, "preview") if entries is not None else pl.DataFrame()
        if entries.height == 0:
            st.info(f"No open entries for “{bulk_reason_name(bulk_reason)}”.")
        else:
            table_view(entries.drop("entry_id"), column_config={
                "sample_id": st.column_config.TextColumn("Sample"),
                "priority": st.column_config.NumberColumn("Priority", format="%.3f"),
                "preview": st.column_config.TextColumn("Text", width="large"),
                "current_label": st.column_config.TextColumn("Current label"),
                "source": st.column_config.TextColumn("Source"),
                "base_version": st.column_config.NumberColumn("Version"),
                "label": None,
            })
    else:
        c_reason, c_n, c_claim, c_release = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
        bulk_reason = bulk_reason_picker(c_reason)
        bulk_n = c_n.number_input("Rows to hold", min_value=1, max_value=BULK_LIMIT, value=BULK_DEFAULT, step=10,
                                  key="bulk_n", help="Claim open entries of this reason until you hold this many.")
        of_reason = (pl.col("reason") == bulk_reason) if bulk_reason is not None else pl.lit(True)
        held_here = set(mine.filter((pl.col("dataset") == dataset) & of_reason)["entry_id"]
                        .to_list()) if mine.height else set()
        claim_rows = c_claim.button("Claim rows", key="bulk_claim", type="primary", width="stretch",
                                    help="Claim rows for you alone: only your claimed rows can be edited here.")
        release_rows = c_release.button("Release all", key="bulk_release", width="stretch",
                                        help="Give every row of this table back to the queue.")
        loaded = st.session_state.get("bulk_loaded")
        if claim_rows:
            with shown_errors():
                held = claim_entries(store, dataset, user, int(bulk_n),
                                     [bulk_reason] if bulk_reason is not None else None)
                refresh_after_write()
                st.session_state.pop("bulk_loaded", None)
                what = bulk_reason_name(bulk_reason)
                new = held.height - len(held_here & set(held["entry_id"].to_list()))
                if held.height == 0:
                    flash(f"No open entries for “{what}”: nothing to claim. Team leads can fill the queue "
                          "above, or pick another reason.", "info")
                elif new <= 0:
                    flash(f"No more open entries for “{what}”: you hold {held.height:,}.", "info")
                else:
                    flash(f"Claimed {new:,} entr{'ies' if new != 1 else 'y'} for “{what}”.")
                st.rerun()
        if (loaded is None or loaded["key"] != (dataset, bulk_reason, user)
                or (claims is not None and held_here != set(loaded["table"]["entry_id"].to_list()))):
            with shown_errors(stop=True):
                table = bulk_claimed(store, dataset, user, bulk_reason)
            # A new editor key for every load: edits made to an older table never carry over.
            st.session_state["bulk_token"] = st.session_state.get("bulk_token", 0) + 1
            loaded = {"key": (dataset, bulk_reason, user), "table": table, "token": st.session_state["bulk_token"]}
            st.session_state["bulk_loaded"] = loaded
        table = loaded["table"]
        if release_rows and table.height:
            with shown_errors():
                n = release_claims(store, dataset, table["entry_id"].to_list(), user)
                refresh_after_write()
                st.session_state.pop("bulk_loaded", None)
                flash(f"Released {n} entr{'ies' if n != 1 else 'y'} back to the queue.", "info")
                st.rerun()
        if table.height == 0:
            st.info(f"You hold no “{bulk_reason_name(bulk_reason)}” entries. Claim rows to review them here; "
                    "nobody else can edit the rows you hold.")
        else:
            st.caption(f"{table.height} entries claimed by you, highest priority first. Change the label of "
                       "the rows you correct, then save them together: all of them are saved, or none if one "
                       "changed meanwhile. The rows you leave unchanged go back to the queue.")
            # missing values as "—" (a tie has no current label; an unset correction is empty), never "None"
            shown = masked(table, "preview").with_columns(
                pl.when(pl.col("current_label").is_null()).then(pl.lit("tie: no majority"))
                .otherwise(pl.col("source")).alias("source"),
                pl.col("current_label").fill_null(MISSING),
                pl.col("label").fill_null(""),
                pl.col("predicted").fill_null(MISSING),
                pl.col("reason").map_elements(reason_name, return_dtype=pl.Utf8),
            )
            columns = {**BULK_COLUMNS,
                       "reason": st.column_config.TextColumn("Reason") if bulk_reason is None else None,
                       "label": st.column_config.SelectboxColumn("Corrected label", options=labels, required=True)}
            with st.form("bulk_form"):
                edited = st.data_editor(shown.to_pandas(), column_config=columns, hide_index=True, width="stretch",
                                        column_order=[c for c in BULK_ORDER
                                                      if c != "reason" or bulk_reason is None],
                                        disabled=[c for c in table.columns if c != "label"], num_rows="fixed",
                                        key=f"bulk_editor_{loaded['token']}")
                bulk_note = st.text_input("Reason for these corrections", key="bulk_note")
                bulk_save = st.form_submit_button("Save changed rows", type="primary")
            if bulk_save:
                rows = changed_rows(pl.from_pandas(edited).with_columns(
                    table["current_label"],
                    pl.when(pl.col("label").is_in(["", MISSING])).then(None).otherwise(pl.col("label")).alias("label")))
                if not rows:
                    st.info("Nothing changed: pick a new label in the “Corrected label” column first.")
                else:
                    try:
                        n = save_reviews_bulk(store, dataset, rows, user, bulk_note.strip() or None,
                                              require_claim=True)
                    except ReviewConflict as exc:
                        st.error(str(exc))
                        if exc.current:
                            st.dataframe(pl.DataFrame([{"sample_id": k, **v} for k, v in exc.current.items()]),
                                         hide_index=True)
                    except Exception as exc:
                        show_store_error(exc)
                    else:
                        saved = {r["sample_id"] for r in rows}
                        rest = table.filter(~pl.col("sample_id").is_in(list(saved)))["entry_id"].to_list()
                        text = f"Saved {n} reviews in one transaction."
                        try:
                            released = release_claims(store, dataset, rest, user) if rest else 0
                        except Exception as exc:  # noqa: BLE001 - the save stands; the rows stay listed here
                            text += f" The unchanged rows stay claimed by you: {exc}"
                        else:
                            if released:
                                text += f" {released} unchanged row{'s' if released != 1 else ''} back to the queue."
                        refresh_after_write()
                        st.session_state.pop("bulk_loaded", None)
                        flash(text)
                        st.rerun()

# ------------------------------------------------------------------------------- exclusions (leads)
def draw_excluded() -> None:
    """A lead's list of the samples excluded from export, with "include again"."""
    with shown_errors(stop=True):
        excluded = masked(load_excluded(store.path, dataset), "preview", "reason")
    if excluded.height == 0:
        st.caption("No sample of this dataset is excluded from export.")
    else:
        st.caption(f"{excluded.height} sample{'s' if excluded.height != 1 else ''} excluded from export "
                   "(Data quality excludes them). Include one again to undo its exclusion; both are audited.")
        table_view(excluded, column_config={
            "sample_id": st.column_config.TextColumn("Sample"),
            "preview": st.column_config.TextColumn("Text", width="large"),
            "excluded_by": st.column_config.TextColumn("Excluded by"),
            "excluded_at": st.column_config.DatetimeColumn("Excluded at", format="YYYY-MM-DD HH:mm"),
            "reason": st.column_config.TextColumn("Why"),
        })
        with st.form("include_again_form"):
            chosen_ids = st.multiselect("Samples to include again", excluded["sample_id"].to_list(),
                                        key="include_ids")
            include_note = st.text_input("Why include them again", key="include_note")
            include = st.form_submit_button("Include again")
        if include:
            if not chosen_ids:
                st.info("Pick the samples to include again first.")
            else:
                with shown_errors():
                    n = include_again(store, dataset, chosen_ids, user, include_note.strip() or None)
                    refresh_after_write()
                    flash(f"Included {n} sample{'s' if n != 1 else ''} again: "
                          f"{', '.join(chosen_ids[:5])}{' …' if len(chosen_ids) > 5 else ''}.")
                    st.rerun()


for tab, draw in ((tab_next, draw_next_entry), (tab_bulk, draw_bulk_review),
                  *((t, draw_excluded) for t in tab_lead)):
    if tab.open:
        with tab:
            draw()
