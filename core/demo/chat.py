"""The chat demo dataset: multi-turn support conversations and preference pairs (Chinese and English)
with three annotators' quality labels (good / bad / unsure).

Built from the dialogue templates in ``data/chat.json``: each template has one to two user turns, each
with a good, a bad and a doubtful reply. A conversation takes the first one or two turns (earlier replies
good, the last reply good, bad or doubtful: its true quality), a system prompt in about half of them; a
preference pair puts the first turn's good reply against its bad one (true quality good), the doubtful
reply against the bad one (unsure), or the bad reply as "chosen" (bad: a swapped pair). One template's
reply holds a Python code block, another a long answer. Ten planted records (``plant-01`` …, see
:data:`CHAT_PLANTED`) are what the instruction-data checks must find, in Chinese and English: an
answer in the wrong language, refusals, a repeated sentence, two user turns in a row and a chat that
ends with the user, leaked template tokens and an unfilled ``{question}``, an over-short answer; two
more (``clean-01``, ``clean-02``) are what they must leave alone. Annotators ``alice`` and ``bo`` give the true
quality about 92% of the time, ``chen`` about 72%; some rows are missing. Deterministic for a seed.

The file is JSON lines in long form (one row per annotator): ``id, lang, topic, messages`` (a chat
record) or ``prompt, chosen, rejected`` (a preference pair, strings), ``label, annotator``.
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path
from typing import Any

CHAT_DATASET = "demo-support-chat"
CHAT_FILE = "demo_chat.jsonl"
_DATA = Path(__file__).with_name("data") / "chat.json"
_ACCURACY = {"alice": 0.92, "bo": 0.92, "chen": 0.72}
_MISSING = 0.04


@cache
def _templates() -> dict[str, Any]:
    return json.loads(_DATA.read_text(encoding="utf-8"))


CHAT_LABELS: list[str] = list(_templates()["labels"])
CHAT_ANNOTATORS: tuple[str, ...] = tuple(_ACCURACY)
_REPLY = {"good": 1, "bad": 2, "unsure": 3}


def chat_records(seed: int = 11) -> list[dict[str, Any]]:
    """The demo's records (no labels): ``id, lang, topic``, content, and ``quality`` (the true label)."""
    rng = random.Random(seed)
    data = _templates()
    conversations: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for d in data["dialogues"]:
        lang, turns = d["lang"], d["turns"]
        for depth in range(1, len(turns) + 1):
            for quality in ("good", "bad", "unsure"):
                messages = [{"role": "system", "content": data["systems"][lang]}] if rng.random() < 0.5 else []
                for k, turn in enumerate(turns[:depth]):
                    reply = turn[_REPLY[quality]] if k == depth - 1 else turn[1]
                    messages += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": reply}]
                conversations.append({"lang": lang, "topic": d["topic"], "messages": messages, "quality": quality})
        first = turns[0]
        for quality in ("good", "unsure" if rng.random() < 0.5 else "bad"):
            chosen, rejected = {"good": (first[1], first[2]), "unsure": (first[3], first[2]),
                                "bad": (first[2], first[1])}[quality]
            pairs.append({"lang": lang, "topic": d["topic"], "prompt": first[0], "chosen": chosen,
                          "rejected": rejected, "quality": quality})
    rng.shuffle(conversations)
    rng.shuffle(pairs)
    out = [{"id": f"chat-{i:03d}", **c} for i, c in enumerate(conversations, 1)]
    out += [{"id": f"pair-{i:03d}", **p} for i, p in enumerate(pairs, 1)]
    out += [{"id": rid, **record} for rid, (_, record) in _PLANTED.items()]
    return out


def _chat(lang: str, topic: str, quality: str, *turns: tuple[str, str]) -> dict[str, Any]:
    return {"lang": lang, "topic": topic, "messages": [{"role": r, "content": c} for r, c in turns],
            "quality": quality}


# Records each instruction-data check of core.checks must find (id -> (check, record)), and two it must leave alone
# (check None): a translation request answered in the other language, Chinese text with English product names.
# Appended after the drawn records, so the random draws (and every other record) stay as they were.
_PLANTED: dict[str, tuple[str | None, dict[str, Any]]] = {
    "plant-01": ("language_mismatch", _chat(
        "zh", "refund", "bad",
        ("user", "请问我的退款什么时候能到账？订单号是 20240611，已经等了一个星期了。"),
        ("assistant", ("Your refund for order 20240611 was approved today and will reach your card within three to "
                      "five business days.")))),
    "plant-02": ("refusal", _chat(
        "zh", "product", "bad",
        ("user", "这件羊毛外套可以直接放洗衣机洗吗？"),
        ("assistant", "抱歉，我无法回答这个问题。"))),
    "plant-03": ("refusal", _chat(
        "en", "product", "bad",
        ("user", "What sizes does the trail running jacket come in?"),
        ("assistant", ("As an AI language model, I do not have access to the shop's catalogue, so I cannot tell you "
                      "which sizes are available.")))),
    "plant-04": ("repetition", _chat(
        "en", "address", "bad",
        ("user", "How do I change the delivery address of an order I placed this morning?"),
        ("assistant", "You can change it on the My Orders page. " * 5))),
    "plant-05": ("repetition", _chat(
        "zh", "address", "bad",
        ("user", "下单后还能修改收货地址吗？"),
        ("assistant", "您好，请在订单详情页点击修改地址。" * 5))),
    "plant-06": ("chat_structure", _chat(
        "zh", "shipping", "bad",
        ("user", "我的快递三天没有更新物流了。"),
        ("user", "单号是 SF1234567890，麻烦帮我查一下。"),
        ("assistant", "您好，已为您联系快递公司，包裹在中转站滞留，预计明天恢复派送。"))),
    "plant-07": ("chat_structure", _chat(
        "en", "shipping", "bad",
        ("user", "Has my order shipped yet?"),
        ("assistant", "Yes, it left our warehouse this afternoon and should arrive in two to three days."),
        ("user", "Great, and can I get the tracking number by e-mail?"))),
    "plant-08": ("template_leakage", _chat(
        "zh", "cancel", "bad",
        ("user", "帮我取消昨天下的那个订单。"),
        ("assistant", "<|im_start|>assistant\n好的，订单已为您取消，款项将在三个工作日内原路退回。<|im_end|>"))),
    "plant-09": ("template_leakage", _chat(
        "en", "product", "bad",
        ("user", "Answer the customer's question politely: {question}"),
        ("assistant", ("Thank you for reaching out! Could you tell me your order number so that I can look into "
                      "it?")))),
    "plant-10": ("length_ratio", _chat(
        "zh", "product", "bad",
        ("user", ("我上个月买的空气净化器，滤网指示灯一直在闪，说明书上写三到六个月换一次，但我家里养了两只猫，"
                 "平时也经常开窗通风。请问这种情况下滤网应该多久更换一次？换下来的旧滤网能不能用水清洗晾干后继续使用？"
                 "另外原装滤网和第三方的兼容滤网在过滤效果上差别大吗？")),
        ("assistant", "换。"))),
    "clean-01": (None, _chat(
        "zh", "shipping", "good",
        ("user", "请把这句话翻译成英文：您的包裹已经发出，预计后天送达。"),
        ("assistant", "Your parcel has been shipped and should arrive the day after tomorrow."))),
    "clean-02": (None, _chat(
        "zh", "product", "good",
        ("user", "我的 AirPods Pro 充电盒充不进电怎么办？"),
        ("assistant", ("请先用原装 Lightning 线给充电盒充电 30 分钟，再把耳机放回盒中重试；如果指示灯仍不亮，"
                      "可以在 Apple 官网预约检测。")))),
}
#: The planted records of the chat demo: record id -> the check that must flag it (None: must stay clean).
CHAT_PLANTED: dict[str, str | None] = {rid: check for rid, (check, _) in _PLANTED.items()}


def chat_rows(seed: int = 11) -> list[dict[str, Any]]:
    """The long-form rows: each record once per annotator who labelled it, with ``label`` and ``annotator``."""
    rng = random.Random(seed + 1)
    rows = []
    for record in chat_records(seed):
        base = {k: v for k, v in record.items() if k != "quality"}
        for annotator, accuracy in _ACCURACY.items():
            if rng.random() < _MISSING:
                continue
            label = record["quality"] if rng.random() < accuracy else \
                rng.choice([lab for lab in CHAT_LABELS if lab != record["quality"]])
            rows.append({**base, "label": label, "annotator": annotator})
    return rows


def generate_chat_demo(out_dir: Path, seed: int = 11) -> Path:
    """Write the chat demo file (JSON lines, UTF-8, Chinese unescaped) into ``out_dir``; its path."""
    path = Path(out_dir) / CHAT_FILE
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chat_rows(seed)), encoding="utf-8")
    return path
