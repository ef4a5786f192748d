"""The chat demo dataset: multi-turn support conversations and preference pairs (Chinese and English)
with three annotators' quality labels (good / bad / unsure).

Built from the dialogue templates in ``data/chat.json``: each template has one to two user turns, each
with a good, a bad and a doubtful reply. A conversation takes the first one or two turns (earlier replies
good, the last reply good, bad or doubtful: its true quality), a system prompt in about half of them; a
preference pair puts the first turn's good reply against its bad one (true quality good), the doubtful
reply against the bad one (unsure), or the bad reply as "chosen" (bad: a swapped pair). One template's
reply holds a Python code block, another a long answer. Annotators ``alice`` and ``bo`` give the true
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
    return out


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
