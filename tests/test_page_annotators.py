"""AppTest: the Annotators page (quality table, weakest annotator, rounds, confusion, methods compared, settings,
queueing) and the numbers of core.analyses.annotators behind it."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from apptest_helpers import run_page, texts
from crowds import LABELS, configure_users, crowd_rows
from factories import import_rows
from test_page_quality import _settle, job_runs  # noqa: F401 (a fixture)

from core.analyses.annotators import annotators_view
from core.gold import set_consensus_method
from core.store import open_store

PAGE = "pages/annotators.py"



@pytest.fixture(autouse=True)
def _jobs_finish_in_the_run(monkeypatch):
    """The page's analysis jobs run in the background worker; a page run waits for them here, so what the
    test sees does not depend on how busy the machine is."""
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "120")

@pytest.fixture
def crowd(app_env, tmp_path):
    """The app's store (app_env clears the page caches) with 60 samples rated by 3 of 4 annotators (``weak`` at 35%), probabilities for all."""
    store = open_store(app_env)
    rows, truth = crowd_rows(probs=True)
    import_rows(store, tmp_path, rows, name="ds", labels=LABELS, pred_round=1)
    return store, truth


def _button(at, label_start: str):
    found = [b for b in at.button if b.label.startswith(label_start)]
    assert found, [b.label for b in at.button]
    return found[0]


def _metric(at, label: str):
    return next(m for m in at.metric if m.label == label)


# ------------------------------------------------------------------------ the numbers
def test_view_finds_the_weak_annotator_and_explains_its_numbers(crowd):
    store, _ = crowd
    view = annotators_view(store, "ds")
    assert view.weakest == "weak" and view.weakest_by == "dawid_skene"
    table = {r["annotator"]: r for r in view.table.iter_rows(named=True)}
    # flagged by the dataset's method (majority) and by kappa against the others' majority, as Agreement flags
    assert table["weak"]["flagged"] and "majority agreement" in table["weak"]["why"]
    assert "kappa vs the others' majority" in table["weak"]["why"]
    assert not any(table[a]["flagged"] for a in ("ana", "ben", "cai"))
    for row in table.values():
        assert row["majority_low"] <= row["majority"] <= row["majority_high"]
        assert 0 <= row["dawid_skene"] <= 1 and 0 <= row["crowdlab"] <= 1
        assert row["n_gold"] == 0 and math.isnan(row["gold_accuracy"])
    assert sum(r["n_items"] for r in table.values()) == store.annotations("ds").height
    assert view.methods == ["majority", "dawid_skene", "crowdlab"] and view.prob_round == 1
    # small multiples: every annotator, both methods, both rounds
    assert view.per_round.select("annotator", "method", "round").unique().height == 4 * 2 * 2
    # the gold-label confusion counts every rated sample that has a gold label
    classes, counts = view.gold_confusion["weak"]
    assert classes == LABELS and counts.sum() <= table["weak"]["n_items"]
    _, matrix = view.ds_confusion["weak"]
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    # the comparison: the changes add up, and each listed sample differs under some method
    for row in view.changes.iter_rows(named=True):
        assert row["n_changed"] == row["n_relabeled"] + row["n_new"] + row["n_dropped"]
    assert view.changes.filter(pl.col("method") == "majority")["n_changed"].item() == 0
    assert view.comparison.height >= max(view.changes["n_changed"]) > 0
    differs = pl.any_horizontal([pl.col(m).ne_missing(pl.col("current")) for m in view.methods])
    assert view.comparison.filter(differs).height == view.comparison.height


def test_view_with_gold_questions_scores_and_flags(crowd):
    store, truth = crowd
    ids = sorted(truth)[::2]
    store.set_gold_questions("ds", pl.DataFrame({"sample_id": ids, "gold_label": [truth[s] for s in ids]}),
                             "local-lead")
    view = annotators_view(store, "ds")
    weak = view.table.filter(pl.col("annotator") == "weak").row(0, named=True)
    assert weak["n_gold"] > 0 and weak["gold_accuracy"] < 0.6 and "gold accuracy" in weak["why"]
    assert weak["gold_accuracy_low"] <= weak["gold_accuracy"] <= weak["gold_accuracy_high"]
    assert view.n_gold_questions == len(ids)


# ------------------------------------------------------------------------ the page
def test_page_shows_the_table_weakest_charts_and_comparison(crowd):
    at = run_page(PAGE)
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert any("Weakest annotator: **weak**" in t for t in texts(at.warning)), texts(at.warning)
    shown = at.dataframe[0].value
    assert list(shown["annotator"]) == ["ana", "ben", "cai", "weak"]
    assert list(shown["flagged"]) == [False, False, False, True]
    assert {"Majority vote", "Dawid-Skene", "CROWDLAB"} == {m.label for m in at.metric}
    assert "current method" in _metric(at, "Majority vote").delta
    assert "would change" in _metric(at, "Dawid-Skene").delta and int(_metric(at, "Dawid-Skene").value) > 0
    assert at.selectbox(key="annotators_who").value == "weak"  # the confusion opens on the weakest
    assert len(at.get("plotly_chart")) == 2
    assert [b.label for b in at.button][:2] == ["Recompute", "Save"]  # a lead's


def test_a_lead_switches_the_method_and_queues_the_changed_samples(crowd):
    store, _ = crowd
    at = run_page(PAGE)
    at.selectbox(key="annotators_method").set_value("dawid_skene")
    _button(at, "Save").click().run()
    assert not at.exception, at.exception
    assert store.get_dataset("ds").settings["consensus_method"] == "dawid_skene"
    assert store.audit_log(dataset="ds", action="dataset.setting")["new_value"].to_list() == ['"dawid_skene"']
    assert any("gold labels now use Dawid-Skene" in t for t in texts(at.success)), texts(at.success)
    assert "current method" in _metric(at, "Dawid-Skene").delta  # now the current method
    changed = int(_metric(at, "Majority vote").value)
    assert changed > 0
    view = annotators_view(store, "ds")
    at.selectbox(key="annotators_queue_reason").set_value("low_consensus")
    _button(at, "Queue the").click().run()
    assert not at.exception, at.exception
    queued = store.queue("ds", reason="low_consensus")
    assert queued.height == view.comparison.height
    assert set(queued["sample_id"]) == set(view.comparison["sample_id"])
    assert any(f"Queued {queued.height:,} changed samples" in t for t in texts(at.success)), texts(at.success)


def test_a_lead_queues_low_consensus_and_downloads_the_needs_more_list(crowd):
    store, _ = crowd
    at = run_page(PAGE)
    at.number_input(key="annotators_route_threshold").set_value(0.9).run()
    _button(at, "Queue samples with confidence below 0.9").click().run()
    assert not at.exception, at.exception
    queued = store.queue("ds", reason="low_consensus")
    assert queued.height > 0 and any("Low consensus confidence" in t for t in texts(at.success))
    captions = " ".join(texts(at.caption))
    assert "fewer than 3 ratings" in captions


def test_a_stakeholder_reads_but_changes_nothing(crowd, tmp_path, monkeypatch):
    store, _ = crowd
    configure_users(monkeypatch, tmp_path, {"sam": "stakeholder"})
    at = run_page(PAGE, session={"auth_user": "sam"})
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert at.dataframe and not [b for b in at.button]  # no Save, no queue buttons
    with pytest.raises(KeyError):
        at.selectbox(key="annotators_method")
    assert store.queue("ds").height == 0


def test_without_probabilities_crowdlab_is_not_compared_and_says_why(app_env, tmp_path):
    store = open_store(app_env)
    import_rows(store, tmp_path, crowd_rows(n=40)[0], name="ds", labels=LABELS)
    set_consensus_method(store, "ds", "crowdlab", "local-lead")
    at = run_page(PAGE)
    assert not at.exception, at.exception
    assert {m.label for m in at.metric} == {"Majority vote", "Dawid-Skene"}
    assert any("CROWDLAB needs" in t for t in texts(at.caption)), texts(at.caption)


def test_a_dataset_without_annotations_says_what_to_import(app_env, tmp_path):
    store = open_store(app_env)
    import_rows(store, tmp_path, [{"id": f"t{i}", "text": f"hello {i}"} for i in range(5)], name="bare",
                labels=LABELS)
    at = run_page(PAGE)
    assert not at.exception, at.exception
    assert any("No annotations" in t for t in texts(at.info)), texts(at.info)


# ------------------------------------------------------------------------ stored results (issue 18)
def test_the_stored_result_is_read_without_recomputing_and_a_stale_one_shows_progress(
        crowd, job_runs, monkeypatch):  # noqa: F811 (the fixture imported above)
    store, _ = crowd
    runs, gate = job_runs
    first = run_page(PAGE)
    assert not first.exception, first.exception
    assert runs == {"annotators": 1}
    assert any("Computed at" in t for t in texts(first.caption))
    table = first.dataframe[0].value
    again = run_page(PAGE)  # a reload: the stored result
    assert again.dataframe[0].value.equals(table) and runs == {"annotators": 1}
    gate.clear()
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "0.2")
    set_consensus_method(store, "ds", "dawid_skene", "local-lead")  # a setting: the labels change
    stale = run_page(PAGE)
    assert not stale.exception, stale.exception
    assert stale.get("progress") and any("earlier version of the data" in t for t in texts(stale.caption))
    assert stale.dataframe[0].value.equals(table)  # the earlier result meanwhile
    gate.set()
    _settle(store)
    assert runs == {"annotators": 2}


def test_flags_agree_with_the_agreement_page_and_no_literal_none(crowd):
    """The majority measure leaves the annotator's own vote out, as Agreement does, and every annotator
    Agreement flags (kappa against the others' majority below 0.6) is flagged here, saying why."""
    from core.agreement import annotator_report
    from core.analyses.agreement import load_ratings

    store, _ = crowd
    view = annotators_view(store, "ds")
    ratings = load_ratings(store, "ds")
    agreement = {r["annotator"]: r for r in annotator_report(ratings.matrix, ratings.annotators).iter_rows(named=True)}
    for row in view.table.iter_rows(named=True):
        theirs = agreement[row["annotator"]]
        assert row["majority"] == pytest.approx(theirs["agreement_with_majority"])
        assert row["n_compared"] == theirs["n_compared"]
        assert row["kappa_vs_majority"] == pytest.approx(theirs["kappa_vs_majority"])
        if theirs["flag"]:
            assert row["flagged"] and "kappa vs the others' majority" in row["why"]
    at = run_page(PAGE)
    shown = at.dataframe[0].value
    assert "None" not in shown.astype(str).to_numpy().ravel().tolist()
    assert set(shown["gold_accuracy"]) == {"—"} and set(shown["gold_kappa"]) == {"—"}  # no gold questions
