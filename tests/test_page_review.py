"""AppTest: the Review page (claim, sample display, save and next, skip, release, conflicts, bulk
table, queue rules, read-only mode)."""

import json

import pytest

from apptest_helpers import run_page, texts

PAGE = "pages/review.py"
LABELS = ["cancel", "refund", "other"]
LONG_ZH = "我想取消订单，因为物流太慢了。" * 200  # ~3,000 characters of Chinese


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


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
    at.selectbox(key="bulk_reason").set_value("disagreement").run()
    [editor] = at.data_editor
    table = editor.value
    assert list(table["sample_id"]) == ["a2", "a1"]
    assert table["current_label"].isna().tolist() == [True, False] and table["current_label"][1] == "cancel"
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
    at.selectbox(key="bulk_reason").set_value("label_issue").run()
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
