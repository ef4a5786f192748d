"""Tests for core/drift_features.py: per-sample feature frames of two selections and their comparison."""

import json
import math

import polars as pl
import pytest

from core.drift import psi_categorical
from core.drift_features import (
    CONFIDENCE,
    LABEL,
    PREDICTED,
    Selection,
    SideData,
    align_features,
    annotator_labels,
    choose_prediction_rounds,
    compare_features,
    compare_sides,
    default_pair,
    embedding_texts,
    label_shares,
    latest_prediction_round,
    majority_labels,
    order_batches,
    psi_across,
    selection_features,
    selection_options,
    side_values,
)


def _samples(ids, instructions, outputs=None, batch="b1", round_=1):
    n = len(ids)
    return pl.DataFrame({
        "sample_id": ids,
        "instruction": instructions,
        "input": [None] * n,
        "output": outputs if outputs is not None else ["ok."] * n,
        "text": [None] * n,
        "batch": [batch] * n,
        "round": [round_] * n,
    }, schema_overrides={"input": pl.String, "text": pl.String, "round": pl.Int32})


def _ann(rows):
    return pl.DataFrame(rows, schema=["sample_id", "annotator", "label"], orient="row")


def _preds(rows):
    return pl.DataFrame(rows, schema={"sample_id": pl.String, "pred_round": pl.Int32, "predicted": pl.String,
                                      "confidence": pl.Float64}, orient="row")


# --- selections --------------------------------------------------------------------------------
def test_selection_label_and_store_args():
    assert Selection("batch", "r1").label == "batch r1"
    assert Selection("batch", "r1").store_args() == {"batch": "r1", "round": None}
    assert Selection("round", 3).store_args() == {"batch": None, "round": 3}
    with pytest.raises(ValueError, match="batch"):
        Selection("model", 1)


def test_default_pair_earliest_vs_latest_batch_then_rounds():
    assert default_pair(["r1", "r2", "r3"], [1, 2]) == (Selection("batch", "r1"), Selection("batch", "r3"))
    # one batch only: fall back to rounds (sorted)
    assert default_pair(["only"], [4, 2, 3]) == (Selection("round", 2), Selection("round", 4))
    assert default_pair(["only"], [1]) is None
    assert default_pair([], []) is None
    opts = selection_options(["a", "b"], [2, 1])
    assert [o.label for o in opts] == ["batch a", "batch b", "round 1", "round 2"]


# --- label columns -----------------------------------------------------------------------------
def test_majority_label_ties_are_missing():
    ann = _ann([("s1", "x", "A"), ("s1", "y", "A"), ("s1", "z", "B"),   # A wins 2:1
                ("s2", "x", "A"), ("s2", "y", "B"),                      # tie -> null
                ("s3", "x", "C"),                                        # single annotation
                ("s4", "x", None), ("s4", "y", "B")])                    # null label ignored
    out = majority_labels(ann)
    assert out.to_dicts() == [{"sample_id": "s1", "label": "A"}, {"sample_id": "s2", "label": None},
                              {"sample_id": "s3", "label": "C"}, {"sample_id": "s4", "label": "B"}]
    assert majority_labels(pl.DataFrame()).height == 0


def test_annotator_labels_one_column_per_annotator():
    ann = _ann([("s1", "bo", "A"), ("s1", "alice", "B"), ("s2", "alice", "A")])
    out = annotator_labels(ann)
    assert out.columns == ["sample_id", "label_by_alice", "label_by_bo"]
    assert out.rows() == [("s1", "B", "A"), ("s2", "A", None)]


# --- prediction round ----------------------------------------------------------------------------
def test_prediction_round_latest_common_else_own_latest():
    ref = _preds([("a", 1, "X", 0.9), ("a", 2, "X", 0.9), ("a", 3, "X", 0.9)])
    cur = _preds([("b", 2, "Y", 0.5), ("b", 4, "Y", 0.5)])
    assert choose_prediction_rounds(ref, cur) == (2, 2)        # same model on both sides
    assert choose_prediction_rounds(ref, _preds([("b", 5, "Y", 0.5)])) == (3, 5)
    assert choose_prediction_rounds(ref, None) == (3, None)
    assert latest_prediction_round(_preds([])) is None
    # the store's `round` name is accepted too
    assert latest_prediction_round(ref.rename({"pred_round": "round"})) == 3


# --- feature frames ------------------------------------------------------------------------------
def test_selection_features_columns_and_values():
    samples = _samples(["s1", "s2", "s3"], ["hello world", "你好，世界。", "a b c"], ["one.", "", "x y"])
    ann = _ann([("s1", "x", "A"), ("s1", "y", "A"), ("s2", "x", "B"), ("s2", "y", "A"),
                ("zz", "x", "A")])  # zz is not in the selection: ignored
    preds = _preds([("s1", 1, "A", 0.6), ("s1", 2, "B", 0.7), ("s3", 2, "A", None)])
    out = selection_features(samples, ann, preds)
    assert out.columns == ["sample_id", "batch", "round", "instruction_chars", "instruction_tokens",
                           "output_chars", "output_tokens", LABEL, PREDICTED, CONFIDENCE,
                           "label_by_x", "label_by_y"]  # input/text: no value -> no columns
    assert out["sample_id"].to_list() == ["s1", "s2", "s3"]
    assert out["instruction_chars"].to_list() == [11, 6, 5]
    assert out["instruction_tokens"].to_list() == [2, 6, 3]   # 4 ideographs + 2 punctuation runs
    assert out["output_chars"].to_list() == [4, 0, 3]
    assert out[LABEL].to_list() == ["A", None, None]          # s2 tie, s3 unannotated
    # latest prediction round (2): s1 -> B, s2 has none, s3 has no confidence
    assert out[PREDICTED].to_list() == ["B", None, "A"]
    assert out[CONFIDENCE].to_list() == [0.7, None, None]
    assert out["label_by_y"].to_list() == ["A", "A", None]
    # an explicit round
    assert selection_features(samples, ann, preds, pred_round=1)[PREDICTED].to_list() == ["A", None, None]
    # no annotations and no predictions: the label columns exist, all null
    bare = selection_features(samples)
    assert bare[LABEL].null_count() == 3 and bare[PREDICTED].null_count() == 3
    with pytest.raises(ValueError, match="sample_id"):
        selection_features(pl.DataFrame({"x": [1]}))


def test_align_adds_one_sided_columns_as_null():
    ref = pl.DataFrame({"sample_id": ["a"], "n": [1], "label_by_x": ["A"]})
    cur = pl.DataFrame({"sample_id": ["b", "c"], "n": [2, 3], "label_by_y": ["B", None]})
    r, c = align_features(ref, cur)
    assert r.columns == c.columns == ["sample_id", "n", "label_by_x", "label_by_y"]
    assert r.schema["label_by_y"] == pl.String and r["label_by_y"].to_list() == [None]
    assert c["label_by_x"].to_list() == [None, None]


# --- comparison ----------------------------------------------------------------------------------
def _two_sides():
    ref = SideData(
        _samples(["r1", "r2", "r3", "r4"], ["a", "a b", "a b c", "a b c d"], batch="b1"),
        _ann([("r1", "x", "A"), ("r2", "x", "A"), ("r3", "x", "B"), ("r4", "x", "B")]),
        _preds([("r1", 1, "A", 0.9), ("r2", 1, "A", 0.8), ("r3", 1, "B", 0.7), ("r4", 1, "B", 0.6)]),
    )
    cur = SideData(
        _samples(["c1", "c2", "c3", "c4"], ["a b c d e f", "a b c d e", "a b c d e f g", "a"], batch="b2",
                 round_=2),
        _ann([("c1", "x", "A"), ("c2", "x", "A"), ("c3", "x", "A"), ("c4", "x", "B"), ("c1", "y", "A")]),
        _preds([]),
    )
    return ref, cur


def test_compare_sides_report_sorted_and_hand_checked():
    ref, cur = _two_sides()
    res = compare_sides(ref, cur)
    rep = res.report
    assert rep["psi"].to_list() == sorted(rep["psi"].to_list(), reverse=True)
    by = {r["feature"]: r for r in rep.to_dicts()}
    # label: reference A,A,B,B vs current A,A,A,B -> (0.75-0.5)ln(1.5) + (0.25-0.5)ln(0.5)
    expected = 0.25 * math.log(1.5) - 0.25 * math.log(0.5)
    assert by[LABEL]["psi"] == pytest.approx(expected, abs=1e-12)
    assert by[LABEL]["psi"] == pytest.approx(psi_categorical(list("AABB"), list("AAAB")))
    assert by[LABEL]["kind"] == "categorical" and by[LABEL]["status"] == "significant"
    assert by["instruction_tokens"]["kind"] == "numeric" and by["instruction_tokens"]["ks_statistic"] is not None
    # unavailable: current has no predictions; annotator y labels only current samples
    unav = dict(res.unavailable.iter_rows())
    assert unav == {PREDICTED: "no values in current", CONFIDENCE: "no values in current",
                    "label_by_y": "no values in reference"}
    assert (res.ref_pred_round, res.cur_pred_round) == (1, None)
    assert "batch" not in set(rep["feature"]) and "round" not in set(rep["feature"])


def test_compare_features_empty_side_is_a_clear_error():
    ref, _ = _two_sides()
    feats = selection_features(ref.samples, ref.annotations)
    with pytest.raises(ValueError, match="current selection has no samples"):
        compare_features(feats, feats.head(0))


def test_missing_values_are_counted_not_binned():
    ref, cur = _two_sides()
    res = compare_sides(ref, cur)
    row = res.report.filter(pl.col("feature") == "label_by_x").row(0, named=True)
    assert (row["ref_n"], row["ref_missing"], row["cur_n"], row["cur_missing"]) == (4, 0, 4, 0)
    # annotator y: one rating in current -> compared? no: no values in reference (see above);
    # majority label with a tie is missing
    tie = SideData(cur.samples, _ann([("c1", "x", "A"), ("c1", "y", "B"), ("c2", "x", "A")]), _preds([]))
    rep = compare_sides(ref, tie).report.filter(pl.col("feature") == LABEL).row(0, named=True)
    assert (rep["cur_n"], rep["cur_missing"]) == (1, 3)


def test_psi_across_each_selection_vs_reference():
    ref, cur = _two_sides()
    empty = SideData(ref.samples.head(0), ref.annotations.head(0), _preds([]))
    out = psi_across(ref, {"round 1": ref, "round 2": cur, "round 3": empty})
    assert out["selection"].unique(maintain_order=True).to_list() == ["round 1", "round 2"]
    self_cmp = out.filter(pl.col("selection") == "round 1")
    assert self_cmp["psi"].max() == pytest.approx(0.0, abs=1e-12)
    lab = out.filter((pl.col("selection") == "round 2") & (pl.col("feature") == LABEL))["psi"].item()
    assert lab == pytest.approx(compare_sides(ref, cur).report.filter(pl.col("feature") == LABEL)["psi"].item())
    assert psi_across(ref, {}).columns == ["selection", "order", "feature", "psi", "status", "flagged"]


# --- chart data ----------------------------------------------------------------------------------
def test_label_shares_zero_filled_both_sides():
    ref = pl.DataFrame({LABEL: ["A", "A", "B", None]})
    cur = pl.DataFrame({LABEL: ["C", "A"]})
    out = label_shares(ref, cur)
    assert out.rows() == [("A", "reference", 2, 2 / 3), ("A", "current", 1, 0.5),
                          ("B", "reference", 1, 1 / 3), ("B", "current", 0, 0.0),
                          ("C", "reference", 0, 0.0), ("C", "current", 1, 0.5)]
    assert label_shares(ref, pl.DataFrame({"other": [1]})).filter(pl.col("side") == "current")["share"].sum() == 0


def test_side_values_long_form_drops_missing():
    ref = pl.DataFrame({"n": [1.0, None, float("nan")]})
    cur = pl.DataFrame({"n": [2.0, 3.0]})
    out = side_values(ref, cur, "n", names=("r1", "r4"))
    assert out.rows() == [("r1", 1.0), ("r4", 2.0), ("r4", 3.0)]


def test_embedding_texts_joins_fields_and_subsamples_deterministically():
    s = _samples(["a", "b"], ["ask", None], ["answer", "only output"])
    assert embedding_texts(s) == ["ask\nanswer", "only output"]
    big = _samples([f"s{i}" for i in range(50)], [f"t{i}" for i in range(50)], [None] * 50)
    picked = embedding_texts(big, max_texts=10, seed=3)
    assert len(picked) == 10 and picked == embedding_texts(big, max_texts=10, seed=3)
    assert picked == sorted(picked, key=lambda t: int(t[1:]))  # original order kept
    assert embedding_texts(big.head(0)) == []


# --- the store query behind a side ---------------------------------------------------------------
def test_store_selection_predictions(store, tmp_path):
    from core.ingest import import_file

    rows = [{"id": f"s{i}", "text": f"text {i}", "annotator": "a", "label": "x" if i % 2 else "y",
             "batch": "b1" if i < 3 else "b2", "round": 1 if i < 3 else 2} for i in range(5)]
    f = tmp_path / "a.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    import_file(store, f, "ds")
    for rnd in (1, 2):
        p = tmp_path / f"p{rnd}.jsonl"
        p.write_text("\n".join(json.dumps({"id": f"s{i}", "probs": {"x": 0.8, "y": 0.2}, "pred_round": rnd})
                               for i in range(5)) + "\n", encoding="utf-8")
        import_file(store, p, "ds")
    b1 = store.selection_predictions("ds", batch="b1")
    assert b1.columns == ["sample_id", "pred_round", "predicted", "confidence"]
    assert b1.height == 6 and set(b1["sample_id"]) == {"s0", "s1", "s2"}
    assert store.selection_predictions("ds", round=2)["sample_id"].unique().sort().to_list() == ["s3", "s4"]
    side = SideData(store.samples("ds", batch="b2"), store.annotations("ds", batch="b2"), b1.head(0))
    assert side.n_samples == 2


def test_order_batches_by_earliest_round_then_name():
    rounds = pl.DataFrame({"batch": ["current", "r2", "r1", "r1", None], "round": [5, 2, 1, 3, 4]})
    assert order_batches(["current", "r1", "r2", "zz", "aa"], rounds) == ["r1", "r2", "current", "aa", "zz"]
    assert order_batches(["b", "a"]) == ["a", "b"]
