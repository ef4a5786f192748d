"""AppTest: the Audit page (filtered log, CSV download, sample history, gold export with provenance)."""

import io
import json
from datetime import date, timedelta

import polars as pl
import pytest
from apptest_helpers import run_page, texts
from factories import write_jsonl as _write

PAGE = "pages/audit.py"
LABELS = ["cancel", "refund", "other"]


@pytest.fixture(autouse=True)
def _jobs_finish_in_the_run(monkeypatch):
    """The export tab's gold summary is a job in the background worker; a page run waits for it here."""
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "120")


def _fixture(app_env, tmp_path):
    """Dataset "ds": b1 (majority cancel, with an e-mail), b2 (tie), b3 (majority refund), b4 (excluded);
    rita reviews b2 -> other, sam reviews b3 -> cancel."""
    from core.ingest import import_file
    from core.review import save_review
    from core.store import open_store

    votes = {"b1": ["cancel", "cancel"], "b2": ["cancel", "refund"], "b3": ["refund", "refund"],
             "b4": ["other", "other"]}
    text = {"b1": "请联系 zhang.san@example.com 取消订单", "b2": "tie", "b3": "money back", "b4": "spam"}
    rows = [{"id": sid, "instruction": "Classify the intent", "input": text[sid], "annotator": ann, "label": lab}
            for sid in votes for ann, lab in zip(["alice", "bo"], votes[sid])]
    store = open_store(app_env)
    import_file(store, _write(tmp_path / "ann.jsonl", rows), "ds", labels=LABELS, actor="importer")
    save_review(store, "ds", "b2", "other", "rita", "neither", 0)
    save_review(store, "ds", "b3", "cancel", "sam", "asked to cancel", 0)
    store.set_excluded("ds", ["b4"], True, "lead")
    return store


def _frame_with(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_no_dataset_shows_empty_log(app_env):
    at = run_page(PAGE)
    assert not at.exception
    assert any("No audit rows" in t for t in texts(at.info))


def test_log_filters_by_actor_action_and_dates(app_env, tmp_path):
    _fixture(app_env, tmp_path)
    at = run_page(PAGE)
    log = _frame_with(at, "action")
    # actions by name (the filter keeps the raw value), a dataset's labels as a list, not JSON
    assert {"Import", "Dataset created", "Review saved", "Sample excluded"} <= set(log["action"])
    created = log[log["action"] == "Dataset created"].iloc[0]
    assert created["new_value"] == "cancel, refund, other"
    assert "Review saved (review.save)" in at.selectbox(key="audit_action").options
    # the activity chart counts rows per minute here (everything happened within seconds), by action name
    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert {t["type"] for t in chart["data"]} == {"bar"}
    assert "per minute" in chart["layout"]["xaxis"]["title"]["text"]
    names = {t["name"] for t in chart["data"]}
    assert "Review saved" in names and "review.save" not in names
    times = [x for t in chart["data"] for x in t["x"]]
    from datetime import datetime

    assert times and all(datetime.fromisoformat(x).second == 0 == datetime.fromisoformat(x).microsecond
                         for x in times)  # whole minutes, not half-seconds
    assert at.selectbox(key="audit_dataset").value == "ds"
    assert next(b.label for b in at.download_button) == "Download the filtered log (CSV)"
    at.selectbox(key="audit_actor").set_value("rita").run()
    log = _frame_with(at, "action")
    assert list(log["actor"]) == ["rita"] and list(log["sample_id"]) == ["b2"]
    assert list(log["old_value"]) == ["—"] and list(log["new_value"]) == ["other"]  # a tie had no label
    at.selectbox(key="audit_actor").set_value("(all)")
    at.selectbox(key="audit_action").set_value("review.save").run()
    log = _frame_with(at, "action")
    assert sorted(log["actor"]) == ["rita", "sam"]
    assert any("2 rows" in t for t in texts(at.caption))
    tomorrow = date.today() + timedelta(days=1)
    at.date_input(key="audit_from").set_value(tomorrow)
    at.date_input(key="audit_to").set_value(tomorrow).run()
    assert any("No audit rows" in t for t in texts(at.info))
    at.date_input(key="audit_from").set_value(tomorrow)
    at.date_input(key="audit_to").set_value(date.today()).run()
    assert any("before the start date" in t for t in texts(at.error))


def test_sample_history_shows_reviews_and_audit_rows(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    from core.review import save_review

    save_review(store, "ds", "b2", "refund", "sam", "second thoughts", 1)
    at = run_page(PAGE)
    assert at.selectbox(key="audit_pick").options == ["b2", "b3"]  # most recently reviewed first
    at.selectbox(key="audit_pick").set_value("b2").run()
    reviews = _frame_with(at, "base_version")
    assert list(reviews["new_label"]) == ["other", "refund"] and list(reviews["reviewer"]) == ["rita", "sam"]
    rows = next(d.value for d in at.dataframe if "detail" in d.value.columns and "dataset" not in d.value.columns)
    assert list(rows["action"]) == ["Review saved", "Review saved"]
    # the sample itself above its history: its text and its annotations
    assert "tie" in texts(at.text) and "Classify the intent" in texts(at.text)
    annotations = _frame_with(at, "annotator")
    assert dict(zip(annotations["annotator"], annotations["label"])) == {"alice": "cancel", "bo": "refund"}
    at.text_input(key="audit_sample_id").input("nope").run()
    assert any("No sample “nope” in dataset “ds”" in t for t in texts(at.warning))


def test_sample_history_masks_the_text_and_explains_the_empty_state(app_env, tmp_path):
    _fixture(app_env, tmp_path)
    at = run_page(PAGE)
    assert any("type any sample id" in t for t in texts(at.info))
    at.text_input(key="audit_sample_id").input("b1").run()
    assert not at.exception, at.exception
    shown = " ".join(texts(at.text))
    assert "zhang.san@example.com" not in shown and "***.com" in shown  # masked unless a lead reveals it


def test_gold_export_with_provenance_mask_and_excluded(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    at = run_page(PAGE)
    metrics = {m.label: m.value for m in at.metric}
    # b1 majority, b2 review, b3 review; b4 excluded; nothing ties without a review.
    assert metrics == {"Gold labels": "3", "From a review": "2", "From the annotators": "1"}
    [prepare] = [b for b in at.button if b.label == "Prepare the file"]
    prepare.click().run()
    assert not at.exception
    assert [b.label for b in at.download_button][-1] == "Download 3 gold labels (JSONL (instruction format))"
    rows = [json.loads(line) for line in at.session_state["export_file"]["data"].decode().splitlines()]
    assert [(r["sample_id"], r["label"], r["label_source"]) for r in rows] == [
        ("b1", "cancel", "majority"), ("b2", "other", "review"), ("b3", "cancel", "review")]
    # masked by default, for a lead too
    assert rows[0]["instruction"] == "Classify the intent" and "zhang.san@example.com" not in rows[0]["input"]
    assert "***.com" in rows[0]["input"] and store.audit_log(action="pii.reveal").height == 0

    # a lead's unmasked export: raw values, and an audit row
    at.checkbox(key="export_raw").check().run()
    [prepare] = [b for b in at.button if b.label == "Prepare the file"]
    prepare.click().run()
    rows = [json.loads(line) for line in at.session_state["export_file"]["data"].decode().splitlines()]
    assert "zhang.san@example.com" in rows[0]["input"]
    log = store.audit_log(action="pii.reveal")
    assert log["actor"].to_list() == ["local-lead"] and log["new_value"].to_list() == ["gold export (jsonl)"]

    at.checkbox(key="export_raw").uncheck()
    at.checkbox(key="export_excluded").check()
    at.radio(key="export_format").set_value("csv").run()
    assert not at.download_button[1:]  # options changed: the old file is not offered
    [prepare] = [b for b in at.button if b.label == "Prepare the file"]
    prepare.click().run()
    frame = pl.read_csv(io.BytesIO(at.session_state["export_file"]["data"]))
    assert frame["sample_id"].to_list() == ["b1", "b2", "b3", "b4"]
    assert "example.com" not in frame["input"][0] and "***.com" in frame["input"][0]

    at.radio(key="export_format").set_value("parquet").run()
    [prepare] = [b for b in at.button if b.label == "Prepare the file"]
    prepare.click().run()
    frame = pl.read_parquet(io.BytesIO(at.session_state["export_file"]["data"]))
    assert frame["label_source"].to_list() == ["majority", "review", "review", "majority"]


def test_a_reviewer_cannot_export_raw_and_sees_masked_notes(app_env, tmp_path, monkeypatch):
    from crowds import configure_users

    store = _fixture(app_env, tmp_path)
    from core.review import save_review

    save_review(store, "ds", "b1", "other", "rita", "customer wrote from zhang.san@example.com", 0)
    configure_users(monkeypatch, tmp_path, {"rita": "reviewer"})
    at = run_page(PAGE, session={"auth_user": "rita"})
    assert not at.exception, at.exception
    log = _frame_with(at, "action")
    assert "zhang.san@example.com" not in log.to_csv() and "***.com" in log.to_csv()
    with pytest.raises(KeyError):
        at.checkbox(key="export_raw")
    with pytest.raises(KeyError):
        at.toggle(key="audit_reveal_ds")
    [prepare] = [b for b in at.button if b.label == "Prepare the file"]
    prepare.click().run()
    data = at.session_state["export_file"]["data"].decode()
    assert "zhang.san@example.com" not in data and store.audit_log(action="pii.reveal").height == 0


@pytest.mark.parametrize(("spread", "unit"), [("1 minute", "minute"), ("5 hours", "hour"), ("9 days", "day")])
def test_activity_chart_bins_by_the_time_span(app_env, tmp_path, spread, unit):
    store = _fixture(app_env, tmp_path)
    with store.cursor() as cur:  # spread the rows over the span: the oldest one that far back
        cur.execute(f"UPDATE audit_log SET logged_at = logged_at - INTERVAL '{spread}' "
                    "WHERE audit_id = (SELECT min(audit_id) FROM audit_log)")
    at = run_page(PAGE)
    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert f"per {unit}" in chart["layout"]["xaxis"]["title"]["text"]
