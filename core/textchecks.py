"""Instruction-data checks as pure functions: language mismatch, refusals, repetition, chat structure, leakage, contamination, length.

Every public function takes plain Python sequences (lists, tuples, polars Series) of one derived field of each record
(prompt text, response text, list of chat turns) and returns *findings*: a list of dicts, one per problem, with at
least these keys (see :data:`FINDING_KEYS`):

``index``     position of the record in the input sequence (int)
``kind``      what is wrong, a short snake_case name (e.g. ``"refusal"``, ``"chat_template_token"``)
``severity``  ``"error"`` (the record teaches the model something wrong), ``"warning"`` (very likely a fault) or
              ``"info"`` (worth a look)
``message``   plain English naming what is wrong
``field``     ``"prompt"`` / ``"response"`` / ``"conversation"`` / the caller's field name, or None
``start``, ``end``, ``span_text``
              the offending span in that field's text (``text[start:end] == span_text``), or None where no span applies

Some functions add keys of their own (documented on each), e.g. ``coverage`` for repetition or ``eval_index`` for
contamination. :func:`findings_frame` turns any list of findings into a polars DataFrame.

Speed: the per-text work runs in polars (Rust regex, Aho-Corasick) where it can, and the exact Python pass only on the
rows a cheap vectorised pre-pass cannot rule out; every check handles 1M short records in well under a minute on two
cores (``bench/bench_checks.py``). The module imports nothing from ``core``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "CHAT_ROLES",
    "FINDING_KEYS",
    "LANGUAGE_NAMES",
    "PLACEHOLDER_SLOT_NAMES",
    "REFUSAL_PATTERNS",
    "TEMPLATE_TOKEN_PATTERNS",
    "asks_for_language",
    "chat_structure",
    "contamination",
    "detect_languages",
    "findings_frame",
    "langid_identifier",
    "language_mismatch",
    "language_profile",
    "length_ratio",
    "mask_code",
    "refusals",
    "repetition",
    "template_leakage",
    "text_units",
]

FINDING_KEYS = ("index", "kind", "severity", "message", "field", "start", "end", "span_text")
SEVERITIES = ("error", "warning", "info")

# ---------------------------------------------------------------------------
# Scripts and tokens (one definition shared by the Python and the polars/Rust side: literal ranges, no \p{..},
# because Python's re has no Unicode script classes)
# ---------------------------------------------------------------------------

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA = "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_CJK = _HAN + _KANA  # scripts written without spaces: one character is one token

#: A token is one CJK character or one run of other letters/digits (a word, a number, a Hangul word).
TOKEN_PATTERN = f"[{_CJK}]|[^\\W_{_CJK}]+"
_TOKEN_RE = re.compile(TOKEN_PATTERN)
_WORD_RE = re.compile(f"[^\\W_{_CJK}]+")
_CJK_RUN_RE = re.compile(f"[{_CJK}]")

# Code regions, masked before language identification, leakage and repetition scans. The same pattern strings run in
# Python's re and in polars (Rust regex): [\s\S] instead of a DOTALL flag, and an unclosed fence runs to the end.
_FENCE_CLOSED = r"```[\s\S]*?```|~~~[\s\S]*?~~~"
_FENCE_OPEN = r"```[\s\S]*|~~~[\s\S]*"
_INLINE_CODE = r"`[^`\n]+`"
_HTML_CODE = r"(?i)<(?:pre|code)\b[^>]*>[\s\S]*?</(?:pre|code)>"
_URL = r"https?://\S+|www\.\S+|[\w.+-]+@[\w-]+\.[\w.-]+"

_FENCE_CLOSED_RE = re.compile(_FENCE_CLOSED)
_FENCE_OPEN_RE = re.compile(_FENCE_OPEN)
_INLINE_CODE_RE = re.compile(_INLINE_CODE)
_HTML_CODE_RE = re.compile(_HTML_CODE)
_INDENTED_RE = re.compile(r"(?m)^(?: {4}|\t)(?![ \t]*(?:[-*+]|\d+[.)])\s).*$")
_MATH_RE = re.compile(r"\$\$[\s\S]+?\$\$|\$[^$\n]+?\$|\\\([\s\S]+?\\\)|\\\[[\s\S]+?\\\]")

# A line that is code, not prose (for language identification of answers that mix prose and unfenced code).
_CODE_LINE_RS = (
    r"(?m)^[ \t]*(?:def |class |import |from [\w.]+ import|return\b|print\(|console\.|const |let |var |function\b"
    r"|#include|public |private |package |using |SELECT |INSERT |UPDATE |CREATE |for \w+ in |(?:for|if|while|switch) ?\(|<\?php"
    r"|</?[a-zA-Z][\w-]*[ >/]|//|/\*|\*/|[{}\[\]]).*$"
    r"|(?m)^.*[;{}]\s*$"
    r"|(?m)^[ \t]*[A-Za-z_][\w.\[\]'\"]*\s*[-+*/]?=\s*\S.*$"
)


def _span_mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Replace each span by spaces (newlines kept), so that offsets into the result are offsets into ``text``."""
    chars = None
    for s, e in spans:
        if chars is None:
            chars = list(text)
        for i in range(s, e):
            if chars[i] != "\n":
                chars[i] = " "
    return text if chars is None else "".join(chars)


def _code_spans(text: str, indented: bool = True) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if "```" in text or "~~~" in text:
        for m in _FENCE_CLOSED_RE.finditer(text):
            spans.append(m.span())
        rest = _span_mask(text, spans)
        m = _FENCE_OPEN_RE.search(rest)
        if m:
            spans.append(m.span())
    if "`" in text:
        spans.extend(m.span() for m in _INLINE_CODE_RE.finditer(_span_mask(text, spans)))
    if "<" in text:
        spans.extend(m.span() for m in _HTML_CODE_RE.finditer(text))
    if indented and ("    " in text or "\t" in text):
        spans.extend(m.span() for m in _INDENTED_RE.finditer(text))
    return spans


def mask_code(text: str, *, indented: bool = True, math: bool = False) -> str:
    """Return ``text`` with code regions replaced by spaces of the same length (offsets stay valid).

    Code regions: fenced blocks (```` ``` ```` or ``~~~``, an unclosed fence runs to the end), inline code
    (`` `x` ``), ``<pre>``/``<code>`` elements and, with ``indented``, Markdown indented blocks (lines starting with
    four spaces or a tab that are not nested list items). With ``math``, TeX math (``$..$``, ``$$..$$``, ``\\(..\\)``,
    ``\\[..\\]``) is masked as well.
    """
    spans = _code_spans(text, indented)
    if math and ("$" in text or "\\" in text):
        spans.extend(m.span() for m in _MATH_RE.finditer(_span_mask(text, spans)))
    return _span_mask(text, spans)


# ---------------------------------------------------------------------------
# Validation and findings
# ---------------------------------------------------------------------------


def _texts(values: Any, name: str) -> list[str]:
    """Validate a sequence of texts (None counts as empty) and return it as a list of str."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name}: expected a sequence of texts, got a single {type(values).__name__}")
    if isinstance(values, pl.Series):
        if values.dtype not in (pl.String, pl.Null):
            raise ValueError(f"{name}: expected a String series, got {values.dtype}")
        return values.fill_null("").cast(pl.String).to_list()
    try:
        out = list(values)
    except TypeError:
        raise ValueError(f"{name}: expected a sequence of texts, got {type(values).__name__}") from None
    for i, v in enumerate(out):
        if v is None:
            out[i] = ""
        elif not isinstance(v, str):
            raise ValueError(f"{name}[{i}]: expected a string or None, got {type(v).__name__}")
    return out


def _same_length(a: Sequence, b: Sequence, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} must have the same length, got {len(a)} and {len(b)}")


def _finding(
    index: int,
    kind: str,
    severity: str,
    message: str,
    field: str | None = None,
    start: int | None = None,
    end: int | None = None,
    span_text: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out = {
        "index": int(index),
        "kind": kind,
        "severity": severity,
        "message": message,
        "field": field,
        "start": start,
        "end": end,
        "span_text": span_text,
    }
    out.update(extra)
    return out


def findings_frame(findings: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Return ``findings`` as a polars DataFrame: the :data:`FINDING_KEYS` columns first (always present), then extras.

    Extra keys whose values mix types across findings are kept as strings.
    """
    base = {
        "index": pl.Int64,
        "kind": pl.String,
        "severity": pl.String,
        "message": pl.String,
        "field": pl.String,
        "start": pl.Int64,
        "end": pl.Int64,
        "span_text": pl.String,
    }
    if not findings:
        return pl.DataFrame(schema=base)
    cols: dict[str, list[Any]] = {k: [f.get(k) for f in findings] for k in base}
    extra_keys: list[str] = []
    for f in findings:
        for k in f:
            if k not in base and k not in extra_keys:
                extra_keys.append(k)
    series = [pl.Series(k, cols[k], dtype=t) for k, t in base.items()]
    for k in extra_keys:
        vals = [f.get(k) for f in findings]
        try:
            series.append(pl.Series(k, vals, strict=True))
        except (TypeError, pl.exceptions.PolarsError):
            series.append(pl.Series(k, [None if v is None else str(v) for v in vals], dtype=pl.String))
    return pl.DataFrame(series)


def _quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return f"“{text if len(text) <= limit else text[: limit - 1] + '…'}”"


# ---------------------------------------------------------------------------
# Language identification and language mismatch
# ---------------------------------------------------------------------------

#: Names by which an instruction asks for a language (English and Chinese names, and the language's own name).
#: An instruction that names the response's language, or asks for a translation, makes a mismatch intended.
LANGUAGE_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("english", "英文", "英语", "英語", "英译", "译英"),
    "zh": ("chinese", "mandarin", "cantonese", "中文", "汉语", "漢語", "华语", "華語", "普通话", "國語", "国语", "粤语",
           "繁体", "简体", "繁體", "文言文", "汉字", "中国话", "中译", "译中", "汉译", "译汉"),
    "ja": ("japanese", "日语", "日文", "日本語", "日本语"),
    "ko": ("korean", "韩语", "韩文", "朝鲜语", "韓語", "한국어"),
    "fr": ("french", "法语", "法文", "français", "francais"),
    "de": ("german", "德语", "德文", "deutsch"),
    "es": ("spanish", "西班牙语", "español", "espanol"),
    "pt": ("portuguese", "葡萄牙语", "português"),
    "it": ("italian", "意大利语", "italiano"),
    "ru": ("russian", "俄语", "俄文", "русский"),
    "ar": ("arabic", "阿拉伯语", "العربية"),
    "vi": ("vietnamese", "越南语", "tiếng việt"),
    "th": ("thai", "泰语"),
    "id": ("indonesian", "印尼语", "bahasa indonesia"),
    "ms": ("malay", "马来语"),
    "nl": ("dutch", "荷兰语"),
    "tr": ("turkish", "土耳其语"),
    "hi": ("hindi", "印地语"),
    "uk": ("ukrainian", "乌克兰语"),
    "pl": ("polish", "波兰语"),
    "sv": ("swedish", "瑞典语"),
    "el": ("greek", "希腊语"),
    "he": ("hebrew", "希伯来语"),
    "la": ("latin", "拉丁语"),
}
_LANGUAGE_NAME_RE = {
    code: re.compile("|".join((r"\b" + re.escape(n) + r"\b") if n.isascii() else re.escape(n) for n in names), re.IGNORECASE)
    for code, names in LANGUAGE_NAMES.items()
}
_TRANSLATION_RE = re.compile(
    r"translat|transliterat|romani[sz]|\bpinyin\b|bilingual|\binterpret (?:this|it|the following) (?:in|into)\b"
    r"|翻译|翻譯|译成|譯成|译为|译作|译文|翻成|翻作|英译|中译|汉译|译中|译英|译汉|双语|雙語|拼音|转写",
    re.IGNORECASE,
)

_SCRIPTS = ("cjk", "hangul", "latin", "other")
_CJK_PER_WORD = 1.5  # a Chinese word is about 1.5 characters: CJK characters / 1.5 ~ words, to compare with Latin words
# English-only function words (not also common words of another Latin-script language: "is", "in", "a", "die", "was",
# "will", "also", "so", "do", "my" are) and, for the share, English function words in general.
_EN_STRONG = (
    "the", "and", "that", "this", "with", "what", "which", "would", "should", "there", "their", "they", "you", "your",
    "are", "have", "from", "were", "been", "how", "why", "where", "when", "not", "it's", "don't", "i'm", "can't",
    "does", "these", "those", "could", "about", "into", "than", "then", "them", "please", "thanks", "thank", "here",
    "sure", "because", "each", "every", "many", "much", "first", "after", "before", "just", "only", "some",
)
_EN_BROAD = _EN_STRONG + (
    "is", "of", "in", "a", "an", "to", "it", "i", "my", "do", "on", "at", "as", "be", "by", "or", "we", "he", "she",
    "his", "her", "our", "us", "me", "if", "so", "no", "yes", "all", "any", "can", "but", "for", "was", "has", "had",
    "one", "two", "more", "most", "very", "out", "up", "get", "use", "make", "like", "will", "also",
)


def _word_alternation(words: Sequence[str]) -> str:
    return r"\b(?:" + "|".join(re.escape(w) for w in words).replace("'", "['’]") + r")\b"


_EN_STRONG_RS = _word_alternation(_EN_STRONG)
_EN_BROAD_RS = _word_alternation(_EN_BROAD)
_IDENTIFIER_CHARS = 300  # the identifier sees at most this many characters of a text: plenty to tell a language

Identifier = Callable[[list[str]], list["str | None"]]
_LANGID: Any = None


class _BatchLangid:
    """langid's classifier (Lui & Baldwin 2012) run on many texts at once: the same model and the same arithmetic.

    langid's own ``classify`` walks each text's UTF-8 bytes through its feature DFA in a Python loop and then takes
    one (7480 x 97) product per text. Here all texts of a batch walk the DFA in lockstep (one numpy step per byte
    position), the feature counts of a batch come from one ``bincount`` and the class scores from one matrix
    product. The argmax equals langid's (checked in the tests against ``langid.classify``).
    """

    def __init__(self) -> None:
        from langid.langid import LanguageIdentifier, model

        ident = LanguageIdentifier.from_modelstring(model, norm_probs=False)
        self.classes = list(ident.nb_classes)
        self.ptc = np.asarray(ident.nb_ptc, dtype=np.float64)
        self.pc = np.asarray(ident.nb_pc, dtype=np.float64)
        self.nfeats = int(ident.nb_numfeats)
        dtype = np.uint16 if ident.tk_nextmove.itemsize == 2 else np.uint32
        self.nextmove = np.frombuffer(ident.tk_nextmove, dtype=dtype).astype(np.int64)
        nstates = len(self.nextmove) // 256
        lens = np.zeros(nstates, dtype=np.int64)
        for state, feats in ident.tk_output.items():
            lens[state] = len(feats)
        self.indptr = np.concatenate([[0], np.cumsum(lens)])
        self.indices = np.zeros(int(self.indptr[-1]), dtype=np.int64)
        for state, feats in ident.tk_output.items():
            self.indices[self.indptr[state] : self.indptr[state + 1]] = feats

    def features(self, texts: list[str]) -> np.ndarray:
        """langid's feature vectors (``instance2fv``) of ``texts``, one row per text."""
        raw = [t.encode("utf-8") for t in texts]
        k = len(raw)
        lengths = np.fromiter((len(b) for b in raw), dtype=np.int64, count=k)
        width = int(lengths.max()) if k else 0
        buf = np.zeros((k, max(width, 1)), dtype=np.int64)
        for r, b in enumerate(raw):
            buf[r, : len(b)] = np.frombuffer(b, dtype=np.uint8)
        states = np.zeros((k, width), dtype=np.int64)
        state = np.zeros(k, dtype=np.int64)
        for pos in range(width):
            state = self.nextmove[(state << 8) + buf[:, pos]]
            states[:, pos] = state
        valid = np.arange(width)[None, :] < lengths[:, None]
        rows = np.broadcast_to(np.arange(k)[:, None], (k, width))[valid]
        st = states[valid]
        cnt = self.indptr[st + 1] - self.indptr[st]
        keep = cnt > 0
        rows, st, cnt = rows[keep], st[keep], cnt[keep]
        total = int(cnt.sum())
        first = np.repeat(self.indptr[st], cnt)
        offset = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        feats = self.indices[first + offset]
        flat = np.repeat(rows, cnt) * self.nfeats + feats
        return np.bincount(flat, minlength=k * self.nfeats).reshape(k, self.nfeats).astype(np.float64)

    def __call__(self, texts: list[str], batch: int = 256) -> list[str | None]:
        out: list[str | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: little padding
        for c in range(0, len(order), batch):
            idx = [i for i in order[c : c + batch] if texts[i].strip()]
            if not idx:
                continue
            scores = self.features([texts[i] for i in idx]) @ self.ptc + self.pc
            for i, j in zip(idx, scores.argmax(axis=1).tolist()):
                out[i] = self.classes[j]
        return out


def langid_identifier(texts: list[str]) -> list[str | None]:
    """Identify each text's language with langid's model (97 languages, shipped inside the ``langid`` package), as
    ISO 639-1 codes; None for a blank text. Batched (:class:`_BatchLangid`), same answers as ``langid.classify``.

    The model loads once per process (a few seconds, ~150 MB).
    """
    global _LANGID
    if _LANGID is None:
        _LANGID = _BatchLangid()
    return _LANGID(list(texts))


default_identifier = langid_identifier

# Characters that a text with code, a URL or an e-mail address must contain: only those rows pay for masking.
_CODE_HINT = r"[`~@;{}=<>\[\]]|://|www\.|(?m)^[ \t]*(?:def|class|import|from|return|print|console|const|let|var|function|public|private|package|using|SELECT|INSERT|UPDATE|CREATE|for|if|while|switch)(?-u:\b)|//|/\*"


def _mask_code_frame(s: pl.Series) -> pl.Series:
    rows = s.str.contains(_CODE_HINT).fill_null(False)
    idx = np.flatnonzero(rows.to_numpy())
    if len(idx) == 0:
        return s
    sub = (
        s.gather(idx)
        .str.replace_all(_FENCE_CLOSED, " ")
        .str.replace_all(_FENCE_OPEN, " ")
        .str.replace_all(_INLINE_CODE, " ")
        .str.replace_all(_URL, " ")
        .str.replace_all(_ascii_b(_CODE_LINE_RS), " ")
    )
    return s.scatter(idx, sub)


def _ascii_b(pattern: str) -> str:
    """The pattern with ASCII word boundaries, for Rust: Unicode \\b defeats its fast DFA (~100x slower). In our
    patterns every \\b stands next to an ASCII letter, where the ASCII boundary holds wherever the Unicode one does,
    so a polars pre-filter with it finds a superset of what Python's re finds."""
    return pattern.replace(r"\b", r"(?-u:\b)")


_STRIP_FOR_IDENTIFIER = re.compile(f"[{_CJK}\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]+")


class _Profile:
    """Script counts and languages of a list of texts; identification is deferred so callers can limit it."""

    def __init__(self, items: list[str], min_units: float):
        n = len(items)
        self.n = n
        masked = _mask_code_frame(pl.Series("t", items, dtype=pl.String))
        self.masked = masked
        counts = pl.DataFrame({"t": masked}).lazy().select(
            cjk=pl.col("t").str.count_matches(f"[{_CJK}]"),
            latin=pl.col("t").str.count_matches(r"\p{Latin}+"),
            words=pl.col("t").str.count_matches(f"[\\p{{L}}\\p{{M}}--[{_CJK}]]+"),
        ).collect()
        cjk = counts["cjk"].fill_null(0).to_numpy().astype(np.float64)
        latin = counts["latin"].fill_null(0).to_numpy().astype(np.float64)
        nonlatin = np.maximum(counts["words"].fill_null(0).to_numpy().astype(np.float64) - latin, 0.0)
        kana = np.zeros(n)
        hangul = np.zeros(n)
        sub = np.flatnonzero(cjk > 0)
        if len(sub):
            kana[sub] = masked.gather(sub).str.count_matches(f"[{_KANA}]").fill_null(0).to_numpy()
        sub = np.flatnonzero(nonlatin > 0)
        if len(sub):
            hangul[sub] = masked.gather(sub).str.count_matches(r"\p{Hangul}+").fill_null(0).to_numpy()
        other = np.maximum(nonlatin - hangul, 0.0)
        by_script = np.stack([cjk / _CJK_PER_WORD, hangul, latin, other], axis=1)
        units = by_script.sum(axis=1)
        dominant = by_script.argmax(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.share = np.where(units > 0, by_script.max(axis=1) / np.where(units > 0, units, 1), 0.0)
            self.cjk_share = np.where(units > 0, by_script[:, 0] / np.where(units > 0, units, 1), 0.0)
        self.units = units
        known = units >= min_units
        self.script: list[str | None] = [_SCRIPTS[d] if ok else None for d, ok in zip(dominant.tolist(), known.tolist())]
        self.language: list[str | None] = [None] * n
        self.method = ["too_short"] * n
        # English by function words, only where Latin script dominates.
        latin_rows = np.flatnonzero(known & (dominant == 2))
        strong = np.zeros(n)
        broad = np.zeros(n)
        if len(latin_rows):
            words = pl.DataFrame({"t": masked.gather(latin_rows)}).lazy().select(
                strong=pl.col("t")
                .str.extract_all("(?i)" + _ascii_b(_EN_STRONG_RS))
                .list.eval(pl.element().str.to_lowercase())
                .list.n_unique(),
                broad=pl.col("t").str.count_matches("(?i)" + _ascii_b(_EN_BROAD_RS)),
            ).collect()
            strong[latin_rows] = words["strong"].fill_null(0).to_numpy()
            broad[latin_rows] = words["broad"].fill_null(0).to_numpy()
        self.pending: list[int] = []
        for i in np.flatnonzero(known).tolist():
            d = int(dominant[i])
            if d == 0:
                self.language[i] = "ja" if kana[i] >= 2 and kana[i] >= 0.05 * cjk[i] else "zh"
                self.method[i] = "script"
            elif d == 1:
                self.language[i] = "ko"
                self.method[i] = "script"
            elif d == 2 and (strong[i] >= 2 or (strong[i] >= 1 and broad[i] >= 0.3 * latin[i])):
                self.language[i] = "en"
                self.method[i] = "stopwords"
            else:
                self.method[i] = "identifier"
                self.pending.append(i)

    def identify(self, rows: Iterable[int], identifier: Identifier | None) -> None:
        """Run the identifier on those of ``rows`` still pending (each distinct text once)."""
        rows = [i for i in rows if self.method[i] == "identifier" and self.language[i] is None]
        if not rows:
            return
        # The identifier sees the text without code and, as the script is already known, without CJK and Hangul
        # (a Latin text quoting 你好 is not Chinese), cut to its first few hundred characters.
        masked = self.masked.gather(rows).to_list()
        keys: dict[str, int] = {}
        slot = []
        for t in masked:
            t = " ".join(_STRIP_FOR_IDENTIFIER.sub(" ", t[: 3 * _IDENTIFIER_CHARS]).split())[:_IDENTIFIER_CHARS]
            slot.append(keys.setdefault(t, len(keys)))
        found = (identifier or default_identifier)(list(keys))
        if len(found) != len(keys):
            raise ValueError(f"identifier returned {len(found)} languages for {len(keys)} texts")
        for i, k in zip(rows, slot):
            self.language[i] = found[k]

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "language": pl.Series(self.language, dtype=pl.String),
                "script": pl.Series(self.script, dtype=pl.String),
                "share": self.share,
                "cjk_share": self.cjk_share,
                "units": self.units,
                "method": self.method,
            }
        )


def language_profile(
    texts: Sequence[str | None],
    *,
    identifier: Identifier | None = None,
    min_units: float = 3.0,
) -> pl.DataFrame:
    """Return, per text, its language and how its letters split over scripts (one row per text, in input order).

    Columns:

    - ``language``: ISO 639-1 code (``"zh"``, ``"en"``, ``"ja"``...) or None when unknown: too short (fewer than
      ``min_units`` word-equivalents, i.e. fewer than about 3 words or 5 Chinese characters), only code, or the
      identifier cannot decide;
    - ``script``: the dominant script, one of ``cjk`` (Han and kana), ``hangul``, ``latin``, ``other``, or None;
    - ``share``: the dominant script's share of the text's word-equivalents (1.0 = one script only);
    - ``cjk_share``: the share of Han/kana (CJK characters / 1.5 count as words, as a Chinese word is about 1.5
      characters); ``units``: the number of word-equivalents;
    - ``method``: how the language was decided: ``script`` (Han vs kana vs Hangul decide zh / ja / ko),
      ``stopwords`` (Latin text with two distinct English-only function words, or one and a 30% share of English
      function words, is English), ``identifier`` (everything else: other Latin-script and non-Latin languages, short
      English without function words), ``too_short``.

    Code is not language: fenced and inline code, URLs, e-mail addresses and lines that look like code are masked
    before counting. The script/English pre-pass runs vectorised in polars and decides most Chinese and English
    texts; ``identifier`` (default :func:`langid_identifier`; any callable from a list of texts to a list of codes)
    resolves the rest.
    """
    items = _texts(texts, "texts")
    prof = _Profile(items, min_units)
    prof.identify(prof.pending, identifier)
    return prof.frame()


def detect_languages(texts: Sequence[str | None], *, identifier: Identifier | None = None) -> list[str | None]:
    """Return each text's language as an ISO 639-1 code, or None when unknown (short, only code, undecided).

    See :func:`language_profile` for how it is decided; a Chinese text with English product names or code is ``zh``.
    """
    return language_profile(texts, identifier=identifier)["language"].to_list()


def asks_for_language(prompt: str, language: str | None = None) -> bool:
    """True when ``prompt`` asks for a translation, or names ``language`` (an ISO 639-1 code) in any of its names.

    Examples that return True: "把下面这句话翻译成英文", "Translate to Chinese", "用英文回答" (``en``),
    "Answer in Japanese" (``ja``), "请用中文解释 transformer" (``zh``), "中译英：…".
    """
    if _TRANSLATION_RE.search(prompt):
        return True
    if language is not None and language in _LANGUAGE_NAME_RE:
        return bool(_LANGUAGE_NAME_RE[language].search(prompt))
    return False


_LANGUAGE_LABEL = {
    "en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "fr": "French", "de": "German",
    "es": "Spanish", "pt": "Portuguese", "it": "Italian", "ru": "Russian", "ar": "Arabic", "vi": "Vietnamese",
    "th": "Thai", "id": "Indonesian", "nl": "Dutch", "tr": "Turkish",
}


def _label(code: str) -> str:
    return _LANGUAGE_LABEL.get(code, code)


def language_mismatch(
    prompts: Sequence[str | None],
    responses: Sequence[str | None],
    *,
    min_share: float = 0.7,
    min_units_same_script: float = 8.0,
    identifier: Identifier | None = None,
    field: str = "response",
) -> list[dict[str, Any]]:
    """Find responses written in another language than their instruction.

    A pair is flagged when both languages are known and differ, both texts are clearly in one script (the dominant
    script holds at least ``min_share`` of the word-equivalents: a Chinese answer with English product names or
    code is still Chinese, a half-English half-Chinese text is mixed and never a mismatch), and the prompt neither asks
    for a translation nor names the response's language (:func:`asks_for_language`). Short texts (under about 3
    words or 5 Chinese characters) are unknown and never a mismatch.

    Severity: ``warning`` when the scripts differ (Chinese vs English, Japanese vs Chinese by kana: reliable);
    ``info`` when both are in the same script (English vs French: an identifier's call, and only when both texts have
    at least ``min_units_same_script`` words). Pass the instruction as the prompt (not an attached input text that may
    legitimately be in another language); for chat, the last user turn and the assistant's reply.

    Extra keys: ``prompt_language``, ``response_language``.
    """
    ps = _texts(prompts, "prompts")
    rs = _texts(responses, "responses")
    _same_length(ps, rs, "prompts", "responses")
    if not ps:
        return []
    n = len(ps)
    prof = _Profile(ps + rs, 3.0)
    share, units, script = prof.share, prof.units, prof.script
    p_idx = np.arange(n)
    r_idx = p_idx + n
    ok = (share[p_idx] >= min_share) & (share[r_idx] >= min_share)
    ok &= np.array([a is not None and b is not None for a, b in zip(script[:n], script[n:])], dtype=bool)
    same = np.array([a == b for a, b in zip(script[:n], script[n:])], dtype=bool)
    ok &= ~same | (np.minimum(units[p_idx], units[r_idx]) >= min_units_same_script) | np.array(
        [a == "cjk" for a in script[:n]], dtype=bool)  # zh vs ja: same script, told apart by kana
    pairs = np.flatnonzero(ok)
    # The identifier runs only on texts whose pair can still be a mismatch.
    prof.identify([int(i) for i in pairs] + [int(i) + n for i in pairs], identifier)
    lang = prof.language
    out = []
    for i in pairs.tolist():
        lp, lr = lang[i], lang[n + i]
        if lp is None or lr is None or lp == lr:
            continue
        if asks_for_language(ps[i], lr):
            continue
        same_script = script[i] == script[n + i] and {lp, lr} != {"zh", "ja"}
        out.append(
            _finding(
                i,
                "language_mismatch",
                "info" if same_script else "warning",
                f"the response is in {_label(lr)} but the instruction is in {_label(lp)}, and the instruction does "
                f"not ask for {_label(lr)} or a translation",
                field,
                prompt_language=lp,
                response_language=lr,
            )
        )
    return out


# ---------------------------------------------------------------------------
# Refusals and assistant boilerplate
# ---------------------------------------------------------------------------

_A = "['’]"  # straight or curly apostrophe
_REFUSE = (
    rf"(?:can(?:not|{_A}t| not)|could(?:n{_A}t| not)|(?:am|{_A}m) (?:not able|unable)|won{_A}t|will not|must (?:decline|refuse)"
    rf"|(?:am|{_A}m) not (?:allowed|permitted|comfortable)|do(?:n{_A}t| not) (?:feel comfortable|think I (?:can|should)))"
)
_REFUSE_OBJECT = (
    r"(?:help(?: you)? (?:with|on)|assist(?: you)?(?: with| in)?|provide|comply|fulfil+|answer|generate|create|write"
    r"|produce|engage|support|share|complete (?:this|that|your)|do (?:that|this)|respond to|give|offer|discuss|continue"
    r"|participate|condone|promote|endorse)"
)

#: Curated refusal / assistant-boilerplate patterns, English and Chinese, as ``(kind, regex)``; matched
#: case-insensitively anywhere in a response. Written in the syntax common to Python's re and Rust's regex (no
#: look-arounds, no back-references) so that polars can pre-filter with them. Extend with ``extra_patterns``.
REFUSAL_PATTERNS: tuple[tuple[str, str], ...] = (
    # English refusals
    ("refusal", rf"\b(?:I{_A}m sorry|I am sorry|I apologi[sz]e|(?:my )?apologies|sorry)[,.!]?\s+(?:but\s+)?(?:as an? [^,.]{{1,40}},\s*)?I\s+{_REFUSE}"),
    ("refusal", rf"\bI\s+{_REFUSE}\s+(?:be able to )?{_REFUSE_OBJECT}\b"),
    ("refusal", rf"\bI{_A}m (?:afraid|sorry) (?:that )?I (?:can{_A}t|cannot|can not|won{_A}t)\b"),
    ("refusal", r"\bI must (?:respectfully |politely )?decline\b"),
    ("refusal", r"\bI (?:will|must|have to) (?:respectfully |politely )?refuse\b"),
    ("refusal", rf"\b(?:I{_A}m|I am) not (?:programmed|designed|permitted) to\b"),
    ("refusal", r"\bnot appropriate for me to\b"),
    ("refusal", r"\bagainst my (?:programming|guidelines|principles|ethical guidelines)\b"),
    ("refusal", rf"\bviolat\w* (?:openai{_A}?s? |my |our )(?:content |usage |use[- ]case )?polic"),
    ("refusal", rf"\bopenai{_A}?s? (?:content |usage |use[- ]case )polic"),
    ("refusal", r"\bthis (?:request|content) (?:goes against|violates)\b"),
    # English assistant boilerplate
    ("ai_boilerplate", r"\bas an? (?:ai|artificial intelligence|a\.i\.)(?: language model| model| assistant| chatbot| system| program| developed| created| trained|,)"),
    ("ai_boilerplate", r"\bas a (?:large )?language model\b"),
    ("ai_boilerplate", rf"\b(?:I{_A}m|I am) (?:just |only |merely )?an? (?:ai|artificial intelligence)(?: language model| model| assistant| chatbot| program|[,.!])"),
    ("ai_boilerplate", rf"\b(?:I{_A}m|I am) (?:just |only |merely )?an? (?:large )?language model\b"),
    ("ai_boilerplate", rf"\bI do(?:n{_A}t| not) have (?:personal (?:opinions|feelings|emotions|beliefs|experiences|preferences)|feelings|emotions|the ability to (?:browse|access)|real-time|access to (?:real-time|the internet|current|live))"),
    ("ai_boilerplate", r"\bmy (?:knowledge|training data) (?:cutoff|cut-off|is limited to|only goes|extends only)"),
    ("ai_boilerplate", r"\bmy knowledge cut-?off\b"),
    ("ai_boilerplate", r"\bI (?:cannot|can't|can not|am unable to) (?:browse|access) the (?:internet|web)\b"),
    # Chinese refusals
    ("refusal", r"(?:抱歉|对不起|不好意思|對不起)[，,。！!\s]*(?:但是?|不过)?[，,\s]*(?:作为[^，,。]{1,20}[，,]\s*)?我(?:无法|不能|不可以|没办法|没有办法|不会|不便|無法)"),
    ("refusal", r"我(?:无法|不能|不可以|没办法|没有办法|無法)(?:为你|为您|给你|给您|向你|向您|帮你|帮您)?(?:提供|回答|协助|满足|回应|参与|生成|支持|讨论|協助)"),
    ("refusal", r"我(?:无法|不能|没办法|没有办法)(?:帮助|帮)(?:你|您)"),
    ("refusal", r"恕我(?:无法|不能|难以)"),
    ("refusal", r"(?:不便|不宜)(?:回答|提供|透露|评论)"),
    ("refusal", r"我(?:必须|只能)?(?:拒绝|婉拒)(?:回答|提供|这个|这一|此|您的|你的)"),
    ("refusal", r"(?:这|该|此)(?:个)?(?:问题|请求|内容|话题)(?:超出了|超出|不在)我的(?:能力|回答范围|服务范围|范围)"),
    ("refusal", r"(?:违反|违背)(?:了)?(?:我的|OpenAI的|openai的|使用|内容)(?:使用)?(?:政策|准则|规范|原则)"),
    # Chinese assistant boilerplate
    ("ai_boilerplate", r"作为(?:一个|一名|一款|一位)?(?:AI|人工智能|大型?)?(?:语言模型|AI助手|人工智能助手|智能助手|聊天机器人|AI模型|人工智能模型)"),
    ("ai_boilerplate", r"作为(?:一个|一名|一款|一位)?(?:AI|人工智能)[，,]"),
    ("ai_boilerplate", r"我(?:只是|仅仅是|是)(?:一个|一款|一名)?(?:AI|人工智能)(?:语言模型|助手|模型|程序|[，,。！])"),
    ("ai_boilerplate", r"我(?:只是|仅仅是|是)(?:一个|一款|一名)?(?:大型)?语言模型"),
    ("ai_boilerplate", r"我的(?:知识|训练数据)(?:截止|截至|更新|仅更新|只更新|库截止)"),
    ("ai_boilerplate", r"我(?:无法|不能|没有办法)(?:访问|浏览|连接)(?:互联网|网络|实时|外部|网页)"),
    ("ai_boilerplate", r"我(?:没有|不具备)(?:个人|自己的)?(?:观点|感情|情感|意见|偏好|意识|喜好|看法|主观)"),
)
_REFUSAL_KIND_TEXT = {"refusal": "refuses", "ai_boilerplate": "contains assistant boilerplate"}


def _phrase_regex(phrase: str) -> str:
    """A literal phrase as a regex valid in Python and Rust: metacharacters escaped, whitespace runs as \\s+."""
    parts = []
    for word in phrase.split():
        parts.append("".join("\\" + c if c in r".^$*+?()[]{}|\/-#&~" else c for c in word))
    return r"\s+".join(parts)


def refusals(
    responses: Sequence[str | None],
    extra_patterns: Iterable[str] = (),
    *,
    field: str = "response",
) -> list[dict[str, Any]]:
    """Find responses that refuse or carry assistant boilerplate ("I'm sorry, but I can't", "As an AI language model",
    "抱歉，我无法", "作为一个人工智能语言模型", ...).

    ``extra_patterns`` are plain phrases a lead adds (from the dataset settings), matched case-insensitively with any
    run of whitespace between words; they are literals, never regular expressions, so no user input can make a slow
    pattern. One finding per response (the earliest match), kind ``refusal`` or ``ai_boilerplate`` (extra phrases
    count as ``refusal``), severity ``warning``, with the matched span.
    """
    rs = _texts(responses, "responses")
    extras = []
    for i, p in enumerate(extra_patterns):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"extra_patterns[{i}]: expected a non-empty phrase, got {p!r}")
        extras.append(("refusal", _phrase_regex(p)))
    patterns = list(REFUSAL_PATTERNS) + extras
    if not rs:
        return []
    combined = "(?i)" + _ascii_b("|".join(f"(?:{rx})" for _, rx in patterns))
    hit = pl.Series(rs, dtype=pl.String).str.contains(combined).to_numpy()
    compiled = [(kind, re.compile(rx, re.IGNORECASE)) for kind, rx in patterns]
    out = []
    for i in np.flatnonzero(hit).tolist():
        text = rs[i]
        best = None
        for kind, rx in compiled:
            m = rx.search(text)
            if m and (best is None or m.start() < best[1].start()):
                best = (kind, m)
        if best is None:  # Rust and Python disagree on an edge of \w or \b: trust Python, the exact pass
            continue
        kind, m = best
        out.append(
            _finding(i, kind, "warning", f"the response {_REFUSAL_KIND_TEXT[kind]}: {_quote(m.group())}", field,
                     m.start(), m.end(), m.group())
        )
    return out


# ---------------------------------------------------------------------------
# Degenerate repetition
# ---------------------------------------------------------------------------


def _tokens_with_offsets(text: str) -> tuple[list[str], list[int], list[int]]:
    toks, starts, ends = [], [], []
    for m in _TOKEN_RE.finditer(text):
        toks.append(m.group().lower())
        starts.append(m.start())
        ends.append(m.end())
    return toks, starts, ends


_SENTENCE_END = frozenset(".!?。！？…;；:：\n")


def _ends_sentence(text: str, end: int) -> bool:
    """True when the text ends at ``end`` or a sentence/line ends there (closing quotes and spaces skipped)."""
    for ch in text[end : end + 4]:
        if ch in _SENTENCE_END:
            return True
        if ch not in " \t\"'”’)）」』":
            return False
    return end >= len(text.rstrip())


def _ngram_size(toks: list[str], n_word: int, n_char: int, min_repeats: int) -> int:
    cjk = sum(1 for t in toks if len(t) == 1 and _CJK_RUN_RE.match(t))
    n = n_char if cjk * 2 >= len(toks) else n_word
    return min(n, max(2, len(toks) // min_repeats))


def _repetition_one(text: str, n_word: int, n_char: int, threshold: float, min_repeats: int, min_tokens: int):
    masked = _span_mask(text, _code_spans(text, indented=False))
    toks, starts, ends = [], [], []
    for m in _TOKEN_RE.finditer(masked):
        t = m.group()
        if t.isdigit():
            continue  # numbers in arrays, tables and matrices repeat legitimately
        toks.append(t.lower())
        starts.append(m.start())
        ends.append(m.end())
    total = len(toks)
    if total < min_tokens:
        return None
    n = _ngram_size(toks, n_word, n_char, min_repeats)
    grams = list(zip(*(toks[k:] for k in range(n))))
    if not grams:
        return None
    counts = Counter(grams)
    levels = sorted({c for c in counts.values() if c >= min_repeats}, reverse=True)[:4]
    for level in levels:
        # The first n-gram (in text order) seen this many times: for a loop, one of its phases. A stem shared with
        # the text before the loop is seen more often than the loop body, so lower counts get their turn.
        top = next(g for g in grams if counts[g] == level)
        found = _repeated_unit(text, masked, toks, starts, ends, grams, top, n, threshold)
        if found is not None:
            return found
    return None


def _repeated_unit(text, masked, toks, starts, ends, grams, top, n, threshold):
    total = len(toks)
    pos = [i for i, g in enumerate(grams) if g == top]
    gap = min(b - a for a, b in pairwise(pos))
    if gap < n:
        unit_len = gap  # a short unit repeated back to back: the period is the unit
    else:
        unit_len = n
        # Extend while every occurrence agrees; the last copy of a loop may be cut short by the end of the text.
        while unit_len < gap and all(p + unit_len >= total or toks[p + unit_len] == toks[pos[0] + unit_len] for p in pos):
            unit_len += 1
    mask = np.zeros(total, dtype=bool)
    reach = unit_len if gap >= n else n
    for p in pos:
        mask[p : p + reach] = True
    if gap < n:  # a back-to-back loop runs on while each token repeats the one a period earlier
        end = pos[-1] + n
        while end < total and toks[end] == toks[end - unit_len]:
            mask[end] = True
            end += 1
    coverage = float(mask.mean())
    if coverage < threshold:
        return None
    back_to_back = gap < n or unit_len == gap
    if not back_to_back and not all(_ends_sentence(masked, ends[p + unit_len - 1]) for p in pos):
        return None  # a shared stem with different endings ("What is the difference between a X and a Y?"): a list
    occurrences = len(pos) if gap >= n else int(mask.sum()) // unit_len
    first, last = pos[0], int(np.flatnonzero(mask)[-1])
    unit_text = text[starts[first] : ends[first + unit_len - 1]]
    return starts[first], ends[last], unit_text, occurrences, coverage


def repetition(
    responses: Sequence[str | None],
    threshold: float = 0.5,
    *,
    n_word: int = 5,
    n_char: int = 10,
    min_repeats: int = 3,
    min_tokens: int = 12,
    field: str = "response",
) -> list[dict[str, Any]]:
    """Find degenerate repetition: one unit (a phrase, a sentence, a character run) repeated at least ``min_repeats``
    times so that its occurrences cover at least ``threshold`` of the text's tokens.

    Tokens are words (letters and digits runs, lower-cased) and single CJK characters; pure numbers are skipped, and
    fenced and inline code is masked (arrays, tables of numbers and code repeat legitimately). The unit is found from
    the most frequent n-gram, ``n_word`` words for Latin text and ``n_char`` characters for CJK text (about the same
    number of words); a unit shorter than n repeated back to back is found by its period, a longer one (a sentence)
    by extending the n-gram while all its occurrences agree. The repetition counts when its copies stand back to
    back (a generation loop) or when the unit is a whole sentence each time; a list whose items share a long stem
    and differ at the end ("What is the difference between a X and a Y?" x 3, "如果X出现问题，可以尝试重新Y。") is not
    degenerate. Normal prose, lists ("1. Add the flour. 2. Add the sugar.") and tables repeat short n-grams only.

    Texts shorter than ``min_tokens`` tokens are skipped. A vectorised pre-pass skips texts whose type/token ratio
    rules the threshold out (a unit repeated k >= min_repeats times over a share c of the text leaves at most
    ``1 - c (1 - 1/k)`` distinct tokens), then texts without any n-gram seen ``min_repeats`` times, so only a small
    share of texts reach the exact pass.

    Extra keys: ``unit`` (the repeated text), ``count`` (its occurrences), ``coverage`` (share of tokens it covers).
    Severity ``warning``; the span runs from the first to the last repetition.
    """
    rs = _texts(responses, "responses")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    for name, v in (("n_word", n_word), ("n_char", n_char), ("min_repeats", min_repeats), ("min_tokens", min_tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {v!r}")
    if not rs:
        return []
    s = pl.Series(rs, dtype=pl.String)
    masked = (
        s.str.replace_all(_FENCE_CLOSED, " ").str.replace_all(_FENCE_OPEN, " ").str.replace_all(_INLINE_CODE, " ")
        .str.replace_all(_HTML_CODE, " ")
    )
    toks = (
        masked.str.to_lowercase()
        .str.extract_all(TOKEN_PATTERN)
        .list.eval(pl.element().filter(~pl.element().str.contains(r"^\d+$")))
    )
    stats = pl.DataFrame({"t": toks}).select(n=pl.col("t").list.len(), u=pl.col("t").list.n_unique())
    ntok = stats["n"].fill_null(0).to_numpy()
    ttr = stats["u"].fill_null(0).to_numpy() / np.maximum(ntok, 1)
    max_ttr = 1.0 - threshold * (1.0 - 1.0 / min_repeats)
    cand = np.flatnonzero((ntok >= min_tokens) & (ttr <= max_ttr + 1e-9))
    out = []
    for i, tk in zip(cand.tolist(), toks.gather(cand).to_list() if len(cand) else []):
        # Second cheap gate on the pre-pass tokens: some n-gram must occur min_repeats times.
        n = _ngram_size(tk, n_word, n_char, min_repeats)
        if max(Counter(zip(*(tk[k:] for k in range(n)))).values(), default=0) < min_repeats:
            continue
        found = _repetition_one(rs[i], n_word, n_char, threshold, min_repeats, min_tokens)
        if found is None:
            continue
        start, end, unit, count, coverage = found
        out.append(
            _finding(
                i, "repetition", "warning",
                f"the response repeats {_quote(unit, 40)} {count} times, covering {coverage:.0%} of its text",
                field, start, end, rs[i][start:end], unit=unit, count=int(count), coverage=round(coverage, 4),
            )
        )
    return out


# ---------------------------------------------------------------------------
# Chat structure
# ---------------------------------------------------------------------------

CHAT_ROLES = ("system", "user", "assistant", "tool")


def _content_empty(turn: Mapping[str, Any]) -> bool:
    content = turn.get("content")
    if isinstance(content, str):
        empty = not content.strip()
    elif isinstance(content, (list, tuple)):  # content parts: [{"type": "text", "text": ...}, {"type": "image"...}]
        empty = True
        for part in content:
            if isinstance(part, Mapping):
                if part.get("type", "text") != "text" or str(part.get("text") or "").strip():
                    empty = False
            elif isinstance(part, str) and part.strip():
                empty = False
    else:
        empty = content is None or not str(content).strip()
    return empty and not turn.get("tool_calls") and not turn.get("function_call")


def chat_structure(
    conversations: Sequence[Sequence[Mapping[str, Any]] | None],
    *,
    roles: Sequence[str] = CHAT_ROLES,
    field: str = "conversation",
) -> list[dict[str, Any]]:
    """Find structural faults in chat conversations, each a list of turns ``{"role", "content"}``.

    Kinds (severity): ``empty_conversation`` (error, no turns); ``malformed_turn`` (error, a turn that is not a
    mapping with a role); ``unknown_role`` (error, a role outside ``roles``); ``empty_turn`` (error, blank content
    and no tool call; content may be a string or a list of parts); ``no_user_turn`` (error); ``system_not_first``
    (warning); ``consecutive_same_role`` (warning: two user or two assistant turns in a row; tool after assistant,
    tool after tool (parallel calls) and assistant after tool are the normal tool-use flow);
    ``tool_without_call`` (warning, a tool turn that follows neither an assistant nor a tool turn);
    ``not_ending_with_assistant`` (warning: the last turn teaches nothing).

    Extra key: ``turn`` (the turn's position in the conversation, None for whole-conversation findings). Role names
    are compared lower-cased; map other vocabularies (``human``/``gpt``) to these on import.
    """
    if isinstance(conversations, (str, bytes, Mapping)):
        raise ValueError(f"conversations: expected a sequence of conversations, got {type(conversations).__name__}")
    known = {r.lower() for r in roles}
    out: list[dict[str, Any]] = []
    for i, conv in enumerate(conversations):
        def add(kind: str, severity: str, message: str, turn: int | None = None, i: int = i) -> None:
            out.append(_finding(i, kind, severity, message, field, turn=turn))

        if conv is None or (isinstance(conv, (list, tuple)) and len(conv) == 0):
            add("empty_conversation", "error", "the conversation has no turns")
            continue
        if isinstance(conv, (str, bytes, Mapping)) or not isinstance(conv, Sequence):
            raise ValueError(f"conversations[{i}]: expected a list of turns, got {type(conv).__name__}")
        seq: list[str | None] = []
        for t, turn in enumerate(conv):
            if not isinstance(turn, Mapping) or not isinstance(turn.get("role"), str):
                add("malformed_turn", "error", f"turn {t + 1} is not a mapping with a role and content", t)
                seq.append(None)
                continue
            role = turn["role"].strip().lower()
            seq.append(role)
            if role not in known:
                expected = ", ".join(roles)
                add("unknown_role", "error", f"turn {t + 1} has the unknown role {turn['role']!r} (expected one of {expected})", t)
            if _content_empty(turn):
                add("empty_turn", "error", f"turn {t + 1} ({role}) is empty", t)
            if role == "system" and t > 0:
                add("system_not_first", "warning", f"turn {t + 1} is a system turn; the system prompt must come first", t)
            if t > 0 and seq[t - 1] is not None:
                prev = seq[t - 1]
                if role == prev and role in ("user", "assistant"):
                    add("consecutive_same_role", "warning", f"turns {t} and {t + 1} are both {role} turns", t)
                elif role == "tool" and prev not in ("assistant", "tool"):
                    add("tool_without_call", "warning",
                        f"turn {t + 1} is a tool result that follows a {prev} turn, not an assistant's call", t)
            elif t == 0 and role == "tool":
                add("tool_without_call", "warning", "the conversation starts with a tool result", t)
        if "user" not in seq:
            add("no_user_turn", "error", "the conversation has no user turn")
        if seq[-1] != "assistant":
            last = seq[-1] or "malformed"
            message = f"the conversation ends with a {last} turn, not the assistant's"
            add("not_ending_with_assistant", "warning", message, len(seq) - 1)
    return out


# ---------------------------------------------------------------------------
# Template leakage
# ---------------------------------------------------------------------------

#: Chat-template and prompt-format tokens, as ``(kind, severity, regex)``, searched outside code regions.
TEMPLATE_TOKEN_PATTERNS: tuple[tuple[str, str, str], ...] = (
    # <|im_start|> <|im_end|> <|endoftext|> <|eot_id|> <|start_header_id|> <|user|> <|end|> ... (ChatML, Llama 3, Phi, GLM)
    ("chat_template_token", "error", r"<\|[A-Za-z0-9_.:/ -]{1,40}\|>"),
    # DeepSeek's full-width bars: <｜begin▁of▁sentence｜> <｜User｜>
    ("chat_template_token", "error", r"<｜[^｜<>\n]{1,40}｜>"),
    ("chat_template_token", "error", r"\[/?INST\]|<</?SYS>>|\[/?(?:SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]"),
    ("chat_template_token", "error", r"<(?:start_of_turn|end_of_turn|bos|eos|unk|pad|eot|sep|cls)>|<reserved_\d+>|\[gMASK\]|<sop>|<eop>"),
    ("chat_template_token", "warning", r"</?s>"),  # Llama/Mistral BOS/EOS; also HTML strike-through, see below
    ("prompt_format_marker", "warning", r"(?m)^[ \t]*#{2,4}[ \t]*(?:Instruction|Response|Input|Output|Human|Assistant|System|Context|Question|Answer|指令|回答|输入|输出)[ \t]*[:：]"),
    ("role_marker", "info", r"(?m)^[ \t]*(?:Human|Assistant|USER|ASSISTANT|<human>|<bot>)[ \t]*[:：](?=[ \t]*\S)"),
)
_TEMPLATE_TOKEN_RES = [(k, s, re.compile(rx)) for k, s, rx in TEMPLATE_TOKEN_PATTERNS]
_LEAK_PREFILTER = r"<\||<｜|\[/?INST\]|<</?SYS>>|\[/?(?:SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]|</?s>|<(?:start_of_turn|end_of_turn|bos|eos|unk|pad|eot|sep|cls|reserved_|sop|eop)|\[gMASK\]|##|\{|(?m)^[ \t]*(?:Human|Assistant|USER|ASSISTANT|<human>|<bot>)[ \t]*[:：]"
_HTML_TAG_RE = re.compile(r"</?(?:p|br|div|span|a|b|i|u|em|strong|del|ul|ol|li|table|tr|td|th|h[1-6]|img|code|pre)\b[^>]*>", re.IGNORECASE)

#: Placeholder names that are template slots: ``{question}`` with one of these names is an unfilled slot wherever it
#: stands outside code (compared lower-cased; any name in Chinese characters counts as a slot too).
PLACEHOLDER_SLOT_NAMES = frozenset(
    [
        "question", "questions", "query", "input", "inputs", "instruction", "instructions", "context", "prompt",
        "system", "system_prompt", "system_message", "user", "user_input", "user_message", "user_query", "message",
        "answer", "answers", "response", "output", "text", "document", "passage", "article", "history", "chat_history",
        "conversation", "options", "choices", "examples", "example", "few_shot", "fewshot", "label", "target", "source",
        "sentence", "content", "topic", "task", "title", "summary", "keywords", "language", "lang", "name", "product",
    ]
)
_PLACEHOLDER_RE = re.compile(
    r"\{\{\s*(?P<double>[A-Za-z_][\w.]{0,39}|[" + _HAN + r"]{1,10})\s*\}\}"
    r"|(?<![\\\w{$^_%#])\{(?P<single>[A-Za-z_][A-Za-z0-9_]{0,39}|[" + _HAN + r"]{1,10})\}(?!\})"
)
_CODE_LINE_SIGNAL_RE = re.compile(
    r"""[=;]|\bf["']|\.format\(|\.format_map\(|%\(|\$\{|\b(?:print|return|def|class|import|const|let|var|function|echo|printf|lambda)\b"""
    r"""|\w\(|\)\s*$|["']\s*:|:\s*["']|</?[a-zA-Z][^>]*>|\{%|%\}"""
)
_CODE_TEXT_SIGNAL_RE = re.compile(
    r"""```|\bdef |\bclass |\bimport |\breturn\b|\bfunction\b|\bconst |\bprint\(|console\.log|\.format\(|\bf["']|=>|;\s*$|^\s*[{\[]""",
    re.MULTILINE,
)


def _line_at(text: str, pos: int) -> str:
    a = text.rfind("\n", 0, pos) + 1
    b = text.find("\n", pos)
    return text[a : b if b >= 0 else len(text)]


def _leaks_one(text: str) -> list[tuple[str, str, int, int, str]]:
    code = _code_spans(text)
    masked = _span_mask(text, code)
    found: list[tuple[str, str, int, int, str]] = []
    html = None
    for kind, severity, rx in _TEMPLATE_TOKEN_RES:
        for m in rx.finditer(masked):
            token = m.group().strip()
            if token in ("<s>", "</s>"):
                if html is None:
                    html = bool(_HTML_TAG_RE.search(masked))
                if html:
                    continue  # <s> is strike-through in a text with other HTML
            what = {"chat_template_token": "chat-template token", "prompt_format_marker": "prompt-format marker",
                    "role_marker": "role marker"}[kind]
            found.append((kind, severity, m.start(), m.end(), f"{what} {_quote(token)} left in the text"))
    if "{" in masked:
        masked_math = masked
        if "$" in masked or "\\" in masked:
            masked_math = _span_mask(masked, [m.span() for m in _MATH_RE.finditer(masked)])
        code_text = "".join(text[s:e] for s, e in code)
        text_code_like = None
        for m in _PLACEHOLDER_RE.finditer(masked_math):
            name = m.group("double") or m.group("single")
            if m.group() in code_text:
                continue  # prose that refers to a placeholder defined in the code beside it
            if _CODE_LINE_SIGNAL_RE.search(_line_at(masked_math, m.start())):
                continue  # a format string, f-string, JSON or template line written as code
            is_slot = name.split(".")[-1].lower() in PLACEHOLDER_SLOT_NAMES or bool(_CJK_RUN_RE.match(name))
            if is_slot:
                found.append(("unfilled_placeholder", "warning", m.start(), m.end(),
                              f"unfilled template placeholder {_quote(m.group())} left in the text"))
                continue
            if text_code_like is None:
                text_code_like = bool(_CODE_TEXT_SIGNAL_RE.search(text))
            if not text_code_like and (len(name) >= 4 or "_" in name or m.group("double")):
                found.append(("possible_placeholder", "info", m.start(), m.end(),
                              f"possible unfilled placeholder {_quote(m.group())} in prose"))
    found.sort(key=lambda f: (f[2], f[3]))
    return found


def template_leakage(texts: Sequence[str | None], *, field: str | None = None) -> list[dict[str, Any]]:
    """Find chat-template tokens and unfilled placeholders left in a text field (prompt, response or a turn).

    Tokens (:data:`TEMPLATE_TOKEN_PATTERNS`): ``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, ``<|eot_id|>``,
    ``<|start_header_id|>`` and any other ``<|...|>``, DeepSeek's ``<｜...｜>``, ``[INST]``, ``[/INST]``, ``<<SYS>>``,
    ``<start_of_turn>``, ``<s>``/``</s>`` (kind ``chat_template_token``, error; ``<s>`` is a warning and is skipped
    in a text with other HTML tags, where it is strike-through); ``### Instruction:`` / ``### Response:`` lines
    (``prompt_format_marker``, warning); ``Human:`` / ``Assistant:`` at a line start (``role_marker``, info).

    Placeholders: ``{question}``, ``{{input}}``, ``{{ instruction }}``, ``{问题}``. Code is not a leak, so before
    searching the function masks code regions (:func:`mask_code`: fenced, inline, indented, ``<pre>``/``<code>``) and
    TeX math, skips braces after a backslash command, ``^``, ``_``, ``$``, ``%`` or a letter (``\\frac{a}{b}``,
    ``${x}``), skips any line that reads as code (an ``=``, ``;``, a call ``f(``, ``f"``, ``.format(``, a quoted
    JSON key, an HTML tag, ``{%``), and skips a placeholder that also appears inside the text's code. What remains is
    flagged as ``unfilled_placeholder`` (warning) when its name is a template slot (:data:`PLACEHOLDER_SLOT_NAMES`,
    or Chinese), or as ``possible_placeholder`` (info) when the name is longer (>= 4 characters, or snake_case) and the
    text has no code at all.
    """
    ts = _texts(texts, "texts")
    if not ts:
        return []
    cand = pl.Series(ts, dtype=pl.String).str.contains(_LEAK_PREFILTER).to_numpy()
    out = []
    for i in np.flatnonzero(cand).tolist():
        text = ts[i]
        for kind, severity, s, e, message in _leaks_one(text):
            out.append(_finding(i, kind, severity, message, field, s, e, text[s:e]))
    return out


# ---------------------------------------------------------------------------
# Contamination with an evaluation set
# ---------------------------------------------------------------------------


def _streams(text: str) -> tuple[list[str], list[int], list[int], list[str], list[int], list[int]]:
    """Word stream and CJK-character stream of a text, each token with its offsets in ``text``.

    Tokens are NFKC-folded and lower-cased one by one, so that offsets stay those of the original text.
    """
    words, ws, we, chars, cs, ce = [], [], [], [], [], []
    for m in _TOKEN_RE.finditer(text):
        t = m.group()
        if len(t) == 1 and _CJK_RUN_RE.match(t):
            chars.append(t)
            cs.append(m.start())
            ce.append(m.end())
        else:
            words.append(unicodedata.normalize("NFKC", t).lower() if not t.isascii() else t.lower())
            ws.append(m.start())
            we.append(m.end())
    return words, ws, we, chars, cs, ce


def _stream_grams(tokens: list[str], n: int, sep: str) -> list[str]:
    if sep:
        return [sep.join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    joined = "".join(tokens)
    return [joined[i : i + n] for i in range(len(joined) - n + 1)]


def contamination(
    texts: Sequence[str | None],
    eval_texts: Sequence[str | None],
    n_word: int = 13,
    n_char: int = 13,
    *,
    min_short: int = 8,
    max_eval_share: float = 0.01,
    field: str | None = None,
    prefilter: bool = True,
) -> list[dict[str, Any]]:
    """Find samples that share a long n-gram with an item of an evaluation set (the GPT-3 contamination test).

    Each text is split into two token streams: words (space-separated scripts, NFKC-folded, lower-cased,
    punctuation dropped) and CJK characters (Han and kana, in order, everything else dropped). A sample overlaps an
    evaluation item when they share a word ``n_word``-gram or a character ``n_char``-gram. 13 characters is the CJK
    default: a Chinese word is about 1.5 characters, so 13 characters (about 8-9 words) is a whole clause, long
    enough that a chance match is rare, yet short enough that short exam questions (C-Eval and CMMLU stems are often
    20-40 characters) yield several n-grams; 20 characters (the literal equivalent of 13 words) would leave many
    of them with one or none. An item whose stream is shorter than n but at least ``min_short`` tokens long counts as
    one n-gram of its own length (so a short question copied whole is found). N-grams shared by more than
    ``max_eval_share`` of the evaluation items (at least 3 items) are template text ("下列说法中正确的是",
    "Which of the following is") and are ignored.

    One finding per overlapping sample, for the evaluation item it shares most n-grams with: kind ``eval_overlap``,
    severity ``error`` when the sample holds at least half of that item's n-grams, else ``warning``; the span is
    the longest matched run in the sample. Extra keys: ``eval_index``, ``eval_coverage`` (share of the item's
    n-grams found in the sample), ``eval_matches`` (number of evaluation items the sample overlaps).

    Speed: the evaluation n-grams go into a dict; with ``prefilter`` a polars Aho-Corasick pass over the
    normalised samples picks the samples that contain any of them, and only those are tokenised in Python.
    """
    ts = _texts(texts, "texts")
    es = _texts(eval_texts, "eval_texts")
    for name, v in (("n_word", n_word), ("n_char", n_char), ("min_short", min_short)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not ts or not es:
        return []
    gram_items: dict[tuple[int, str], set[int]] = defaultdict(set)  # (stream, gram) -> eval items; stream 0 words, 1 CJK
    item_grams = np.zeros(len(es), dtype=np.int64)
    lengths: dict[int, set[int]] = {0: {n_word}, 1: {n_char}}
    for j, e in enumerate(es):
        words, _, _, chars, _, _ = _streams(e)
        for stream, toks, n, sep in ((0, words, n_word, " "), (1, chars, n_char, "")):
            if len(toks) >= n:
                grams = set(_stream_grams(toks, n, sep))
            elif len(toks) >= min_short:
                grams = {sep.join(toks)}
                lengths[stream].add(len(toks))
            else:
                continue
            item_grams[j] += len(grams)
            for g in grams:
                gram_items[(stream, g)].add(j)
    limit = max(3, int(max_eval_share * len(es)))
    gram_items = {k: v for k, v in gram_items.items() if len(v) <= limit}
    if not gram_items:
        return []

    if prefilter:
        s = pl.Series(ts, dtype=pl.String)
        word_patterns = [" " + g + " " for (stream, g) in gram_items if stream == 0]
        char_patterns = [g for (stream, g) in gram_items if stream == 1]
        hit = np.zeros(len(ts), dtype=bool)
        if word_patterns:
            wstream = (
                s.str.normalize("NFKC").str.to_lowercase().str.extract_all(f"[^\\W_{_CJK}]+").list.join(" ")
            )
            hit |= (" " + wstream + " ").str.contains_any(word_patterns).fill_null(False).to_numpy()
        if char_patterns:
            cstream = s.str.replace_all(f"[^{_CJK}]+", "")
            hit |= cstream.str.contains_any(char_patterns).fill_null(False).to_numpy()
        candidates = np.flatnonzero(hit).tolist()
    else:
        candidates = range(len(ts))

    out = []
    for i in candidates:
        text = ts[i]
        words, ws, we, chars, cs, ce = _streams(text)
        per_item: dict[int, set[tuple[int, str]]] = defaultdict(set)
        windows: dict[int, list[tuple[int, int]]] = defaultdict(list)  # eval item -> matched (start, end) offsets
        for stream, toks, starts, ends, sep in ((0, words, ws, we, " "), (1, chars, cs, ce, "")):
            for n in lengths[stream]:
                if len(toks) < n:
                    continue
                for k, g in enumerate(_stream_grams(toks, n, sep)):
                    items = gram_items.get((stream, g))
                    if not items:
                        continue
                    for j in items:
                        per_item[j].add((stream, g))
                        windows[j].append((starts[k], ends[k + n - 1]))
        if not per_item:
            continue
        best = max(per_item, key=lambda j: (len(per_item[j]), -j))
        spans = sorted(windows[best])
        runs = [list(spans[0])]
        for s_, e_ in spans[1:]:
            if s_ <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], e_)
            else:
                runs.append([s_, e_])
        start, end = max(runs, key=lambda r: (r[1] - r[0], -r[0]))
        cov = len(per_item[best]) / max(1, int(item_grams[best]))
        out.append(
            _finding(
                i, "eval_overlap", "error" if cov >= 0.5 else "warning",
                f"the text shares {len(per_item[best])} n-gram(s) with evaluation item {best} "
                f"({cov:.0%} of that item), e.g. {_quote(text[start:end], 50)}",
                field, start, end, text[start:end],
                eval_index=int(best), eval_coverage=round(min(cov, 1.0), 4), eval_matches=len(per_item),
            )
        )
    return out


# ---------------------------------------------------------------------------
# Length ratio
# ---------------------------------------------------------------------------


def text_units(texts: Sequence[str | None]) -> np.ndarray:
    """Length of each text in tokens: one per CJK character plus one per word or number (vectorised).

    Words for Latin text and characters for Chinese make a Chinese and an English answer to the same question of
    comparable length (a Chinese word is ~1.5 characters), where raw character counts differ ~3x.
    """
    ts = _texts(texts, "texts")
    if not ts:
        return np.zeros(0, dtype=np.int64)
    return pl.Series(ts, dtype=pl.String).str.count_matches(TOKEN_PATTERN).fill_null(0).to_numpy().astype(np.int64)


def length_ratio(
    prompts: Sequence[str | None],
    responses: Sequence[str | None],
    groups: Sequence[Any] | None = None,
    z: float = 3.5,
    *,
    min_group: int = 20,
    field: str = "response",
) -> list[dict[str, Any]]:
    """Find responses much shorter or longer than is typical for their instruction, per group (label).

    For each record x = log(len(response) + 1) - log(len(prompt) + 1), lengths in tokens (:func:`text_units`: words
    for Latin text, characters for CJK). Within each group the robust z-score is (x - median) / (1.4826 MAD); 1.4826
    makes the MAD estimate the standard deviation of normal data, and 3.5 is the Iglewicz-Hoaglin cut-off for
    outliers. A group with fewer than ``min_group`` records is scored against all records pooled; where MAD is 0 the
    mean absolute deviation (x 1.2533) stands in, and where that is 0 too the group has no spread and no finding.

    Kinds: ``response_too_short`` (warning, z < -z) and ``response_too_long`` (info, z > z). Extra keys: ``z``,
    ``ratio`` (response/prompt tokens, +1 smoothed), ``typical_ratio`` (the group's median ratio), ``group``.
    """
    ps = _texts(prompts, "prompts")
    rs = _texts(responses, "responses")
    _same_length(ps, rs, "prompts", "responses")
    if groups is not None:
        groups = list(groups)
        _same_length(ps, groups, "prompts", "groups")
    if not (isinstance(z, (int, float)) and not isinstance(z, bool) and z > 0 and math.isfinite(z)):
        raise ValueError(f"z must be a positive number, got {z!r}")
    if not ps:
        return []
    lp, lr = text_units(ps), text_units(rs)
    x = np.log1p(lr) - np.log1p(lp)
    labels = [None if v is None else str(v) for v in groups] if groups is not None else [None] * len(ps)
    df = pl.DataFrame({"g": pl.Series(labels, dtype=pl.String), "x": x})
    df = df.with_columns(pooled=pl.len().over("g") < min_group)
    # Statistics per group, and once over all records for the groups too small to have their own.
    own = df.filter(~pl.col("pooled")).with_columns(d=(pl.col("x") - pl.col("x").median().over("g")).abs())
    stats = own.group_by("g").agg(med=pl.col("x").median(), mad=pl.col("d").median(), mean_ad=pl.col("d").mean())
    pooled_med = float(np.median(x))
    pooled_d = np.abs(x - pooled_med)
    df = df.join(stats, on="g", how="left", nulls_equal=True, maintain_order="left")
    med = np.where(df["pooled"].to_numpy(), pooled_med, df["med"].fill_null(0.0).to_numpy())
    mad = np.where(df["pooled"].to_numpy(), float(np.median(pooled_d)), df["mad"].fill_null(0.0).to_numpy())
    mean_ad = np.where(df["pooled"].to_numpy(), float(np.mean(pooled_d)), df["mean_ad"].fill_null(0.0).to_numpy())
    scale = np.where(mad > 0, 1.4826 * mad, 1.2533 * mean_ad)
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(scale > 0, (x - med) / scale, 0.0)
    out = []
    for i in np.flatnonzero(np.abs(zs) > z).tolist():
        zi = float(zs[i])
        short = zi < 0
        where = f" for label {labels[i]!r}" if labels[i] is not None else ""
        typical = math.exp(med[i])
        out.append(
            _finding(
                i,
                "response_too_short" if short else "response_too_long",
                "warning" if short else "info",
                f"the response is {int(lr[i])} tokens for a {int(lp[i])}-token instruction, far "
                f"{'shorter' if short else 'longer'} than usual{where} (typical ratio {typical:.2g}, robust z {zi:+.1f})",
                field,
                z=round(zi, 3),
                ratio=round(float(math.exp(x[i])), 4),
                typical_ratio=round(typical, 4),
                group=labels[i],
            )
        )
    return out
