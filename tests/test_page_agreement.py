"""AppTest: the Agreement page (cards, heatmap, tables, filters, empty states, queueing disputed samples).

Also unit tests of the two views added to core.agreement for the page
(percent_agreement_by_group, kappa_matrix).
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import polars as pl
import pytest
from apptest_helpers import run_page, texts
from factories import write_jsonl as _write
from streamlit.proto.Metric_pb2 import Metric

from core import agreement as ag
from ui.format import band_color

_BAND_WORD = {"green": "good", "orange": "fair", "red": "retrain"}

PAGE = "pages/agreement.py"
LABELS = ["refund", "cancel", "other"]
ANNOTATORS = ("alice", "bo", "chen")


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _jobs_finish_in_the_run(monkeypatch):
    """The page's analysis job runs in the background worker; a page run waits for it here, so what the
    test sees does not depend on how busy the machine is."""
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "120")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """st.cache_data is process-wide: a page result of an earlier test's store must not leak in."""
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _rows():
    """16 samples in batches b1 (round 1) and b2 (round 2), annotated by alice, bo and chen.

    alice gives the true label; bo errs on s03 and s10; chen errs on every even sample (kappa
    against the majority well below 0.6); bo has no rating of s14, chen none of s15.
    Disputed: s10 (three different labels, a tie) and s14 (alice vs chen, a tie).
    """
    rows = []
    for i in range(16):
        sid, batch, rnd = f"s{i:02d}", ("b1" if i < 8 else "b2"), (1 if i < 8 else 2)
        truth = i % 3
        given = {
            "alice": truth,
            "bo": (truth + 1) % 3 if i in (3, 10) else truth,
            "chen": (truth + 2) % 3 if i % 2 == 0 else truth,
        }
        for ann, code in given.items():
            if (ann, i) in (("bo", 14), ("chen", 15)):
                continue
            rows.append({"id": sid, "text": f"退款问题 {i}: please help with order {i}", "annotator": ann,
                         "label": LABELS[code], "batch": batch, "round": rnd})
    return rows


def _store_with(app_env, tmp_path, rows, name="ds", labels=LABELS):
    from core.ingest import import_file
    from core.store import open_store

    store = open_store(app_env)
    import_file(store, _write(tmp_path / f"{name}.jsonl", rows), name, labels=labels)
    return store


def _matrix(store, name="ds", **filters):
    matrix, annotators, sample_ids = ag.ratings_matrix(store.annotations(name, **filters))
    return matrix, annotators, sample_ids


# -- helpers over the rendered page -------------------------------------------------------------
def _arr(v):
    """A plotly JSON array: a (nested) list, or a typed array {"dtype", "bdata", "shape"}."""
    if isinstance(v, dict) and "bdata" in v:
        flat = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if "shape" in v:
            shape = v["shape"]
            flat = flat.reshape([int(x) for x in (shape.split(",") if isinstance(shape, str) else shape)])
        return flat.tolist()
    return v


def _charts(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _heatmaps(at):
    return [c for c in _charts(at) if c["data"] and c["data"][0]["type"] == "heatmap"]


def _cards(at):
    return {m.label: m for m in at.metric}


def _color_name(card) -> str:
    """The colour of a metric card's delta as a name ("red", "green", …)."""
    return Metric.DESCRIPTOR.fields_by_name["color"].enum_type.values_by_number[card.proto.color].name.lower()


def _frame_with(at, column):
    frames = [df.value for df in at.dataframe if column in df.value.columns]
    assert frames, f"no table with column {column!r}"
    return frames[0]


# -- unit tests of the page's core views ----------------------------------------------------------
def test_percent_agreement_by_group_matches_percent_agreement_per_group():
    rng = np.random.default_rng(1)
    matrix = rng.integers(0, 3, size=(60, 4)).astype(object)
    matrix[rng.random(matrix.shape) < 0.3] = None
    groups = rng.choice(np.array(["b2", "b1", "b10"], dtype=object), size=60).tolist()
    groups[5] = None
    out = ag.percent_agreement_by_group(matrix, groups, threshold=0.5)
    assert out.columns == ["group", "n_samples", "n_compared", "percent_agreement", "rework"]
    assert out["group"].to_list() == ["b1", "b10", "b2", None]
    for row in out.iter_rows(named=True):
        rows = [i for i, g in enumerate(groups) if g == row["group"]]
        sub = matrix[rows]
        assert row["n_samples"] == len(rows)
        assert row["n_compared"] == int(((sub != None).sum(axis=1) >= 2).sum())  # noqa: E711
        expected = ag.percent_agreement(sub)
        if math.isnan(expected):
            assert math.isnan(row["percent_agreement"]) and row["rework"] is None
        else:
            assert row["percent_agreement"] == pytest.approx(expected, abs=1e-12)
            assert row["rework"] == (expected < 0.5)


def test_percent_agreement_by_group_edge_cases():
    out = ag.percent_agreement_by_group([["a", "a"], ["a", "b"], ["b", None]], pl.Series(["x", "x", "y"]))
    assert out.row(0) == ("x", 2, 2, 0.5, True)
    assert out.row(1)[:3] == ("y", 1, 0) and out.row(1)[4] is None
    assert math.isnan(out["percent_agreement"][1])
    assert ag.percent_agreement_by_group([["a", "a"]], [1]).rows() == [("1", 1, 1, 1.0, False)]
    assert ag.percent_agreement_by_group(np.empty((0, 2), dtype=object), []).height == 0
    with pytest.raises(ValueError, match="groups"):
        ag.percent_agreement_by_group([["a", "a"]], ["x", "y"])
    with pytest.raises(ValueError, match="groups"):
        ag.percent_agreement_by_group([["a", "a"]], "x")
    with pytest.raises(ValueError, match="threshold"):
        ag.percent_agreement_by_group([["a", "a"]], ["x"], threshold="high")


def test_kappa_matrix_is_symmetric_with_unit_diagonal():
    matrix = np.array([["a", "a", "b"], ["a", "b", "b"], ["b", "b", "a"], ["a", "a", "a"]], dtype=object)
    pairs = ag.pairwise_cohen_kappa(matrix, ["p", "q", "r"])
    grid = ag.kappa_matrix(pairs, ["p", "q", "r"])
    assert grid.shape == (3, 3)
    assert np.allclose(np.diag(grid), 1.0)
    assert np.allclose(grid, grid.T, equal_nan=True)
    assert grid[0, 1] == pytest.approx(ag.cohen_kappa(matrix[:, 0], matrix[:, 1]))
    assert grid[2, 0] == pytest.approx(ag.cohen_kappa(matrix[:, 0], matrix[:, 2]))
    # a pair that is missing (or undefined) is NaN; unknown names are ignored
    partial = ag.kappa_matrix(pairs.head(1), ["q", "p", "r", "zed"])
    assert partial[0, 1] == pytest.approx(grid[0, 1]) and math.isnan(partial[0, 2])
    undefined = ag.kappa_matrix(ag.pairwise_cohen_kappa([["a", "a"], ["a", "a"]], ["x", "y"]), ["x", "y"])
    assert math.isnan(undefined[0, 1]) and undefined[0, 0] == 1.0
    with pytest.raises(ValueError, match="pairwise"):
        ag.kappa_matrix(pl.DataFrame({"a": [1]}), ["x"])


# -- the page -----------------------------------------------------------------------------------
def test_empty_states(app_env, tmp_path):
    at = run_page(PAGE)
    assert any("No dataset yet" in t for t in texts(at.info))

    # samples but no annotations
    _store_with(app_env, tmp_path, [{"id": f"n{i}", "text": f"hello {i}", "batch": "b1"} for i in range(4)],
                name="bare", labels=["a", "b"])
    at = run_page(PAGE)
    assert not at.exception
    assert any("No annotations in **bare**" in t for t in texts(at.info))
    assert not at.metric

    # a single annotator
    rows = [{"id": f"o{i}", "text": f"hi {i}", "annotator": "solo", "label": "a"} for i in range(4)]
    _store_with(app_env, tmp_path, rows, name="one", labels=["a", "b"])
    at = run_page(PAGE, session={"dataset_picker": "one"})
    assert not at.exception
    assert any("Only one annotator (**solo**)" in t for t in texts(at.info))
    assert not at.metric and not _charts(at)


def test_cards_heatmap_and_tables_show_core_values(app_env, tmp_path):
    store = _store_with(app_env, tmp_path, _rows())
    matrix, annotators, _ = _matrix(store)
    at = run_page(PAGE)
    assert not at.exception, at.exception

    # metric cards: value, band colour and the bootstrap interval of core.agreement
    cards = _cards(at)
    for label, metric in (("Percent agreement", ag.percent_agreement), ("Fleiss' kappa", ag.fleiss_kappa),
                          ("Krippendorff's alpha", ag.krippendorff_alpha)):
        value = metric(matrix)
        low, high = ag.bootstrap_ci(metric, matrix, n_boot=1000, seed=0)
        card = cards[label]
        assert card.value == f"{value:.3f}"
        assert f"95% CI {low:.3f} – {high:.3f}" in card.proto.delta
        # kappa/alpha coloured by band (ui.format.band_color of the value), percent agreement by the
        # guideline's 90% rework rule; unless the interval is too wide to trust it: then gray, the word
        # marked "?" and a small-sample warning
        wide = high - low > 0.2
        if label == "Percent agreement":
            color, word = ("green", "≥ 90%") if value >= ag.REWORK_THRESHOLD else ("red", "rework (< 90%)")
        else:
            color, word = band_color(value), _BAND_WORD[band_color(value)]
        assert _color_name(card) == ("gray" if wide else color)
        assert word + ("?" if wide else "") in card.proto.delta
    assert cards["Percent agreement"].proto.delta.startswith("rework (< 90%)")  # 0.583: not a kappa band word
    assert "90%" in cards["Percent agreement"].help and "not by the kappa bands" in cards["Percent agreement"].help
    assert any("Few samples" in t for t in texts(at.warning))  # 16 samples: every interval is wide

    # pairwise kappa heatmap: annotators × annotators, diagonal 1, values of pairwise_cohen_kappa
    heat = _heatmaps(at)[0]["data"][0]
    assert list(heat["x"]) == annotators == list(ANNOTATORS) and list(heat["y"]) == annotators
    z = np.array(_arr(heat["z"]), dtype=float)
    # coloured by the bands of the cards: red below 0.6, amber 0.6–0.8, green from 0.8 (a stepped scale)
    scale = _heatmaps(at)[0]["layout"]["coloraxis"]["colorscale"]
    assert [stop for stop, _ in scale] == [0.0, 0.6, 0.6, 0.8, 0.8, 1.0]
    assert scale[0][1] == scale[1][1] != scale[2][1] == scale[3][1] != scale[4][1] == scale[5][1]
    assert np.allclose(np.diag(z), 1.0)
    pairs = ag.pairwise_cohen_kappa(matrix, annotators)
    for a, b, kappa, _n in pairs.iter_rows():
        i, j = annotators.index(a), annotators.index(b)
        assert z[i, j] == pytest.approx(kappa) and z[j, i] == pytest.approx(kappa)

    # per-annotator table: chen is flagged below 0.6, alice is not
    report = ag.annotator_report(matrix, annotators)
    table = _frame_with(at, "kappa_vs_majority")
    assert list(table["annotator"]) == annotators
    assert list(table["n_items"]) == report["n_items"].to_list()
    assert np.allclose(table["kappa_vs_majority"], report["kappa_vs_majority"].to_numpy(), equal_nan=True)
    flags = dict(zip(table["annotator"], table["retrain"]))
    assert flags["chen"] and not flags["alice"]
    assert any("chen" in t and "retrain" in t for t in texts(at.warning))

    # per-label agreement and per-batch rework flags
    per_label = _frame_with(at, "n_ratings")
    assert np.allclose(per_label["agreement"], ag.per_label_agreement(matrix)["agreement"].to_numpy())
    batches = _frame_with(at, "rework")
    b1 = ag.percent_agreement(_matrix(store, batch="b1")[0])
    row = batches[batches["group"] == "b1"].iloc[0]
    assert row["percent_agreement"] == pytest.approx(b1) and bool(row["rework"]) == (b1 < 0.9)
    batch_chart = next(c for c in _charts(at) if c["data"] and c["data"][0]["type"] == "bar")
    assert {t["name"] for t in batch_chart["data"]} <= {"rework (< 90%)", "≥ 90%"}  # not "True" / "False"
    assert any("in batches b1, b2" in t or "in batch b" in t for t in texts(at.warning))

    # disputed samples: exactly core's disputed rows, with text and each annotator's label
    disputed = _frame_with(at, "why")
    assert sorted(disputed["sample_id"]) == ["s10", "s14"]
    s10 = disputed[disputed["sample_id"] == "s10"].iloc[0]
    assert "退款问题 10" in s10["text"]
    assert {s10["label_by_alice"], s10["label_by_bo"], s10["label_by_chen"]} == set(LABELS)
    # missing ratings (bo has none of s14) and unadjudicated samples read "—", never "None"
    s14 = disputed[disputed["sample_id"] == "s14"].iloc[0]
    assert s14["label_by_bo"] == "—" and s14["adjudicated"] == "—"
    assert "None" not in disputed.astype(str).to_numpy().ravel().tolist()
    assert any(b.label.startswith("Queue 2 disputed samples") for b in at.button)


def test_confusion_matrix_of_a_chosen_pair(app_env, tmp_path):
    store = _store_with(app_env, tmp_path, _rows())
    matrix, annotators, _ = _matrix(store)
    at = run_page(PAGE)
    at.selectbox(key="agreement_pair_b").set_value("chen").run()
    assert not at.exception
    conf = _heatmaps(at)[1]["data"][0]
    axis, expected = ag.pair_confusion(matrix, annotators.index("alice"), annotators.index("chen"))
    assert list(conf["x"]) == axis
    assert np.array_equal(np.array(_arr(conf["z"])), expected)


def test_round_filter_recomputes_on_the_round(app_env, tmp_path):
    store = _store_with(app_env, tmp_path, _rows())
    at = run_page(PAGE)
    at.selectbox(key="agreement_round").set_value(2).run()
    assert not at.exception
    matrix, _, sample_ids = _matrix(store, round=2)
    assert len(sample_ids) == 8
    assert _cards(at)["Fleiss' kappa"].value == f"{ag.fleiss_kappa(matrix):.3f}"
    assert list(_frame_with(at, "rework")["group"]) == ["b2"]


def test_queueing_disputed_samples_writes_the_queue_and_the_audit_log(app_env, tmp_path):
    store = _store_with(app_env, tmp_path, _rows())
    at = run_page(PAGE)
    at.button(key="agreement_queue").click().run()
    assert not at.exception, at.exception
    assert any("Queued 2 disputed samples" in t for t in texts(at.success))

    queue = store.queue("ds", reason="disagreement")
    assert sorted(queue["sample_id"]) == ["s10", "s14"]
    assert set(queue["status"]) == {"open"} and set(queue["created_by"]) == {"local-lead"}
    audit = store.audit_log(dataset="ds", action="queue.add")
    assert audit.height == 1 and audit["new_value"][0] == "disagreement"

    # a second click adds nothing: the entries are already open
    at.button(key="agreement_queue").click().run()
    assert any("Queued 0 disputed samples" in t and "2 were already in the queue" in t for t in texts(at.success))
    assert store.queue("ds", reason="disagreement").height == 2


def test_adjudicated_samples_are_listed_but_not_queued_again(app_env, tmp_path):
    store = _store_with(app_env, tmp_path, _rows())
    store.append_review("ds", "s10", 1, 0, "rev", None, "cancel", "adjudicated")  # s10 is resolved
    at = run_page(PAGE)
    disputed = _frame_with(at, "why")
    adjudicated = dict(zip(disputed["sample_id"], disputed["adjudicated"]))
    assert adjudicated == {"s10": "cancel", "s14": "—"}
    assert any("1 of the 2 disputed samples are already adjudicated" in t for t in texts(at.caption))
    at.button(key="agreement_queue").click().run()
    assert any("Queued 1 disputed samples" in t for t in texts(at.success))
    assert store.queue("ds", reason="disagreement")["sample_id"].to_list() == ["s14"]


def test_undefined_metric_shows_its_reason(app_env, tmp_path):
    rows = [{"id": f"u{i}", "text": f"same {i}", "annotator": ann, "label": "refund"}
            for i in range(5) for ann in ("alice", "bo")]
    _store_with(app_env, tmp_path, rows)
    at = run_page(PAGE)
    assert not at.exception
    cards = _cards(at)
    assert cards["Percent agreement"].value == "1.000"
    assert cards["Fleiss' kappa"].value == "—" and cards["Krippendorff's alpha"].value == "—"
    assert any(t.startswith("Undefined:") and "only one label" in t for t in texts(at.caption))
    assert any("No disputed samples" in t for t in texts(at.success))


def test_read_only_role_sees_no_queue_button(app_env, tmp_path, monkeypatch):
    import ui.session

    monkeypatch.setattr(ui.session, "can_write", lambda: False, raising=False)
    monkeypatch.setattr(ui.session, "can", lambda action: False)
    _store_with(app_env, tmp_path, _rows())
    at = run_page(PAGE)
    assert not at.exception
    assert not [b for b in at.button if b.key == "agreement_queue"]
    assert any("cannot queue" in t for t in texts(at.caption))


def test_without_batches_a_note_replaces_the_batch_chart(app_env, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "batch"} for r in _rows()]
    _store_with(app_env, tmp_path, rows)
    at = run_page(PAGE)
    assert not at.exception, at.exception
    assert any("No batches in this selection" in t for t in texts(at.info))
    assert not [c for c in _charts(at) if c["data"] and c["data"][0]["type"] == "bar"]
    assert not any("(no batch)" in t for t in texts(at.warning))
