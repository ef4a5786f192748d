"""Analyses as jobs: the registry contract, the result codec, data versions, the runner, the worker, the CLI."""

from __future__ import annotations

import ast
import math
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import polars as pl
import pytest
from factories import import_rows

from core import jobs
from core.__main__ import main
from core.auth import hash_password
from core.jobs import Job, JobCancelled
from core.jobs.runner import analyze, get_or_none, lookup, run_job
from core.jobs.worker import CANCELLED, DONE, FAILED, Worker
from core.store import PermissionDenied, open_store
from core.store.results import decode_result, encode_result, register_result_type

LABELS = ["refund", "cancel", "other"]


def _rows(n: int = 12, batch: str = "b1", rnd: int = 1, start: int = 0) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        for ann in ("alice", "bo"):
            label = LABELS[i % 3] if ann == "alice" or i % 4 else LABELS[(i + 1) % 3]
            rows.append({"id": f"s{i:03d}", "text": f"退款 order {i} " + "please " * (i % 5), "annotator": ann,
                         "label": label, "batch": batch, "round": rnd})
    return rows


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "jobs.duckdb")
    import_rows(s, tmp_path, _rows(), labels=LABELS)
    return s


@dataclass(frozen=True)
class _Counted:
    n: int
    texts: pl.DataFrame


register_result_type(_Counted)


@pytest.fixture
def test_jobs():
    """Two jobs registered by the test: one over the samples' content, one over the labels."""
    calls = {"content": 0, "labels": 0}

    def count_samples(store, dataset, params, progress):
        calls["content"] += 1
        progress("reading", 0.5)
        samples = store.samples(dataset).head(params["limit"])
        return _Counted(samples.height, samples.select("sample_id", "text"))

    def count_labels(store, dataset, params, progress):
        calls["labels"] += 1
        return {"annotations": store.annotations(dataset).height, "reviews": store.latest_reviews(dataset).height}

    jobs.register(Job("t_content", "Test content", count_samples, depends="content", defaults={"limit": 1000},
                      order=900))
    jobs.register(Job("t_labels", "Test labels", count_labels, depends="labels", order=901))
    yield calls
    jobs.unregister("t_content")
    jobs.unregister("t_labels")


# -- the codec -----------------------------------------------------------------------------------
def test_codec_round_trips_frames_arrays_and_registered_dataclasses():
    frame = pl.DataFrame({"a": [1, None, 3], "s": ["x", "退款", None], "l": [[1.0], [], None],
                          "f": [0.5, float("nan"), None]})
    value = {
        "frame": frame, "series": pl.Series("v", [1, 2]), "grid": np.arange(6, dtype=np.float32).reshape(2, 3),
        "labels": np.array([["a", None], ["b", "c"]], dtype=object), "nan": float("nan"), "inf": -math.inf,
        "pair": ("a", 2), "by_pair": {("a", "b"): ([1, 2], np.eye(2, dtype=np.int64))}, "when": datetime(2026, 1, 2),
        "none": None, "flag": np.bool_(True), "n": np.int64(7), "$odd": 1, "counted": _Counted(2, frame.head(2)),
    }
    back = decode_result(encode_result(value))
    assert back["frame"].equals(frame) and back["series"].to_list() == [1, 2]
    assert back["grid"].dtype == np.float32 and np.array_equal(back["grid"], value["grid"])
    assert back["labels"].tolist() == [["a", None], ["b", "c"]]
    assert math.isnan(back["nan"]) and back["inf"] == -math.inf
    assert back["pair"] == ("a", 2) and back["when"] == datetime(2026, 1, 2) and back["none"] is None
    axis, eye = back["by_pair"][("a", "b")]
    assert axis == [1, 2] and np.array_equal(eye, np.eye(2))
    assert back["flag"] is True and back["n"] == 7 and back["$odd"] == 1
    assert isinstance(back["counted"], _Counted) and back["counted"].texts.equals(frame.head(2))


def test_codec_refuses_unregistered_types_and_foreign_bytes():
    @dataclass
    class Unregistered:
        x: int

    with pytest.raises(TypeError, match="register"):
        encode_result(Unregistered(1))
    with pytest.raises(TypeError, match="set"):
        encode_result({1, 2})
    forged = encode_result(_Counted(1, pl.DataFrame())).replace(b"test_jobs:_Counted", b"builtins:eval_abcd")
    with pytest.raises(ValueError, match="unknown type"):
        decode_result(forged)
    with pytest.raises(ValueError, match="not a stored"):
        decode_result(b"\x80\x04pickle")


# -- store, versions, runner ---------------------------------------------------------------------------
def test_run_job_persists_and_get_or_none_reads_it(store, test_jobs):
    assert get_or_none(store, "ds", "t_content") is None
    done = run_job(store, "ds", "t_content", actor="cli")
    assert done.value.n == 12 and test_jobs["content"] == 1
    found = get_or_none(store, "ds", "t_content")
    assert found is not None and found.value.n == 12 and found.value.texts.height == 12
    assert found.params == {"limit": 1000} and found.seconds >= 0 and found.data_version > 0
    # other parameters are another result
    assert get_or_none(store, "ds", "t_content", {"limit": 5}) is None
    assert run_job(store, "ds", "t_content", {"limit": 5}, actor="cli").value.n == 5
    assert get_or_none(store, "ds", "t_content").value.n == 12
    info = store.result_versions("ds")
    assert sorted(info["job"].to_list()) == ["t_content", "t_content"] and (info["bytes"] > 0).all()
    with pytest.raises(ValueError, match="no parameter"):
        run_job(store, "ds", "t_content", {"limti": 5}, actor="cli")
    with pytest.raises(ValueError, match="unknown job"):
        run_job(store, "ds", "nope", actor="cli")
    assert store.delete_results("ds", "cli", job="t_content") == 2
    assert get_or_none(store, "ds", "t_content") is None


def test_an_import_makes_content_jobs_stale_and_a_review_only_label_jobs(store, tmp_path, test_jobs):
    run_job(store, "ds", "t_content", actor="cli")
    run_job(store, "ds", "t_labels", actor="cli")
    v0 = store.data_versions("ds")
    assert v0.labels >= v0.content > 0

    # a review: the labels changed, the texts did not
    store.append_review("ds", "s001", 1, 0, "rev", None, "cancel", "checked")
    v1 = store.data_versions("ds")
    assert v1.content == v0.content and v1.labels > v0.labels
    assert get_or_none(store, "ds", "t_content") is not None
    stale = lookup(store, "ds", "t_labels")
    assert get_or_none(store, "ds", "t_labels") is None and stale.stale and stale.result.value["reviews"] == 0
    assert run_job(store, "ds", "t_labels", actor="cli").value["reviews"] == 1

    # queue work does not change data
    store.enqueue("ds", ["s002"], "manual", "cli")
    assert store.data_versions("ds") == v1

    # an import of new samples: both stale
    import_rows(store, tmp_path, _rows(4, batch="b2", rnd=2, start=100), labels=LABELS)
    assert get_or_none(store, "ds", "t_content") is None and get_or_none(store, "ds", "t_labels") is None
    assert run_job(store, "ds", "t_content", actor="cli").value.n == 16

    # an exclusion changes the content
    before = store.data_versions("ds")
    store.set_excluded("ds", ["s000"], True, "cli")
    after = store.data_versions("ds")
    assert after.content > before.content and get_or_none(store, "ds", "t_content") is None


def test_a_result_computed_while_the_data_changed_is_stored_stale(store, test_jobs):
    def racing(store_, dataset, params, progress):
        store_.append_review(dataset, "s003", 1, 0, "rev", None, "other", "during the job")
        return 1

    jobs.register(Job("t_race", "Race", racing, depends="labels", order=902))
    try:
        run_job(store, "ds", "t_race", actor="cli")
        assert lookup(store, "ds", "t_race").stale
    finally:
        jobs.unregister("t_race")


def test_builtin_jobs_run_and_round_trip(store, tmp_path):
    import_rows(store, tmp_path, _rows(8, batch="b2", rnd=2, start=50), labels=LABELS)
    outcomes = analyze(store, ["ds"], actor="cli")
    assert [o.job for o in outcomes] == [j.name for j in jobs.ordered()]
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
    agreement = get_or_none(store, "ds", "agreement").value
    assert agreement.n_samples == 20 and agreement.annotators == ["alice", "bo"]
    assert set(agreement.view.summary["metric"]) >= {"fleiss_kappa"}
    assert ("alice", "bo") in agreement.confusions
    drift = get_or_none(store, "ds", "drift").value
    assert (drift.ref, drift.cur, drift.ref_n, drift.cur_n) == ("batch b1", "batch b2", 12, 8)
    assert drift.report.height > 0 and drift.trend is not None
    report = get_or_none(store, "ds", "quality").value
    assert report.n_samples == 20 and "exact_duplicates" in report.results
    assert isinstance(get_or_none(store, "ds", "iterations").value, dict)
    assert get_or_none(store, "ds", "annotators").value.annotators == ["alice", "bo"]
    from core.export import gold_frame

    summary, gold = get_or_none(store, "ds", "gold_summary").value, gold_frame(store, "ds")
    assert summary.n == gold.height and sum(summary.by_source.values()) == gold.height
    assert summary.head.equals(gold.drop("instruction", "input", "output", "text").head(100))
    # force=False skips what is current
    again = analyze(store, ["ds"], ["agreement"], actor="cli", force=False)
    assert again[0].skipped


def test_contamination_job_is_keyed_by_its_evaluation_set(store, tmp_path):
    long_en = ("the quick brown fox jumps over the lazy dog while the farmer counts his sheep in the "
               "green valley before the long winter night")
    long_zh = "请问在一个标准大气压下水的沸点是多少摄氏度以及为什么高原上水的沸点会更低呢"
    import_rows(store, tmp_path, [{"id": "leak-en", "text": f"Q: {long_en}?", "annotator": "alice", "label": LABELS[0]},
                                  {"id": "leak-zh", "text": f"问题：{long_zh}", "annotator": "alice", "label": LABELS[1]}],
                labels=LABELS)
    assert "contamination" not in [j.name for j in jobs.ordered()]  # on request only: it needs an evaluation set
    found = run_job(store, "ds", "contamination", {"eval_texts": [long_en, long_zh], "eval_name": "eval.jsonl"},
                    actor="cli").value
    assert sorted(found.frame["sample_id"].unique().to_list()) == ["leak-en", "leak-zh"]
    assert found.count == 2 and "2 evaluation items" in found.detail
    other = run_job(store, "ds", "contamination", {"eval_texts": ["an unrelated question about tides"]},
                    actor="cli").value
    assert other.count == 0
    # each set has its own stored result
    assert get_or_none(store, "ds", "contamination", {"eval_texts": [long_en, long_zh],
                                                      "eval_name": "eval.jsonl"}).value.count == 2
    with pytest.raises(ValueError, match="evaluation set"):
        run_job(store, "ds", "contamination", {"eval_texts": ["  "]}, actor="cli")


def test_quality_job_stores_the_masked_view_once(store, tmp_path):
    from core import privacy

    import_rows(store, tmp_path, [{"id": "pii-1", "text": "请联系 zhang.wei@example.com 或 13812345678 退款",
                                   "annotator": "alice", "label": LABELS[0]},
                                  {"id": "pii-2", "text": "请联系 zhang.wei@example.com 或 13812345678 退款",
                                   "annotator": "bo", "label": LABELS[0]}], labels=LABELS)
    report = run_job(store, "ds", "quality", actor="cli").value
    assert report.masked_results is not None
    raw_text = " ".join(str(v) for r in report.results.values() for c in r.frame.columns
                        if r.frame.schema[c] == pl.Utf8 for v in r.frame[c].to_list())
    assert "zhang.wei@example.com" in raw_text  # the raw findings are kept for a lead's reveal
    shown = privacy.mask_report(report)
    assert shown.masked_results is None and set(shown.results) == set(report.results)
    fresh = privacy.mask_report(replace(report, masked_results=None))
    for name, result in shown.results.items():
        assert result.frame.equals(fresh.results[name].frame), name
        text = " ".join(str(v) for c in result.frame.columns if result.frame.schema[c] == pl.Utf8
                        for v in result.frame[c].to_list())
        assert "zhang.wei@example.com" not in text and "13812345678" not in text, name


# -- authorization ---------------------------------------------------------------------------------------
@pytest.fixture
def team(tmp_path, monkeypatch):
    path = tmp_path / "users.toml"
    path.write_text("".join(f'[users."{n}"]\nrole = "{r}"\npassword_hash = "{hash_password(f"pw-{n}-123")}"\n\n'
                            for n, r in (("lena", "lead"), ("rita", "reviewer"))), encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    return path


def test_only_leads_and_system_actors_run_analyses(store, team, test_jobs, capsys):
    with pytest.raises(PermissionDenied, match="rita"):
        run_job(store, "ds", "t_content", actor="rita")
    with pytest.raises(PermissionDenied):
        store.put_result("ds", "t_content", {}, 1, data_version=1, seconds=0.0, actor="rita")
    with pytest.raises(PermissionDenied):
        analyze(store, ["ds"], ["t_content"], actor="rita")
    assert test_jobs["content"] == 0
    assert run_job(store, "ds", "t_content", actor="lena").value.n == 12
    assert run_job(store, "ds", "t_content", actor="system:jobs").value.n == 12
    store.close()
    assert main(["analyze", "--db", str(store.path), "--jobs", "t_content", "--actor", "rita"]) == 1
    assert "may not run or recompute analyses" in capsys.readouterr().err


# -- the CLI ------------------------------------------------------------------------------------------
def test_cli_analyze_runs_chosen_jobs_and_fails_on_a_failing_job(store, test_jobs, capsys):
    store.close()
    assert main(["analyze", "--db", str(store.path), "--jobs", "t_content,t_labels"]) == 0
    out = capsys.readouterr().out
    assert "ds\tt_content\t" in out and "ds\tt_labels\t" in out and "2 of 2 jobs done" in out
    assert get_or_none(open_store(store.path), "ds", "t_content").value.n == 12

    def broken(store_, dataset, params, progress):
        raise RuntimeError("boom")

    jobs.register(Job("t_broken", "Broken", broken, order=903))
    try:
        assert main(["analyze", "--db", str(store.path), "--dataset", "ds", "--jobs", "t_broken,t_content"]) == 1
        out = capsys.readouterr().out
        assert "FAILED: RuntimeError: boom" in out and "1 failed" in out and "ds\tt_content\t" in out
    finally:
        jobs.unregister("t_broken")
    assert main(["analyze", "--db", str(store.path), "--dataset", "nope"]) == 1
    assert main(["analyze", "--db", str(store.path), "--jobs", "nope"]) == 1


# -- the worker ---------------------------------------------------------------------------------------
def test_worker_runs_reports_progress_and_dedupes(store, test_jobs):
    seen = []
    gate = threading.Event()

    def slow(store_, dataset, params, progress):
        for i in range(5):
            progress(f"step {i}", i / 5)
            seen.append(i)
            gate.wait(5)
        return len(seen)

    jobs.register(Job("t_slow", "Slow", slow, order=904))
    worker = Worker(store)
    try:
        task = worker.submit("ds", "t_slow")
        assert worker.submit("ds", "t_slow") is task  # in flight: not queued twice
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert task.state == "running" and task.stage.startswith("step")
        gate.set()
        assert task.wait(30) and task.state == DONE and task.fraction == 1.0
        assert get_or_none(store, "ds", "t_slow").value == 5
        jobs.register(Job("t_fails", "Fails", lambda *a: 1 / 0, order=906))
        failing = worker.submit("ds", "t_fails")
        assert failing.wait(30) and failing.state == FAILED and "ZeroDivisionError" in failing.error
        assert worker.idle()
    finally:
        worker.shutdown()
        jobs.unregister("t_slow")
        jobs.unregister("t_fails")


def test_worker_cancels_a_running_job(store):
    started = threading.Event()

    def endless(store_, dataset, params, progress):
        started.set()
        while True:
            progress("spinning", 0.5)
            time.sleep(0.01)

    jobs.register(Job("t_endless", "Endless", endless, order=905))
    worker = Worker(store)
    try:
        task = worker.submit("ds", "t_endless")
        queued = worker.submit("ds", "t_content") if "t_content" in jobs.JOBS else None
        assert started.wait(10)
        assert worker.cancel("ds", "t_endless")
        assert task.wait(10) and task.state == CANCELLED
        assert get_or_none(store, "ds", "t_endless") is None  # nothing stored
        if queued is not None:
            assert queued.wait(30)
        assert not worker.cancel("ds", "t_endless")  # nothing in flight any more
    finally:
        worker.shutdown()
        jobs.unregister("t_endless")
    with pytest.raises(JobCancelled):
        task._progress("after", 1.0)


# -- a page over a job ------------------------------------------------------------------------------
def test_agreement_page_shows_progress_then_the_stored_result(app_env, tmp_path, monkeypatch):
    """The page never computes in its run: a slow job shows a progress bar, and the stored result once done."""
    from apptest_helpers import run_page, texts

    from core.jobs.worker import worker_for

    s = open_store(app_env)
    import_rows(s, tmp_path, _rows(), labels=LABELS)
    real = jobs.JOBS["agreement"]
    gate = threading.Event()

    def gated(store_, dataset, params, progress):
        progress("waiting for the test", 0.3)
        gate.wait(30)
        return real.run(store_, dataset, params, progress)

    monkeypatch.setitem(jobs.JOBS, "agreement", Job("agreement", real.title, gated, real.depends, real.defaults))
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "0.05")
    at = run_page("pages/agreement.py")
    assert not at.exception and not at.metric
    bars = at.get("progress")
    assert bars and "Agreement" in bars[0].proto.text
    gate.set()
    task = worker_for(s).task("ds", "agreement", {"batch": None, "round": None})
    assert task is not None and task.wait(60) and task.state == DONE
    at.run()
    assert not at.exception and {m.label for m in at.metric} >= {"Fleiss' kappa"}
    assert any(t.startswith("Computed at") for t in texts(at.caption))
    stored = s.result_versions("ds", "agreement")
    assert stored.height == 1
    # a rerun reads the stored result: nothing is recomputed
    at.run()
    assert s.result_versions("ds", "agreement")["computed_at"].to_list() == stored["computed_at"].to_list()
    assert [b for b in at.button if b.key == "agreement_job_recompute"]  # the local lead may recompute


def test_an_import_queues_the_stale_jobs_where_a_worker_runs(store, tmp_path, monkeypatch):
    from core import ingest
    from core.jobs.worker import enqueue_after_import, worker_for

    monkeypatch.setattr(ingest, "AFTER_IMPORT_HOOKS", [enqueue_after_import])
    import_rows(store, tmp_path, _rows(2, start=200), labels=LABELS)  # no worker for this store: nothing runs
    worker = worker_for(store)
    assert worker.tasks() == []
    try:
        import_rows(store, tmp_path, _rows(3, batch="b2", rnd=2, start=300), labels=LABELS)
        queued = worker.tasks()
        assert {t.job for t in queued} == {j.name for j in jobs.ordered()}
        assert all(t.wait(120) for t in queued) and {t.state for t in queued} == {DONE}
        assert all(get_or_none(store, "ds", j.name) is not None for j in jobs.ordered())
    finally:
        worker.shutdown()


def test_only_a_role_that_may_run_analyses_sees_recompute(app_env, tmp_path, monkeypatch):
    from apptest_helpers import run_page

    import ui.session

    import_rows(open_store(app_env), tmp_path, _rows(), labels=LABELS)
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "120")
    monkeypatch.setattr(ui.session, "can", lambda action: False)
    at = run_page("pages/agreement.py")
    assert not at.exception and {m.label for m in at.metric} >= {"Fleiss' kappa"}
    assert not [b for b in at.button if b.key == "agreement_job_recompute"]


# -- the pages' cache key (ui.cache) -----------------------------------------------------------------------------
def _page_data_key():
    import streamlit as st

    from ui.cache import data_key

    st.text(repr((data_key("ds"), data_key("ds", audit=True))))


def test_page_cache_key_ignores_reveals_and_queue_actions_but_not_reviews(app_env, tmp_path):
    from streamlit.testing.v1 import AppTest

    from core import privacy
    from core.review import save_review

    s = open_store(app_env)
    import_rows(s, tmp_path, _rows(), labels=LABELS)

    def keys():
        at = AppTest.from_function(_page_data_key, default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        return ast.literal_eval(at.text[0].value)  # the repr of two tuples of plain values

    key, audit_key = keys()
    assert key[1:] == ("ds", s.data_version("ds", "labels"))
    privacy.reveal(s, "local-lead", "ds", "test")  # a lead's reveal: audited, changes no data
    s.enqueue("ds", ["s001"], "manual", "local-lead")  # a queue action: neither
    after, after_audit = keys()
    assert after == key
    assert after_audit[2] > audit_key[2]  # what reads the queue or the log itself asks for audit=True
    save_review(s, "ds", "s001", "cancel", "local-lead", None, 0)  # a review changes the labels
    assert keys()[0][2] > key[2]
