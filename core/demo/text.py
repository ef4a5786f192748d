"""Texts of the demo: buffered random draws, the vocabulary (JSON files in ``data/``), customer
messages with the agent's reply, and the text of the planted problems (PII, near-duplicate edits,
case/whitespace variants, truncation).

Every function draws from the :class:`_Draw` it is given, in a fixed order: changing the order of
draws (or the order of entries in a data file) changes the generated data for a seed.
"""

from __future__ import annotations

import json
import re
import unicodedata
from importlib import resources
from typing import Any

import numpy as np


def _load(name: str) -> dict[str, Any]:
    """One vocabulary file of ``data/`` (found next to this module wherever it is imported from)."""
    text = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)


INTENTS = _load("intents.json")  # labels (in label order), confusable neighbours per label
SLOTS = _load("slots.json")  # values of the template slots
TEMPLATES = _load("templates.json")  # instruction: intent -> lang -> [text, alt]; output: intent -> lang -> text
PHRASES = _load("phrases.json")  # greetings, closings, extra sentences, typos
PLANTED = _load("planted.json")  # PII, near-duplicate swaps, HTML and URL forms

# Slots drawn straight from a per-language list.
_LISTED = ("courier", "color", "feature", "who", "company", "device", "level")


class _Draw:
    """Buffered draws from a numpy Generator for the many scalar picks of text generation.

    Scalar ``Generator`` calls cost microseconds each; this hands out pre-drawn uniforms and
    normals as Python floats with the small subset of the ``Generator`` interface used here.
    """

    _CHUNK = 8192

    def __init__(self, gen: np.random.Generator):
        self.gen = gen
        self._u: list[float] = []
        self._n: list[float] = []

    def random(self) -> float:
        if not self._u:
            self._u = self.gen.random(self._CHUNK).tolist()[::-1]
        return self._u.pop()

    def normal(self) -> float:
        if not self._n:
            self._n = self.gen.standard_normal(self._CHUNK).tolist()[::-1]
        return self._n.pop()

    def integers(self, low: int, high: int | None = None, size: int | None = None) -> Any:
        if high is None:
            low, high = 0, low
        if size is not None:
            return [low + int(self.random() * (high - low)) for _ in range(size)]
        return low + int(self.random() * (high - low))

    def choice(self, n: int, size: int | None = None, replace: bool = True, p: Any = None) -> Any:
        if p is not None:
            u, acc = self.random(), 0.0
            for i, w in enumerate(p):
                acc += w
                if u < acc:
                    return i
            return n - 1
        pool = list(range(n))
        return [pool.pop(self.integers(len(pool))) for _ in range(size or 1)]

    def permutation(self, x: Any) -> list[int]:
        items = list(range(x)) if isinstance(x, int) else [int(v) for v in x]
        for i in range(len(items) - 1, 0, -1):  # Fisher-Yates
            j = self.integers(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


def _pick(rng: _Draw, seq: list[Any] | tuple[Any, ...] | str) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _amount(rng: _Draw, lang: str) -> str:
    value = int(rng.integers(9, 4000)) + float(_pick(rng, [0.0, 0.0, 0.9, 0.5, 0.99]))
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    if lang == "zh":
        return text
    return _pick(rng, SLOTS["currency"]) + text


def _time(rng: _Draw, lang: str) -> str:
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    return _pick(rng, SLOTS["time"][lang]).format(month=month, day=day, month_name=SLOTS["month_name"][month - 1])


class _Slots(dict):
    """Slot values of one message, drawn on first use (``str.format_map`` asks for them)."""

    def __init__(self, rng: _Draw, lang: str, new_products: bool):
        super().__init__()
        self.rng, self.lang = rng, lang
        self.products = SLOTS["product"][lang] + (SLOTS["new_product"][lang] * 3 if new_products else [])

    def __missing__(self, key: str) -> str:
        rng, lang, zh = self.rng, self.lang, self.lang == "zh"
        if key == "order":
            value = (f"DD{rng.integers(10**8):08d}" if zh
                     else f"#{_pick(rng, SLOTS['order_letters'])}{rng.integers(10**7):07d}")
        elif key in ("product", "product2"):
            value = _pick(rng, self.products)
        elif key == "city":
            value = _pick(rng, SLOTS["city"][lang])
        elif key == "address":
            if zh:
                value = (f"{_pick(rng, SLOTS['city']['zh'])}市{_pick(rng, SLOTS['district'])}"
                         f"{_pick(rng, SLOTS['road']['zh'])}"
                         f"{rng.integers(1, 400)}号{rng.integers(1, 20)}栋{rng.integers(1, 33)}0{rng.integers(1, 9)}室")
            else:
                value = (f"{rng.integers(1, 400)} {_pick(rng, SLOTS['road']['en'])} Road, Apt "
                         f"{rng.integers(1, 33)}{rng.integers(0, 10)}, {self['city']}")
        elif key == "amount":
            value = _amount(rng, lang)
        elif key == "time":
            value = _time(rng, lang)
        elif key == "days":
            value = str(rng.integers(2, 16))
        elif key == "n":
            value = str(rng.integers(2, 9))
        elif key == "months":
            value = str(_pick(rng, [6, 12, 18, 24, 36]))
        elif key == "ticket":
            value = f"{rng.integers(10**6):06d}"
        elif key == "coupon":
            value = ("" if zh else "$") + str(_pick(rng, [5, 10, 20, 30, 50, 100]))
        elif key in _LISTED:
            value = _pick(rng, SLOTS[key][lang])
        else:
            raise KeyError(key)
        self[key] = value
        return value


def _typo(rng: _Draw, text: str, lang: str) -> str:
    present = [(a, b) for a, b in PHRASES["typos"][lang] if a in text]
    if present:
        a, b = _pick(rng, present)
        return text.replace(a, b, 1)
    if lang == "en":  # swap two adjacent letters inside a longer word
        words = text.split(" ")
        long_words = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if long_words:
            i = _pick(rng, long_words)
            w = words[i]
            j = int(rng.integers(1, len(w) - 2))
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            return " ".join(words)
    return text


def _greet(greeting: str, body: str, lang: str) -> str:
    if lang == "en" and greeting.endswith(", ") and body[:1].isupper() and not body.startswith(("I ", "I'")):
        body = body[0].lower() + body[1:]
    return greeting + body


def _context(rng: _Draw, lang: str, s: _Slots) -> str:
    if rng.random() < 0.45:
        return ""
    ctx = SLOTS["context"][lang]
    # Every fact is drawn (in this order) before some are chosen.
    values = {"order": s["order"], "level": s["level"], "contacts": int(rng.integers(0, 6)),
              "product": s["product"], "source": _pick(rng, ctx["source"])}
    facts = [f.format(**values) for f in ctx["facts"]]
    k = 1 + int(rng.random() < 0.5)
    idx = rng.choice(len(facts), size=k, replace=False)
    return ctx["sep"].join(facts[int(i)] for i in sorted(idx))


def _message(rng: _Draw, intent: str, lang: str, long: bool) -> dict[str, Any]:
    """One customer message with the agent's reply; ``alt`` is set for ambiguous templates."""
    s = _Slots(rng, lang, new_products=long and rng.random() < 0.4)
    instructions, outputs = TEMPLATES["instruction"][intent][lang], TEMPLATES["output"][intent][lang]
    t_idx = rng.integers(len(instructions))
    template, alt = instructions[t_idx]
    body = template.format_map(s)
    if long:
        extra = PHRASES["extra_instruction"][lang]
        k = 1 + int(rng.integers(0, 2)) + int(rng.random() < 0.3)
        extras = rng.choice(len(extra), size=k, replace=False)
        sep = "" if lang == "zh" else " "
        body = sep.join([body] + [extra[int(i)].format_map(s) for i in extras])
    instruction = _greet(_pick(rng, PHRASES["greet"][lang]), body, lang) + _pick(rng, PHRASES["thanks"][lang])
    if lang == "en" and rng.random() < 0.08:
        instruction = instruction.lower()
    if rng.random() < 0.07:
        instruction = _typo(rng, instruction, lang)
    o_idx = rng.integers(len(outputs))
    reply = outputs[o_idx].format_map(s)
    opener = _pick(rng, PHRASES["open"][lang])
    if lang == "en" and opener.endswith(", ") and reply[:1].isupper() and not reply.startswith(("I ", "I'")):
        reply = reply[0].lower() + reply[1:]
    output = opener + reply
    if long:
        extra = PHRASES["extra_output"][lang]
        k = 1 + int(rng.random() < 0.35)
        extras = rng.choice(len(extra), size=k, replace=False)
        for i in extras:
            output += ("" if lang == "zh" else " ") + extra[int(i)].format_map(s)
    output += _pick(rng, PHRASES["close"][lang])
    return {"instruction": instruction, "input": _context(rng, lang, s), "output": output,
            "alt": alt, "template": (intent, lang, t_idx, o_idx)}


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _key(sample: dict[str, Any]) -> str:
    return _norm("\n".join(t for t in (sample["instruction"], sample["input"], sample["output"]) if t))


def _shingles(text: str) -> set[str]:
    return {text[i : i + 3] for i in range(max(1, len(text) - 2))}


def _jaccard(a: set[str], b: set[str]) -> float:
    common = len(a & b)
    return common / (len(a) + len(b) - common) if a or b else 1.0


# ---------------------------------------------------------------------------------------------
# Text of the planted problems
# ---------------------------------------------------------------------------------------------
def _cn_mobile(rng: _Draw) -> str:
    prefix = _pick(rng, PLANTED["mobile_prefix"])
    return prefix + "".join(str(int(d)) for d in rng.integers(0, 10, 8))


def _email(rng: _Draw) -> str:
    name = _pick(rng, PLANTED["email_name"])
    return f"{name}{int(rng.integers(1, 999))}@{_pick(rng, PLANTED['email_domain'])}"


def _cn_id(rng: _Draw) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    region = _pick(rng, PLANTED["id_region"])
    born = f"{int(rng.integers(1965, 2003))}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    body = region + born + "".join(str(int(d)) for d in rng.integers(0, 10, 3))
    total = sum(int(c) * w for c, w in zip(body, weights))
    return body + "10X98765432"[total % 11]


def _bank_card(rng: _Draw) -> str:
    body = "6222" + "".join(str(int(d)) for d in rng.integers(0, 10, 11))
    total = 0
    for i, c in enumerate(reversed(body)):  # positions from the right, before the check digit
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


PII_VALUES = {"phone": _cn_mobile, "email": _email, "cn_id": _cn_id, "bank_card": _bank_card}


def _pii_sentence(kind: str, value: str, lang: str) -> str:
    return PLANTED["pii_sentence"][lang][kind].format(v=value)


def _near_edit(rng: _Draw, text: str, lang: str) -> str:
    """Change one or two characters/words of ``text`` so that its normalized form changes."""
    swaps = PLANTED["near_swap"][lang]
    if lang == "zh":
        present = [(a, b) for a, b in swaps if a in text]
        if present:
            a, b = _pick(rng, present)
            return text.replace(a, b, 1)
        cut = text.rstrip("。！？")
        return cut + "啊" + text[len(cut):]
    present = [(a, b) for a, b in swaps if re.search(rf"\b{re.escape(a)}\b", text)]
    if present:
        a, b = _pick(rng, present)
        return re.sub(rf"\b{re.escape(a)}\b", b, text, count=1)
    return text.rstrip(".!?") + " now" + text[len(text.rstrip(".!?")):]


def _case_ws_variant(rng: _Draw, text: str, lang: str) -> str:
    """The same text after normalization: changed case and/or extra whitespace."""
    if lang == "en" and rng.random() < 0.6:
        text = text.upper() if rng.random() < 0.3 else text.lower()
    else:
        words = text.split(" ")
        if len(words) > 1:
            i = int(rng.integers(1, len(words)))
            words[i] = " " + words[i]
            text = " ".join(words)
    out = _pick(rng, ["  ", " ", "\t", ""]) + text + _pick(rng, [" ", "  ", "\n", ""])
    return out if out != text else text + " "


def _truncate(rng: _Draw, text: str) -> str:
    terminal = set(".!?。！？…;；~～,，、:： \"”“’)）")
    cut = int(len(text) * (0.45 + 0.3 * rng.random()))
    out = text[:cut].rstrip()
    while out and (out[-1] in terminal or not out[-1].isalnum()):
        out = out[:-1].rstrip()
    return out
