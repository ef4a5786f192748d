"""The Iterations page (AppTest) and the core.metrics helpers that assemble its table."""

from __future__ import annotations

import base64
import itertools
import json

import numpy as np
import polars as pl
import pytest
from apptest_helpers import run_page, texts
from factories import write_jsonl as _write
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from test_page_quality import _settle, job_runs  # noqa: F401 (a fixture)

from core.metrics import (
    ITERATION_COLUMNS,
    combine_imported,
    confusion_shares,
    empty_imported,
    iteration_table,
    parse_imported_csv,
    progress_curve,
    round_metrics,
    volume_bars,
)

PAGE = "pages/iterations.py"
LABELS = ["cancel", "refund", "ship"]


# --------------------------------------------------------------------------- core helpers



@pytest.fixture(autouse=True)
def _jobs_finish_in_the_run(monkeypatch):
    """The page's analysis jobs run in the background worker; a page run waits for them here, so what the
    test sees does not depend on how busy the machine is."""
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "120")

def _vol(rows):
    return pl.DataFrame(rows, schema={"round": pl.Int64, "new_labeled": pl.Int64, "cumulative_labeled": pl.Int64},
                        orient="row")


def test_iteration_table_volume_asof_imported_and_change():
    preds = pl.DataFrame({"sample_id": ["a", "b", "c", "a", "b", "c"], "round": [1, 1, 1, 3, 3, 3],
                          "predicted": ["x", "y", "y", "x", "x", "y"]})
    gold = pl.DataFrame({"sample_id": ["a", "b", "c"], "gold_label": ["x", "x", "y"]})
    computed, _ = round_metrics(preds, gold)
    volume = _vol([(1, 2, 2), (2, 1, 3)])
    imported = pl.DataFrame({"round": [0, 0, 3], "n_labeled": [100, 100, 5],
                             "metric": ["macro_f1", "accuracy", "macro_f1"], "value": [0.5, 0.6, 0.9]})
    table = iteration_table(computed, volume, imported)
    assert table.columns == list(ITERATION_COLUMNS)
    assert table.select("round", "source").rows() == [(0, "imported"), (1, "computed"), (3, "computed"),
                                                      (3, "imported")]
    rows = {(r["round"], r["source"]): r for r in table.iter_rows(named=True)}
    # round 3 is not a labeling round: the cumulative volume of round 2 (the latest before it)
    assert rows[(1, "computed")]["n_labeled"] == 2 and rows[(1, "computed")]["new_labeled"] == 2
    assert rows[(3, "computed")]["n_labeled"] == 3 and rows[(3, "computed")]["new_labeled"] is None
    assert rows[(3, "imported")]["n_labeled"] == 5 and rows[(3, "imported")]["n_eval"] is None
    assert rows[(1, "computed")]["macro_f1"] == pytest.approx(f1_score(["x", "x", "y"], ["x", "y", "y"],
                                                                        average="macro"))
    assert rows[(3, "computed")]["macro_f1_change"] == pytest.approx(1.0 - rows[(1, "computed")]["macro_f1"])
    assert rows[(3, "imported")]["macro_f1_change"] == pytest.approx(0.4)
    assert rows[(1, "computed")]["macro_f1_change"] is None and rows[(0, "imported")]["accuracy"] == 0.6

    curve = progress_curve(table)  # computed preferred over imported in round 3
    assert curve.select("round", "source").rows() == [(0, "imported"), (1, "computed"), (3, "computed")]
    assert curve["change"][2] == pytest.approx(1.0 - curve["macro_f1"][1])
    bars = volume_bars(volume, table)
    assert bars.rows() == [(0, 100, "imported"), (1, 2, "computed"), (2, 3, "computed"), (3, 5, "imported")]


def test_iteration_table_empty_inputs():
    computed, _ = round_metrics(pl.DataFrame({"sample_id": [], "round": [], "predicted": []},
                                             schema={"sample_id": pl.String, "round": pl.Int64,
                                                     "predicted": pl.String}),
                                pl.DataFrame({"sample_id": [], "gold_label": []},
                                             schema={"sample_id": pl.String, "gold_label": pl.String}))
    table = iteration_table(computed, _vol([]), None)
    assert table.height == 0 and table.columns == list(ITERATION_COLUMNS)
    assert progress_curve(table).height == 0
    assert volume_bars(_vol([(1, 4, 4)]), table).rows() == [(1, 4, "computed")]


def test_parse_imported_csv_normalises_and_validates():
    data = "\ufeffRound, N_Labeled ,Metric,Value,comment\n2,68000.0, Macro_F1 ,0.891,x\n1,50000,macro_f1,0.832,\n" \
           "1,50000,accuracy,0.86,\n3,,weighted_f1,0.9,\n"
    table = parse_imported_csv(data.encode("utf-8"))
    assert table.schema == {"round": pl.Int64, "n_labeled": pl.Int64, "metric": pl.String, "value": pl.Float64}
    assert table.rows() == [(1, 50000, "accuracy", 0.86), (1, 50000, "macro_f1", 0.832),
                            (2, 68000, "macro_f1", 0.891), (3, None, "weighted_f1", 0.9)]
    assert parse_imported_csv("round,metric,value\n1,accuracy,0.5\n")["n_labeled"].to_list() == [None]


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    ("round,metric\n1,macro_f1\n".encode(), "no value column"),
    (b"round,n_labeled,metric,value\n", "no rows"),
    (b"round,n_labeled,metric,value\n1,10,macro_f1,83.2\n", "between 0 and 1"),
    (b"round,n_labeled,metric,value\n1,10,f2,0.8\n", "unknown metric"),
    (b"round,n_labeled,metric,value\n1.5,10,macro_f1,0.8\n", "round must hold whole numbers"),
    (b"round,n_labeled,metric,value\nfirst,10,macro_f1,0.8\n", "round must hold whole numbers"),
    (b"round,n_labeled,metric,value\n1,10,macro_f1,high\n", "value must hold numbers"),
    (b"round,n_labeled,metric,value\n1,10,macro_f1,0.8\n1,10,macro_f1,0.7\n", "more than one value"),
    (b"round,n_labeled,metric,value\n1,10,macro_f1,0.8\n1,11,accuracy,0.7\n", "n_labeled differs"),
    ("round,metric,value\n1,macro_f1,0.8\n".encode("utf-16"), "not UTF-8"),
])
def test_parse_imported_csv_errors(data, match):
    with pytest.raises(ValueError, match=match):
        parse_imported_csv(data)


def test_combine_imported_replaces_whole_rounds():
    old = pl.DataFrame({"round": [1, 1, 2], "n_labeled": [10, 10, 20], "metric": ["accuracy", "macro_f1", "macro_f1"],
                        "value": [0.7, 0.6, 0.8]})
    new = pl.DataFrame({"round": [2, 3], "n_labeled": [25, None], "metric": ["macro_f1", "macro_f1"],
                        "value": [0.85, 0.9]})
    assert combine_imported(old, new).rows() == [(1, 10, "accuracy", 0.7), (1, 10, "macro_f1", 0.6),
                                                 (2, 25, "macro_f1", 0.85), (3, None, "macro_f1", 0.9)]
    assert combine_imported(old, new, replace=True).rows() == [(2, 25, "macro_f1", 0.85), (3, None, "macro_f1", 0.9)]
    assert combine_imported(old, empty_imported(), replace=True).height == 0


def test_confusion_shares():
    out = confusion_shares(np.array([[3, 1], [0, 0]]))
    assert out.tolist() == [[0.75, 0.25], [0.0, 0.0]]
    with pytest.raises(ValueError, match="square"):
        confusion_shares([[1, 2, 3]])
    with pytest.raises(ValueError, match="negative"):
        confusion_shares([[1, -1], [0, 1]])


# --------------------------------------------------------------------------- page fixtures


def _arr(v):
    """A plotly JSON array: a plain list, or a typed array {"dtype", "bdata"} (plotly >= 6)."""
    if isinstance(v, dict) and "bdata" in v:
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return arr.reshape(v["shape"]).tolist() if "shape" in v else arr.tolist()
    return list(v)


def _charts(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _metrics(at):
    return {m.label: (m.value, m.delta) for m in at.metric}


def _gold_and_predictions():
    """Gold labels of s00-s11 and each round's predictions (5, 3 and 1 wrong in rounds 1, 2, 3)."""
    gold = {f"s{i:02d}": LABELS[i % 3] for i in range(12)}
    rng = np.random.default_rng(7)
    preds = {}
    for r, n_wrong in ((1, 5), (2, 3), (3, 1)):
        wrong = set(rng.choice(12, n_wrong, replace=False).tolist())
        preds[r] = {sid: (LABELS[(i % 3 + 1) % 3] if i in wrong else lab)
                    for i, (sid, lab) in enumerate(gold.items())}
    return gold, preds


def _fixture(app_env, tmp_path):
    """Annotations by 2 annotators over labeling rounds 1-2, and predictions of rounds 1-3.

    s00 is a tie settled by a review, s11's wrong majority is overridden by a review, s12 is a
    tie without review (no gold label).
    """
    from core.ingest import import_file
    from core.review import save_review
    from core.store import open_store

    gold, preds = _gold_and_predictions()
    rows = []
    for i, (sid, lab) in enumerate(gold.items()):
        rnd = 1 if i < 7 else 2
        other = LABELS[(i % 3 + 1) % 3]
        first = other if i == 11 else lab  # s11: both annotators agree on a wrong label
        second = other if i in (0, 11) else lab  # s00: a tie
        for ann, value in (("alice", first), ("bo", second)):
            rows.append({"id": sid, "text": f"message {i}", "annotator": ann, "label": value, "round": rnd})
    rows += [{"id": "s12", "text": "tie", "annotator": "alice", "label": "refund", "round": 2},
             {"id": "s12", "text": "tie", "annotator": "bo", "label": "cancel", "round": 2}]
    store = open_store(app_env)
    import_file(store, _write(tmp_path / "ann.jsonl", rows), "ds", labels=LABELS)
    save_review(store, "ds", "s00", gold["s00"], "lead", "tie", base_version=0)  # a tie settled by a review
    save_review(store, "ds", "s11", gold["s11"], "lead", "both wrong", base_version=0)  # beats the majority
    pred_rows = [{"id": sid, "pred_round": r, "prediction": p} for r, by in preds.items() for sid, p in by.items()]
    pred_rows.append({"id": "s12", "pred_round": 3, "prediction": "refund"})  # no gold: not evaluated
    import_file(store, _write(tmp_path / "pred.jsonl", pred_rows), "ds")
    return store, gold, preds


def _expected(gold, preds, r):
    ids = sorted(gold)
    t, p = [gold[i] for i in ids], [preds[r][i] for i in ids]
    return {"macro_f1": f1_score(t, p, average="macro"), "accuracy": accuracy_score(t, p),
            "weighted_f1": f1_score(t, p, average="weighted"), "cm": confusion_matrix(t, p, labels=LABELS)}


# --------------------------------------------------------------------------- page tests


def test_empty_states(app_env, tmp_path):
    from core.ingest import import_file
    from core.store import open_store

    at = run_page(PAGE)
    assert any("No dataset yet" in t for t in texts(at.info))

    store = open_store(app_env)
    import_file(store, _write(tmp_path / "a.jsonl", [{"id": "a", "text": "x", "label": "refund"}]), "only_labels")
    at = run_page(PAGE)
    assert not at.exception
    assert any("No model predictions in **only_labels** yet" in t for t in texts(at.info))
    assert not at.get("plotly_chart") and not at.metric
    assert [f.label for f in at.file_uploader] == ["Evaluation table (CSV)"]  # importing still possible

    rows = [{"id": "p1", "text": "x", "pred_round": 1, "prediction": "refund"},
            {"id": "p2", "text": "y", "pred_round": 2, "prediction": "cancel"}]
    import_file(store, _write(tmp_path / "p.jsonl", rows), "only_preds", labels=LABELS)
    at = run_page(PAGE, session={"dataset_picker": "only_preds"})
    assert not at.exception
    assert any("2 predictions in 2 round(s), but no sample has a gold label" in t for t in texts(at.info))
    assert not at.get("plotly_chart")


def test_cards_charts_confusion_and_table(app_env, tmp_path):
    store, gold, preds = _fixture(app_env, tmp_path)
    exp = {r: _expected(gold, preds, r) for r in (1, 2, 3)}
    at = run_page(PAGE)
    assert not at.exception, at.exception
    cards = _metrics(at)
    assert cards["Latest macro-F1"] == (f"{exp[3]['macro_f1']:.3f}",
                                        f"{exp[3]['macro_f1'] - exp[2]['macro_f1']:+.3f} vs round 2")
    assert cards["Labeled samples"] == ("12", "+5 in round 2")  # s12 is tied: no gold label
    assert cards["Rounds evaluated"][0] == "3"
    assert cards["Plateau"][0] == "Not yet"

    table = at.dataframe[-1].value  # the table of rounds
    assert table["round"].tolist() == [1, 2, 3] and set(table["source"]) == {"computed"}
    assert table["n_eval"].tolist() == [12, 12, 12]  # s12 has no gold label
    assert table["n_labeled"].tolist() == [7, 12, 12] and table["new_labeled"].tolist()[:2] == [7, 5]
    for r in (1, 2, 3):
        row = table[table["round"] == r].iloc[0]
        for m in ("macro_f1", "accuracy", "weighted_f1"):
            assert row[m] == pytest.approx(exp[r][m])

    progress, heat, cm = _charts(at)
    names = [t["name"] for t in progress["data"]]
    assert names == ["labeled samples", "macro-F1"]
    assert _arr(progress["data"][0]["y"]) == [7, 12]
    assert _arr(progress["data"][1]["y"]) == pytest.approx([exp[r]["macro_f1"] for r in (1, 2, 3)])
    assert progress["data"][1]["yaxis"] == "y2"
    # per-class F1: one row per label, one column per round
    z = _arr(heat["data"][0]["z"])
    assert sorted(heat["data"][0]["y"]) == LABELS and heat["data"][0]["x"] == ["round 1", "round 2", "round 3"]
    refund_row = z[heat["data"][0]["y"].index("refund")]
    ids = sorted(gold)
    assert refund_row == pytest.approx([f1_score([gold[i] for i in ids], [preds[r][i] for i in ids],
                                                 labels=["refund"], average=None)[0] for r in (1, 2, 3)])
    # confusion matrix of the latest round by default: rows true, columns predicted
    assert _arr(cm["data"][0]["z"]) == exp[3]["cm"].tolist()
    assert cm["data"][0]["x"] == LABELS and cm["data"][0]["y"] == LABELS

    at.selectbox(key="iter_cm_round").set_value(1).run()
    at.toggle(key="iter_cm_share").set_value(True).run()
    assert not at.exception
    cm = _charts(at)[2]
    np.testing.assert_allclose(_arr(cm["data"][0]["z"]), confusion_shares(exp[1]["cm"]))
    assert _arr(cm["data"][0]["customdata"]) == exp[1]["cm"].tolist()

    at.multiselect(key="iter_extra").set_value(["accuracy"]).run()
    progress = _charts(at)[0]
    acc = [t for t in progress["data"] if t["name"] == "accuracy"]
    assert acc and _arr(acc[0]["y"]) == pytest.approx([exp[r]["accuracy"] for r in (1, 2, 3)])


def test_imported_rounds_plateau_threshold_and_upload(app_env, tmp_path):
    from core.ingest import import_file
    from core.store import open_store

    store = open_store(app_env)
    import_file(store, _write(tmp_path / "a.jsonl", [{"id": "a", "text": "x", "label": "refund"}]), "ds")
    store.save_imported_round_metrics("ds", pl.DataFrame({
        "round": [1, 2, 3, 4], "n_labeled": [50000, 68000, 79000, 85000], "metric": ["macro_f1"] * 4,
        "value": [0.832, 0.891, 0.894, 0.896]}), actor="test")
    at = run_page(PAGE)
    assert not at.exception, at.exception
    assert any("The rounds shown are the imported ones" in t for t in texts(at.info))
    cards = _metrics(at)
    assert cards["Latest macro-F1"] == ("0.896", "+0.002 vs round 3")
    assert cards["Plateau"][0] == "Reached"  # gains 0.003 and 0.002 < 0.005, twice in a row
    assert any("curve has flattened" in t for t in texts(at.success))
    line = [t for t in _charts(at)[0]["data"] if t["name"] == "macro-F1 (imported)"][0]
    assert line["line"]["dash"] == "dash" and line["marker"]["symbol"] == "diamond-open"
    assert any("imported rounds carry summary metrics only" in t for t in texts(at.caption))

    at.number_input(key="iter_threshold").set_value(0.002).run()
    assert _metrics(at)["Plateau"][0] == "Not yet"  # 0.002 is not below 0.002
    at.number_input(key="iter_threshold").set_value(0.005).run()
    at.number_input(key="iter_patience").set_value(3).run()
    assert _metrics(at)["Plateau"][0] == "Not yet"  # the gain 0.059 of round 2 counts now
    at.number_input(key="iter_patience").set_value(4).run()
    assert _metrics(at)["Plateau"][0] == "Too early"

    # upload: add rounds 4 (replacing) and 5; an invalid file is refused and changes nothing
    csv = b"round,n_labeled,metric,value\n4,85000,macro_f1,0.91\n5,90000,macro_f1,0.95\n5,90000,accuracy,0.96\n"
    at.file_uploader(key="iter_import_file").set_value(("eval.csv", csv, "text/csv"))
    at.button[[b.label for b in at.button].index("Import evaluation table")].click().run()
    assert not at.exception, at.exception
    assert any("Imported 3 value(s) for 2 round(s) from eval.csv" in t for t in texts(at.success))
    saved = open_store(app_env).imported_round_metrics("ds")
    assert saved.filter(pl.col("round") == 4)["value"].to_list() == [0.91]
    assert saved.filter(pl.col("round") == 5).sort("metric")["value"].to_list() == [0.96, 0.95]
    assert saved["round"].n_unique() == 5
    assert _metrics(at)["Latest macro-F1"] == ("0.950", "+0.040 vs round 4")
    assert any(a["action"] == "metrics.import" for a in store.audit_log(dataset="ds").iter_rows(named=True))

    at.file_uploader(key="iter_import_file").set_value(
        ("bad.csv", b"round,n_labeled,metric,value\n6,1,macro_f1,95\n", "text/csv"))
    at.button[[b.label for b in at.button].index("Import evaluation table")].click().run()
    assert not at.exception
    assert any("between 0 and 1" in t for t in texts(at.error))
    assert open_store(app_env).imported_round_metrics("ds").height == saved.height

    at.checkbox(key="iter_remove_sure").check()
    at.button[[b.label for b in at.button].index("Remove imported rounds")].click().run()
    assert not at.exception
    assert open_store(app_env).imported_round_metrics("ds").height == 0
    assert any("No model predictions" in t for t in texts(at.info))


def test_read_only_role_sees_imported_rounds_without_forms(app_env, tmp_path, monkeypatch):
    import ui.session
    from core.ingest import import_file
    from core.store import open_store

    store = open_store(app_env)
    import_file(store, _write(tmp_path / "a.jsonl", [{"id": "a", "text": "x", "label": "refund"}]), "ds")
    store.save_imported_round_metrics("ds", pl.DataFrame({
        "round": [1, 2], "n_labeled": [10, 20], "metric": ["macro_f1"] * 2, "value": [0.8, 0.85]}), actor="test")
    monkeypatch.setattr(ui.session, "can_write", lambda: False)  # e.g. a stakeholder
    at = run_page(PAGE)
    assert not at.exception, at.exception
    assert _metrics(at)["Latest macro-F1"] == ("0.850", "+0.050 vs round 1")
    assert not at.file_uploader and "Remove imported rounds" not in [b.label for b in at.button]
    assert any("needs a role that may change data" in t for t in texts(at.caption))
    assert at.dataframe[-1].value["value"].tolist() == [0.8, 0.85]  # the imported values, read-only


def test_downloads_csv_and_standalone_html(app_env, tmp_path, monkeypatch):
    from streamlit.runtime.media_file_manager import MediaFileManager

    captured = {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def spy_add(self, data, mimetype, coordinates, file_name=None, **kw):
        captured[file_name] = data
        return add(self, data, mimetype, coordinates, file_name=file_name, **kw)

    def spy_deferred(self, fn, mimetype, coordinates, file_name=None, **kw):
        captured[file_name] = fn
        return add_deferred(self, fn, mimetype, coordinates, file_name=file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add", spy_add)
    monkeypatch.setattr(MediaFileManager, "add_deferred", spy_deferred)
    store, gold, preds = _fixture(app_env, tmp_path)
    at = run_page(PAGE)
    assert not at.exception, at.exception
    labels = [b.label for b in at.download_button]
    assert "Download the table (CSV)" in labels and "Download the charts (HTML report)" in labels

    table = pl.read_csv(captured["iterations_ds.csv"])
    assert table["round"].to_list() == [1, 2, 3]
    assert table["macro_f1"][2] == pytest.approx(_expected(gold, preds, 3)["macro_f1"])

    report = captured["iterations_ds.html"]()  # generated on click
    assert report.startswith("<!DOCTYPE html>") and report.rstrip().endswith("</html>")
    assert report.count("Plotly.newPlot") == 3  # progress, per-class heatmap, confusion matrix
    assert report.count("plotly.js v") == 1  # the library inline, once
    assert "<script src=" not in report and "require.js" not in report  # nothing fetched from the network
    assert "Iterations · ds" in report and "Latest macro-F1" in report and "<td>computed</td>" in report


def test_demo_renders(app_env):
    from core.seed import load_demo
    from core.store import open_store

    load_demo(open_store(app_env))
    at = run_page(PAGE)
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    assert table["round"].tolist() == [1, 2, 3, 4]
    f1 = table["macro_f1"].tolist()
    assert f1 == sorted(f1) and 0.78 < f1[0] < 0.87 and 0.9 < f1[-1] < 0.97  # majority gold, close to truth
    assert _metrics(at)["Latest macro-F1"][0] == f"{f1[-1]:.3f}"
    assert len(_charts(at)) == 3


# --------------------------------------------------------------------------- stored results (issue 18)
def test_the_stored_result_is_read_without_recomputing_and_a_stale_one_shows_progress(
        app_env, tmp_path, job_runs, monkeypatch):  # noqa: F811 (the fixture imported above)
    from core.review import save_review

    store, _, _ = _fixture(app_env, tmp_path)
    runs, gate = job_runs
    at = run_page(PAGE)
    assert not at.exception, at.exception
    assert runs == {"iterations": 1} and any("Computed at" in t for t in texts(at.caption))
    cards = [(m.label, m.value) for m in at.metric]
    again = run_page(PAGE)
    assert [(m.label, m.value) for m in again.metric] == cards and runs == {"iterations": 1}
    # round 1 has no previous round: its change is "—", never "None"; the score axis has round ticks of its own
    table = at.dataframe[-1].value
    assert table["macro_f1_change"].tolist()[0] == "—"
    assert "None" not in table.astype(str).to_numpy().ravel().tolist()
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    ticks = layout["yaxis2"]["tickvals"]
    assert ticks[-1] == 1.0 and all(round(t, 2) == t for t in ticks) and len(ticks) <= 8
    steps = {round(b - a, 2) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and steps <= {0.01, 0.02, 0.05, 0.1, 0.2}

    gate.clear()
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "0.2")
    save_review(store, "ds", "s12", "refund", "lead", "settle the tie", base_version=0)
    stale = run_page(PAGE)
    assert not stale.exception, stale.exception
    assert stale.get("progress") and any("earlier version of the data" in t for t in texts(stale.caption))
    assert [(m.label, m.value) for m in stale.metric] == cards  # the earlier result meanwhile
    gate.set()
    _settle(store)
    assert runs == {"iterations": 2}
