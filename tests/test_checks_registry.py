"""Tests of the instruction-data checks of the registry (core/checks/*.py over core.textchecks), the report JSON,
the refusal-phrase setting, the evaluation-set reader and `python -m core quality --eval-file`.

Every check is run on hand-made records of each import shape (instruction, chat, preference pair), in Chinese
and English, positives and negatives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from factories import import_rows, write_jsonl

from core import checks
from core import quality_report as qr
from core.checks.base import (
    FINDING_SCHEMA,
    Check,
    CheckContext,
    CheckResult,
    text_fields,
)
from core.checks.contamination import NOT_RUN, read_eval_texts
from core.checks.refusal import (
    REFUSAL_SETTING,
    check_refusal_patterns,
    refusal_patterns,
    set_refusal_patterns,
)
from core.records import derive

ROOT = Path(__file__).resolve().parents[1]
NEW_CHECKS = ("language_mismatch", "refusal", "repetition", "chat_structure", "template_leakage", "contamination",
              "length_ratio")
SHAPES = ("instruction", "chat", "preference")


# --------------------------------------------------------------------------- helpers

def record(shape: str, prompt: str, response: str, rejected: str = "Not sure.") -> dict:
    if shape == "instruction":
        return {"instruction": prompt, "output": response}
    if shape == "chat":
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]}
    return {"prompt": prompt, "chosen": response, "rejected": rejected}


def samples_of(records: list[dict]) -> pl.DataFrame:
    """A samples frame as the store holds it: the derived text columns, the shape and the record (JSON)."""
    rows = []
    for i, rec in enumerate(records):
        d = derive(rec)
        rows.append({"sample_id": f"s{i:03d}", **d.text_fields(), "shape": d.shape,
                     "record": json.dumps(rec, ensure_ascii=False)})
    schema = {"sample_id": pl.Utf8, "instruction": pl.Utf8, "input": pl.Utf8, "output": pl.Utf8, "text": pl.Utf8,
              "shape": pl.Utf8, "record": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def run_check(name: str, records: list[dict], labels: list[str | None] | None = None, **options) -> CheckResult:
    samples = samples_of(records)
    ids = samples["sample_id"].to_list()
    gold = pl.DataFrame({"sample_id": ids, "gold_label": labels or [None] * len(ids)},
                        schema={"sample_id": pl.Utf8, "gold_label": pl.Utf8})
    ctx = CheckContext(store=None, dataset="t", samples=samples, fields=text_fields(samples), options=options,
                       cache={"gold": gold})
    return checks.CHECKS[name].run(ctx)


def flagged(result: CheckResult) -> set[str]:
    return set(result.frame["sample_id"].to_list())


# --------------------------------------------------------------------------- the registry

def test_every_new_check_is_registered_with_title_help_and_severity():
    for name in NEW_CHECKS:
        check = checks.CHECKS[name]
        assert check.title and len(check.help) > 80 and check.severity in ("error", "warning", "info")
        assert list(check.empty)[: len(FINDING_SCHEMA)] == list(FINDING_SCHEMA)
        assert check.queue_reason == name  # sent to review with the check as reason
    assert list(qr.CHECKS)[:6] == ["exact_duplicates", "near_duplicates", "completeness", "cleaning", "pii",
                                   "label_errors"]


# --------------------------------------------------------------------------- per check, per shape, zh and en

PAIR_CASES = [
    # (check, case id, prompt, response, flagged)
    ("language_mismatch", "zh-answered-in-en", "请问我的退款什么时候能到账？订单号是 20240611，已经等了一周。",
     "Your refund for order 20240611 was approved today and will reach your card within three business days.",
     True),
    ("language_mismatch", "en-answered-in-zh", "How long does delivery to Shanghai usually take for a standard parcel?",
     "标准包裹寄往上海通常需要三到五个工作日，节假日期间可能会有所延迟。", True),
    ("language_mismatch", "zh-translation-request", "请把这句话翻译成英文：您的包裹已经发出，预计后天送达。",
     "Your parcel has been shipped and should arrive the day after tomorrow.", False),
    ("language_mismatch", "en-translation-request", ("Translate into Chinese: your parcel has been shipped and will "
                                            "arrive soon."), "您的包裹已经发出，很快就会送达。", False),
    ("language_mismatch", "zh-with-english-product-name", "我的 AirPods Pro 充电盒充不进电怎么办？",
     "请先用原装 Lightning 线给充电盒充电 30 分钟，再把耳机放回盒中重试；如果仍不亮，可以在 Apple 官网预约检测。", False),
    ("language_mismatch", "en-same-language", "How do I reset the password of my shop account?",
     "Open Settings, choose Account and then Reset password; a link arrives by e-mail.", False),
    ("refusal", "zh-refusal", "这件羊毛外套可以直接放洗衣机洗吗？", "抱歉，我无法回答这个问题。", True),
    ("refusal", "zh-boilerplate", "你觉得这款手机怎么样？", "作为一个人工智能语言模型，我没有个人观点，但这款手机的续航不错。", True),
    ("refusal", "en-boilerplate", "What sizes does the trail jacket come in?",
     "As an AI language model, I cannot browse the shop's catalogue.", True),
    ("refusal", "en-refusal", "Write a short poem about autumn.", "I'm sorry, but I can't help with that.", True),
    ("refusal", "zh-clean", "这件外套可以机洗吗？", "可以机洗，请选择羊毛模式并使用冷水，洗后平铺晾干。", False),
    ("refusal", "en-clean-apology", "Where is my parcel?", ("Sorry for the delay! Your parcel left "
                                                                    "our warehouse today and arrives on Friday."), False),
    ("repetition", "en-loop", "How do I change the delivery address?", "You can change it on the My Orders page. " * 5,
     True),
    ("repetition", "zh-loop", "下单后还能修改收货地址吗？", "您好，请在订单详情页点击修改地址。" * 5, True),
    ("repetition", "en-numbered-list", "How do I bake bread at home?", ("1. Mix the flour and water. 2. Add the "
                                                               "yeast and salt. 3. Knead for ten minutes. 4. Let it "
                                                               "rise for an hour. 5. Bake at 220 degrees for thirty "
                                                               "minutes."),
     False),
    ("repetition", "zh-clean", "怎么修改收货地址？", ("打开订单详情页，点击修改地址，填写新的收货信息后保存即可。"
                                                    "如果订单已经发货，请联系快递公司改派。"), False),
    ("template_leakage", "zh-chatml-tokens", "帮我取消昨天的订单。",
     "<|im_start|>assistant\n好的，订单已为您取消，款项原路退回。<|im_end|>", True),
    ("template_leakage", "en-unfilled-placeholder", "Answer the customer's question politely: {question}",
     "Thanks for reaching out! Could you tell me your order number?", True),
    ("template_leakage", "en-code-braces", "How do I format a string in Python?",
     "Use an f-string:\n```python\nname = 'Ann'\nprint(f\"Hello {name}\")\n```\nor `'{}'.format(name)`.", False),
    ("template_leakage", "zh-json-braces", "用 JSON 表示一个订单。",
     "示例如下：\n```json\n{\"order_id\": 42, \"items\": []}\n```\n其中 items 是商品列表。", False),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("check", "case", "prompt", "response", "expected"), PAIR_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in PAIR_CASES])
def test_check_on_each_shape(shape, check, case, prompt, response, expected):
    filler = [record(shape, "请问这个周末门店几点开门？", "周末门店早上九点开门，晚上九点关门。"),
              record(shape, "What time does the shop open on Sunday?", "On Sunday the shop opens at nine.")]
    result = run_check(check, [*filler, record(shape, prompt, response)], labels=["good", "good", "bad"])
    assert flagged(result) == ({"s002"} if expected else set()), result.frame.to_dicts()
    if expected:
        row = result.frame.row(0, named=True)
        assert row["check"] == check and row["label"] == "bad" and row["message"]
        assert row["severity"] in ("error", "warning", "info") and row["field"] in ("instruction", "output")
        if row["start"] is not None:  # a span: its text, and the excerpt with the span marked
            source = prompt if row["field"] == "instruction" else response
            assert source[row["start"]:row["end"]] == row["span_text"]
            assert f"«{row['span_text']}»".replace("\n", " ⏎ ") in row["excerpt"]
        assert result.count == 1


def test_language_mismatch_names_both_languages():
    result = run_check("language_mismatch", [record("chat", PAIR_CASES[0][2], PAIR_CASES[0][3])])
    row = result.frame.row(0, named=True)
    assert (row["prompt_language"], row["response_language"], row["severity"]) == ("zh", "en", "warning")


def test_template_leakage_reads_the_rejected_answer_of_a_pair():
    rec = record("preference", "帮我取消订单。", "好的，订单已取消。", rejected="[INST] 取消订单 [/INST] 不行")
    frame = run_check("template_leakage", [rec]).frame
    assert set(frame["field"]) == {"rejected"} and "[INST]" in frame["span_text"].to_list()


def test_repetition_reports_unit_count_and_coverage():
    row = run_check("repetition", [record("instruction", "改地址？", "您好，请在订单详情页点击修改地址。" * 5)]).frame.row(
        0, named=True)
    assert row["count"] >= 3 and row["coverage"] >= 0.5 and "修改地址" in row["unit"]


# --------------------------------------------------------------------------- chat structure

CHAT_CASES = [
    ("two-user-turns-zh", {"messages": [{"role": "user", "content": "我的快递三天没有更新了。"},
                                        {"role": "user", "content": "单号是 SF1234567890。"},
                                        {"role": "assistant", "content": "已为您联系快递公司。"}]},
     {"consecutive_same_role"}),
    ("ends-with-user-en", {"messages": [{"role": "user", "content": "Has my order shipped?"},
                                        {"role": "assistant", "content": "Yes, this afternoon."},
                                        {"role": "user", "content": "Can I get the tracking number?"}]},
     {"not_ending_with_assistant"}),
    ("empty-assistant-turn", {"messages": [{"role": "user", "content": "Hello?"},
                                           {"role": "assistant", "content": "  "}]}, {"empty_turn"}),
    ("no-user-turn", {"messages": [{"role": "system", "content": "你是客服。"},
                                   {"role": "assistant", "content": "您好，有什么可以帮您？"}]}, {"no_user_turn"}),
    ("sharegpt-two-human-turns", {"conversations": [{"from": "human", "value": "Hi"},
                                                    {"from": "human", "value": "Is anyone there?"},
                                                    {"from": "gpt", "value": "Yes, how can I help?"}]},
     {"consecutive_same_role"}),
    ("preference-two-assistant-turns", {"prompt": [{"role": "user", "content": "退货要多久？"}],
                                        "chosen": [{"role": "assistant", "content": "一般三天。"},
                                                   {"role": "assistant", "content": "节假日顺延。"}],
                                        "rejected": [{"role": "assistant", "content": "不知道。"}]},
     {"consecutive_same_role"}),
    ("clean-chat-with-system-and-tool", {"messages": [
        {"role": "system", "content": "You are the shop's assistant."},
        {"role": "user", "content": "Where is order 42?"},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "track", "arguments": "{}"}}]},
        {"role": "tool", "content": "in transit"},
        {"role": "assistant", "content": "Order 42 is in transit."}]}, set()),
    ("clean-preference-strings", record("preference", "退货要多久？", "一般三个工作日。"), set()),
    ("instruction-has-no-turns-to-check", {"instruction": "说点什么", "output": ""}, set()),
]


@pytest.mark.parametrize(("case", "rec", "kinds"), CHAT_CASES, ids=[c[0] for c in CHAT_CASES])
def test_chat_structure(case, rec, kinds):
    result = run_check("chat_structure", [rec])
    assert set(result.frame["kind"]) == kinds
    if kinds:
        row = result.frame.row(0, named=True)
        assert row["field"] == "conversation"
        if row["turn"] is None:  # a finding about the whole conversation: the excerpt is the conversation
            assert row["excerpt"].startswith("system: ") and " ⏎ assistant: " in row["excerpt"]
        else:
            assert row["excerpt"].startswith(f"turn {row['turn'] + 1} · ")


# --------------------------------------------------------------------------- length ratio

def _normal_pairs(shape: str, lang: str, n: int = 24) -> list[dict]:
    out = []
    for i in range(n):
        extra = ("，另外请问可以开发票吗" if i % 3 == 0 else "") if lang == "zh" else (
            " and can I get an invoice" if i % 3 == 0 else "")
        more = "，发票会随包裹一起寄出" * (i % 4) if lang == "zh" else ", and the invoice comes with it" * (i % 4)
        if lang == "zh":
            out.append(record(shape, f"我的订单 {1000 + i} 什么时候发货{extra}？",
                              f"您好，订单 {1000 + i} 已在今天下午出库，预计两到三天送达{more}。"))
        else:
            out.append(record(shape, f"When will order {1000 + i} ship{extra}?",
                              f"Order {1000 + i} left our warehouse this afternoon and should arrive in two to three "
                              f"days{more}."))
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_length_ratio_finds_an_over_short_answer(shape, lang):
    long_prompt = {"zh": "我上个月买的空气净化器，滤网指示灯一直在闪，说明书上写三到六个月换一次，但我家里养了两只猫，"
                         "平时也经常开窗通风，请问滤网多久换一次？旧滤网能不能清洗后继续用？",
                   "en": "I bought an air purifier last month and the filter light keeps blinking; the manual says to "
                         "replace it every three to six months, but I have two cats and often open the windows. How "
                         "often should I change it, and can I wash the old filter and use it again?"}[lang]
    records = [*_normal_pairs(shape, lang), record(shape, long_prompt, {"zh": "换。", "en": "Yes."}[lang]),
               record(shape, {"zh": "请把这句话翻译成英文：谢谢您的耐心等待，我们会尽快处理。",
                              "en": "Translate into Chinese: thank you for your patience, we will handle it soon."}
                      [lang], {"zh": "Thanks.", "en": "谢谢。"}[lang])]
    result = run_check("length_ratio", records, labels=["shipping"] * len(records))
    assert flagged(result) == {"s024"}, result.frame.select("sample_id", "kind", "z").to_dicts()
    row = result.frame.row(0, named=True)
    assert row["kind"] == "response_too_short" and row["z"] < -3.5 and row["label"] == "shipping"


# --------------------------------------------------------------------------- contamination

EVAL = ["Which planet in the solar system has the largest number of known moons according to the latest count",
        "下列关于光合作用的说法中哪一项是正确的请说明理由"]


@pytest.mark.parametrize("shape", SHAPES)
def test_contamination_finds_copied_eval_questions(shape):
    records = [record(shape, f"Quick quiz: {EVAL[0]}?", "Saturn, with well over one hundred known moons."),
               record(shape, f"考考你：{EVAL[1]}。", "光合作用把光能转化为化学能。"),
               record(shape, "Which planet is the largest?", "Jupiter."),
               record(shape, "光合作用发生在哪里？", "叶绿体。")]
    result = run_check("contamination", records, eval_texts=EVAL)
    assert flagged(result) == {"s000", "s001"}
    rows = {r["sample_id"]: r for r in result.frame.to_dicts()}
    assert rows["s000"]["eval_index"] == 0 and rows["s001"]["eval_index"] == 1
    assert rows["s001"]["span_text"] in EVAL[1] and rows["s000"]["field"] == "instruction"
    assert rows["s001"]["eval_text"] == EVAL[1]


def test_contamination_is_not_run_without_an_evaluation_set():
    result = run_check("contamination", [record("chat", EVAL[0], "Saturn.")])
    assert result.count is None and result.detail == NOT_RUN and result.frame.height == 0


# --------------------------------------------------------------------------- refusal phrases in the settings

def test_refusal_phrases_are_a_leads_setting_audited_and_used(store, tmp_path, monkeypatch):
    from crowds import configure_users

    from core.roles import PermissionDenied

    configure_users(monkeypatch, tmp_path, {"lee": "lead", "rita": "reviewer"})
    rows = [{**record("chat", "这个能退吗？", "这个问题请咨询人工客服。"), "label": "bad", "annotator": "a"},
            {**record("instruction", "Can I return it?", "Please contact a human agent for that."), "label": "bad",
             "annotator": "a"},
            {**record("instruction", "Can I return it today?", "Yes, within 30 days."), "label": "good",
             "annotator": "a"}]
    import_rows(store, tmp_path, rows, name="ds", labels=["good", "bad"], actor="lee")
    assert qr.run_report(store, "ds", checks=["refusal"]).results["refusal"].count == 0
    with pytest.raises(PermissionDenied):
        set_refusal_patterns(store, "ds", ["请咨询人工客服"], "rita")
    saved = set_refusal_patterns(store, "ds", ["请咨询人工客服", "  contact a   human agent ", "请咨询人工客服", ""], "lee")
    assert saved == ["请咨询人工客服", "contact a human agent"]
    assert refusal_patterns(store.get_dataset("ds").settings) == saved
    audit = store.audit_log(dataset="ds", action="dataset.setting")
    assert audit.height == 1 and audit["actor"].item() == "lee" and "contact a human agent" in audit["new_value"].item()
    result = qr.run_report(store, "ds", checks=["refusal"]).results["refusal"]
    assert result.count == 2 and "2 extra phrase(s)" in result.detail
    assert set(result.frame["label"]) == {"bad"}


def test_refusal_phrases_are_validated():
    with pytest.raises(ValueError, match="single string"):
        check_refusal_patterns("I can't")
    with pytest.raises(ValueError, match=r"patterns\[1\]"):
        check_refusal_patterns(["ok", 3])
    with pytest.raises(ValueError, match="at most 200 characters"):
        check_refusal_patterns(["x" * 201])
    assert refusal_patterns({REFUSAL_SETTING: "not a list"}) == [] and refusal_patterns(None) == []


# --------------------------------------------------------------------------- the store, the report JSON

MIXED = [
    {**record("instruction", PAIR_CASES[0][2], PAIR_CASES[0][3]), "id": "m-lang", "label": "bad"},
    {**record("chat", "这件羊毛外套可以直接放洗衣机洗吗？", "抱歉，我无法回答这个问题。"), "id": "m-refusal", "label": "bad"},
    {**record("preference", "下单后还能修改收货地址吗？", "您好，请在订单详情页点击修改地址。" * 5), "id": "m-rep",
     "label": "bad"},
    {**CHAT_CASES[0][1], "id": "m-chat", "label": "bad"},
    {**record("chat", "帮我取消订单。", "<|im_start|>assistant\n好的，已取消。<|im_end|>"), "id": "m-leak", "label": "bad"},
    {"conversations": [{"from": "human", "value": f"Quick quiz: {EVAL[0]}?"}, {"from": "gpt", "value": "Saturn."}],
     "id": "m-eval", "label": "good"},
    {"text": "A plain text record. " * 2, "id": "m-text", "label": "good"},
    {**record("chat", PAIR_CASES[2][2], PAIR_CASES[2][3]), "id": "m-clean-translation", "label": "good"},
    {**record("chat", PAIR_CASES[4][2], PAIR_CASES[4][3]), "id": "m-clean-product", "label": "good"},
]
EXPECTED = {"language_mismatch": {"m-lang"}, "refusal": {"m-refusal"}, "repetition": {"m-rep"},
            "chat_structure": {"m-chat"}, "template_leakage": {"m-leak"}, "contamination": {"m-eval"}}


@pytest.fixture
def mixed(store, tmp_path):
    rows = [{**r, "annotator": "alice"} for r in MIXED]
    res = import_rows(store, tmp_path, rows, name="mixed", labels=["good", "bad"])
    assert res.rows_bad == 0, res.errors.to_dicts()
    return store


def test_store_report_reads_every_shape(mixed):
    report = qr.run_report(mixed, "mixed", eval_texts=EVAL)
    for name, ids in EXPECTED.items():
        assert set(report.frame(name)["sample_id"]) == ids, (name, report.frame(name).to_dicts())
    assert report.frame("chat_structure")["label"].to_list() == ["bad"]
    assert report.frame("length_ratio").height == 0  # too few samples per label for an outlier
    summary = dict(report.summary.select("check", "count").iter_rows())
    assert {k: summary[k] for k in EXPECTED} == {k: 1 for k in EXPECTED}
    without = qr.run_report(mixed, "mixed")
    assert dict(without.summary.select("check", "count").iter_rows())["contamination"] is None
    assert NOT_RUN in qr.format_summary(without)


def test_report_json_has_every_check_as_findings(mixed, tmp_path):
    report = qr.run_report(mixed, "mixed", eval_texts=EVAL, label_errors=None)
    data = json.loads(qr.write_report_json(report, tmp_path / "r.json").read_text(encoding="utf-8"))
    assert set(data["checks"]) == set(qr.CHECKS) | {"near_duplicate_pairs"}
    for name in qr.CHECKS:
        assert isinstance(data["checks"][name], list)
        for finding in data["checks"][name]:
            assert list(finding)[: len(qr.FINDING_KEYS)] == list(qr.FINDING_KEYS), name
            assert finding["check"] == name and finding["severity"] in ("error", "warning", "info")
            assert finding["message"]
    leak = data["checks"]["template_leakage"]
    assert {f["span_text"] for f in leak} == {"<|im_start|>", "<|im_end|>"} and leak[0]["sample_id"] == "m-leak"
    assert data["checks"]["contamination"][0]["eval_index"] == 0
    assert data["summary"][list(qr.CHECKS).index("contamination")]["count"] == 1


def test_filter_findings_by_severity_and_label(mixed):
    report = qr.run_report(mixed, "mixed", eval_texts=EVAL)
    leak = report.frame("template_leakage")
    assert qr.filter_findings(leak, ["warning"]).height == 0
    assert qr.filter_findings(leak, ["error"], ["bad"]).height == leak.height
    assert qr.filter_findings(leak, None, ["good"]).height == 0
    assert qr.filter_findings(leak, None, [None]).height == 0
    assert qr.filter_findings(report.frame("exact_duplicates"), ["error"], ["good"]).height == 0  # no such columns


def test_a_registered_check_appears_in_the_report_json(mixed, tmp_path):
    def run(ctx):
        frame = pl.DataFrame({"sample_id": ctx.samples["sample_id"].head(1), "kind": ["odd"]})
        return CheckResult(frame, 1, "one odd sample")

    checks.register(Check(name="zz_test_check", title="ZZ test check", help="A check added by a test.",
                          severity="info", run=run, empty={"sample_id": pl.Utf8, "kind": pl.Utf8}, order=999))
    try:
        report = qr.run_report(mixed, "mixed")
        data = qr.report_to_dict(report)
        assert data["checks"]["zz_test_check"] == [{
            "check": "zz_test_check", "sample_id": report.sample_ids[0], "kind": "odd", "severity": "info",
            "message": "ZZ test check", "field": None, "start": None, "end": None, "span_text": None}]
        assert data["summary"][-1]["check"] == "zz_test_check" and data["summary"][-1]["count"] == 1
    finally:
        checks.unregister("zz_test_check")
    assert "zz_test_check" not in qr.CHECKS


# --------------------------------------------------------------------------- evaluation files

@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet"])
def test_read_eval_texts_in_every_format(tmp_path, fmt):
    frame = pl.DataFrame({"id": [1, 2], "subject": ["astro", "bio"], "Question": EVAL})
    path = tmp_path / f"eval.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, frame.to_dicts())
    elif fmt == "json":
        path.write_text(json.dumps(frame.to_dicts(), ensure_ascii=False), encoding="utf-8")
    elif fmt == "csv":
        frame.write_csv(path)
    elif fmt == "tsv":
        frame.write_csv(path, separator="\t")
    else:
        frame.write_parquet(path)
    got = read_eval_texts(path)
    assert got.texts == tuple(EVAL) and got.column == "Question" and got.name == path.name
    assert read_eval_texts(path.read_bytes(), "upload." + fmt).texts == tuple(EVAL)


def test_read_eval_texts_column_choice_and_errors(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"n": 1, "stem": "What is two plus two?"}, {"n": 2, "stem": " "}])
    got = read_eval_texts(path)
    assert got.column == "stem" and got.texts == ("What is two plus two?",)  # first string column, blanks dropped
    assert read_eval_texts(write_jsonl(tmp_path / "b.jsonl", [{"text": "x y", "prompt": "p q"}])).column == "prompt"
    with pytest.raises(ValueError, match=r"c\.jsonl: no text column .* the columns are n"):
        read_eval_texts(write_jsonl(tmp_path / "c.jsonl", [{"n": 1}]))
    with pytest.raises(ValueError, match=r"d\.jsonl: line 2 is not valid JSON"):
        read_eval_texts(write_jsonl(tmp_path / "d.jsonl", [{"question": "a"}, "{oops"]))
    with pytest.raises(ValueError, match="e.csv: .*empty"):
        (tmp_path / "e.csv").write_text("", encoding="utf-8")
        read_eval_texts(tmp_path / "e.csv")
    with pytest.raises(ValueError, match="holds no questions"):
        read_eval_texts(write_jsonl(tmp_path / "f.jsonl", [{"question": ""}]))
    with pytest.raises(ValueError, match="file not found"):
        read_eval_texts(tmp_path / "missing.jsonl")


def test_cli_quality_eval_file(mixed, tmp_path):
    evals = write_jsonl(tmp_path / "eval.jsonl", [{"question": q} for q in EVAL])
    out = tmp_path / "report.json"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("QUALITY_DB", None)
    cmd = [sys.executable, "-m", "core", "quality", "--dataset", "mixed", "--db", str(mixed.path),
           "--label-errors", "skip", "--out", str(out)]
    proc = subprocess.run([*cmd, "--eval-file", str(evals)], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "evaluation set eval.jsonl: 2 questions (column question)" in proc.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [f["sample_id"] for f in data["checks"]["contamination"]] == ["m-eval"]
    assert set(data["checks"]["language_mismatch"][0]) >= set(qr.FINDING_KEYS)

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"n": 1}])
    proc = subprocess.run([*cmd, "--eval-file", str(bad)], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=300)
    assert proc.returncode == 1 and proc.stderr.startswith("error: bad.jsonl: no text column")
