"""Tests of core.quality_report (the store-level quality checks) and `python -m core quality`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from quality_fixtures import LABELS, PHONE, build_planted_store

from core import quality as q
from core import quality_report as qr
from core.embeddings import EmbeddingModel

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def planted(store, tmp_path):
    return build_planted_store(store, tmp_path, textonly=True)


@pytest.fixture
def report(planted):
    return qr.run_report(planted, "qa", label_errors="model")


def expected_counts(store, dataset: str, include_excluded: bool = False) -> dict[str, int]:
    """The summary counts recomputed straight from core.quality (the definitions the cards promise)."""
    samples = store.samples(dataset, include_excluded=include_excluded)
    texts = q.combine_fields(samples, [f for f in qr.TEXT_FIELDS if samples[f].is_not_null().any()])
    exact = q.exact_duplicates(texts)
    later = {i for g in exact for i in g[1:]}
    near = q.near_duplicates([None if i in later else t for i, t in enumerate(texts)])
    fields = [f for f in ("instruction", "output") if samples[f].is_not_null().any()] or ["text"]
    completeness = q.completeness_issues(samples, required=fields)
    ids = samples["sample_id"].to_list()

    def flagged(finder):
        return sum(any(finder(row[f]) for f in qr.TEXT_FIELDS if row[f]) for row in samples.iter_rows(named=True))

    return {
        "exact_duplicates": sum(len(g) - 1 for g in exact),
        "near_duplicates": sum(len(g) - 1 for g in near),
        "completeness": len(set(completeness["sample_id"].to_list()) & set(ids)),
        "cleaning": flagged(q.cleaning_findings),
        "pii": flagged(q.find_pii),
    }


def _summary(report) -> dict[str, int | None]:
    return dict(report.summary.select("check", "count").iter_rows())


# -- the checks -----------------------------------------------------------------------------------
def test_counts_equal_core_functions(planted, report):
    counts = _summary(report)
    expected = expected_counts(planted, "qa")
    assert {k: counts[k] for k in expected} == expected
    # the first six checks; the instruction-data checks find nothing here, contamination has no evaluation set
    assert counts == {"exact_duplicates": 2, "near_duplicates": 1, "completeness": counts["completeness"],
                      "cleaning": 1, "pii": 1, "label_errors": 1, "language_mismatch": 0, "refusal": 0,
                      "repetition": 0, "chat_structure": 0, "template_leakage": 0, "contamination": None,
                      "length_ratio": 0}
    shares = dict(report.summary.select("check", "share").iter_rows())
    assert report.n_samples == 23
    assert shares["pii"] == pytest.approx(1 / 23)
    assert list(report.summary["check"]) == list(qr.CHECKS)


def test_exact_duplicate_groups(report):
    dup = report.exact_duplicates
    groups = dup.group_by("group", maintain_order=True).agg("sample_id")["sample_id"].to_list()
    assert groups == [["q01", "q21"], ["q02", "q22"]]
    assert dup.filter(pl.col("sample_id") == "q21")["identical"].item() is True
    assert dup.filter(pl.col("sample_id") == "q22")["identical"].item() is False  # case/whitespace only
    assert dup.filter(pl.col("first"))["sample_id"].to_list() == ["q01", "q02"]
    assert set(dup["similarity"]) == {1.0}


def test_near_duplicate_cluster_with_pair_similarity(report):
    assert report.near_duplicates["sample_id"].to_list() == ["q03", "q23"]
    pair = report.near_duplicate_pairs.row(0, named=True)
    assert (pair["sample_id_a"], pair["sample_id_b"]) == ("q03", "q23")
    expected = q.near_duplicate_pairs([pair["text_a"], pair["text_b"]])["jaccard"].item()
    assert 0.8 <= pair["jaccard"] < 1.0 and pair["jaccard"] == pytest.approx(expected)
    # exact duplicates are the other check's, not repeated as near duplicates
    assert not set(report.near_duplicates["sample_id"]) & {"q21", "q22"}


def test_near_duplicate_threshold_is_configurable(planted):
    strict = qr.run_report(planted, "qa", threshold=0.95)
    assert strict.near_duplicates.height == 0
    assert _summary(strict)["near_duplicates"] == 0


def test_pii_span_context_and_mask(report, planted):
    # masked by default: the match and its context show no raw personal data
    row = report.pii.row(0, named=True)
    assert (row["sample_id"], row["field"], row["kind"], row["match"]) == ("q05", "instruction", "phone", "***5678")
    assert row["before"] == "请拨打" and row["after"].startswith("联系我")
    assert row["masked"] == q.mask_pii(f"请拨打{PHONE}联系我，退款到现在还没有到账") == "请拨打***5678联系我，退款到现在还没有到账"
    assert PHONE not in json.dumps(report.pii.to_dicts(), ensure_ascii=False)
    # raw only under a team lead's audited decision (core.privacy.reveal)
    from core import privacy
    from core.checks.pii import pii_findings

    raw = pii_findings(planted, "qa", privacy.reveal(planted, "cli", "qa", "test")).row(0, named=True)
    assert raw["match"] == PHONE
    text = raw["before"] + raw["match"] + raw["after"]
    assert text[raw["start"]:raw["end"]] == PHONE


def test_cleaning_and_completeness(report):
    row = report.cleaning.row(0, named=True)
    assert (row["sample_id"], row["kind"], row["match"]) == ("q08", "html_tag", "<br>")
    assert "<br>" not in row["cleaned"] and row["cleaned"] == q.clean_text("好的，<br>订单已取消，费用原路退回。")
    empty = report.completeness.filter(pl.col("kind") == "empty_field")
    assert empty.select("sample_id", "field").rows() == [("q06", "output")]


def test_span_context_is_cut_with_ellipsis():
    long = "x" * 50 + PHONE + "y" * 50
    frame = qr.pii_report(pl.DataFrame({"sample_id": ["a"], "text": [long]}), ["text"])
    row = frame.row(0, named=True)
    assert row["before"] == "…" + "x" * qr.CONTEXT_CHARS and row["after"] == "y" * qr.CONTEXT_CHARS + "…"


def test_label_errors_from_model_probabilities(report):
    le = report.label_errors
    assert le.method == "model" and "round 1" in le.source
    assert (le.n_labeled, le.n_checked) == (23, 23)
    row = le.frame.row(0, named=True)
    assert (row["sample_id"], row["given_label"], row["suggested_label"]) == ("q07", "cancel_order", "refund")
    assert row["self_confidence"] == pytest.approx(0.08)
    assert qr.label_error_priorities(le.frame) == {"q07": pytest.approx(0.92)}


def _fake_encoder(calls: list[int]) -> EmbeddingModel:
    """Separates refund-ish texts from the rest (q07 is refund-ish, labeled cancel_order)."""

    def encode(texts, batch_size):
        calls.append(len(texts))
        refund = np.array([1.0 if ("refund" in t.lower() or "退" in t.split("\n")[0] or "money" in t) else 0.0
                           for t in texts])
        rng = np.random.default_rng(len(texts))
        return np.column_stack([refund, 1 - refund, rng.normal(0, 0.01, len(texts))]).astype(np.float32)

    return EmbeddingModel("fake:keywords", "fake", 3, encode)


def test_label_errors_from_embeddings_without_predictions(store, tmp_path):
    build_planted_store(store, tmp_path, predictions=False)
    assert qr.prediction_round(store, "qa") is None
    calls: list[int] = []
    stages: list[tuple[str, float]] = []
    le = qr.label_error_report(store, "qa", method="auto", model=_fake_encoder(calls),
                               progress=lambda s, f: stages.append((s, f)))
    assert le.method == "embeddings" and "cross-validated" in le.source
    assert "q07" in le.frame["sample_id"].to_list()
    assert le.frame.row(0, named=True)["suggested_label"] in LABELS
    assert calls and stages[-1] == ("done", 1.0)
    # a second run is served from the store's embedding cache
    calls.clear()
    qr.label_error_report(store, "qa", method="embeddings", model=_fake_encoder(calls))
    assert calls == []


def test_label_errors_without_labels_is_a_note_not_an_error(planted):
    rep = qr.run_report(planted, "textonly", label_errors="auto")
    assert rep.label_errors.method == "none" and "no labels" in rep.label_errors.note
    assert _summary(rep)["label_errors"] is None
    assert rep.n_labeled == 0 and rep.prediction_round is None
    # no output field: completeness does not flag every sample as missing one
    assert not rep.has_output and qr.required_fields(planted.samples("textonly")) == ["text"]
    assert rep.completeness.height == 0
    assert set(rep.pii["sample_id"]) >= {"t1"}


def test_model_method_without_predictions_is_a_note(store, tmp_path):
    build_planted_store(store, tmp_path, predictions=False)
    le = qr.label_error_report(store, "qa", method="model")
    assert le.method == "none" and "no model predictions" in le.note
    with pytest.raises(ValueError, match="unknown method"):
        qr.label_error_report(store, "qa", method="magic")


def test_progress_over_the_checks(planted):
    stages: list[tuple[str, float]] = []
    qr.run_report(planted, "qa", progress=lambda s, f: stages.append((s, f)))
    # "<check>: <stage>" is a check's own progress (a per-sample pass computing the samples it has not cached)
    assert [s for s, _ in stages if ": " not in s] == [qr.CHECKS[c] for c in qr.CHECKS if c != "label_errors"] + ["done"]
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_unknown_dataset_raises_store_error(planted):
    from core.store import StoreError

    with pytest.raises(StoreError, match="unknown dataset"):
        qr.run_report(planted, "nope")


# -- writes ---------------------------------------------------------------------------------------
def test_send_to_review_writes_queue_and_audit(planted):
    added = qr.send_to_review(planted, "qa", ["q07", "q21"], "label_issue", "lead", check="label_errors",
                              priorities={"q07": 0.9})
    assert added == 2
    queue = planted.queue("qa")
    assert sorted(queue["sample_id"]) == ["q07", "q21"] and set(queue["reason"]) == {"label_issue"}
    assert dict(queue.select("sample_id", "priority").iter_rows()) == {"q07": 0.9, "q21": 1.0}
    assert json.loads(queue["detail"][0]) == {"source": "data quality", "check": "label_errors"}
    audit = planted.audit_log(dataset="qa", action="queue.add")
    assert audit.height == 1 and audit["actor"].item() == "lead"
    # already open for the same reason: skipped
    assert qr.send_to_review(planted, "qa", ["q07"], "label_issue", "lead", check="label_errors") == 0
    with pytest.raises(ValueError, match="unknown reason"):
        qr.send_to_review(planted, "qa", ["q07"], "disagreement", "lead", check="pii")


def test_excluded_samples_leave_the_report(planted):
    assert qr.exclude_samples(planted, "qa", ["q21", "q23"], "lead", check="exact_duplicates") == 2
    excluded = planted.samples("qa").filter(pl.col("excluded"))["sample_id"].to_list()
    assert excluded == ["q21", "q23"]
    audit = planted.audit_log(dataset="qa", action="sample.exclude")
    assert audit.height == 1 and "Exact duplicates" in audit["detail"].item()
    rep = qr.run_report(planted, "qa")
    counts = _summary(rep)
    assert counts["exact_duplicates"] == 1 and counts["near_duplicates"] == 0
    assert counts == {**counts, **expected_counts(planted, "qa")}
    assert rep.n_samples == 21 and "q21" not in rep.sample_ids
    full = qr.run_report(planted, "qa", include_excluded=True)
    assert _summary(full)["exact_duplicates"] == 2 and full.n_samples == 23


def test_cleaned_masked_copy(planted):
    qr.exclude_samples(planted, "qa", ["q21"], "lead", check="exact_duplicates")
    frame = qr.cleaned_copy(planted, "qa")
    assert "q21" not in frame["sample_id"].to_list() and frame.height == 22
    row = frame.filter(pl.col("sample_id") == "q05").row(0, named=True)
    assert PHONE not in row["instruction"] and "***5678" in row["instruction"]
    assert "<br>" not in frame.filter(pl.col("sample_id") == "q08")["output"].item()
    raw = qr.cleaned_copy(planted, "qa", clean=False, mask=False, include_excluded=True)
    assert raw.height == 23 and PHONE in raw.filter(pl.col("sample_id") == "q05")["instruction"].item()
    lines = qr.cleaned_jsonl(planted, "qa").decode("utf-8").splitlines()
    assert len(lines) == 22 and all(PHONE not in line for line in lines)
    assert {"sample_id", "instruction", "output", "label", "label_source"} <= set(json.loads(lines[0]))
    assert qr.cleaned_jsonl(planted, "textonly") == b""  # no gold labels


def test_diff_segments_join_back_and_mark_the_change():
    a, b = "我上周买的蓝牙耳机有杂音", "我上周买的蓝牙耳机有噪音"
    sa, sb = qr.diff_segments(a, b)
    assert "".join(t for t, _ in sa) == a and "".join(t for t, _ in sb) == b
    assert [t for t, changed in sa if changed] == ["杂"] and [t for t, changed in sb if changed] == ["噪"]
    assert qr.diff_segments("", "x") == ([], [("x", True)])


def test_report_json_is_complete(report, tmp_path):
    out = qr.write_report_json(report, tmp_path / "r" / "report.json")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["dataset"] == "qa" and data["n_samples"] == 23
    assert {row["check"]: row["count"] for row in data["summary"]} == _summary(report)
    assert set(data["checks"]) == set(qr.CHECKS) | {"near_duplicate_pairs"}
    assert data["checks"]["pii"][0]["match"] == "***" + PHONE[-4:]  # masked unless a lead revealed it
    assert PHONE not in json.dumps(data["checks"]["pii"], ensure_ascii=False)
    assert data["label_errors"]["method"] == "model"


def test_empty_dataset(store, tmp_path):
    store.migrate()
    from core.ingest import import_file

    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "only", "instruction": "hello there.", "output": "hi."}) + "\n", encoding="utf-8")
    import_file(store, path, "one")
    rep = qr.run_report(store, "one", label_errors="auto")
    assert rep.n_samples == 1 and all(c in (0, None) for c in _summary(rep).values())


# -- the command line -------------------------------------------------------------------------------
def test_cli_quality_prints_summary_and_writes_json(planted, tmp_path):
    out = tmp_path / "report.json"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("QUALITY_DB", None)
    # the documented form: python -m core quality --dataset NAME [--db PATH] [--out report.json]
    proc = subprocess.run([sys.executable, "-m", "core", "quality", "--dataset", "qa", "--db", str(planted.path),
                           "--out", str(out), "--label-errors", "model"],
                          cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "23 samples checked" in proc.stdout
    lines = {line.split("  ")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("  ")}
    assert lines["Exact duplicates"].split()[2] == "2"
    assert "Label errors" in lines and "round 1" in lines["Label errors"]
    data = json.loads(out.read_text(encoding="utf-8"))
    assert {row["check"]: row["count"] for row in data["summary"]}["label_errors"] == 1
    assert data["checks"]["label_errors"][0]["sample_id"] == "q07"
    assert "quality qa" in proc.stderr  # the tqdm bar over the checks

    bad = subprocess.run([sys.executable, "-m", "core", "--db", str(planted.path), "quality", "--dataset", "nope",
                          "--label-errors", "skip"],
                         cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert bad.returncode == 1 and "unknown dataset" in bad.stderr


def test_label_errors_refuse_to_guess_when_the_text_model_learned_nothing(tmp_path):
    """Labels the texts do not predict (here: drawn at random) give a note, not a flood of noise suspects."""
    from core.checks.label_errors import label_error_report
    from core.store import open_store
    from factories import import_rows

    rng = np.random.default_rng(0)
    words = ["退款", "refund", "物流", "shipping", "发票", "invoice", "登录", "login"]
    rows = [{"id": f"s{i}", "text": " ".join(rng.choice(words, 6)), "label": str(rng.choice(["good", "bad"]))}
            for i in range(120)]
    store = open_store(tmp_path / "s.duckdb")
    import_rows(store, tmp_path, rows, labels=["good", "bad"])

    import zlib

    def encode(texts, batch_size):  # a deterministic bag of words: the texts carry no signal about the labels
        out = np.zeros((len(texts), 16))
        for i, t in enumerate(texts):
            for w in t.split():
                out[i, zlib.crc32(w.encode()) % 16] += 1
        return out

    result = label_error_report(store, "ds", method="embeddings", model=EmbeddingModel("fake:bag", "fake", 16, encode))
    assert not result.computed and "cannot predict these labels" in result.note and "kappa" in result.note
    store.close()
