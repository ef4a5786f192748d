"""AppTest: the Review page (claim, sample display, save and next, skip, release, conflicts, bulk
table, queue rules, read-only mode)."""


import polars as pl
import pytest
from apptest_helpers import run_page, texts
from factories import write_jsonl as _write

PAGE = "pages/review.py"
LABELS = ["cancel", "refund", "other"]
LONG_ZH = "我想取消订单，因为物流太慢了。" * 200  # ~3,000 characters of Chinese


def _fixture(app_env, tmp_path):
    """Dataset "ds": a1 (long Chinese text, alice/bo cancel, chen refund), a2 (tie), a3 (HTML-looking text),
    a4, a5; predictions for round 1 and 2 (round 2 is the latest)."""
    from core.ingest import import_file
    from core.store import open_store

    texts_ = {"a1": LONG_ZH, "a2": "refund or cancel?", "a3": "<b>bold</b> <script>alert(1)</script> **x**",
              "a4": "where is my parcel", "a5": "wrong address"}
    votes = {"a1": ["cancel", "cancel", "refund"], "a2": ["cancel", "refund"], "a3": ["other"] * 3,
             "a4": ["refund"] * 3, "a5": ["other"] * 3}
    rows = [{"id": sid, "text": texts_[sid], "annotator": ann, "label": lab}
            for sid in texts_ for ann, lab in zip(["alice", "bo", "chen"], votes[sid])]
    store = open_store(app_env)
    import_file(store, _write(tmp_path / "ann.jsonl", rows), "ds", labels=LABELS)
    preds = [{"id": sid, "pred_round": 1, "probs": {"cancel": 0.2, "refund": 0.5, "other": 0.3}} for sid in texts_]
    preds += [{"id": "a1", "pred_round": 2, "probs": {"cancel": 0.55, "refund": 0.15, "other": 0.3}},
              {"id": "a2", "pred_round": 2, "probs": {"cancel": 0.4, "refund": 0.45, "other": 0.15}}]
    import_file(store, _write(tmp_path / "pred.jsonl", preds), "ds")
    return store


def _button(at, label):
    [b] = [b for b in at.button if b.label == label]
    return b


def _click(at, label):
    _button(at, label).click().run()
    assert not at.exception, at.exception
    return at


def _all_text(at):
    return texts(at.text)


def _open_tab(at, label):
    """Open one of the page's tabs (stateful: only the open tab's body runs)."""
    at.session_state["review_tab"] = label
    at.run()
    assert not at.exception, at.exception
    return at


def test_no_dataset_and_empty_queue(app_env, tmp_path):
    at = run_page(PAGE)
    assert any("No dataset yet" in t for t in texts(at.info))
    _fixture(app_env, tmp_path)
    at = run_page(PAGE)
    assert not at.exception
    assert any("Done today: **0** · Open: **0**" in t for t in texts(at.markdown))
    assert any("The queue is empty" in t for t in texts(at.caption))
    _click(at, "Claim next")
    assert any("Nothing left to review" in t for t in texts(at.info))


def test_claim_shows_sample_labels_prediction_and_history(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1", "a4"], "manual", "lead", priority=[0.9, 0.1])
    from core.review import save_review

    save_review(store, "ds", "a1", "refund", "rita", "first look", 0)
    store.enqueue("ds", ["a1"], "manual", "lead", priority=0.9)  # the save closed the first entry
    at = run_page(PAGE, session={"user_name": "sam"})
    assert any("Open: **2**" in t for t in texts(at.markdown))
    _click(at, "Claim next")
    shown = _all_text(at)
    assert "Sample a1" in shown
    assert LONG_ZH in shown  # the whole long CJK text, as plain text
    assert {m.label: m.value for m in at.metric}["Priority"] == "0.900"
    assert {m.label: m.value for m in at.metric}["Version"] == "1"
    frames = [d.value for d in at.dataframe]
    annotators = next(f for f in frames if "annotator" in f.columns)
    assert dict(zip(annotators["annotator"], annotators["label"])) == {"alice": "cancel", "bo": "cancel",
                                                                       "chen": "refund"}
    assert "Prediction (round 2): cancel, confidence 0.55" in shown
    assert "Top probabilities: cancel 0.55 · other 0.30 · refund 0.15" in shown
    history = next(f for f in frames if "new_label" in f.columns)
    assert list(history["new_label"]) == ["refund"] and list(history["reason"]) == ["first look"]
    assert "Current gold label: refund (review)" in shown
    assert at.selectbox(key=f"review_label_{store.queue('ds', status=['claimed'])['entry_id'][0]}").value == "refund"
    assert store.queue("ds", status=["claimed"])["claimed_by"].to_list() == ["sam"]


def test_html_in_sample_text_is_shown_verbatim(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a3"], "manual", "lead")
    at = run_page(PAGE)
    _click(at, "Claim next")
    raw = "<b>bold</b> <script>alert(1)</script> **x**"
    assert raw in _all_text(at)
    assert not any("<script>" in t for t in texts(at.markdown))


def test_save_and_next_writes_the_review_and_claims_the_next(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1", "a2"], "disagreement", "lead", priority=[0.9, 0.5])
    at = run_page(PAGE, session={"user_name": "rita"})
    _click(at, "Claim next")
    entry = store.queue("ds", status=["claimed"]).row(0, named=True)
    assert entry["sample_id"] == "a1"
    assert at.selectbox(key=f"review_label_{entry['entry_id']}").value == "cancel"  # the majority
    at.selectbox(key=f"review_label_{entry['entry_id']}").set_value("refund")
    at.text_input(key=f"review_note_{entry['entry_id']}").input("customer wants money back")
    _click(at, "Save and next")
    rev = store.reviews("ds", "a1").row(0, named=True)
    assert (rev["new_label"], rev["reviewer"], rev["reason"], rev["version"], rev["old_label"]) == \
        ("refund", "rita", "customer wants money back", 1, "cancel")
    assert any("Saved a1: refund (version 1)" in t for t in texts(at.success))
    assert "Sample a2" in _all_text(at)
    q = store.queue("ds")
    assert dict(zip(q["sample_id"], q["status"])) == {"a1": "done", "a2": "claimed"}
    assert any("Done today: **1**" in t for t in texts(at.markdown))
    audit = store.audit_log(dataset="ds", action="review.save")
    assert audit.height == 1 and audit["actor"][0] == "rita"


def test_skip_and_release(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a4", "a5"], "manual", "lead", priority=[2, 1])
    at = run_page(PAGE, session={"user_name": "rita"})
    _click(at, "Claim next")
    _click(at, "Skip")
    status = dict(zip(store.queue("ds")["sample_id"], store.queue("ds")["status"]))
    assert status == {"a4": "skipped", "a5": "claimed"}
    assert "Sample a5" in _all_text(at)
    _click(at, "Release")
    assert dict(zip(store.queue("ds")["sample_id"], store.queue("ds")["status"]))["a5"] == "open"
    assert any("Released a5" in t for t in texts(at.info))
    assert [b for b in at.button if b.label == "Claim next"]
    assert store.reviews("ds").height == 0


def test_reason_filter_claims_only_that_reason(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a4"], "manual", "lead", priority=5)
    store.enqueue("ds", ["a5"], "label_issue", "lead", priority=1)
    at = run_page(PAGE)
    at.multiselect(key="review_reasons").set_value(["label_issue"]).run()
    _click(at, "Claim next")
    assert "Sample a5" in _all_text(at)


@pytest.mark.parametrize("choice", ["Keep theirs", "Overwrite with mine"])
def test_conflict_shows_both_versions_and_lets_the_reviewer_choose(app_env, tmp_path, choice):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1"], "disagreement", "lead", priority=1)
    store.enqueue("ds", ["a4"], "manual", "lead", priority=0.5)
    at = run_page(PAGE, session={"user_name": "rita"})
    _click(at, "Claim next")
    entry_id = int(store.queue("ds", status=["claimed"])["entry_id"][0])
    from core.review import save_review

    save_review(store, "ds", "a1", "other", "sam", "sam was faster", 0)  # another reviewer, meanwhile
    at.selectbox(key=f"review_label_{entry_id}").set_value("refund")
    at.text_input(key=f"review_note_{entry_id}").input("mine")
    _click(at, "Save and next")
    assert any("sam" in t and "'other'" in t for t in texts(at.warning))
    shown = _all_text(at)
    assert any(t.startswith("Label: other\nBy: sam\nVersion: 1") for t in shown)
    assert "Label: refund\nReason: mine" in shown
    assert store.reviews("ds", "a1").height == 1
    _click(at, choice)
    hist = store.reviews("ds", "a1")
    if choice == "Keep theirs":
        assert hist["new_label"].to_list() == ["other"]
    else:
        assert hist.select("version", "base_version", "reviewer", "old_label", "new_label").rows()[-1] == \
            (2, 1, "rita", "other", "refund")
    assert "Sample a4" in _all_text(at)  # on to the next entry either way
    assert not at.warning


def test_bulk_tab_lists_open_entries_with_current_labels(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    from core.queue import queue_disagreement

    assert queue_disagreement(store, "ds", "lead") == 2  # a2 (tie) first, then a1 (2:1)
    at = run_page(PAGE)
    _open_tab(at, "Bulk review")
    at.selectbox(key="bulk_reason").set_value("disagreement").run()
    assert not at.data_editor and any("You hold no" in t for t in texts(at.info))  # nothing claimed yet
    _click(at, "Claim rows")  # the bulk review edits only the rows it claimed
    [editor] = at.data_editor
    table = editor.value
    assert list(table["sample_id"]) == ["a2", "a1"]
    assert list(table["current_label"]) == ["—", "cancel"]  # a tie has no current label: "—", never "None"
    assert list(table["label"]) == ["", "cancel"]
    assert "None" not in table.astype(str).to_numpy().ravel().tolist()
    assert list(table["base_version"]) == [0, 0]
    _click(at, "Save changed rows")
    assert any("Nothing changed" in t for t in texts(at.info))
    assert store.reviews("ds").height == 0


def test_bulk_tab_saves_changed_rows(app_env, tmp_path, monkeypatch):
    """AppTest cannot edit cells, so the edited table is simulated by changed_rows' input."""
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a4", "a5"], "label_issue", "lead", priority=[0.8, 0.2])
    import core.queue

    real = core.queue.changed_rows

    def edited(table):
        import polars as pl

        return real(table.with_columns(pl.when(pl.col("sample_id") == "a5").then(pl.lit("cancel"))
                                       .otherwise(pl.col("label")).alias("label")))

    monkeypatch.setattr(core.queue, "changed_rows", edited)
    at = run_page(PAGE, session={"user_name": "lead"})
    _open_tab(at, "Bulk review")
    at.selectbox(key="bulk_reason").set_value("label_issue").run()
    _click(at, "Claim rows")
    at.text_input(key="bulk_note").input("bulk fix")
    _click(at, "Save changed rows")
    assert any("Saved 1 reviews in one transaction" in t for t in texts(at.success))
    rev = store.reviews("ds")
    assert rev.select("sample_id", "new_label", "reason", "reviewer").rows() == [("a5", "cancel", "bulk fix", "lead")]
    assert dict(zip(store.queue("ds")["sample_id"], store.queue("ds")["status"])) == {"a4": "open", "a5": "done"}


def test_queue_rules_from_the_page(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    at = run_page(PAGE, session={"user_name": "lead"})
    at.number_input(key="rule_threshold").set_value(0.6)
    at.checkbox(key="rule_keep_default").check()
    _click(at, "Queue low-confidence samples")
    # Round 2 (latest) predicts a1 at 0.55 and a2 at 0.45.
    assert any("Low confidence (< 0.60): 2 entries added." in t for t in texts(at.success))
    assert store.get_dataset("ds").settings["confidence_threshold"] == 0.6
    _click(at, "Queue disagreements")
    assert any("Disagreement: 2 entries added." in t for t in texts(at.success))
    assert sorted(store.queue("ds", reason="disagreement")["sample_id"]) == ["a1", "a2"]
    assert at.get("plotly_chart")  # open entries per reason
    at.number_input(key="rule_threshold").set_value(0.6)
    _click(at, "Queue low-confidence samples")
    assert any("0 entries added" in t for t in texts(at.success))


def test_read_only_hides_every_write_control(app_env, tmp_path, monkeypatch):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1", "a2"], "disagreement", "lead")
    import ui.session

    monkeypatch.setattr(ui.session, "can_write", lambda: False)
    at = run_page(PAGE)
    assert any("Read-only" in t for t in texts(at.info))
    labels = {b.label for b in at.button}
    assert not labels & {"Claim next", "Save and next", "Skip", "Release", "Save changed rows",
                         "Queue low-confidence samples", "Queue disagreements"}
    assert not at.data_editor
    open_table = at.dataframe[0].value
    assert sorted(open_table["sample_id"]) == ["a1", "a2"]
    assert store.queue("ds", status=["claimed"]).height == 0


# ------------------------------------------------------------------ the desk (issue 15, item 6)
def _shortcuts(at):
    return {b.label: b.proto.shortcut for b in at.button if b.proto.shortcut}


def test_desk_keys_pick_a_label_save_and_claim_the_next(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1", "a4"], "disagreement", "lead", priority=[0.9, 0.1])
    at = run_page(PAGE, session={"user_name": "rita"})
    assert _shortcuts(at)["Claim next"] == "enter"
    _click(at, "Claim next")
    keys = _shortcuts(at)
    assert {k: keys[k] for k in LABELS} == {"cancel": "1", "refund": "2", "other": "3"}  # shown on the buttons
    assert (keys["Save and next"], keys["Skip"], keys["Undo last"]) == ("enter", "s", "u")
    entry_id = int(store.queue("ds", status=["claimed"])["entry_id"][0])
    _click(at, "refund")  # the key 2
    assert at.selectbox(key=f"review_label_{entry_id}").value == "refund"
    assert _button(at, "refund").proto.type == "primary"
    _click(at, "Save and next")  # Enter
    assert store.reviews("ds", "a1")["new_label"].to_list() == ["refund"]
    assert "Sample a4" in _all_text(at)


def test_desk_shows_votes_and_model_beside_the_form(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1"], "disagreement", "lead")
    at = run_page(PAGE)
    _click(at, "Claim next")
    shown = _all_text(at)
    assert "Votes: cancel ×2 (alice, bo) · refund (chen)" in shown
    assert any(c.value.startswith("Annotator disagreement · claimed by you") for c in at.caption)
    assert len(at.columns) >= 2  # record left, form right


def test_undo_takes_back_the_last_save_and_the_last_skip(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1", "a4", "a5"], "manual", "lead", priority=[3, 2, 1])
    at = run_page(PAGE, session={"user_name": "rita"})
    _click(at, "Claim next")
    assert _button(at, "Undo last").disabled
    _click(at, "other")
    _click(at, "Save and next")
    assert "Sample a4" in _all_text(at)
    _click(at, "Undo last")
    assert "Sample a1" in _all_text(at)  # back on the sample, its label restored, to label again
    assert store.reviews("ds", "a1")["new_label"].to_list() == ["other", "cancel"]
    assert store.audit_log(dataset="ds", action="review.undo").height == 1
    held = store.queue("ds", status=["claimed"])
    assert sorted(held["sample_id"]) == ["a1", "a4"] and set(held["claimed_by"]) == {"rita"}
    _click(at, "Save and next")  # cancel again (the restored label is the default)
    assert "Sample a4" in _all_text(at)  # the held claim comes next
    _click(at, "Skip")
    assert "Sample a5" in _all_text(at)
    _click(at, "Undo last")
    assert "Sample a4" in _all_text(at)
    assert dict(zip(store.queue("ds")["sample_id"], store.queue("ds")["status"]))["a4"] == "claimed"


def test_queue_list_shows_text_preview_and_reason_name(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a4"], "label_issue", "lead")
    at = run_page(PAGE)
    table = at.dataframe[0].value
    assert list(table["sample_id"]) == ["a4"]
    assert table["preview"][0] == "where is my parcel" and table["reason"][0] == "Suspected label error"


def test_a_save_whose_next_claim_hits_a_busy_store_is_not_shown_again(app_env, tmp_path, monkeypatch):
    """Issue 15, item 5 on the page: the save commits, the store is busy for the step after it. The
    saved sample must not stay on the desk (saving it again was the false conflict), and the entry
    claimed meanwhile is shown on the next run instead of being held out of sight."""
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1", "a2"], "disagreement", "lead", priority=[0.9, 0.5])
    at = run_page(PAGE, session={"user_name": "rita"})
    _click(at, "Claim next")
    import core.review
    from core.store import StoreBusy

    real, calls = core.review.review_item, []

    def busy_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise StoreBusy("store busy: the file is being written by another process")
        return real(*args, **kwargs)

    monkeypatch.setattr(core.review, "review_item", busy_once)
    _click(at, "Save and next")
    assert any("Saved a1: cancel (version 1). Could not claim the next entry: store busy" in t
               for t in texts(at.warning))
    assert "Sample a2" in _all_text(at)  # the claim committed before the failure: it is shown now
    assert "Sample a1" not in _all_text(at)
    assert not any("changed" in t for t in texts(at.warning))
    q = store.queue("ds")
    assert dict(zip(q["sample_id"], q["status"])) == {"a1": "done", "a2": "claimed"}
    assert store.reviews("ds")["sample_id"].to_list() == ["a1"]


def test_a_held_claim_comes_back_after_a_reload(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a4", "a5"], "manual", "lead", priority=[2, 1])
    from core.queue import claim_next

    claim_next(store, "ds", "rita")  # a page run that was cut short, or a reload: the session forgot it
    at = run_page(PAGE, session={"user_name": "rita"})
    assert "Sample a4" in _all_text(at)
    assert not [b for b in at.button if b.label == "Claim next"]


def test_a_claim_in_another_dataset_is_shown_with_switch_and_release(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    import_file_rows = [{"id": "z1", "text": "another dataset", "annotator": "alice", "label": "cancel"}]
    from core.ingest import import_file

    import_file(store, _write(tmp_path / "ds2.jsonl", import_file_rows), "ds2", labels=LABELS)
    store.enqueue("ds", ["a4"], "manual", "lead")
    at = run_page(PAGE, session={"user_name": "rita", "dataset_picker": "ds"})
    _click(at, "Claim next")
    assert "Sample a4" in _all_text(at)
    # The sidebar's picker sets "dataset" (after switch_page AppTest runs the page alone, without app.py).
    at.session_state["dataset"] = "ds2"
    at.run()
    assert any("You hold 1 claim in dataset “ds”: a4" in t for t in texts(at.warning))
    assert "Sample a4" not in _all_text(at)
    _click(at, "Switch")
    assert at.session_state["dataset_next"] == "ds"  # app.py's picker takes it on this rerun
    at.session_state["dataset"] = "ds"
    at.run()
    assert "Sample a4" in _all_text(at) and not at.warning
    at.session_state["dataset"] = "ds2"
    at.run()
    _click(at, "Release")
    assert not at.warning and any("Released 1 entry of “ds” back to the queue" in t for t in texts(at.info))
    assert store.queue("ds")["status"].to_list() == ["open"]


def test_bulk_review_claims_rows_and_shows_votes_model_and_confidence(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1", "a2", "a4"], "label_issue", "lead", priority=[3, 2, 1])
    rita = run_page(PAGE, session={"user_name": "rita"})
    _open_tab(rita, "Bulk review")
    rita.selectbox(key="bulk_reason").set_value("label_issue").run()
    rita.number_input(key="bulk_n").set_value(2).run()
    _click(rita, "Claim rows")
    table = rita.data_editor[0].value
    assert list(table["sample_id"]) == ["a1", "a2"]
    assert table["votes"][0] == "cancel ×2 (alice, bo) · refund (chen)"
    assert list(table["predicted"]) == ["cancel", "refund"] and list(table["confidence"]) == [0.55, 0.45]
    assert table["source"][1] == "tie: no majority"
    sam = run_page(PAGE, session={"user_name": "sam"})
    _open_tab(sam, "Bulk review")
    sam.selectbox(key="bulk_reason").set_value("label_issue").run()
    _click(sam, "Claim rows")
    assert list(sam.data_editor[0].value["sample_id"]) == ["a4"]  # rita's rows are not sam's to edit
    _click(rita, "Release all")
    assert any("Released 2 entries back to the queue" in t for t in texts(rita.info))
    assert sorted(store.queue("ds", status=["open"])["sample_id"]) == ["a1", "a2"]


def test_excluded_samples_can_be_included_again_by_a_lead_only(app_env, tmp_path, monkeypatch):
    store = _fixture(app_env, tmp_path)
    store.set_excluded("ds", ["a3", "a5"], True, "lead", reason="data quality: PII")
    at = _open_tab(run_page(PAGE, session={"user_name": "lead"}), "Excluded samples")
    ex = next(d.value for d in at.dataframe if "excluded_by" in d.value.columns)
    assert list(ex["sample_id"]) == ["a3", "a5"] and set(ex["reason"]) == {"data quality: PII"}
    at.multiselect(key="include_ids").set_value(["a5"])
    at.text_input(key="include_note").input("no PII after all")
    _click(at, "Include again")
    assert any("Included 1 sample again: a5" in t for t in texts(at.success))
    assert store.samples("ds").filter(pl.col("excluded"))["sample_id"].to_list() == ["a3"]
    assert store.audit_log(dataset="ds", action="sample.include")["actor"].to_list() == ["lead"]
    import ui.session
    from core.roles import Action

    real = ui.session.can
    monkeypatch.setattr(ui.session, "can", lambda action: action != Action.EXCLUDE and real(action))
    at = run_page(PAGE, session={"user_name": "rita"})
    assert [t.label for t in at.tabs] == ["Next entry", "Bulk review"]
    assert not [b for b in at.button if b.label == "Include again"]


def test_a_record_with_a_shape_is_drawn_in_its_shape(app_env, tmp_path):
    """draw_record hands a sample with a shape to ui.records.render_record (plain text fields otherwise)."""
    import json

    store = _fixture(app_env, tmp_path)
    chat = {"messages": [{"role": "user", "content": "where is my parcel"},
                         {"role": "assistant", "content": "它已经在路上了"}]}
    with store.cursor() as cur:  # as the importer stores a chat record
        cur.execute("UPDATE samples SET shape = 'chat', record = ? WHERE dataset = 'ds' AND sample_id = 'a4'",
                    [json.dumps(chat, ensure_ascii=False)])
    store.enqueue("ds", ["a4"], "manual", "lead")
    at = run_page(PAGE)
    _click(at, "Claim next")
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert "它已经在路上了" in _all_text(at)
    assert not any(t == "**Text**" for t in texts(at.markdown))  # not the plain text-field view


# ------------------------------------------------------------------ personal data (issue 15, item 2)
PHONE = "13812345678"


def test_a_reviewer_sees_personal_data_masked_and_a_lead_may_reveal_it(app_env, tmp_path, monkeypatch):
    from crowds import configure_users

    store = _fixture(app_env, tmp_path)
    from core.ingest import import_file

    import_file(store, _write(tmp_path / "pii.jsonl", [{"id": "p1", "text": f"请回电 {PHONE} 谢谢",
                                                          "annotator": "alice", "label": "refund"}]), "ds")
    store.enqueue("ds", ["p1"], "manual", "lead")
    configure_users(monkeypatch, tmp_path, {"rita": "reviewer", "alice": "lead"})
    at = run_page(PAGE, session={"auth_user": "rita"})
    assert not at.exception, at.exception
    assert at.dataframe[0].value["preview"][0] == "请回电 ***5678 谢谢"  # the queue list
    with pytest.raises(KeyError):
        at.toggle(key="review_reveal_ds")  # a lead's switch
    _click(at, "Claim next")
    shown = " ".join(_all_text(at))
    assert "请回电 ***5678 谢谢" in shown and PHONE not in shown

    lead = run_page(PAGE, session={"auth_user": "alice"})
    assert PHONE not in lead.dataframe[0].value.to_csv()  # masked for a lead too, until turned on
    lead.toggle(key="review_reveal_ds").set_value(True).run()
    assert not lead.exception, lead.exception
    assert lead.dataframe[0].value["preview"][0] == f"请回电 {PHONE} 谢谢"
    assert store.audit_log(action="pii.reveal")["actor"].to_list() == ["alice"]


def test_a_lead_marks_the_adjudicated_label_as_a_gold_question_and_a_reviewer_cannot(app_env, tmp_path, monkeypatch):
    from crowds import configure_users

    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a1", "a2"], "disagreement", "lead", priority=[0.9, 0.5])
    configure_users(monkeypatch, tmp_path, {"rita": "reviewer", "alice": "lead"})
    at = run_page(PAGE, session={"auth_user": "rita"})
    _click(at, "Claim next")
    eid = store.queue("ds", status=["claimed"])["entry_id"][0]
    with pytest.raises(KeyError):
        at.checkbox(key=f"review_gold_{eid}")  # a lead's control
    _click(at, "Release")

    at = run_page(PAGE, session={"auth_user": "alice"})
    _click(at, "Claim next")
    eid = store.queue("ds", status=["claimed"])["entry_id"][0]
    at.selectbox(key=f"review_label_{eid}").set_value("refund")
    at.checkbox(key=f"review_gold_{eid}").check()
    _click(at, "Save and next")
    assert any("Marked as a gold question" in t for t in texts(at.success))
    gold = store.gold_questions("ds")
    assert gold.select("sample_id", "gold_label", "source", "set_by").rows() == [("a1", "refund", "review", "alice")]
    assert store.audit_log(dataset="ds", action="gold.set")["actor"].to_list() == ["alice"]


# ------------------------------------------------------------------ browser review follow-ups
def test_a_tie_without_a_prediction_preselects_nothing_and_saves_nothing_unchosen(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    from core.ingest import import_file

    import_file(store, _write(tmp_path / "tie.jsonl", [
        {"id": "t1", "text": "cancel or refund?", "annotator": "alice", "label": "cancel"},
        {"id": "t1", "text": "cancel or refund?", "annotator": "bo", "label": "refund"}]), "ds")
    store.enqueue("ds", ["t1"], "disagreement", "lead")
    at = run_page(PAGE, session={"user_name": "rita"})
    _click(at, "Claim next")
    assert "Sample t1" in _all_text(at) and any("No model prediction" in t for t in texts(at.caption))
    eid = int(store.queue("ds", status=["claimed"])["entry_id"][0])
    assert at.selectbox(key=f"review_label_{eid}").value is None  # no majority, no prediction: nothing chosen
    assert all(_button(at, lab).proto.type != "primary" for lab in LABELS)
    _click(at, "Save and next")  # Enter without a choice
    assert any("Pick a label first" in t for t in texts(at.warning))
    assert store.reviews("ds").height == 0
    assert store.queue("ds", status=["claimed"])["sample_id"].to_list() == ["t1"]
    _click(at, "other")  # the key 3
    _click(at, "Save and next")
    assert store.reviews("ds", "t1")["new_label"].to_list() == ["other"]


def test_bulk_reason_starts_on_open_entries_with_counts_and_says_when_nothing_is_claimed(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    store.enqueue("ds", ["a4", "a5"], "label_issue", "lead", priority=[2, 1])
    at = _open_tab(run_page(PAGE, session={"user_name": "rita"}), "Bulk review")
    picker = at.selectbox(key="bulk_reason")
    assert picker.value == "label_issue"  # the one reason with open entries, not "Low model confidence"
    assert "Suspected label error (2 open)" in picker.options
    assert "All reasons (2 open)" in picker.options
    assert "Low model confidence (0 open)" in picker.options
    picker.set_value("low_confidence").run()
    _click(at, "Claim rows")
    assert any("No open entries for “Low model confidence”" in t for t in texts(at.info))
    assert store.queue("ds", status=["claimed"]).height == 0
    at.selectbox(key="bulk_reason").set_value(None).run()  # all reasons
    _click(at, "Claim rows")
    assert any("Claimed 2 entries for “All reasons”" in t for t in texts(at.success))
    assert list(at.data_editor[0].value["sample_id"]) == ["a4", "a5"]
    _click(at, "Claim rows")
    assert any("No more open entries for “All reasons”: you hold 2" in t for t in texts(at.info))
