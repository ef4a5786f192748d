"""AppTest: ui/records.py draws a record in its own shape (chat turns, a preference pair side by side,
Alpaca parts, plain text), code blocks as code and long turns folded."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from ui.records import LONG_TURN, text_parts


def draw(record, shape) -> AppTest:
    def app(record_json: str, shape: str) -> None:
        import json

        from ui.records import render_record

        render_record(json.loads(record_json), shape)

    at = AppTest.from_function(app, args=(json.dumps(record, ensure_ascii=False), shape), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def shown(at) -> list[str]:
    return [t.value for t in at.text] + [c.value for c in at.code]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_chat_is_drawn_as_turns_with_roles(lang):
    say = {"en": ("Export my orders in Python?", "Like this:\n```python\nprint('orders')\n```\nDone."),
           "zh": ("怎么用 Python 导出订单？", "这样：\n```python\nprint('orders')\n```\n好了。")}[lang]
    record = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": say[0]},
                           {"role": "assistant", "content": say[1]}, {"role": "user", "content": "x" * (LONG_TURN + 1)}]}
    at = draw(record, "chat")
    assert [m.name for m in at.chat_message] == ["system", "user", "assistant", "user"]
    assert [c.value for c in at.code] == ["print('orders')"] and at.code[0].language == "python"
    assert say[0] in shown(at)
    assert len(at.expander) == 1 and "characters" in at.expander[0].label  # the long turn is folded


def test_sharegpt_roles_are_mapped():
    at = draw({"conversations": [{"from": "human", "value": "二加二？"}, {"from": "gpt", "value": "四"}]}, "sharegpt")
    assert [m.name for m in at.chat_message] == ["user", "assistant"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_preference_pair_side_by_side(lang):
    pair = {"en": {"prompt": "Say hello.", "chosen": "Hello!", "rejected": "Go away."},
            "zh": {"prompt": "打个招呼。", "chosen": "你好！", "rejected": "走开。"}}[lang]
    at = draw(pair, "preference")
    assert len(at.columns) == 2
    assert [m.value for m in at.markdown] == [":green[**Chosen**]", ":red[**Rejected**]"]
    texts = shown(at)
    assert texts.index(pair["prompt"]) < texts.index(pair["chosen"]) < texts.index(pair["rejected"])


def test_alpaca_record_as_instruction_input_output():
    at = draw({"system": "Be brief.", "instruction": "翻译成英文。", "input": "早上好", "output": "Good morning"},
              "instruction")
    assert [m.value for m in at.markdown] == ["**Instruction**", "**Input**", "**Output**"]
    assert shown(at)[-3:] == ["翻译成英文。", "早上好", "Good morning"]
    assert at.expander[0].label.startswith("System prompt and earlier turns")


def test_text_and_tool_exports_and_unreadable_records():
    assert shown(draw({"text": "请帮我取消订单"}, "text")) == ["请帮我取消订单"]
    task = {"id": 1, "data": {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            "annotations": [{"completed_by": 1, "result": []}]}
    at = draw(task, "label_studio")
    assert at.caption[0].value == "Label Studio task · chat" and len(at.chat_message) == 2
    at = draw({"messages": "not a list"}, "chat")
    assert "cannot be read as chat" in at.warning[0].value and at.json


def test_text_parts_split_fenced_code():
    assert text_parts("a\n```sql\nSELECT 1\n```\nb") == [("text", "a", None), ("code", "SELECT 1", "sql"),
                                                         ("text", "b", None)]
    assert text_parts("```\nunclosed") == [("code", "unclosed", None)]
    assert text_parts("plain") == [("text", "plain", None)]
