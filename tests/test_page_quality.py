"""AppTest: the Data quality page (cards, tabs, queueing, excluding, label errors, empty states, demo)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from apptest_helpers import run_page, texts
from quality_fixtures import PHONE, build_planted_store
from test_quality_report import expected_counts

PAGE = "pages/data_quality.py"
TITLES = {
    "exact_duplicates": "Exact duplicates",
    "near_duplicates": "Near duplicates",
    "completeness": "Completeness",
    "cleaning": "Cleaning",
    "pii": "Personal data",
    "label_errors": "Label errors",
}



@pytest.fixture(autouse=True)
def _jobs_finish_in_the_run(monkeypatch):
    """The page's analysis jobs run in the background worker; a page run waits for them here, so what the
    test sees does not depend on how busy the machine is."""
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "120")

@pytest.fixture(autouse=True)
def _fresh_cache():
    """st.cache_data is process-wide: a result of an earlier test's store must not leak in."""
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def planted(app_env, tmp_path):
    from core.store import open_store

    return build_planted_store(open_store(app_env), tmp_path, textonly=True)


def _open(dataset: str = "qa"):
    at = run_page(PAGE, session={"dataset_picker": dataset})
    assert not at.exception, at.exception
    return at


def _cards(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric if m.label in TITLES.values()}


def _click(at, key: str):
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def test_cards_equal_core_counts_and_label_errors_on_request(planted):
    at = _open()
    cards = _cards(at)
    expected = expected_counts(planted, "qa")
    assert cards == {**{TITLES[c]: str(n) for c, n in expected.items()}, TITLES["label_errors"]: "—"}
    assert cards[TITLES["exact_duplicates"]] == "2" and cards[TITLES["pii"]] == "1"
    shares = {m.label: m.proto.delta for m in at.metric if m.label in TITLES.values()}
    assert shares[TITLES["pii"]] == f"{1 / 23:.1%} of the dataset"

    _click(at, "dq_label_run")
    assert _cards(at)[TITLES["label_errors"]] == "1"
    frame = next(df.value for df in at.dataframe if "suggested_label" in df.value.columns)
    assert frame["sample_id"].tolist() == ["q07"] and frame["suggested_label"].tolist() == ["refund"]
    assert any("model probabilities of round 1" in t for t in texts(at.caption))


def test_tables_show_the_matched_span_escaped(planted):
    at = _open()
    pii = next(df.value for df in at.dataframe if "masked" in df.value.columns)
    row = pii.iloc[0]
    assert (row["sample_id"], row["match"], row["before"]) == ("q05", "***5678", "请拨打")  # masked by default
    assert "***5678" in row["masked"] and PHONE not in row["masked"]
    cleaning = next(df.value for df in at.dataframe if "cleaned" in df.value.columns)
    assert cleaning.iloc[0]["match"] == "<br>"
    md = texts(at.markdown)
    assert any(r":red-background[\<br\>]" in t for t in md)  # markup in user text is escaped, the span marked
    assert any(r":red-background[\*\*\*5678]" in t for t in md) and not any(PHONE in t for t in md)
    assert not any("<br>" in t for t in md)
    # near duplicates side by side with the Jaccard similarity and the changed characters marked
    assert any(":red-background[杂]" in t for t in md) and any(":red-background[噪]" in t for t in md)
    assert {m.label: m.value for m in at.metric}["Jaccard similarity (character 3-grams)"].startswith("0.8")


def test_send_selected_rows_to_the_queue(planted):
    at = _open()
    _click(at, "dq_suggest_exact_duplicates")
    assert at.multiselect(key="dq_pick_exact_duplicates").value == ["q21", "q22"]
    _click(at, "dq_send_exact_duplicates")
    assert any("Sent 2 sample(s) to the review queue (Manual)" in t for t in texts(at.success))
    queue = planted.queue("qa")
    assert sorted(queue["sample_id"]) == ["q21", "q22"] and set(queue["reason"]) == {"manual"}
    assert json.loads(queue["detail"][0])["check"] == "exact_duplicates"
    audit = planted.audit_log(dataset="qa", action="queue.add")
    assert audit.height == 1 and audit["actor"].item() == "local-lead"
    assert at.multiselect(key="dq_pick_exact_duplicates").value == []  # selection cleared after the write

    # label errors go in as label_issue, ranked by 1 - self-confidence
    _click(at, "dq_label_run")
    at.multiselect(key="dq_pick_label_errors").set_value(["q07"]).run()
    assert at.selectbox(key="dq_reason_label_errors").value == "label_issue"
    _click(at, "dq_send_label_errors")
    assert any("Sent 1 sample(s)" in t for t in texts(at.success))
    issue = planted.queue("qa", reason="label_issue")
    assert issue["sample_id"].to_list() == ["q07"] and issue["priority"].item() == pytest.approx(0.92)
    assert planted.audit_log(dataset="qa", action="queue.add").height == 2


def test_exclude_selected_rows(planted):
    at = _open()
    at.multiselect(key="dq_pick_near_duplicates").set_value(["q23"]).run()
    _click(at, "dq_exclude_near_duplicates")
    assert any("Excluded 1 sample(s) from export" in t for t in texts(at.success))
    excluded = planted.samples("qa").filter(pl.col("excluded"))["sample_id"].to_list()
    assert excluded == ["q23"]
    assert planted.audit_log(dataset="qa", action="sample.exclude").height == 1
    cards = _cards(at)
    assert cards[TITLES["near_duplicates"]] == "0"  # excluded samples are no longer checked
    assert cards == {**cards, **{TITLES[c]: str(n) for c, n in expected_counts(planted, "qa").items()}}
    # shown again when excluded samples are included
    at.toggle(key="dq_include_excluded").set_value(True).run()
    assert _cards(at)[TITLES["near_duplicates"]] == "1"


def test_empty_states_without_output_labels_or_predictions(planted):
    at = _open("textonly")
    info = texts(at.info)
    assert any("no **output** field" in t for t in info)
    assert any("No labels in this dataset and no model predictions" in t for t in info)
    assert any("No gold labels yet" in t for t in info)
    assert _cards(at)[TITLES["pii"]] == str(expected_counts(planted, "textonly")["pii"])
    assert not [b for b in at.button if b.key == "dq_label_run"]


def test_read_only_role_hides_write_controls(planted, monkeypatch):
    import ui.session

    monkeypatch.setattr(ui.session, "can_write", lambda: False, raising=False)
    at = _open()
    keys = {b.key for b in at.button}
    assert not {k for k in keys if k and (k.startswith("dq_send_") or k.startswith("dq_exclude_"))}
    assert any("read-only" in t for t in texts(at.caption))


def test_demo_renders_and_finds_the_planted_problems(app_env):
    from core.demo import PLANTED_COUNTS
    from core.seed import load_demo
    from core.store import open_store

    load_demo(open_store(app_env))
    at = run_page(PAGE, timeout=600)
    assert not at.exception, at.exception
    cards = _cards(at)
    assert cards[TITLES["exact_duplicates"]] == str(PLANTED_COUNTS["exact_duplicate"])
    assert cards[TITLES["near_duplicates"]] == str(PLANTED_COUNTS["near_duplicate"])
    assert cards[TITLES["pii"]] == str(PLANTED_COUNTS["pii"])
    assert int(cards[TITLES["completeness"]]) >= PLANTED_COUNTS["empty_output"] + PLANTED_COUNTS["truncated_output"]
    assert int(cards[TITLES["cleaning"]]) >= PLANTED_COUNTS["html"] + PLANTED_COUNTS["url"]
    at.button(key="dq_label_run").click().run(timeout=600)
    assert not at.exception, at.exception
    assert int(_cards(at)[TITLES["label_errors"]]) >= PLANTED_COUNTS["label_error"]


def test_label_errors_fall_back_to_embeddings_with_progress(app_env, tmp_path, monkeypatch):
    from test_quality_report import _fake_encoder

    import core.embeddings
    from core.store import open_store

    store = build_planted_store(open_store(app_env), tmp_path, predictions=False)
    calls: list[int] = []
    fake = _fake_encoder(calls)
    monkeypatch.setattr(core.embeddings, "resolve_model", lambda texts=None, model=None: fake)
    at = _open()
    assert at.radio(key="dq_label_method").options == ["Cross-validated embeddings (logistic regression, 5 folds)"]
    assert any("No model predictions in this dataset" in t for t in texts(at.caption))
    _click(at, "dq_label_run")
    assert calls, "the texts were embedded"
    frame = next(df.value for df in at.dataframe if "suggested_label" in df.value.columns)
    assert "q07" in frame["sample_id"].tolist()
    assert _cards(at)[TITLES["label_errors"]] == str(len(frame))
    assert any("cross-validated logistic regression on sentence embeddings" in t for t in texts(at.caption))
    assert store.table_counts()["embeddings"] > 0  # cached for the next run


@pytest.fixture
def downloads(monkeypatch):
    """The data behind every download button the page draws, by label (deferred data generated as a click
    would: AppTest has no runtime to serve the files)."""
    import streamlit as st

    seen: dict[str, str] = {}
    original = st.download_button

    def recording(label, data=None, *args, **kwargs):
        value = data() if callable(data) else data
        seen[label] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        return original(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", recording)
    return seen


def test_a_stakeholder_sees_and_downloads_no_raw_personal_data(planted, tmp_path, monkeypatch, downloads):
    from crowds import configure_users

    configure_users(monkeypatch, tmp_path, {"sam": "stakeholder", "alice": "lead"})
    at = run_page(PAGE, session={"dataset_picker": "qa", "auth_user": "sam"})
    assert not at.exception, at.exception
    with pytest.raises(KeyError):
        at.toggle(key="dq_reveal_qa")  # the switch is a lead's
    with pytest.raises(KeyError):
        at.checkbox(key="dq_export_mask")  # no way to untick the masking
    tables = " ".join(el.value.to_csv() for el in at.dataframe)
    assert PHONE not in tables and "***5678" in tables
    files = downloads
    assert files and all(PHONE not in data for data in files.values()), list(files)
    assert "***5678" in " ".join(files.values())
    assert planted.audit_log(action="pii.reveal").height == 0


def test_a_lead_reveals_personal_data_and_it_is_audited(planted, tmp_path, monkeypatch):
    from crowds import configure_users

    configure_users(monkeypatch, tmp_path, {"alice": "lead"})
    at = run_page(PAGE, session={"dataset_picker": "qa", "auth_user": "alice"})
    assert PHONE not in " ".join(el.value.to_csv() for el in at.dataframe)  # masked by default for leads too
    at.toggle(key="dq_reveal_qa").set_value(True).run()
    assert not at.exception, at.exception
    assert PHONE in " ".join(el.value.to_csv() for el in at.dataframe)
    log = planted.audit_log(action="pii.reveal")
    assert log["actor"].to_list() == ["alice"] and log["new_value"].to_list() == ["data quality page"]
    at.run()  # still on: not audited again
    assert planted.audit_log(action="pii.reveal").height == 1


# -- the instruction-data checks (issue 16) ---------------------------------------------------------------------

NEW_TITLES = {"language_mismatch": "Language mismatch", "refusal": "Refusals", "repetition": "Repetition",
              "chat_structure": "Chat structure", "template_leakage": "Template leakage",
              "contamination": "Contamination", "length_ratio": "Length ratio"}


@pytest.fixture
def mixed_page(app_env, tmp_path):
    from factories import import_rows
    from test_checks_registry import MIXED

    from core.store import open_store

    store = open_store(app_env)
    res = import_rows(store, tmp_path, [{**r, "annotator": "alice"} for r in MIXED], name="mixed",
                      labels=["good", "bad"])
    assert res.rows_bad == 0
    return store


def _findings(at, check: str):
    """The findings table of one instruction-data check (its rows all carry that check's kinds)."""
    tables = [df.value for df in at.dataframe if "excerpt" in df.value.columns]
    return {tuple(sorted(set(t["sample_id"]))): t for t in tables}, tables


def test_instruction_checks_cards_tables_and_marked_spans(mixed_page):
    at = _open("mixed")
    cards = {m.label: m.value for m in at.metric}
    assert {t: cards[t] for t in NEW_TITLES.values()} == {
        "Language mismatch": "1", "Refusals": "1", "Repetition": "1", "Chat structure": "1",
        "Template leakage": "1", "Contamination": "—", "Length ratio": "0"}
    assert any("not run: no evaluation set" in t for t in texts(at.caption))
    assert any("Not run: no evaluation set" in t for t in texts(at.info))
    _, tables = _findings(at, "")
    by_kind = {k: t for t in tables for k in t["kind"]}
    lang = by_kind["language mismatch"]  # kinds spelled for people
    assert lang["sample_id"].tolist() == ["m-lang"] and lang["label"].tolist() == ["bad"]
    assert {"severity", "message", "prompt_language", "response_language"} <= set(lang.columns)
    assert "before" not in lang.columns and "span_text" not in lang.columns  # shown marked in the excerpt
    leak = by_kind["chat template token"]
    assert leak["excerpt"].tolist()[0].startswith("«<|im_start|>»assistant ⏎ 好的")
    assert by_kind["refusal"]["excerpt"].tolist() == ["«抱歉，我无法»回答这个问题。"]
    md = texts(at.markdown)
    assert any(r":red-background[\<\|im\_start\|\>]" in t for t in md)  # the span marked, user text escaped
    assert not any("<|im_start|>" in t for t in md)
    # the check is the queue reason
    at.multiselect(key="dq_pick_refusal").set_value(["m-refusal"]).run()
    assert at.selectbox(key="dq_reason_refusal").value == "refusal"
    _click(at, "dq_send_refusal")
    assert mixed_page.queue("mixed")["reason"].to_list() == ["refusal"]


def test_instruction_checks_filter_by_severity_and_label(mixed_page):
    at = _open("mixed")
    at.multiselect(key="dq_filter_severity").set_value(["warning"]).run()
    assert not at.exception
    kinds = {k for df in at.dataframe if "excerpt" in df.value.columns for k in df.value["kind"]}
    assert "language mismatch" in kinds and "chat template token" not in kinds  # leaks are errors
    assert any("No findings match the severity and label filters" in t for t in texts(at.info))
    at.multiselect(key="dq_filter_severity").set_value([]).run()
    at.multiselect(key="dq_filter_label").set_value(["good"]).run()
    kinds = {k for df in at.dataframe if "excerpt" in df.value.columns for k in df.value["kind"]}
    assert kinds == set()  # every planted fault is on a sample labelled bad
    at.multiselect(key="dq_filter_label").set_value(["bad"]).run()
    kinds = {k for df in at.dataframe if "excerpt" in df.value.columns for k in df.value["kind"]}
    assert {"language mismatch", "refusal", "repetition", "chat template token", "consecutive same role"} <= kinds


def test_evaluation_set_upload_runs_contamination(mixed_page):
    from test_checks_registry import EVAL

    at = _open("mixed")
    data = "".join(json.dumps({"question": q}, ensure_ascii=False) + "\n" for q in EVAL).encode("utf-8")
    at.file_uploader(key="dq_eval_file").set_value(("mmlu.jsonl", data, "application/jsonl")).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Contamination"] == "1"
    assert any(r"mmlu\.jsonl" in t and "2 questions" in t for t in texts(at.caption))  # the name escaped
    table = next(df.value for df in at.dataframe if "eval_index" in df.value.columns)
    assert table["sample_id"].tolist() == ["m-eval"] and table["eval_index"].tolist() == [0]
    # a file without a text column is an error message, not a traceback
    at.file_uploader(key="dq_eval_file").set_value(("bad.jsonl", b'{"n": 1}\n', "application/jsonl")).run()
    assert not at.exception and any("no text column" in t for t in texts(at.error))
    assert {m.label: m.value for m in at.metric}["Contamination"] == "—"


def test_lead_extends_the_refusal_phrases(mixed_page):
    at = _open("mixed")
    at.text_area(key="dq_refusal_patterns").set_value("预约检测\n")
    next(b for b in at.button if b.label == "Save phrases").click().run()
    assert not at.exception, at.exception
    assert not texts(at.error), texts(at.error)
    assert any("Saved 1 extra refusal phrase(s)" in t for t in texts(at.success))
    assert {m.label: m.value for m in at.metric}["Refusals"] == "2"
    assert mixed_page.audit_log(dataset="mixed", action="dataset.setting").height == 1


def test_a_registered_check_gets_a_card_and_a_tab(mixed_page):
    from core import checks
    from core.checks.base import Check, CheckResult

    def run(ctx):
        return CheckResult(pl.DataFrame({"sample_id": ["m-text"], "kind": ["odd"]}), 1, "one odd sample")

    checks.register(Check(name="zz_page_check", title="ZZ page check", help="A check added by a test.",
                          severity="info", run=run, empty={"sample_id": pl.Utf8, "kind": pl.Utf8}, order=999))
    try:
        at = _open("mixed")
        assert {m.label: m.value for m in at.metric}["ZZ page check"] == "1"
        assert "ZZ page check" in [t.label for t in at.tabs]
        assert any(df.value.columns.tolist() == ["sample_id", "kind"] for df in at.dataframe)
    finally:
        checks.unregister("zz_page_check")


# -- stored results (issue 18): the report and the label errors are jobs, read without recomputing ---------------

@pytest.fixture
def job_runs(monkeypatch):
    """``(runs, gate)``: how often each registered job ran, and an event a job waits for before it runs (set:
    run at once; clear it to hold jobs in flight). The worker looks a job up by name when it runs it."""
    import threading
    from dataclasses import replace

    from core import jobs

    runs: dict[str, int] = {}
    gate = threading.Event()
    gate.set()
    for name, job in list(jobs.JOBS.items()):
        def run(store, dataset, params, progress, _run=job.run, _name=name):
            assert gate.wait(60), "the test never released the job"
            runs[_name] = runs.get(_name, 0) + 1
            return _run(store, dataset, params, progress)

        monkeypatch.setitem(jobs.JOBS, name, replace(job, run=run))
    yield runs, gate
    gate.set()


def _settle(store):
    """Wait until the store's background worker has nothing in flight."""
    from core.jobs.worker import existing_worker

    worker = existing_worker(store)
    for task in worker.tasks() if worker else []:
        assert task.wait(60)


def test_a_current_report_is_read_without_recomputing_and_a_stale_one_shows_progress(planted, job_runs,
                                                                                       monkeypatch):
    runs, gate = job_runs
    at = _open()
    assert runs == {"quality": 1}
    assert any("Computed at" in t and "data version" in t for t in texts(at.caption))
    cards = _cards(at)
    for _ in range(2):  # another session, a reload: the stored report, no recompute
        assert _cards(_open()) == cards
    assert runs == {"quality": 1}
    # a queue action or a reveal changes nothing the report depends on
    planted.enqueue("qa", ["q01"], "manual", "local-lead")
    _open()
    assert runs == {"quality": 1}

    # an exclusion makes it stale: the page shows the older report, marked, and the job's progress
    gate.clear()
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "0.2")
    planted.set_excluded("qa", ["q01"], True, "local-lead", reason="test")
    at = _open()
    assert _cards(at) == cards  # the earlier report meanwhile
    assert any("earlier version of the data" in t for t in texts(at.caption))
    assert at.get("progress"), "a progress bar while the job runs"
    assert any(b.label == "Cancel" for b in at.button)
    gate.set()
    _settle(planted)
    at = _open()
    assert runs == {"quality": 2}
    assert not any("earlier version of the data" in t for t in texts(at.caption))


def test_threshold_at_or_above_the_stored_one_filters_the_stored_pairs(planted, job_runs):
    from core.quality_report import run_report

    runs, _ = job_runs
    at = _open()
    for value in (0.85, 0.95, 1.0):
        at.slider(key="dq_threshold").set_value(value).run()
        assert not at.exception, at.exception
        expected = run_report(planted, "qa", threshold=value, checks=["near_duplicates"])
        assert _cards(at)[TITLES["near_duplicates"]] == str(expected.results["near_duplicates"].count)
    assert runs == {"quality": 1}  # no check ran again
    at.slider(key="dq_threshold").set_value(0.6).run()  # below: the one check, in the background
    assert not at.exception, at.exception
    assert runs == {"quality": 1, "near_duplicates": 1}
    expected = run_report(planted, "qa", threshold=0.6, checks=["near_duplicates"])
    assert _cards(at)[TITLES["near_duplicates"]] == str(expected.results["near_duplicates"].count)


def test_near_duplicates_at_equals_running_the_check(planted):
    from core.quality_report import near_duplicates_at, run_report

    base = run_report(planted, "qa", threshold=0.5)
    for value in (0.5, 0.7, 0.8, 0.9, 1.0):
        derived = near_duplicates_at(base, value)
        direct = run_report(planted, "qa", threshold=value, checks=["near_duplicates"])
        assert derived.near_duplicates.equals(direct.near_duplicates)
        assert derived.near_duplicate_pairs.equals(direct.near_duplicate_pairs)
        assert derived.results["near_duplicates"].count == direct.results["near_duplicates"].count
    with pytest.raises(ValueError, match="below the report's"):
        near_duplicates_at(run_report(planted, "qa", threshold=0.9), 0.8)


def test_label_errors_are_stored_for_every_session(planted, job_runs, tmp_path, monkeypatch):
    from crowds import configure_users

    runs, _ = job_runs
    configure_users(monkeypatch, tmp_path, {"alice": "lead", "bob": "lead"})
    at = run_page(PAGE, session={"dataset_picker": "qa", "auth_user": "alice"})
    _click(at, "dq_label_run")
    assert runs["label_errors"] == 1 and _cards(at)[TITLES["label_errors"]] == "1"
    # a reload, another lead: the stored result, not computed again
    other = run_page(PAGE, session={"dataset_picker": "qa", "auth_user": "bob"})
    assert not other.exception, other.exception
    assert _cards(other)[TITLES["label_errors"]] == "1"
    frame = next(df.value for df in other.dataframe if "suggested_label" in df.value.columns)
    assert frame["sample_id"].tolist() == ["q07"]
    assert runs["label_errors"] == 1
    stored = planted.result_versions("qa", "label_errors")
    assert stored.height == 1 and json.loads(stored["params"][0])["method"] == "model"
