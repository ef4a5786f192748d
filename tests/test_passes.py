"""Tests of the per-sample passes (core.passes): the registry, the cached runner, and the quality report read
through the cache, which must equal the report computed afresh (no cache) after imports, reviews and exclusions."""

from __future__ import annotations

import dataclasses
import pickle
from collections import Counter

import polars as pl
import pytest
from factories import import_rows
from quality_fixtures import LABELS, PHONE, build_planted_store

from core import quality_report as qr
from core.executor import LocalExecutor
from core.passes import PASSES
from core.passes.runner import pass_frame
from core.review import save_review

PER_SAMPLE_CHECKS = ("near_duplicates", "cleaning", "pii", "language_mismatch", "refusal", "repetition",
                     "chat_structure", "template_leakage")


@pytest.fixture
def counted(monkeypatch):
    """Every registered pass wrapped so that the rows it computes are counted (per pass name)."""
    rows: Counter[str] = Counter()
    for name, sample_pass in list(PASSES.items()):
        def compute(batch, _compute=sample_pass.compute, _name=name, **options):
            rows[_name] += batch.height
            return _compute(batch, **options)

        monkeypatch.setitem(PASSES, name, dataclasses.replace(sample_pass, compute=compute))
    return rows


def assert_same_report(cached: qr.QualityReport, fresh: qr.QualityReport) -> None:
    assert cached.results.keys() == fresh.results.keys()
    for name, want in fresh.results.items():
        got = cached.results[name]
        assert got.frame.schema == want.frame.schema, name
        assert got.frame.equals(want.frame), f"{name}:\n{got.frame}\n!=\n{want.frame}"
        assert (got.count, got.detail) == (want.count, want.detail), name
        if "pairs" in want.extra:
            assert got.extra["pairs"].equals(want.extra["pairs"]), name


def both(store, dataset: str, **kwargs) -> qr.QualityReport:
    """The report through the cache, checked against the report computed without it."""
    cached = qr.run_report(store, dataset, **kwargs)
    assert_same_report(cached, qr.run_report(store, dataset, cached=False, **kwargs))
    return cached


# Bilingual rows with something for every per-sample check: PII, markup, a refusal, a language mismatch,
# repetition, template leakage, near copies, and chat / ShareGPT / preference records with faults.
def more_rows(start: int) -> list[dict]:
    rows = [
        {"id": f"n{start}", "instruction": "请把订单退款到我的银行卡", "output": "I'm sorry, but I can't help with that.",
         "label": "refund", "annotator": "alice"},
        {"id": f"n{start + 1}", "instruction": "Where is my refund? Call me at " + PHONE,
         "output": "请联系 help@example.com 处理退款。", "label": "refund", "annotator": "alice"},
        {"id": f"n{start + 2}", "instruction": "Cancel my order please",
         "output": "Your order has been cancelled. " * 12,
         "label": "cancel_order", "annotator": "bo"},
        {"id": f"n{start + 3}", "instruction": "### Instruction: {question}",
         "output": "<|im_end|> Your order is cancelled.", "label": "cancel_order", "annotator": "bo"},
        {"id": f"n{start + 4}", "messages": [{"role": "user", "content": "我要退货"},
                                             {"role": "user", "content": "快点"}], "label": "refund",
         "annotator": "alice"},
        {"id": f"n{start + 5}", "conversations": [{"from": "human", "value": "Cancel order C300"},
                                                  {"from": "gpt", "value": "作为一个人工智能语言模型，我无法取消订单。"}],
         "label": "cancel_order", "annotator": "bo"},
        {"id": f"n{start + 6}", "prompt": "Refund my jacket", "chosen": "The refund is on its way.",
         "rejected": "<s>[INST] refund [/INST]", "label": "refund", "annotator": "alice"},
        {"id": f"n{start + 7}", "instruction": "I want to cancel order B200 before it ships!!",
         "output": "Cancel it under My Orders while it is pending.", "label": "cancel_order", "annotator": "bo"},
    ]
    return rows


@pytest.fixture
def planted(store, tmp_path):
    return build_planted_store(store, tmp_path, textonly=True)


# -- the registry ---------------------------------------------------------------------------------


def test_registry_has_the_per_sample_passes_and_they_pickle():
    assert {"pii", "cleaning", "language_mismatch", "refusal", "repetition", "template_leakage", "chat_structure",
            "minhash"} <= set(PASSES)
    for sample_pass in PASSES.values():
        fn = sample_pass.bound({"extra_patterns": ["x"]} if sample_pass.options else None)
        assert pickle.loads(pickle.dumps(fn)) is not None  # a module-level function (or its partial)
        empty = sample_pass.run(pl.DataFrame(schema={"sample_id": pl.Utf8, "instruction": pl.Utf8,
                                                     "input": pl.Utf8, "output": pl.Utf8, "text": pl.Utf8,
                                                     "shape": pl.Utf8, "record": pl.Utf8}))
        assert empty.height == 0 and empty.schema == pl.Schema(sample_pass.schema)


def test_a_pass_needs_a_plain_name_a_version_and_sample_id():
    base = PASSES["pii"]
    with pytest.raises(ValueError, match="lowercase"):
        dataclasses.replace(base, name="PII")
    with pytest.raises(ValueError, match="version"):
        dataclasses.replace(base, version=0)
    with pytest.raises(ValueError, match="sample_id"):
        dataclasses.replace(base, schema={"field": pl.Utf8})


# -- the report through the cache equals the report computed afresh ------------------------------------


def test_report_equals_fresh_after_import_and_review_and_computes_only_new_samples(planted, tmp_path, counted):
    first = both(planted, "qa")
    n_qa = first.n_samples
    assert counted["pii"] == n_qa  # through the cache (the fresh report calls the same functions directly)
    counted.clear()
    assert_same_report(qr.run_report(planted, "qa"), first)
    assert sum(counted.values()) == 0  # everything read from the cache

    import_rows(planted, tmp_path, more_rows(1), name="qa", labels=LABELS)
    counted.clear()
    second = qr.run_report(planted, "qa")
    assert second.n_samples == n_qa + 8
    for name in ("pii", "cleaning", "language_mismatch", "refusal", "repetition", "template_leakage", "minhash"):
        assert counted[name] == 8, name  # only the new samples
    assert_same_report(second, qr.run_report(planted, "qa", cached=False))
    for check in ("pii", "refusal", "repetition", "template_leakage", "chat_structure", "language_mismatch"):
        assert any(s.startswith("n") for s in second.flagged_ids(check)), check
    assert PHONE not in "".join(second.frame("pii")["match"].to_list())  # masked unless revealed

    # A review changes a gold label: the findings carry the new label, and no text is scanned again.
    before = second.frame("refusal").filter(pl.col("sample_id") == "n1")["label"].to_list()
    assert before == ["refund"]
    save_review(planted, "qa", "n1", "cancel_order", "rita", "wrong intent", 0)
    counted.clear()
    third = qr.run_report(planted, "qa")
    assert sum(counted.values()) == 0
    assert third.frame("refusal").filter(pl.col("sample_id") == "n1")["label"].to_list() == ["cancel_order"]
    assert_same_report(third, qr.run_report(planted, "qa", cached=False))


def test_report_equals_fresh_on_the_demo_datasets():
    from core.seed import load_demo
    from core.store import open_store

    store = open_store(":memory:")
    load_demo(store)
    for dataset in store.dataset_names():
        cold = both(store, dataset)
        assert_same_report(qr.run_report(store, dataset), cold)  # warm: read back from the cache
        assert_same_report(both(store, dataset, include_excluded=True), cold)


def test_excluded_samples_are_not_returned_and_come_back_from_the_cache(planted, tmp_path, counted):
    import_rows(planted, tmp_path, more_rows(1), name="qa", labels=LABELS)
    full = qr.run_report(planted, "qa")
    planted.set_excluded("qa", ["n1", "n2", "q05"], True, "lead")
    counted.clear()
    report = both(planted, "qa")
    assert sum(counted.values()) == 0
    assert not {"n1", "n2", "q05"} & set(report.flagged_ids("pii") + report.flagged_ids("refusal"))
    planted.set_excluded("qa", ["n1", "n2", "q05"], False, "lead")
    counted.clear()
    assert_same_report(qr.run_report(planted, "qa"), full)
    assert sum(counted.values()) == 0


def test_empty_dataset(planted):
    planted.set_excluded("textonly", [f"t{i}" for i in range(1, 7)], True, "lead")
    report = both(planted, "textonly")
    assert report.n_samples == 0
    samples = planted.samples("textonly", include_excluded=False)
    for name, sample_pass in PASSES.items():
        out = pass_frame(planted, "textonly", name, samples)
        assert out.height == 0 and out.schema == pl.Schema(sample_pass.schema), name


def test_textonly_and_include_excluded_match_fresh(planted):
    both(planted, "textonly")
    planted.set_excluded("qa", ["q21", "q22"], True, "lead")
    both(planted, "qa")
    both(planted, "qa", include_excluded=True)


# -- the runner: what is recomputed ----------------------------------------------------------------


def test_changed_content_is_recomputed(planted, counted):
    qr.run_report(planted, "qa")
    with planted.transaction() as cur:  # content cannot change through an import; a test may change it
        cur.execute("UPDATE samples SET output = 'I am sorry, but I cannot help with that.', content_hash = 'changed' "
                    "WHERE dataset = 'qa' AND sample_id = 'q09'")
    counted.clear()
    report = both(planted, "qa")
    assert counted["refusal"] == 1 and counted["pii"] == 1  # q09 only
    assert "q09" in report.flagged_ids("refusal")


def test_version_bump_and_new_refusal_phrases_recompute(planted, monkeypatch, counted):
    from core.checks.refusal import set_refusal_patterns

    samples = planted.samples("qa", include_excluded=False)
    n = samples.height
    pass_frame(planted, "qa", "refusal", samples)
    assert counted["refusal"] == n
    pass_frame(planted, "qa", "refusal", samples)
    assert counted["refusal"] == n

    set_refusal_patterns(planted, "qa", ["choose Refund"], "lead")
    out = pass_frame(planted, "qa", "refusal", samples)
    assert counted["refusal"] == 2 * n
    assert "q01" in out["sample_id"].to_list()  # "Open the order page and choose Refund."
    assert "q01" in qr.run_report(planted, "qa").flagged_ids("refusal")

    bumped = dataclasses.replace(PASSES["refusal"], version=PASSES["refusal"].version + 1)
    monkeypatch.setitem(PASSES, "refusal", bumped)
    pass_frame(planted, "qa", "refusal", samples)
    assert counted["refusal"] == 3 * n
    versions = planted.pass_cache_counts("qa").filter(pl.col("pass") == "refusal")["version"].unique().to_list()
    assert versions == [bumped.version]  # older versions pruned


def test_a_failing_pass_leaves_the_cache_unchanged(planted, monkeypatch):
    from core.passes.pii import compute as compute_pii

    samples = planted.samples("qa", include_excluded=False)
    pass_frame(planted, "qa", "pii", samples.head(5))
    before = planted.pass_cache_counts("qa")
    seen: list[int] = []

    def failing(batch):
        seen.append(batch.height)
        if len(seen) == 2:
            raise RuntimeError("worker died")
        return compute_pii(batch)

    monkeypatch.setitem(PASSES, "pii", dataclasses.replace(PASSES["pii"], compute=failing, batch_rows=4))
    with pytest.raises(RuntimeError, match="worker died"):
        pass_frame(planted, "qa", "pii", samples)
    assert planted.pass_cache_counts("qa").equals(before)

    def cancel(stage, fraction):
        raise KeyboardInterrupt("cancelled")

    monkeypatch.setitem(PASSES, "pii", dataclasses.replace(PASSES["pii"], compute=compute_pii, batch_rows=4))
    with pytest.raises(KeyboardInterrupt):
        pass_frame(planted, "qa", "pii", samples, progress=cancel)
    assert planted.pass_cache_counts("qa").equals(before)


def test_rows_come_in_sample_order_and_match_a_direct_run(planted):
    samples = planted.samples("qa", include_excluded=False)
    for name, sample_pass in PASSES.items():
        if "record" in sample_pass.columns:
            continue  # reads records the samples frame lacks (the runner fetches them)
        shuffled = samples.sample(fraction=1.0, shuffle=True, seed=3)
        first = pass_frame(planted, "qa", name, shuffled.head(20))
        out = pass_frame(planted, "qa", name, shuffled)
        direct = sample_pass.run(shuffled)
        order = {s: i for i, s in enumerate(shuffled["sample_id"].to_list())}
        assert out["sample_id"].to_list() == sorted(out["sample_id"].to_list(), key=order.__getitem__), name
        assert out.sort("sample_id", maintain_order=True).equals(direct.sort("sample_id", maintain_order=True)), name
        assert first.height <= out.height


def test_local_process_pool_gives_the_same_rows(planted, monkeypatch):
    samples = planted.samples("qa", include_excluded=False)
    inline = PASSES["pii"].run(samples)
    monkeypatch.setitem(PASSES, "pii", dataclasses.replace(PASSES["pii"], batch_rows=6))
    pooled = pass_frame(planted, "qa", "pii", samples, executor=LocalExecutor(workers=2, pool_min_rows=10))
    assert pooled.height > 0 and pooled.equals(inline)
    assert planted.pass_cache_counts("qa").filter(pl.col("pass") == "pii")["samples"].item() == samples.height
