"""Benchmark of core.textchecks, the instruction-data checks: rows/s per check at 1M samples, and the language identifiers compared.

Run by hand, not collected by pytest:

    .venv/bin/python bench/bench_checks.py              # spec size: 1,000,000 generated bilingual samples
    .venv/bin/python bench/bench_checks.py --quick      # smoke run: 10,000 samples, no lingua, a few seconds
    .venv/bin/python bench/bench_checks.py --identifiers-only   # only the labeled language-id comparison
    .venv/bin/python bench/bench_checks.py --registry-only      # only part 3, the registry checks as the report runs them

Part 1 compares language identifiers on a hand-labeled set of short Chinese / English / mixed / Japanese / other /
code / very short strings (LABELED below): accuracy per group and texts/s, for langid and lingua alone and for
core.textchecks.detect_languages with each as its back-end. Code and very short strings should come out unknown
(None); a bare identifier always names a language, so on those it is scored as wrong.

Part 2 generates prompt/response pairs and chat conversations (Chinese, English and code-switched text from phrase
frames, code answers with braces, a little French and German) with planted faults of each kind, runs every check,
and prints rows/s, what share of planted faults it found and how many clean rows it flagged; and, where a check wraps
a plain library call, that call's rows/s on the same texts and the ratio (ours / plain; > 1 means faster).
Targets: every check over 1M samples in <= 60 s on 2 cores.

Part 3 runs the registry checks (core/checks/*.py, what ``python -m core quality`` and the Data quality page run) on
the same samples laid out as the store holds them (text columns, chat records as JSON, gold labels): the cost of the
wrapping on top of part 2, with chat_structure paying for parsing every record.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # langid's numpy dot: BLAS threads fight over 2 shared cores (52 texts/s instead of ~1,000)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from core import textchecks as tc

# ---------------------------------------------------------------------------
# Part 1: the labeled language-id set (written for this benchmark; None = should be unknown)
# ---------------------------------------------------------------------------

LABELED: list[tuple[str, str, str | None]] = [
    # Chinese
    ("zh", "请介绍一下北京的历史。", "zh"),
    ("zh", "今天天气很好，我们去公园散步吧。", "zh"),
    ("zh", "这个问题的答案是四十二。", "zh"),
    ("zh", "如何提高睡眠质量？", "zh"),
    ("zh", "把这段话改写得更正式一些。", "zh"),
    ("zh", "水的沸点是一百摄氏度。", "zh"),
    ("zh", "請問這家餐廳幾點開門？", "zh"),
    ("zh", "写一首关于秋天的五言绝句。", "zh"),
    ("zh", "我觉得这部电影的结局有点仓促。", "zh"),
    ("zh", "根据上文，作者的主要观点是什么？", "zh"),
    ("zh", "他昨天没来上班，因为发烧了。", "zh"),
    ("zh", "请总结以下段落的要点。", "zh"),
    # English
    ("en", "Please summarize the following paragraph.", "en"),
    ("en", "What is the capital of Australia?", "en"),
    ("en", "The meeting has been moved to Thursday.", "en"),
    ("en", "Write a haiku about the sea.", "en"),
    ("en", "I think the ending of this movie was rushed.", "en"),
    ("en", "How do I reset my password?", "en"),
    ("en", "Water boils at one hundred degrees Celsius.", "en"),
    ("en", "Explain recursion to a five-year-old.", "en"),
    ("en", "She didn't come to work because she had a fever.", "en"),
    ("en", "Give three reasons to learn a second language.", "en"),
    ("en", "Paris is the capital of France.", "en"),
    ("en", "Thanks, that solved my problem!", "en"),
    # Chinese with English terms (still Chinese) and English with a Chinese term (still English)
    ("mixed", "我刚买了 iPhone 15 Pro，续航很不错。", "zh"),
    ("mixed", "用 Python 的 pandas 读取 CSV 文件。", "zh"),
    ("mixed", "这个 bug 在 Chrome 里能复现，Firefox 不行。", "zh"),
    ("mixed", "我们下周用 Zoom 开会，记得带上 PPT。", "zh"),
    ("mixed", "请解释一下 Transformer 里的 self-attention 机制。", "zh"),
    ("mixed", "推荐几款适合学生的 MacBook 配件。", "zh"),
    ("mixed", "Docker 容器启动失败，日志显示 permission denied。", "zh"),
    ("mixed", "在 Excel 中如何用 VLOOKUP 查找数据？", "zh"),
    ("mixed", "The Chinese word 你好 means hello.", "en"),
    ("mixed", "I ordered 宫保鸡丁 at the restaurant yesterday.", "en"),
    ("mixed", "Her name is 李娜 and she plays tennis.", "en"),
    ("mixed", "The sign said 出口, which means exit.", "en"),
    # Japanese
    ("ja", "こんにちは、お元気ですか？", "ja"),
    ("ja", "この本はとても面白かったです。", "ja"),
    ("ja", "明日は雨が降るそうです。", "ja"),
    ("ja", "東京駅までの行き方を教えてください。", "ja"),
    ("ja", "私は毎朝コーヒーを飲みます。", "ja"),
    ("ja", "日本語を勉強しています。", "ja"),
    ("ja", "会議は午後三時から始まります。", "ja"),
    ("ja", "ラーメンが大好きです。", "ja"),
    # other languages (any pair must work)
    ("other", "Bonjour, comment allez-vous aujourd'hui ?", "fr"),
    ("other", "Je voudrais réserver une table pour deux personnes.", "fr"),
    ("other", "Der Hund spielt im Garten mit dem Ball.", "de"),
    ("other", "Ich habe heute keine Zeit, leider.", "de"),
    ("other", "¿Dónde está la estación de tren?", "es"),
    ("other", "Me gusta mucho leer novelas por la noche.", "es"),
    ("other", "Привет, как у тебя дела сегодня?", "ru"),
    ("other", "오늘 날씨가 정말 좋네요.", "ko"),
    ("other", "Vorrei prenotare un tavolo per due persone.", "it"),
    ("other", "Eu gostaria de aprender a tocar violão.", "pt"),
    ("other", "Het is vandaag erg mooi weer in Amsterdam.", "nl"),
    ("other", "Tôi muốn học tiếng Trung Quốc.", "vi"),
    ("other", "Saya ingin belajar bahasa Inggris.", "id"),
    ("other", "Bugün hava çok güzel, dışarı çıkalım.", "tr"),
    ("other", "Chciałbym zarezerwować stolik dla dwóch osób.", "pl"),
    ("other", "Le film The Matrix est sorti en 1999.", "fr"),
    # short English without function words (the identifier's share of English)
    ("en-short", "Machine learning basics for beginners", "en"),
    ("en-short", "Great question! Happy to help.", "en"),
    ("en-short", "Step 1: preheat oven to 180 degrees.", "en"),
    ("en-short", "Paris, the French capital.", "en"),
    ("en-short", "Sure! Here is a short poem.", "en"),
    ("en-short", "Photosynthesis converts sunlight into chemical energy.", "en"),
    ("en-short", "Good morning, everyone!", "en"),
    ("en-short", "Three apples cost two dollars.", "en"),
    # code (not a language: unknown)
    ("code", "def add(a, b):\n    return a + b", None),
    ("code", "for (int i = 0; i < n; i++) { sum += i; }", None),
    ("code", "SELECT name, age FROM users WHERE age > 30;", None),
    ("code", "```python\nimport numpy as np\nx = np.zeros(3)\n```", None),
    ("code", "const x = {a: 1, b: 2};", None),
    ("code", "print(f\"{name} is {age} years old\")", None),
    ("code", "```\nnpm install --save react\n```", None),
    ("code", "x = [i * i for i in range(10)]", None),
    # very short (unknown)
    ("short", "好", None),
    ("short", "OK", None),
    ("short", "谢谢", None),
    ("short", "Yes.", None),
    ("short", "42", None),
    ("short", "Hi!", None),
    ("short", "是的", None),
    ("short", "👍", None),
]


def _langid_backend():
    import langid

    ident = langid.langid.LanguageIdentifier.from_modelstring(langid.langid.model, norm_probs=False)

    def run(texts: list[str]) -> list[str | None]:
        return [ident.classify(t)[0] for t in texts]

    return run


def _lingua_backend(low: bool = False):
    from lingua import LanguageDetectorBuilder

    b = LanguageDetectorBuilder.from_all_languages()
    det = (b.with_low_accuracy_mode() if low else b).build()

    def run(texts: list[str]) -> list[str | None]:
        return [None if x is None else x.iso_code_639_1.name.lower() for x in det.detect_languages_in_parallel_of(texts)]

    return run


def _norm(code: str | None) -> str | None:
    return "zh" if code in ("zh", "zh-cn", "zh-tw") else code


def compare_identifiers(repeat: int, with_lingua: bool = True) -> None:
    texts = [t for _, t, _ in LABELED]
    want = [w for _, _, w in LABELED]
    groups = [g for g, _, _ in LABELED]
    order = ["zh", "en", "en-short", "mixed", "ja", "other", "code", "short"]
    print(f"language identifiers on {len(LABELED)} labeled strings ({', '.join(f'{g} {groups.count(g)}' for g in order)})")
    header = "  " + f"{'method':34s}" + "".join(f"{g:>9s}" for g in order) + f"{'all':>7s}{'lang.':>7s}{'texts/s':>10s}{'load s':>8s}"
    print(header)
    t0 = time.perf_counter()
    langid_run = _langid_backend()
    langid_run(["warm up"])
    tc.langid_identifier(["warm up"])
    langid_load = time.perf_counter() - t0
    methods = [("langid 1.1.6 classify", langid_run, langid_load)]
    lingua_run = lingua_low = None
    if not with_lingua:
        print("  (lingua left out of the --quick run: its models take ~1.2 GB and 10-40 s to load)")
    else:
        try:
            lingua_run, lingua_low = _lingua_backend(), _lingua_backend(low=True)
        except ImportError:
            print("  (lingua not installed: pip install lingua-language-detector==2.1.1 to compare it)")
    if lingua_run is not None:
        t0 = time.perf_counter()
        lingua_run(texts)  # loads the models of every language it considers
        lingua_load = time.perf_counter() - t0
        lingua_low(texts)
        methods += [("lingua 2.1.1 (high accuracy)", lingua_run, lingua_load), ("lingua 2.1.1 (low accuracy)", lingua_low, 0.0)]
    methods.append(("detect_languages (batched langid)", lambda ts: tc.detect_languages(ts), 0.0))
    if lingua_run is not None:
        methods += [
            ("detect_languages + lingua high", lambda ts: tc.detect_languages(ts, identifier=lingua_run), 0.0),
            ("detect_languages + lingua low", lambda ts: tc.detect_languages(ts, identifier=lingua_low), 0.0),
        ]
    for name, run, load in methods:
        got = [_norm(x) for x in run(texts)]
        ok = np.array([g == w for g, w in zip(got, want)])
        per = [ok[[i for i, g in enumerate(groups) if g == grp]].mean() for grp in order]
        lang_idx = [i for i, g in enumerate(groups) if g not in ("code", "short")]
        big = [f"{t} {k}" for k in range(repeat) for t in texts]  # distinct texts: detect_languages identifies each distinct text once
        t0 = time.perf_counter()
        run(big)
        rate = len(big) / (time.perf_counter() - t0)
        print("  " + f"{name:34s}" + "".join(f"{p:9.0%}" for p in per) + f"{ok.mean():7.0%}{ok[lang_idx].mean():7.0%}{rate:10,.0f}{load:8.1f}")
        wrong = [f"{t[:24]!r}->{g}" for t, g, w in zip(texts, got, want) if g != w and w is not None]
        if wrong:
            print("      wrong on languages: " + "; ".join(wrong))
    print("  fasttext-langdetect 1.1.1: disqualified, its lid.176 model is downloaded at run time (ftlangdetect.detect.download_model)")


# ---------------------------------------------------------------------------
# Part 2: generated samples with planted faults
# ---------------------------------------------------------------------------

_SYL = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "er", "an", "in")]
_EN_FRAMES = [
    "The {n} of the {n} is {a}, and you can {v} it with a {n}.",
    "How do I {v} the {n} when the {n} is {a}?",
    "Please explain why the {n} would {v} the {n}.",
    "You should {v} your {n} before the {n} gets {a}.",
    "There are three ways to {v} a {n}: with the {n}, with your {n}, or not at all.",
    "What is the difference between a {n} and a {n}?",
    "This {n} is more {a} than that {n}, which is why they {v} it.",
    "First, {v} the {n}. Then check that the {n} is {a}.",
    "It depends on the {n}, but most people {v} the {n} every week.",
    "Here are some tips: keep the {n} {a}, {v} the {n}, and ask your {n}.",
]
_ZH_FRAMES = [
    "请问{z}和{z}有什么区别？",
    "我们可以通过{z}来{z}，这样{z}会更{z}。",
    "首先，{z}需要{z}；其次，要注意{z}的{z}。",
    "根据{z}的规定，{z}应当在{z}之前完成。",
    "这个{z}的主要原因是{z}不够{z}。",
    "如果{z}出现问题，可以尝试重新{z}。",
    "总的来说，{z}是一个很{z}的选择。",
    "我觉得{z}比{z}更适合{z}。",
    "请用简单的话解释一下{z}的{z}。",
    "在{z}中使用 {e} 可以{z}，比如{z}。",
]
_EN_TERMS = ["Python", "iPhone", "Excel", "GPU", "API", "Docker", "SQL", "ChatGPT", "Linux", "PDF"]
_FR_DE = [
    "Je voudrais savoir comment fonctionne ce système, merci beaucoup pour votre aide.",
    "Pouvez-vous m'expliquer la différence entre ces deux méthodes, s'il vous plaît ?",
    "Ich möchte wissen, wie dieses System funktioniert, vielen Dank für Ihre Hilfe.",
    "Können Sie mir bitte den Unterschied zwischen diesen beiden Methoden erklären?",
]
_CODE_ANSWERS_EN = [
    "You can use an f-string:\n\n```python\nname = 'Ada'\nprint(f\"Hello {name}, your question was {question}\")\n```\nThis prints the greeting.",
    "Use str.format: `'{0} + {1}'.format(a, b)` returns the sum as text, and `\"{question}\".format(question=q)` fills the slot.",
    "In JavaScript you would write `const msg = `Hi ${user}`;` and in a Jinja template `{{ user.name }}`.",
    "The fraction is $\\frac{a}{b}$ and the set is {1, 2, 3}, which has three elements.",
    "Here is the loop:\n\n    for i in range(n):\n        total += data[i]\n\nThis loop sums the list.",
]
_CODE_ANSWERS_ZH = [
    "下面是一个例子：\n```json\n{\"question\": \"{question}\", \"answer\": \"{answer}\"}\n```\n这样就可以批量生成数据。",
    "可以用 f-string：`print(f\"你好，{name}\")`，也可以用 `\"{0}\".format(name)` 来格式化字符串。",
    "在 Vue 模板里写 `{{ message }}` 就能显示数据，比如 `<p>{{ message }}</p>` 会渲染成一段文字。",
    "分数写成 $\\frac{a}{b}$，集合写成 {1, 2, 3}，这是三个元素的集合。",
]
_REFUSALS_EN = [
    "I'm sorry, but I can't help with that request.",
    "As an AI language model, I don't have personal opinions, but here is some information.",
    "I cannot assist with creating harmful content.",
]
_REFUSALS_ZH = [
    "抱歉，我无法提供这类信息。",
    "作为一个人工智能语言模型，我没有个人观点。",
    "很抱歉，作为AI助手，我不能回答这个问题。",
]
_LEAKS = ["<|im_end|>", "<|endoftext|>", "[/INST]", "<|eot_id|>", "</s>", "\n### Response:", "<|im_start|>assistant"]
_PLACEHOLDERS = ["{question}", "{{input}}", "{instruction}", "{问题}"]


class _Gen:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        self.words = np.array(sorted({"".join(rng.choice(_SYL, size=rng.integers(1, 4))) for _ in range(8000)}))
        self.han = np.array([chr(c) for c in rng.choice(np.arange(0x4E00, 0x9FA6), size=3000, replace=False)])
        self._buf: dict[str, tuple[np.ndarray, int]] = {}

    def _take(self, key: str, pool: np.ndarray, k: int) -> np.ndarray:
        buf, pos = self._buf.get(key, (pool[:0], 0))
        if pos + k > len(buf):
            w = 1.0 / np.arange(1, len(pool) + 1)
            buf, pos = pool[self.rng.choice(len(pool), size=200_000, p=w / w.sum())], 0
        self._buf[key] = (buf, pos + k)
        return buf[pos : pos + k]

    def en(self, k: int) -> str:
        frames = self.rng.integers(0, len(_EN_FRAMES), size=k)
        out = []
        for f in frames:
            fr = _EN_FRAMES[f]
            slots = fr.count("{")
            vals = iter(self._take("w", self.words, slots))
            out.append(re.sub(r"\{[nva]\}", lambda _, vals=vals: next(vals), fr))
        return " ".join(out)

    def zh(self, k: int) -> str:
        frames = self.rng.integers(0, len(_ZH_FRAMES), size=k)
        out = []
        for f in frames:
            fr = _ZH_FRAMES[f]
            out.append(re.sub(r"\{[ze]\}", lambda m: _EN_TERMS[int(self.rng.integers(0, len(_EN_TERMS)))] if m.group() == "{e}"
                              else "".join(self._take("h", self.han, int(self.rng.integers(2, 5)))), fr))
        return "".join(out)


def build(n: int, seed: int):
    """Return prompts, responses, labels, conversations, eval texts and the planted rows per check."""
    g = _Gen(seed)
    rng = g.rng
    n_eval = 3000 if n >= 100_000 else 500  # a few thousand eval questions at spec size; fewer for a quick run
    eval_texts = []
    for j in range(n_eval):  # eval questions from a vocabulary of their own, so only planted copies overlap
        if j % 2:
            eval_texts.append("".join(rng.choice(g.han, size=int(rng.integers(18, 40)))) + "？")
        else:
            eval_texts.append(" ".join(rng.choice(g.words, size=int(rng.integers(14, 30)))).capitalize() + "?")
    prompts, responses, labels = [], [], []
    planted: dict[str, set[int]] = {k: set() for k in ("language", "refusal", "repetition", "leak", "contamination", "length")}
    kinds = rng.random(n)
    for i in range(n):
        zh = rng.random() < 0.5
        p = g.zh(int(rng.integers(1, 3))) if zh else g.en(int(rng.integers(1, 3)))
        r = g.zh(int(rng.integers(2, 6))) if zh else g.en(int(rng.integers(2, 6)))
        u = kinds[i]
        if u < 0.01:
            r = g.en(int(rng.integers(2, 5))) if zh else g.zh(int(rng.integers(2, 5)))
            planted["language"].add(i)
        elif u < 0.02:  # translation request answered in the other language: clean
            p = ("请把下面的话翻译成英文：" + g.zh(1)) if zh else ("Translate into Chinese: " + g.en(1))
            r = g.en(1) if zh else g.zh(1)
        elif u < 0.03:
            pool = _REFUSALS_ZH if zh else _REFUSALS_EN
            r = pool[int(rng.integers(0, len(pool)))] + (("" if zh else " ") + r if rng.random() < 0.5 else "")
            planted["refusal"].add(i)
        elif u < 0.035:
            unit = g.zh(1) if zh else g.en(1)
            r = (r.split("。")[0] + "。" if zh else r.split(". ")[0] + ". ") + (unit + ("" if zh else " ")) * int(rng.integers(4, 12))
            planted["repetition"].add(i)
        elif u < 0.04:
            r = r + _LEAKS[int(rng.integers(0, len(_LEAKS)))]
            planted["leak"].add(i)
        elif u < 0.043:
            p = p + " " + _PLACEHOLDERS[int(rng.integers(0, len(_PLACEHOLDERS)))]
            planted["leak"].add(i)
        elif u < 0.09:
            pool = _CODE_ANSWERS_ZH if zh else _CODE_ANSWERS_EN
            r = pool[int(rng.integers(0, len(pool)))]  # code with braces: clean
        elif u < 0.091:
            r = r + " " + eval_texts[int(rng.integers(0, n_eval))]
            planted["contamination"].add(i)
        elif u < 0.096:
            r = "好的。" if zh else "OK."
            planted["length"].add(i)
        elif u < 0.11:
            lang = 2 if rng.random() < 0.5 else 0  # French or German, answered in the same language
            p, r = _FR_DE[lang + int(rng.integers(0, 2))], _FR_DE[lang + int(rng.integers(0, 2))]
        prompts.append(p)
        responses.append(r)
        labels.append(f"L{int(rng.integers(0, 8))}")
    conversations = []
    planted["chat"] = set()
    for i in range(n):
        conv = [{"role": "user", "content": prompts[i]}, {"role": "assistant", "content": responses[i]}]
        if rng.random() < 0.3:
            conv = [{"role": "system", "content": "You are a helpful assistant."}] + conv + [
                {"role": "user", "content": "谢谢，还有别的吗？"}, {"role": "assistant", "content": responses[i]}]
        u = rng.random()
        if u < 0.003:
            conv = conv[:-1]
            planted["chat"].add(i)
        elif u < 0.006:
            conv = conv + [{"role": "assistant", "content": "   "}]
            planted["chat"].add(i)
        elif u < 0.008:
            conv = [{"role": "human", "content": prompts[i]}, {"role": "gpt", "content": responses[i]}]
            planted["chat"].add(i)
        conversations.append(conv)
    return prompts, responses, labels, conversations, eval_texts, planted


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _report(name: str, n: int, found, planted: dict[str, set[int]], key: str | None, wall: float, cpu: float,
            plain: tuple[str, float] | None = None) -> None:
    rows = {f["index"] for f in found}
    line = f"  {name:18s} {n / wall:>11,.0f} rows/s  {wall:6.1f} s wall {cpu:6.1f} s CPU  {len(rows):>8,} rows flagged"
    if key is not None:
        mine = planted[key]
        others = set().union(*(v for k, v in planted.items() if k != key))
        rest = rows - mine
        line += f"; planted found {len(rows & mine) / max(1, len(mine)):6.1%}; other rows {len(rest):,} ({len(rest & others):,} planted for other checks)"
    print(line)
    if plain:
        label, rate = plain
        print(f"  {'':18s} plain {label}: {rate:,.0f} rows/s; ratio {n / wall / rate:.1f}")


def run_checks(n: int, seed: int, sub: int) -> None:
    t0 = time.perf_counter()
    prompts, responses, labels, conversations, eval_texts, planted = build(n, seed)
    lens = np.array([len(r) for r in responses])
    print(f"\nsamples {n:,} (response length {lens.min()}-{lens.max()}, mean {lens.mean():.0f} characters); "
          f"{len(eval_texts):,} eval items; built in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    idx = np.random.default_rng(seed + 1).choice(n, size=min(sub, n), replace=False)
    sub_r = [responses[i] for i in idx]
    total_wall = 0.0

    # language: detect_languages vs the identifier's own classify on the same texts (model loaded before timing)
    import langid

    tc.langid_identifier(["warm up"])
    langid.classify("warm up")
    _, w, c = _timed(lambda: tc.detect_languages(responses))
    _, lw, _ = _timed(lambda: [langid.classify(t) for t in sub_r[:5000]])
    _report("detect_languages", n, [], planted, None, w, c, ("langid.classify", min(5000, len(sub_r)) / lw))
    found, w, c = _timed(lambda: tc.language_mismatch(prompts, responses))
    total_wall += w
    _report("language_mismatch", n, found, planted, "language", w, c)

    refusal_re = re.compile("|".join(f"(?:{rx})" for _, rx in tc.REFUSAL_PATTERNS), re.IGNORECASE)
    found, w, c = _timed(lambda: tc.refusals(responses))
    total_wall += w
    _, pw, _ = _timed(lambda: [refusal_re.search(t) for t in sub_r])
    _report("refusals", n, found, planted, "refusal", w, c, ("re.search of the same patterns", len(sub_r) / pw))

    found, w, c = _timed(lambda: tc.repetition(responses))
    total_wall += w
    _report("repetition", n, found, planted, "repetition", w, c)

    found, w, c = _timed(lambda: tc.chat_structure(conversations))
    total_wall += w
    _report("chat_structure", n, found, planted, "chat", w, c)

    token_re = re.compile("|".join(rx.replace("(?m)", "") for _, _, rx in tc.TEMPLATE_TOKEN_PATTERNS), re.MULTILINE)
    both = prompts + responses
    found, w, c = _timed(lambda: tc.template_leakage(both))
    total_wall += w
    rows = [{**f, "index": f["index"] % n} for f in found]
    sub_both = sub_r + [prompts[i] for i in idx]
    _, pw, _ = _timed(lambda: [token_re.search(t) for t in sub_both])
    _report("template_leakage", n, rows, planted, "leak", w, c, ("re.search of the token patterns, no code masking", len(sub_both) / pw / 2))
    print(f"  {'':18s} (two fields per row: prompt and response; the plain rate is per row of two fields too)")

    found, w, c = _timed(lambda: tc.contamination(responses, eval_texts))
    total_wall += w
    small = sub_r[: max(1, len(sub_r) // 4)]
    _, pw, _ = _timed(lambda: tc.contamination(small, eval_texts, prefilter=False))
    _report("contamination", n, found, planted, "contamination", w, c, ("n-gram dict lookup of every sample (prefilter=False)", len(small) / pw))

    found, w, c = _timed(lambda: tc.length_ratio(prompts, responses, labels))
    total_wall += w
    _report("length_ratio", n, found, planted, "length", w, c)
    print(f"  all checks: {total_wall:.1f} s wall for {n:,} samples")


def run_registry(n: int, seed: int) -> None:
    """Part 3: the registry checks (core/checks/*.py) as the report runs them, over a samples frame as the store
    holds it (derived text columns, each record kept as JSON): the same texts as part 2 plus the wrapping (reading
    the columns, parsing the conversation records, the findings table with excerpts, the gold label of each row)."""
    import json

    import polars as pl

    from core import checks
    from core.checks.base import CheckContext

    t0 = time.perf_counter()
    prompts, responses, labels, conversations, eval_texts, _ = build(n, seed)
    ids = [f"s{i:07d}" for i in range(n)]
    samples = pl.DataFrame({
        "sample_id": ids, "instruction": prompts, "input": pl.Series([None] * n, dtype=pl.Utf8), "output": responses,
        "text": pl.Series([None] * n, dtype=pl.Utf8), "shape": ["chat"] * n,
        "record": [json.dumps({"messages": c}, ensure_ascii=False) for c in conversations]})
    gold = pl.DataFrame({"sample_id": ids, "gold_label": labels})
    print(f"\nregistry checks over {n:,} samples as stored (chat records kept as JSON); built in "
          f"{time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.1f}")
    cache: dict = {"gold": gold}  # one run: the derived texts and parsed records are shared, as in run_report
    total = 0.0
    for name in ("language_mismatch", "refusal", "repetition", "chat_structure", "template_leakage",
                 "contamination", "length_ratio"):
        ctx = CheckContext(store=None, dataset="bench", samples=samples, fields=["instruction", "output"],
                           options={"eval_texts": eval_texts}, cache=cache)
        result, w, c = _timed(lambda ctx=ctx, name=name: checks.CHECKS[name].run(ctx))
        total += w
        print(f"  {name:18s} {n / w:>11,.0f} rows/s  {w:6.1f} s wall {c:6.1f} s CPU  {result.frame.height:>8,} findings,"
              f" {result.count or 0:>8,} samples")
    print(f"  all registry checks: {total:.1f} s wall for {n:,} samples (chat_structure includes parsing every "
          "record once)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with 10,000 samples, without lingua")
    ap.add_argument("-n", type=int, default=None, help="number of samples (default 1,000,000; 10,000 with --quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--identifiers-only", action="store_true", help="only the labeled language-id comparison")
    ap.add_argument("--registry-only", action="store_true",
                    help="only part 3: the registry checks (core/checks) over a samples frame as stored")
    args = ap.parse_args()
    n = args.n or (10_000 if args.quick else 1_000_000)
    if not args.registry_only:
        compare_identifiers(repeat=3 if args.quick else 30, with_lingua=not args.quick)
        if args.identifiers_only:
            return
        run_checks(n, args.seed, sub=min(n, 20_000))
    run_registry(n, args.seed)


if __name__ == "__main__":
    main()
