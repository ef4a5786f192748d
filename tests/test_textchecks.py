"""Tests for core.textchecks: language mismatch, refusals, repetition, chat structure, template leakage, contamination and length ratio (Chinese and English; instruction, chat and preference-pair shapes)."""

from __future__ import annotations

import re
import time

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import textchecks as tc
from core.textchecks import (
    FINDING_KEYS,
    asks_for_language,
    chat_structure,
    contamination,
    detect_languages,
    findings_frame,
    language_mismatch,
    language_profile,
    length_ratio,
    mask_code,
    refusals,
    repetition,
    template_leakage,
    text_units,
)

HYP = settings(max_examples=40, deadline=None, derandomize=True)


def kinds(findings, index=None):
    return sorted(f["kind"] for f in findings if index is None or f["index"] == index)


def rows(findings):
    return sorted({f["index"] for f in findings})


def check_spans(findings, texts):
    for f in findings:
        assert set(FINDING_KEYS) <= set(f)
        assert f["severity"] in ("error", "warning", "info")
        assert f["message"]
        if f["start"] is not None:
            assert texts[f["index"]][f["start"] : f["end"]] == f["span_text"]


# --------------------------------------------------------------------------- shared helpers


def test_mask_code_keeps_offsets_and_masks_code():
    text = "先看代码：\n```python\nx = {question}\n```\n然后 `f\"{name}\"` 和 $\\frac{a}{b}$ 结束"
    masked = mask_code(text, math=True)
    assert len(masked) == len(text)
    assert "{question}" not in masked and "{name}" not in masked and "frac" not in masked
    assert masked.startswith("先看代码：") and masked.endswith("结束")
    assert mask_code("no code here") == "no code here"


def test_unclosed_fence_runs_to_the_end():
    text = "Here:\n```\nprint('{question}')"
    assert "{question}" not in mask_code(text)


@pytest.mark.parametrize(
    "call",
    [
        lambda: refusals("I'm sorry"),
        lambda: repetition(b"abc"),
        lambda: template_leakage(42),
        lambda: detect_languages("一句话"),
    ],
)
def test_a_single_text_instead_of_a_sequence_is_an_error(call):
    with pytest.raises(ValueError, match="expected a sequence"):
        call()


def test_errors_name_the_argument_and_position():
    with pytest.raises(ValueError, match=r"responses\[1\]: expected a string or None, got int"):
        refusals(["ok", 3])
    with pytest.raises(ValueError, match="prompts and responses must have the same length"):
        language_mismatch(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="threshold"):
        repetition(["x"], threshold=0)
    with pytest.raises(ValueError, match=r"extra_patterns\[0\]"):
        refusals(["x"], extra_patterns=["  "])


def test_none_and_empty_inputs():
    assert refusals([]) == [] and repetition([None]) == [] and template_leakage([None, ""]) == []
    assert contamination([], ["an eval question"]) == [] and length_ratio([], []) == []
    assert detect_languages([None, ""]) == [None, None]


def test_polars_series_input():
    s = pl.Series(["抱歉，我无法提供这类信息。", None, "Sure, here it is."])
    assert rows(refusals(s)) == [0]


def test_findings_frame_has_fixed_columns_and_extras():
    empty = findings_frame([])
    assert empty.columns == list(FINDING_KEYS) and empty.height == 0
    texts = ["I love you. " * 10, "好的" * 10]
    frame = findings_frame(repetition(texts))
    assert frame.columns[: len(FINDING_KEYS)] == list(FINDING_KEYS)
    assert {"unit", "count", "coverage"} <= set(frame.columns)
    assert frame["index"].to_list() == [0, 1]


# --------------------------------------------------------------------------- language

LANGUAGE_CASES = [
    ("请介绍一下北京的历史和文化。", "zh"),
    ("請問這家餐廳幾點開門？", "zh"),
    ("我刚买了 iPhone 15 Pro，续航很不错。", "zh"),  # Chinese with an English product name
    ("用 Python 的 pandas 读取 CSV 文件，再用 matplotlib 画图。", "zh"),
    ("Please summarize the following paragraph in two sentences.", "en"),
    ("How do I reset my password?", "en"),
    ("The Chinese word 你好 means hello.", "en"),  # English quoting Chinese
    ("こんにちは、今日はいい天気ですね。", "ja"),
    ("東京駅までの行き方を教えてください。", "ja"),
    ("Je voudrais réserver une table pour deux personnes ce soir.", "fr"),
    ("Der Hund spielt im Garten mit dem roten Ball.", "de"),
    ("오늘 날씨가 정말 좋네요.", "ko"),
    ("def add(a, b):\n    return a + b", None),  # code is not a language
    ("```python\nimport numpy as np\nx = np.zeros(3)\n```", None),
    ("for (int i = 0; i < n; i++) { sum += i; }", None),
    ("好", None),  # too short
    ("OK", None),
    ("谢谢", None),
    ("", None),
]


def test_detect_languages_on_labeled_short_strings():
    texts = [t for t, _ in LANGUAGE_CASES]
    assert detect_languages(texts) == [w for _, w in LANGUAGE_CASES]


def test_language_profile_columns_and_methods():
    prof = language_profile(["这是一个用来测试的中文句子。", "This is what you need.", "Bonjour tout le monde, je suis ici.", "好"])
    assert prof.columns == ["language", "script", "share", "cjk_share", "units", "method"]
    assert prof["method"].to_list() == ["script", "stopwords", "identifier", "too_short"]
    assert prof["cjk_share"][0] == pytest.approx(1.0) and prof["cjk_share"][1] == 0.0


def test_batched_langid_equals_langid_classify():
    langid = pytest.importorskip("langid")
    texts = [t for t, _ in LANGUAGE_CASES if t] + [
        "Ceci est une phrase française assez ordinaire.",
        "Questo è un testo italiano.",
        "Привет, как дела?",
        "a",
        "1234 5678",
        "mixed 中文 and English 文本",
    ]
    assert tc.langid_identifier(texts) == [langid.classify(t)[0] for t in texts]


@HYP
@given(st.lists(st.text(alphabet=st.sampled_from(list("abcdeéñ xyz中文字あいう한국.,!?")), min_size=1, max_size=60), min_size=1, max_size=8))
def test_batched_langid_equals_langid_classify_on_random_text(texts):
    langid = pytest.importorskip("langid")
    got = tc.langid_identifier(texts)
    want = [langid.classify(t)[0] if t.strip() else None for t in texts]
    assert got == want


MISMATCH_POSITIVE = [
    ("请介绍一下北京的历史和文化。", "Beijing has a history of more than three thousand years and is the cultural center of China.", "zh", "en"),
    ("What is the capital of France, and why is it important?", "法国的首都是巴黎，它是法国的政治、经济和文化中心。", "en", "zh"),
    ("请推荐几本适合初学者的编程书。", "初心者には「Python入門」がおすすめです。とても分かりやすいです。", "zh", "ja"),
    ("Explain in detail how photosynthesis works in green plants and why it matters.", "La photosynthèse est le processus par lequel les plantes transforment la lumière du soleil en énergie chimique.", "en", "fr"),
]


@pytest.mark.parametrize("prompt,response,lp,lr", MISMATCH_POSITIVE)
def test_language_mismatch_positive(prompt, response, lp, lr):
    found = language_mismatch([prompt], [response])
    assert len(found) == 1
    f = found[0]
    assert (f["kind"], f["prompt_language"], f["response_language"], f["field"]) == ("language_mismatch", lp, lr, "response")
    assert f["severity"] == ("info" if {lp, lr} == {"en", "fr"} else "warning")
    check_spans(found, [response])


MISMATCH_NEGATIVE = [
    # translation requests answered in the other language
    ("把下面这句话翻译成英文：今天天气很好，我们去公园散步吧。", "The weather is nice today, let's go for a walk in the park."),
    ("Translate into Chinese: The meeting has been moved to Thursday afternoon.", "会议改到了星期四下午。"),
    ("中译英：我们明天早上八点出发。", "We will leave at eight tomorrow morning."),
    ("请将这段话译为英语：他昨天没来上班，因为发烧了。", "He didn't come to work yesterday because he had a fever."),
    # a request to answer in a named language
    ("请用英文回答：什么是机器学习？", "Machine learning is a field of artificial intelligence that learns patterns from data."),
    ("Answer in Chinese please: what is the boiling point of water?", "水在标准大气压下的沸点是一百摄氏度。"),
    ("Write a short greeting in Japanese for my colleague.", "おはようございます。今日もよろしくお願いします。"),
    # same language, with English terms or code
    ("怎么用 Python 读取 Excel 文件？", "可以使用 pandas 的 read_excel 函数，先安装 openpyxl，然后调用 pd.read_excel('data.xlsx') 即可。"),
    ("写一个 Python 函数计算阶乘。", "```python\ndef factorial(n):\n    return 1 if n < 2 else n * factorial(n - 1)\n```"),
    ("写一个 Python 函数计算阶乘。", "def factorial(n):\n    if n < 2:\n        return 1\n    return n * factorial(n - 1)"),
    ("推荐一款适合学生的笔记本电脑。", "推荐 MacBook Air M2，续航长、重量轻，适合学生日常使用和 coding。"),
    # mixed or too short
    ("What does the idiom 画蛇添足 mean?", "画蛇添足 means ruining something by adding unnecessary details, like drawing legs on a snake."),
    ("法国的首都是哪里？", "Paris"),
    ("What is the capital of France?", "巴黎"),
    ("Give me one word.", "好"),
    ("", "Some answer without a question."),
]


@pytest.mark.parametrize("prompt,response", MISMATCH_NEGATIVE)
def test_language_mismatch_negative(prompt, response):
    assert language_mismatch([prompt], [response]) == []


def test_language_mismatch_in_chat_and_preference_pairs():
    # chat: the last user turn against the assistant's reply
    conv = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "请问怎么煮米饭？"},
        {"role": "assistant", "content": "先把米洗干净，加适量的水，然后用电饭煲煮二十分钟。"},
        {"role": "user", "content": "那煮粥呢？"},
        {"role": "assistant", "content": "You need more water for porridge and should cook it for about an hour."},
    ]
    last_user = [t["content"] for t in conv if t["role"] == "user"][-1]
    assert language_mismatch([last_user], [conv[-1]["content"]]) == []  # "那煮粥呢？" is too short to tell
    first = language_mismatch([conv[1]["content"]], [conv[-1]["content"]])
    assert [f["response_language"] for f in first] == ["en"]
    # preference pair: the chosen answer is in the prompt's language, the rejected one is not
    prompt = "请解释一下什么是区块链技术。"
    chosen = "区块链是一种分布式账本技术，数据按区块链接，难以篡改。"
    rejected = "Blockchain is a distributed ledger technology in which data is stored in linked blocks."
    found = language_mismatch([prompt, prompt], [chosen, rejected], field="rejected")
    assert rows(found) == [1] and found[0]["field"] == "rejected"


def test_language_mismatch_calls_the_identifier_only_where_a_pair_can_still_mismatch():
    calls: list[str] = []

    def fake(texts):
        calls.extend(texts)
        return ["fr" for _ in texts]

    prompts = ["请介绍一下北京的历史和文化。", "Bonjour, pouvez-vous m'aider avec ce problème difficile de maths ?", "How do I reset my password on this website?"]
    responses = ["北京有三千多年的历史，是中国的文化中心。", "Oui, bien sûr, je peux vous aider avec ce problème de mathématiques.", "Click on the link that says you forgot it."]
    assert language_mismatch(prompts, responses, identifier=fake) == []
    assert all("Bonjour" in c or "Oui" in c for c in calls) and len(calls) == 2


@pytest.mark.parametrize(
    "prompt,code,expected",
    [
        ("把这句话翻译成英文", "en", True),
        ("Translate to French", None, True),
        ("请用日语回答", "ja", True),
        ("请用日语回答", "en", False),
        ("Answer in English.", "en", True),
        ("Tell me about the history of Rome.", "zh", False),
        ("用中文解释一下 transformer", "zh", True),
    ],
)
def test_asks_for_language(prompt, code, expected):
    assert asks_for_language(prompt, code) is expected


# --------------------------------------------------------------------------- refusals

REFUSAL_POSITIVE = [
    ("I'm sorry, but I can't help with that.", "refusal"),
    ("I’m sorry, but I cannot provide instructions for that.", "refusal"),
    ("Sorry, I am unable to assist with this request.", "refusal"),
    ("I apologize, but I won't be able to write that essay.", "refusal"),
    ("I cannot assist with creating malware.", "refusal"),
    ("I must respectfully decline to answer.", "refusal"),
    ("That would be against my guidelines.", "refusal"),
    ("As an AI language model, I don't have personal opinions.", "ai_boilerplate"),
    ("As an AI, I do not have feelings.", "ai_boilerplate"),
    ("I'm just an AI assistant, so I can only share general information.", "ai_boilerplate"),
    ("My knowledge cutoff is September 2021, so I may not know recent events.", "ai_boilerplate"),
    ("抱歉，我无法提供这类信息。", "refusal"),
    ("对不起，但我不能回答这个问题。", "refusal"),
    ("很抱歉，作为AI助手，我不能帮你做这件事。", "refusal"),
    ("我不能提供任何医疗诊断。", "refusal"),
    ("这个问题超出了我的能力范围。", "refusal"),
    ("作为一个人工智能语言模型，我没有个人观点。", "ai_boilerplate"),
    ("作为AI助手，我会尽力帮助你。", "ai_boilerplate"),
    ("我只是一个AI，无法感受情绪。", "ai_boilerplate"),
    ("我的知识截止到2021年，之后的事情我不清楚。", "ai_boilerplate"),
]


@pytest.mark.parametrize("text,kind", REFUSAL_POSITIVE)
def test_refusal_positive(text, kind):
    found = refusals(["Here is your recipe.", "Fine." + " " + text])
    assert rows(found) == [1] and found[0]["kind"] == kind and found[0]["severity"] == "warning"
    check_spans(found, ["Here is your recipe.", "Fine." + " " + text])


REFUSAL_NEGATIVE = [
    "I can't help but laugh at this joke, it is great.",
    "As an AI researcher, I have worked on language models for years.",
    "I'm sorry to hear that. Here is how you can fix the problem: restart the router.",
    "It is not appropriate to store money as a float; use Decimal instead.",
    "The company's content policy forbids spam.",
    "作为一名程序员，我推荐使用 Python。",
    "我昨晚无法入睡，所以今天很累。",
    "他说：“我不会游泳。”",
    "人工智能是计算机科学的一个分支。",
    "Sure! Here is a short poem about the sea.",
]


@pytest.mark.parametrize("text", REFUSAL_NEGATIVE)
def test_refusal_negative(text):
    assert refusals([text]) == []


def test_refusal_extra_patterns_are_literal_phrases():
    texts = ["We cannot process (.*) now", "We cannot process anything now", "per company policy   we decline", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"]
    found = refusals(texts, extra_patterns=["cannot process (.*)", "Per Company Policy we", "(a+)+$"])
    assert rows(found) == [0, 2]
    assert found[1]["span_text"] == "per company policy   we"
    t0 = time.perf_counter()
    refusals(["a" * 5000 + "!"] * 20, extra_patterns=["(a+)+$", "(a|aa)*b"])
    assert time.perf_counter() - t0 < 2.0  # a literal, never a backtracking regex


def test_refusal_prefilter_agrees_with_a_plain_python_scan():
    texts = [t for t, _ in REFUSAL_POSITIVE] + REFUSAL_NEGATIVE + ["Ünïcode: I’m sorry, but I can’t", "éI'm sorry, but I can't"]
    compiled = [re.compile(rx, re.IGNORECASE) for _, rx in tc.REFUSAL_PATTERNS]
    plain = [i for i, t in enumerate(texts) if any(rx.search(t) for rx in compiled)]
    assert rows(refusals(texts)) == plain


# --------------------------------------------------------------------------- repetition

REPETITION_POSITIVE = [
    ("I love you. " * 20, "I love you"),
    ("Sure, here is the answer. " + "The answer is 42 because the question is deep. " * 6, "The answer is 42 because the question is deep"),
    ("好的" * 12, "好的"),
    ("我们今天学习了很多知识，" * 5 + "最后老师总结了一下。", "我们今天学习了很多知识"),
    ("首先，打开设置页面。" + "然后点击保存按钮，然后点击保存按钮，" * 8, None),
    ("the the the the the the the the the the the the the the", "the"),
    # an intro that shares the loop's stem, and a last copy cut short by the end of the text
    ("What is the difference between a cat and a dog? " + "What is the difference between a frog and a toad? " * 4
     + "What is the difference between a frog", None),
]


@pytest.mark.parametrize("text,unit", REPETITION_POSITIVE)
def test_repetition_positive(text, unit):
    found = repetition(["A normal answer with nothing odd about it at all, really.", text])
    assert rows(found) == [1]
    f = found[0]
    assert f["kind"] == "repetition" and f["coverage"] >= 0.5 and f["count"] >= 3
    if unit is not None:
        assert f["unit"] == unit
    check_spans(found, ["", text])


REPETITION_NEGATIVE = [
    (
        "Photosynthesis is the process by which green plants use sunlight to make food from carbon dioxide and water. "
        "It happens in the chloroplasts, and it releases oxygen as a by-product that animals breathe."
    ),
    "光合作用是绿色植物利用光能，把二氧化碳和水转化成储存能量的有机物，并释放出氧气的过程。它主要发生在叶绿体中，是地球上生命存在的基础。",
    "1. Add the flour. 2. Add the sugar. 3. Add the eggs. 4. Add the milk. 5. Add the butter and mix well.",
    "| Name | Age | City |\n|---|---|---|\n| Alice | 30 | Paris |\n| Bob | 25 | London |\n| Carol | 41 | Berlin |",
    (
        "What is the difference between a cat and a dog? What is the difference between a frog and a toad? "
        "What is the difference between a lake and a pond?"
    ),
    "如果网络出现问题，可以尝试重新连接路由器。如果电脑出现问题，可以尝试重新启动系统。如果手机出现问题，可以尝试重新安装应用。",
    "```python\nprint('hello')\nprint('hello')\nprint('hello')\nprint('hello')\nprint('hello')\n```\nThis prints hello five times.",
    "The matrix is [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] after initialisation, all zeros.",
    "1 × 1 = 1\n1 × 2 = 2\n2 × 2 = 4\n1 × 3 = 3\n2 × 3 = 6\n3 × 3 = 9\n1 × 4 = 4\n2 × 4 = 8\n3 × 4 = 12\n4 × 4 = 16",
    "哈哈哈，太好笑了！",
]


@pytest.mark.parametrize("text", REPETITION_NEGATIVE)
def test_repetition_negative(text):
    assert repetition([text]) == []


units = st.sampled_from(["I love you.", "好的", "the cat sat on the mat.", "我们今天学习了很多知识，", "Yes", "ok ok", "abc def ghi jkl mno."])
fillers = st.sampled_from(["", "Here is my answer. ", "首先，我们来看这个问题。", "Note: the result may vary depending on the input. "])


@HYP
@given(st.lists(st.tuples(fillers, units, st.integers(0, 15), fillers), min_size=1, max_size=6))
def test_repetition_prefilter_never_drops_a_finding(parts):
    texts = [a + b * k + c for a, b, k, c in parts]
    fast = repetition(texts)
    exact = [i for i, t in enumerate(texts) if tc._repetition_one(t, 5, 10, 0.5, 3, 12) is not None]
    assert rows(fast) == exact
    check_spans(fast, texts)


# --------------------------------------------------------------------------- chat structure

GOOD_CHATS = [
    [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！有什么可以帮你？"}],
    [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "{\"rain\": false}"},
        {"role": "assistant", "content": "It is 21 °C and dry."},
    ],
    [{"role": "User", "content": [{"type": "text", "text": "看这张图"}, {"type": "image"}]}, {"role": "assistant", "content": "这是一只猫。"}],
]


def test_chat_structure_clean_conversations():
    assert chat_structure(GOOD_CHATS) == []


@pytest.mark.parametrize(
    "conv,expected",
    [
        ([], ["empty_conversation"]),
        (None, ["empty_conversation"]),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}], ["empty_turn"]),
        ([{"role": "user", "content": "你好"}, {"role": "user", "content": "在吗"}, {"role": "assistant", "content": "在的"}], ["consecutive_same_role"]),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}], ["not_ending_with_assistant"]),
        ([{"role": "system", "content": "rules"}, {"role": "assistant", "content": "hello"}], ["no_user_turn"]),
        ([{"role": "human", "content": "hi"}, {"role": "gpt", "content": "hello"}], ["no_user_turn", "not_ending_with_assistant", "unknown_role", "unknown_role"]),
        ([{"role": "user", "content": "hi"}, {"role": "system", "content": "rules"}, {"role": "assistant", "content": "ok"}], ["system_not_first"]),
        ([{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}, {"role": "assistant", "content": "ok"}], ["tool_without_call"]),
        (["just a string", {"role": "assistant", "content": "ok"}], ["malformed_turn", "no_user_turn"]),
    ],
)
def test_chat_structure_faults(conv, expected):
    found = chat_structure(GOOD_CHATS[:1] + [conv])
    assert rows(found) == [1]
    assert kinds(found) == sorted(expected)
    assert all(f["field"] == "conversation" for f in found)


def test_chat_structure_preference_pair():
    prompt = [{"role": "user", "content": "写一首关于春天的诗。"}]
    chosen = prompt + [{"role": "assistant", "content": "春风拂面花自开。"}]
    rejected = prompt + [{"role": "assistant", "content": ""}]
    found = chat_structure([chosen, rejected], field="rejected")
    assert rows(found) == [1] and kinds(found) == ["empty_turn"] and found[0]["turn"] == 1


def test_chat_structure_rejects_a_non_list_conversation():
    with pytest.raises(ValueError, match=r"conversations\[0\]"):
        chat_structure(["not a conversation"])


# --------------------------------------------------------------------------- template leakage

LEAK_POSITIVE = [
    ("Paris is the capital of France.<|im_end|>", "chat_template_token", "<|im_end|>"),
    ("<|im_start|>assistant\nHello!", "chat_template_token", "<|im_start|>"),
    ("The answer is 4.<|endoftext|>", "chat_template_token", "<|endoftext|>"),
    ("Sure.<|eot_id|><|start_header_id|>user", "chat_template_token", "<|eot_id|>"),
    ("[INST] What is 2+2? [/INST] 4", "chat_template_token", "[INST]"),
    ("<<SYS>>\nYou are helpful.\n<</SYS>>", "chat_template_token", "<<SYS>>"),
    ("<s>北京是中国的首都。</s>", "chat_template_token", "<s>"),
    ("好的。<｜end▁of▁sentence｜>", "chat_template_token", "<｜end▁of▁sentence｜>"),
    ("Below is an instruction.\n### Instruction:\nSay hi\n### Response:", "prompt_format_marker", "### Instruction:"),
    ("Answer the following question: {question}", "unfilled_placeholder", "{question}"),
    ("Context: {{ context }}\nQ: {{input}}", "unfilled_placeholder", "{{ context }}"),
    ("请根据以下内容回答：{问题}", "unfilled_placeholder", "{问题}"),
    ("Dear {customer_name}, thank you for your order.", "possible_placeholder", "{customer_name}"),
    ("That is all.\n\nHuman: and now write a poem", "role_marker", "Human:"),
]


@pytest.mark.parametrize("text,kind,span", LEAK_POSITIVE)
def test_template_leakage_positive(text, kind, span):
    found = template_leakage(["A clean sentence.", text], field="response")
    assert rows(found) == [1]
    first = found[0]
    assert first["kind"] == kind and first["span_text"] == span and first["field"] == "response"
    check_spans(found, ["", text])


LEAK_NEGATIVE = [
    "You can use an f-string:\n\n```python\nname = 'Ada'\nprint(f\"Hello {name}, your question was {question}\")\n```",
    "Use `\"{question}\".format(question=q)` to fill the slot, or `{{input}}` in Jinja.",
    'prompt = f"Answer the question: {question}"',
    'template = "Q: {question}\\nA:".format(question=q)',
    '{"question": "{question}", "answer": "{answer}"}',
    "The fraction $\\frac{a}{b}$ and the vector \\mathbf{x} and x^{n} are fine.",
    "The set {1, 2, 3} has three elements; {x} is a singleton.",
    "<p>This price is <s>$20</s> now $15.</p>",
    "<div>{{ message }}</div> renders the message in Vue.",
    "In JavaScript, write `Hi ${user}` inside backticks.",
    "下面是模板：\n```\n请回答：{问题}\n```\n把 {问题} 换成你的问题即可。",
    "    for key in d:\n        print(f'{key}: {d[key]}')\n\nThis prints every entry.",
    "def greet(name):\n    return 'Hello {name}'.format(name=name)",
    "Use the <s> tag for strike-through, like <b>bold</b>.",
    "在 Python 中，字典写作 {'a': 1}，集合写作 {1, 2}。",
]


@pytest.mark.parametrize("text", LEAK_NEGATIVE)
def test_template_leakage_negative_code_is_not_a_leak(text):
    assert template_leakage([text]) == []


def test_template_leakage_in_a_chat_turn_and_a_preference_pair():
    conv = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！<|im_end|>\n<|im_start|>user"}]
    found = template_leakage([t["content"] for t in conv], field="turn")
    assert rows(found) == [1] and [f["span_text"] for f in found] == ["<|im_end|>", "<|im_start|>"]
    chosen, rejected = "Python 的 f-string 写作 `f\"{x}\"`。", "Python 的 f-string 写作 {x}。</s>"
    assert rows(template_leakage([chosen, rejected])) == [1]


# --------------------------------------------------------------------------- contamination

EVAL = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether?",
    "下列关于光合作用的叙述中，正确的是哪一项？光合作用只能在白天进行并且需要叶绿素参与",
    "What is the boiling point of water at sea level?",  # short: 9 words, matched whole
    "中国的首都是哪座城市呢",  # short: 11 characters, matched whole
]


def test_contamination_positive_english_13_gram():
    texts = ["Here is a word problem: natalia sold clips to 48 of her friends in April, and then she sold half as many. Solve it."]
    found = contamination(texts, EVAL)
    assert len(found) == 1
    f = found[0]
    assert f["eval_index"] == 0 and f["kind"] == "eval_overlap"
    assert f["span_text"].lower().startswith("natalia sold clips")
    check_spans(found, texts)


def test_contamination_positive_chinese_characters():
    texts = ["请回答：下列关于光合作用的叙述中，正确的是哪一项？"]
    found = contamination(texts, EVAL, field="prompt")
    assert [f["eval_index"] for f in found] == [1] and found[0]["field"] == "prompt"
    assert found[0]["span_text"] == "下列关于光合作用的叙述中，正确的是哪一项"
    check_spans(found, texts)


def test_contamination_whole_short_items_and_severity():
    texts = ["Quick quiz. What is the boiling point of water at sea level? Think.", "考考你：中国的首都是哪座城市呢？", EVAL[0]]
    found = contamination(texts, EVAL)
    assert [(f["index"], f["eval_index"]) for f in found] == [(0, 2), (1, 3), (2, 0)]
    assert found[2]["severity"] == "error" and found[2]["eval_coverage"] == 1.0


def test_contamination_negative():
    texts = [
        "Natalia sold clips to 48 of her friends in April and then",  # 12 words: below 13
        "光合作用需要阳光、水和二氧化碳。",
        "What is the boiling point of ethanol?",
        "中国的首都是北京",
        "",
    ]
    assert contamination(texts, EVAL) == []


def test_contamination_ignores_ngrams_shared_by_many_eval_items():
    stem = "which of the following statements about the french revolution is correct according to the text"
    evals = [f"{stem} option {k} with more words about topic {k}" for k in range(10)]
    found = contamination([f"Question: {stem} Answer: none."], evals)
    assert found == []  # template text of the eval set, not a copied item


def test_contamination_prefilter_agrees_with_full_scan():
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    han = list("天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏")
    evals = [" ".join(rng.choice(words, 20)) for _ in range(5)] + ["".join(rng.choice(han, 25)) for _ in range(5)]
    texts = []
    for k in range(40):
        base = " ".join(rng.choice(words, 30)) if k % 2 else "".join(rng.choice(han, 40))
        if k % 3 == 0:
            e = evals[k % len(evals)]
            cut = int(rng.integers(0, 5))
            base = base[:20] + " " + (e[cut:] if k % 2 else e) + " " + base[20:]
        texts.append(base.upper() if k % 5 == 0 else base)
    fast = contamination(texts, evals)
    full = contamination(texts, evals, prefilter=False)
    assert fast == full and len(fast) > 5


# --------------------------------------------------------------------------- length ratio


def test_text_units_count_words_and_cjk_characters():
    assert text_units(["Hello world, 42 times!", "你好世界", "用 Python 写", None]).tolist() == [4, 4, 3, 0]


def make_pairs(rng, n, zh=False):
    prompts, responses = [], []
    for _ in range(n):
        k = int(rng.integers(8, 14))
        prompts.append(("问" * k) if zh else " ".join(["ask"] * k))
        m = int(k * rng.uniform(4, 6))
        responses.append(("答" * m) if zh else " ".join(["answer"] * m))
    return prompts, responses


def test_length_ratio_positive_and_negative():
    rng = np.random.default_rng(1)
    p_en, r_en = make_pairs(rng, 60)
    p_zh, r_zh = make_pairs(rng, 60, zh=True)
    prompts, responses = p_en + p_zh, r_en + r_zh
    groups = ["qa"] * 60 + ["问答"] * 60
    assert length_ratio(prompts, responses, groups) == []
    responses = list(responses)
    responses[5] = "Yes."
    responses[70] = "好的。"
    responses[80] = "答" * 2000
    found = length_ratio(prompts, responses, groups)
    assert [(f["index"], f["kind"], f["severity"]) for f in found] == [
        (5, "response_too_short", "warning"),
        (70, "response_too_short", "warning"),
        (80, "response_too_long", "info"),
    ]
    assert found[0]["group"] == "qa" and found[0]["z"] < -3.5 and "shorter" in found[0]["message"]


def test_length_ratio_small_groups_use_the_pooled_distribution_and_mad_zero_falls_back():
    prompts = ["ask " * 10] * 41
    responses = ["answer " * 50] * 40 + ["ok"]
    groups = ["big"] * 30 + ["tiny"] * 11  # "tiny" is too small: scored against all 41
    found = length_ratio(prompts, responses, groups, min_group=20)
    assert rows(found) == [40] and found[0]["group"] == "tiny"  # MAD is 0 here: the mean absolute deviation stands in
    assert length_ratio(["a b c"] * 30, ["d e f"] * 30) == []  # no spread, no finding


def test_length_ratio_preference_pair():
    rng = np.random.default_rng(2)
    prompts, chosen = make_pairs(rng, 40)
    rejected = list(chosen)
    rejected[3] = "No."
    assert length_ratio(prompts, chosen) == []
    assert rows(length_ratio(prompts, rejected, field="rejected")) == [3]


# --------------------------------------------------------------------------- all checks on one small bilingual set


def test_every_check_leaves_clean_records_alone():
    prompts = [
        "请介绍一下长城的历史。",
        "Explain what a Python list comprehension is.",
        "把这句话翻译成英文：我喜欢读书。",
        "推荐一款降噪耳机。",
    ]
    responses = [
        "长城始建于春秋战国时期，秦朝统一后连接成万里长城，明朝时又大规模重修。",
        "A list comprehension builds a list in one expression:\n\n```python\nsquares = [x * x for x in range(10)]\nprint(f\"{squares}\")\n```",
        "I like reading books.",
        "推荐 Sony WH-1000XM5，降噪效果好，佩戴也比较舒适。",
    ]
    conversations = [[{"role": "user", "content": p}, {"role": "assistant", "content": r}] for p, r in zip(prompts, responses)]
    assert language_mismatch(prompts, responses) == []
    assert refusals(responses) == []
    assert repetition(responses) == []
    assert chat_structure(conversations) == []
    assert template_leakage(prompts + responses) == []
    assert contamination(responses, EVAL) == []
