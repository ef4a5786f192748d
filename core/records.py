"""Record shapes of fine-tuning data: containers, shape detection, derived texts, ids, tool exports, export back.

A pure layer (standard library only, nothing from ``core``) that the importer and the pages build on:

* :func:`sniff_container` tells JSON lines, one JSON array, CSV, TSV and Parquet apart by content;
  :func:`iter_json_array` streams the records of a JSON array file in bounded memory and
  :func:`json_array_to_jsonl` turns it into JSON lines for the existing pipeline.
* :func:`detect_shape` names the shape of a record (or of a file's columns), :func:`derive` reads the
  texts every check needs out of it (:class:`Derived`), :func:`content_id` gives a record without an id a
  stable one.
* :func:`label_studio_rows` and :func:`argilla_rows` turn one exported task / record into long-form rows
  (one per annotation, one per model prediction); :func:`questions` lists the label questions of a file.
* :func:`to_shape` and :func:`to_label_studio_task` write a sample back in its own shape with its gold label.

Shapes (the values of :data:`SHAPES`), by key name (top-level keys match case-insensitively):

===============  ==================================================================================
``label_studio``  a Label Studio export task: ``data`` and ``annotations`` (or ``predictions``)
``argilla``       a flattened Argilla 2 record: a key ``<question>.responses`` / ``.suggestion`` ...
``preference``    a DPO pair: ``chosen`` and ``rejected`` (``prompt`` optional); sides are strings or
                  message lists
``chat``          OpenAI chat: ``messages``, a list of ``{role, content}``
``sharegpt``      ``conversations``, a list of ``{from, value}`` (or ``{role, content}``)
``instruction``   Alpaca: ``instruction`` (or ``prompt`` / ``question`` with ``output`` / ``response``
                  / ``completion`` / ``answer``), optional ``input``, ``system``, ``history``
``text``          a plain text record: ``text`` (or ``content``, ``sentence``, ``utterance``, ``query``)
===============  ==================================================================================

When a record matches several, the first in that order wins: a tool export wraps a content shape (its
``data`` / fields are read with the same rules), preference sets often carry a ``messages`` copy of the
chosen conversation, ``messages`` is more explicit than ``conversations``, and a conversation holds more
than an instruction or a text field next to it.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ANNOTATION_KEYS", "ARGILLA_SUFFIXES", "CONTAINERS", "MALFORMED_PREFIX", "NOT_OBJECT_PREFIX", "ROLE_ALIASES",
    "ROW_KINDS", "SHAPES", "TEXT_COLUMNS",
    "Derived", "QuestionRequired", "RecordError",
    "argilla_rows", "content_id", "derive", "detect_shape", "iter_json_array", "json_array_to_jsonl",
    "label_studio_rows", "questions", "sniff_container", "to_label_studio_task", "to_shape",
]

#: What :func:`sniff_container` returns.
CONTAINERS: tuple[str, ...] = ("jsonl", "json_array", "csv", "tsv", "parquet")
#: Record shapes in precedence order (the first that matches wins), see the module docstring.
SHAPES: tuple[str, ...] = ("label_studio", "argilla", "preference", "chat", "sharegpt", "instruction", "text")
#: The store's four text columns (``core.store.TEXT_FIELDS``; repeated here so this module stays a leaf).
TEXT_COLUMNS: tuple[str, ...] = ("instruction", "input", "output", "text")
#: The ``kind`` of a long-form row from :func:`label_studio_rows` / :func:`argilla_rows`.
ROW_KINDS: tuple[str, ...] = ("annotation", "prediction", "sample")

#: Speaker names (lower-cased) → OpenAI role. ChatML / OpenAI roles, ShareGPT ``from`` values and the
#: LLaMA-Factory ones; ``function_call`` is the assistant calling a tool, ``observation`` the tool's answer.
ROLE_ALIASES: dict[str, str] = {
    "system": "system", "developer": "system",
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant", "model": "assistant", "chatgpt": "assistant",
    "bing": "assistant", "bard": "assistant", "function_call": "assistant",
    "tool": "tool", "function": "tool", "observation": "tool", "ipython": "tool",
}

#: Key suffixes of a flattened Argilla 2 record (``dataset.records.to_list(flatten=True)``), longest first.
ARGILLA_SUFFIXES: tuple[str, ...] = (".responses.users", ".responses.status", ".responses",
                                     ".suggestion.score", ".suggestion.agent", ".suggestion")
_ARGILLA_RECORD_KEYS = frozenset({"id", "_server_id", "status", "inserted_at", "updated_at"})

_TEXT_KEYS = ("text", "content", "sentence", "utterance", "query")
_INSTRUCTION_KEYS = ("instruction", "prompt", "question")
_OUTPUT_KEYS = ("output", "response", "completion", "answer")
_ID_KEYS = ("id", "sample_id", "uid", "guid", "_id", "idx", "record_id")
# Keys of long-form rows made here; a data field of the same name is kept as "data.<name>".
_ROW_KEYS = frozenset({"id", "annotator", "label", "question", "kind", "prediction", "pred_confidence", "model"})
#: Keys :func:`to_shape` drops from a record before adding the gold label: one annotator's label, its
#: confidence, model predictions and the row keys made here (plus any ``label_*`` / ``prob_*`` key).
ANNOTATION_KEYS = frozenset({
    "label", "annotator", "rater", "labeler", "labeller", "worker", "annotator_id",
    "confidence", "annotator_confidence", "label_confidence",
    "probs", "probabilities", "pred_probs", "predicted_probs",
    "prediction", "predicted", "pred", "pred_label", "predicted_label",
    "pred_confidence", "model_confidence", "prediction_confidence", "pred_round", "kind", "question",
})


class RecordError(ValueError):
    """A record whose shape cannot be read; the message is plain and names the field and the problem."""


class QuestionRequired(RecordError):
    """The data holds several label questions and none was chosen; ``questions`` lists them."""

    def __init__(self, message: str, questions: list[str]):
        super().__init__(message)
        self.questions = questions


# --------------------------------------------------------------------------------------- containers

_SNIFF_BYTES = 1 << 16


def sniff_container(path: str | Path) -> str:
    """Tell the container of a file from its content: one of :data:`CONTAINERS`.

    ``parquet`` by its ``PAR1`` magic bytes; otherwise the head (first 64 KiB) must be UTF-8 (a UTF-8
    byte-order mark is skipped) and its first non-blank character decides: ``[`` → ``json_array``,
    ``{`` → ``jsonl``; anything else is delimited text, ``tsv`` when the header line (first non-blank
    line) has at least as many tabs as commas outside quotes and at least one, ``csv`` when it has a
    comma. A single-column file (no delimiter in its header) is taken by its extension (``.csv`` /
    ``.tsv``). The extension never overrides the content: a ``.json`` file of JSON lines is ``jsonl``.

    Raises ``ValueError`` with a plain message for a missing or empty file (also one holding only
    blanks), a head that is not UTF-8 (UTF-16, GBK...), a compressed or binary file, or text whose
    format cannot be told. Only the head is checked for UTF-8; the readers check the rest.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"file not found: {p}")
    with open(p, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
        at_end = not fh.read(1)
    if not head:
        raise ValueError(f"{p.name} is empty")
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{p.name} is UTF-16, not UTF-8: save it as UTF-8 and import it again")
    if head.startswith(b"\x1f\x8b"):
        raise ValueError(f"{p.name} is gzip-compressed: decompress it first")
    if head.startswith(b"PK\x03\x04"):
        raise ValueError(f"{p.name} is a zip archive: extract the data file first")
    try:
        text = codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=at_end)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p.name} is not UTF-8: byte 0x{head[exc.start]:02x} at offset {exc.start} "
                         "cannot be decoded; save the file as UTF-8 and import it again") from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise ValueError(f"{p.name} is a binary file, not JSON, CSV, TSV or Parquet")
    body = text.lstrip()
    if not body:
        raise ValueError(f"{p.name} is empty (only blanks)")
    if body[0] == "[" and body[1:].lstrip()[:1] in ("{", "]", ""):  # "[tag],text" is a CSV header
        return "json_array"
    if body[0] == "{":
        return "jsonl"
    header = body.splitlines()[0]
    tabs, commas = _count_outside_quotes(header, "\t"), _count_outside_quotes(header, ",")
    if tabs and tabs >= commas:
        return "tsv"
    if commas:
        return "csv"
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    raise ValueError(f"cannot tell the format of {p.name}: it is not JSON, its first line has no comma or tab, "
                     "and it is not named .csv or .tsv")


def _count_outside_quotes(line: str, char: str) -> int:
    n, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            n += 1
    return n


# --------------------------------------------------------------------------------------- JSON arrays

_WS = " \t\n\r"
_STRUCT = re.compile(r'["\[\]{},]')
_STRING_BODY = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_DECODER = json.JSONDecoder()  # accepts the NaN / Infinity exporters write, like the JSONL pipeline
#: Line prefixes :func:`json_array_to_jsonl` writes for an element that is not a record (never valid JSON).
MALFORMED_PREFIX, NOT_OBJECT_PREFIX = "malformed: ", "not an object: "


def _element_end(buf: str, i: int) -> int:
    """Index of the ``,`` or ``]`` that closes the array element starting at ``i``, or -1 when ``buf``
    ends first. Brackets are counted and strings skipped, so it finds the end of a malformed element."""
    depth = 0
    while True:
        m = _STRUCT.search(buf, i)
        if m is None:
            return -1
        c, j = m.group(), m.start()
        if c == '"':
            s = _STRING_BODY.match(buf, j)
            if s is None:
                return -1
            i = s.end()
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            if depth == 0 and c == "]":
                return j
            depth = max(depth - 1, 0)
        elif depth == 0:  # a comma at the element's own level
            return j
        i = j + 1


class _ArrayReader:
    """A rolling text buffer over a UTF-8 file: only the unread part and one chunk are held."""

    def __init__(self, fh, name: str, chunk: int):
        self.fh, self.name, self.chunk = fh, name, chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.buf, self.pos, self.eof, self.offset, self.started = "", 0, False, 0, False

    def more(self, at_least: int = 0) -> bool:
        """Read another chunk (at least ``at_least`` bytes); ``False`` at the end of the file."""
        if self.eof:
            return False
        data = self.fh.read(max(self.chunk, at_least))
        self.eof = not data
        try:
            text = self.decoder.decode(data, final=self.eof)
        except UnicodeDecodeError as exc:
            where = self.offset + exc.start
            raise ValueError(f"{self.name} is not UTF-8: the bytes at offset {where} cannot be decoded; "
                             "save the file as UTF-8 and import it again") from None
        self.offset += len(data)
        if not self.started:
            text = text.removeprefix("\ufeff")
            self.started = bool(text) or self.eof
        self.buf = self.buf[self.pos:] + text
        self.pos = 0
        return True

    def skip_blanks(self) -> str:
        """Advance over blanks; the next character, or ``""`` at the end of the file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""


def _scan_array(path: str | Path, chunk: int, max_record: int) -> Iterator[tuple[int, Any, bool, str]]:
    """``(record number, value, True, source text)`` per parsed element, ``(n, message, False, raw)`` per
    malformed one."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"file not found: {p}")
    with open(p, "rb") as fh:
        r = _ArrayReader(fh, p.name, chunk)
        first = r.skip_blanks()
        if first == "":
            raise ValueError(f"{p.name} is empty")
        if first != "[":
            raise ValueError(f"{p.name} is not a JSON array: it starts with {first!r}, expected '['")
        r.pos += 1
        n, want, missing_comma = 0, 0, False
        while True:
            c = r.skip_blanks()
            if c == "":
                raise ValueError(f"{p.name} ends before the array's closing ']' (after record {n}): "
                                 "the file is truncated")
            if c == "]":  # the end (also after a trailing comma, which loses nothing)
                break
            try:
                value, end = _DECODER.raw_decode(r.buf, r.pos)
            except json.JSONDecodeError as exc:
                stop = _element_end(r.buf, r.pos)
                if stop < 0:
                    if len(r.buf) - r.pos > max_record:
                        raise ValueError(f"{p.name}: record {n + 1} is malformed or longer than "
                                         f"{max_record:,} characters") from None
                    want = max(want * 2, chunk)  # a long record: read geometrically more, not chunk by chunk
                    if r.more(want):
                        continue
                    n += 1
                    yield n, "malformed JSON: the file ends inside this record", False, r.buf[r.pos:]
                    raise ValueError(f"{p.name} ends inside record {n}: the file is truncated") from None
                n += 1
                yield n, f"malformed JSON: {exc.msg} (character {exc.pos - r.pos + 1} of the record)", \
                    False, r.buf[r.pos:stop]
                r.pos = stop
            else:
                # a value that ends at the buffer's end may be cut (a number): make sure something follows
                k = end
                while k < len(r.buf) and r.buf[k] in _WS:
                    k += 1
                if k == len(r.buf) and not r.eof:
                    r.more()
                    continue
                n += 1
                want = 0
                if missing_comma:
                    yield n, "malformed JSON: no ',' between this record and the one before", False, \
                        r.buf[r.pos:end]
                else:
                    yield n, value, True, r.buf[r.pos:end]
                r.pos = end
            c = r.skip_blanks()
            missing_comma = c not in (",", "]", "")
            if c == ",":
                r.pos += 1
            elif c == "]":
                break
            elif c == "":
                raise ValueError(f"{p.name} ends before the array's closing ']' (after record {n}): "
                                 "the file is truncated")
        r.pos += 1
        if r.skip_blanks() != "":
            raise ValueError(f"{p.name} has more data after the array's closing ']'")


def _not_object(value: Any) -> str:
    return f"record is {_kind(value)}, expected an object"


def iter_json_array(path: str | Path, batch_size: int = 1000, *, chunk_bytes: int = 1 << 20,
                    max_record_chars: int = 64 << 20) -> Iterator[list[tuple[int, dict | str]]]:
    """Stream the records of a file that holds one JSON array, in batches of ``batch_size``.

    Each batch is a list of ``(record number, record)`` pairs, numbered from 1 in file order; ``record``
    is the object as a ``dict``, or a ``str`` message when the element is not a readable object (malformed
    JSON, or a number / string / list / null where a record was expected). A malformed element is skipped
    to the next ``,`` at its own level, so one bad record does not hide the rest.

    Memory stays bounded by the largest record plus ``chunk_bytes`` (1 MiB by default; a record that keeps
    growing past ``max_record_chars`` is an error): the file is decoded in chunks and each element parsed
    with :meth:`json.JSONDecoder.raw_decode` from a rolling buffer, never loaded whole.

    Raises ``ValueError`` for a file-level problem: missing, empty, a UTF-8 error anywhere (with the byte
    offset), not starting with ``[`` (after blanks and a BOM), truncated before the closing ``]``, or data
    after it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batch: list[tuple[int, dict | str]] = []
    for n, value, ok, _ in _scan_array(path, chunk_bytes, max_record_chars):
        batch.append((n, value if not ok or isinstance(value, dict) else _not_object(value)))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def json_array_to_jsonl(path: str | Path, out_path: str | Path) -> tuple[int, list[tuple[int, str]]]:
    """Write the records of a JSON array file as JSON lines: ``(records, errors)``.

    Line *N* of ``out_path`` is always record *N* of the array, so the JSONL pipeline's row numbers are the
    array's record numbers: a record is written as its own text when it is on one line, else as compact
    JSON (UTF-8, NaN kept as ``NaN``); an element
    that is not a record is written as a line that never parses as JSON — ``"malformed: "`` + its raw text,
    or ``"not an object: "`` + its JSON, on one line. ``errors`` lists ``(record number, message)`` for
    those lines, with the precise reason. ``records`` counts every element. Streams like
    :func:`iter_json_array` (bounded memory) and raises the same file-level ``ValueError``.
    """
    errors: list[tuple[int, str]] = []
    n = 0
    with open(out_path, "w", encoding="utf-8", newline="\n") as out:
        lines: list[str] = []
        for n, value, ok, raw in _scan_array(path, 1 << 20, 64 << 20):
            if not ok:
                errors.append((n, value))
                lines.append(MALFORMED_PREFIX + " ".join(raw.split()))
            elif isinstance(value, dict):
                # a record on one line is written as it is (already valid JSON); others are re-serialised
                one_line = "\n" not in raw and "\r" not in raw and "\u2028" not in raw and "\u2029" not in raw
                lines.append(raw if one_line else json.dumps(value, ensure_ascii=False, separators=(",", ":")))
            else:
                errors.append((n, _not_object(value)))
                lines.append(NOT_OBJECT_PREFIX + json.dumps(value, ensure_ascii=False))
            if len(lines) >= 2000:
                out.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            out.write("\n".join(lines) + "\n")
    return n, errors


# --------------------------------------------------------------------------------------- shapes


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), f"a {type(value).__name__}")


def _keymap(keys: Iterable[str]) -> dict[str, str]:
    """Lower-cased, stripped key → the key as written (the first one wins)."""
    out: dict[str, str] = {}
    for k in keys:
        if isinstance(k, str):
            out.setdefault(k.strip().lower(), k)
    return out


def _argilla_question(key: str) -> str | None:
    low = key.lower()
    for suffix in ARGILLA_SUFFIXES:
        if low.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)]
    return None


def _content_shape(km: Mapping[str, str]) -> str | None:
    if "chosen" in km and "rejected" in km:
        return "preference"
    if "messages" in km:
        return "chat"
    if "conversations" in km:
        return "sharegpt"
    if "instruction" in km or (any(k in km for k in _INSTRUCTION_KEYS) and any(k in km for k in _OUTPUT_KEYS)):
        return "instruction"
    if any(k in km for k in _TEXT_KEYS):
        return "text"
    return None


def detect_shape(columns_or_record: Mapping[str, Any] | Iterable[str]) -> str:
    """The shape (one of :data:`SHAPES`) of a record, or of a file from its column names.

    Detection reads key names only (case-insensitive), never values, so a file's schema and one of its
    records give the same answer; :func:`derive` checks the values. Precedence when several match:
    ``label_studio`` (``data`` with ``annotations`` or ``predictions``) > ``argilla`` (any
    ``<question>.responses`` / ``.suggestion`` key) > ``preference`` (``chosen`` and ``rejected``) >
    ``chat`` (``messages``) > ``sharegpt`` (``conversations``) > ``instruction`` (``instruction``, or a
    prompt key with an output key) > ``text``.

    Raises :class:`RecordError` naming the keys when none matches.
    """
    keys = list(columns_or_record.keys()) if isinstance(columns_or_record, Mapping) else list(columns_or_record)
    km = _keymap(keys)
    if "data" in km and ("annotations" in km or "predictions" in km):
        return "label_studio"
    if any(_argilla_question(k) for k in keys if isinstance(k, str)):
        return "argilla"
    shape = _content_shape(km)
    if shape is None:
        shown = ", ".join(map(str, keys[:12])) + (", ..." if len(keys) > 12 else "")
        raise RecordError(f"no known record shape in the keys [{shown}]: expected messages (chat), conversations "
                          "(ShareGPT), chosen/rejected (preference), instruction/output (Alpaca), text, a Label "
                          "Studio task (data, annotations) or Argilla columns (<question>.responses)")
    return shape


@dataclass(frozen=True)
class Derived:
    """The texts every check, embedding and page needs, read out of one record by :func:`derive`.

    ``shape`` is the content shape (for a Label Studio task or an Argilla record, the shape of its data).
    ``prompt``: the instruction, or the user turn(s) the final answer replies to; ``response``: the final
    assistant turn, the output, or the chosen answer; ``context``: every other turn (system, earlier
    exchanges, tool calls and results) as ``role: content`` lines, or the Alpaca ``input``; ``rejected``:
    the rejected answer of a preference pair; ``conversation``: the whole record as readable
    ``role: content`` lines; ``turns``: ``{"role", "content"}`` dicts with OpenAI roles (empty for a plain
    text record); ``n_turns == len(turns)``.
    """

    shape: str
    prompt: str | None
    response: str | None
    conversation: str
    turns: list[dict[str, str]]
    n_turns: int
    rejected: str | None = None
    context: str | None = None
    _columns: tuple[str | None, str | None, str | None, str | None] = field(default=(None, None, None, None),
                                                                        repr=False)

    def text_fields(self) -> dict[str, str | None]:
        """The store's four text columns (:data:`TEXT_COLUMNS`) for this record.

        ============  ===========  =========================  ==========  ===================================
        shape         instruction  input                      output      text
        ============  ===========  =========================  ==========  ===================================
        text          –            –                          –           the text
        instruction   instruction  input                      output      conversation, only when the record
                                                                          has ``system`` or ``history`` (a
                                                                          plain Alpaca record maps as today)
        chat,         prompt       context (system, earlier   response    conversation
        sharegpt                   turns, tool turns)
        preference    prompt       context of a message-list  chosen      conversation (prompt, chosen and
                                   prompt                     answer      rejected answers)
        ============  ===========  =========================  ==========  ===================================

        ``–`` is ``None``. Tool exports map by the shape of their data.
        """
        return dict(zip(TEXT_COLUMNS, self._columns))


def _render(turns: Iterable[Mapping[str, str]]) -> str:
    return "\n".join(f"{t['role']}: {t['content']}" for t in turns)


def _tool_calls_text(msg: Mapping[str, Any]) -> str | None:
    calls = msg.get("tool_calls")
    if calls is None and msg.get("function_call") is not None:
        calls = [{"function": msg["function_call"]}]
    if not calls:
        return None
    out = []
    for call in calls if isinstance(calls, list) else [calls]:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            args = fn.get("arguments", "")
            out.append(f"{fn['name']}({args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)})")
        else:
            out.append(json.dumps(call, ensure_ascii=False))
    return "\n".join(out)


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content, 1):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                else:  # an image, audio or file part: shown as a placeholder
                    parts.append(f"[{part.get('type', 'part')}]")
            else:
                raise RecordError(f"{where}: content part {j} is {_kind(part)}, expected a string or "
                                  "{\"type\": \"text\", \"text\": ...}")
        return "\n".join(parts)
    if isinstance(content, (int, float)) and not isinstance(content, bool):
        return str(content)
    raise RecordError(f"{where}: content is {_kind(content)}, expected a string or a list of text parts")


def _turns(messages: Any, name: str, role_key: str = "role", content_key: str = "content") -> list[dict[str, str]]:
    """Normalise a message list (OpenAI or ShareGPT keys) to ``{"role", "content"}`` with OpenAI roles."""
    if isinstance(messages, str):
        raise RecordError(f"{name} is a string, expected a list of messages")
    if not isinstance(messages, list):
        raise RecordError(f"{name} is {_kind(messages)}, expected a list of messages")
    if not messages:
        raise RecordError(f"{name} is an empty list")
    out = []
    for i, msg in enumerate(messages, 1):
        where = f"{name} turn {i}"
        if not isinstance(msg, dict):
            raise RecordError(f"{where} is {_kind(msg)}, expected an object with {role_key} and {content_key}")
        rk = role_key if role_key in msg else ("role" if "role" in msg else role_key)
        ck = content_key if rk == role_key else "content"
        speaker = msg.get(rk)
        if speaker is None:
            raise RecordError(f"{where} has no {role_key}")
        if not isinstance(speaker, str) or speaker.strip().lower() not in ROLE_ALIASES:
            raise RecordError(f"{where}: unknown role {speaker!r} (expected system, user, assistant or tool, "
                              "or a ShareGPT name such as human or gpt)")
        role = ROLE_ALIASES[speaker.strip().lower()]
        content = msg.get(ck)
        calls = _tool_calls_text(msg)
        if content is None:
            if calls is None:
                raise RecordError(f"{where} ({speaker}) has no {ck}")
            text = calls
        else:
            text = _content_text(content, where)
            if calls:
                text = f"{text}\n{calls}" if text else calls
        out.append({"role": role, "content": text})
    return out


def _split_final(turns: list[dict[str, str]]) -> tuple[str | None, str | None, str | None]:
    """``(prompt, response, context)`` of a conversation.

    The response is the last assistant turn; the prompt is the block of consecutive user turns nearest
    before it (tool turns and tool-calling assistant turns in between are skipped); everything else is
    context, in order.
    """
    final = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    end = final if final is not None else len(turns)
    k = end - 1
    while k >= 0 and turns[k]["role"] != "user":
        k -= 1
    first = k
    while first - 1 >= 0 and turns[first - 1]["role"] == "user":
        first -= 1
    prompt_idx = set(range(first, k + 1)) if k >= 0 else set()
    prompt = "\n".join(turns[i]["content"] for i in sorted(prompt_idx)) if prompt_idx else None
    response = turns[final]["content"] if final is not None else None
    rest = [t for i, t in enumerate(turns) if i not in prompt_idx and i != final]
    return prompt, response, (_render(rest) if rest else None)


def _get(record: Mapping[str, Any], km: Mapping[str, str], *names: str) -> Any:
    for name in names:
        if name in km:
            return record[km[name]]
    return None


def _opt_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise RecordError(f"{name} is {_kind(value)}, expected a string")


def _derive_chat(turns: list[dict[str, str]], shape: str) -> Derived:
    prompt, response, context = _split_final(turns)
    conversation = _render(turns)
    return Derived(shape, prompt, response, conversation, turns, len(turns), None, context,
                   (prompt, context, response, conversation))


def _instruction_parts(record: Mapping[str, Any], km: Mapping[str, str]) -> dict[str, Any]:
    instruction = _opt_text(_get(record, km, *_INSTRUCTION_KEYS), "instruction")
    if instruction is None:
        raise RecordError("instruction is missing")
    history = _get(record, km, "history")
    if history is not None:
        if not isinstance(history, list):
            raise RecordError(f"history is {_kind(history)}, expected a list of [instruction, response] pairs")
        for i, pair in enumerate(history, 1):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
                raise RecordError(f"history entry {i} is not an [instruction, response] pair of strings")
    return {"instruction": instruction,
            "input": _opt_text(_get(record, km, "input"), "input") or None,
            "output": _opt_text(_get(record, km, *_OUTPUT_KEYS), "output"),
            "system": _opt_text(_get(record, km, "system"), "system") or None,
            "history": [list(p) for p in history] if history else None}


def _derive_instruction(record: Mapping[str, Any], km: Mapping[str, str]) -> Derived:
    p = _instruction_parts(record, km)
    turns = [{"role": "system", "content": p["system"]}] if p["system"] else []
    for q, a in p["history"] or []:
        turns += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    user = p["instruction"] + (f"\n{p['input']}" if p["input"] else "")
    turns.append({"role": "user", "content": user})
    if p["output"] is not None:
        turns.append({"role": "assistant", "content": p["output"]})
    conversation = _render(turns)
    extra = bool(p["system"] or p["history"])
    return Derived("instruction", p["instruction"], p["output"], conversation, turns, len(turns), None, p["input"],
                   (p["instruction"], p["input"], p["output"], conversation if extra else None))


def _side(value: Any, name: str) -> list[dict[str, str]]:
    if value is None:
        raise RecordError(f"{name} is missing")
    if isinstance(value, str):
        return [{"role": "assistant" if name != "prompt" else "user", "content": value}]
    if isinstance(value, dict):
        value = [value]
    return _turns(value, name)


def _preference_parts(record: Mapping[str, Any], km: Mapping[str, str]):
    chosen = _side(_get(record, km, "chosen"), "chosen")
    rejected = _side(_get(record, km, "rejected"), "rejected")
    raw_prompt = _get(record, km, "prompt")
    if raw_prompt is not None:
        prompt_turns = _side(raw_prompt, "prompt")
    else:  # no prompt: the turns both sides share are the prompt (kept out of the answers)
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        prompt_turns = chosen[:n]
    k = len(prompt_turns)
    # a side that repeats the prompt turns (the Hugging Face convention) keeps only its answer
    chosen = chosen[k:] if chosen[:k] == prompt_turns and len(chosen) > k else chosen
    rejected = rejected[k:] if rejected[:k] == prompt_turns and len(rejected) > k else rejected
    for name, side in (("chosen", chosen), ("rejected", rejected)):
        if not any(t["role"] == "assistant" for t in side):
            raise RecordError(f"{name} has no assistant turn")
    return prompt_turns, chosen, rejected


def _derive_preference(record: Mapping[str, Any], km: Mapping[str, str]) -> Derived:
    prompt_turns, chosen, rejected = _preference_parts(record, km)
    prompt, _, context = _split_final(prompt_turns) if prompt_turns else (None, None, None)
    response = [t for t in chosen if t["role"] == "assistant"][-1]["content"]
    rejected_text = [t for t in rejected if t["role"] == "assistant"][-1]["content"]
    lines = [_render(prompt_turns)] if prompt_turns else []
    lines += [f"{t['role']} (chosen): {t['content']}" for t in chosen]
    lines += [f"{t['role']} (rejected): {t['content']}" for t in rejected]
    conversation = "\n".join(lines)
    turns = prompt_turns + chosen
    return Derived("preference", prompt, response, conversation, turns, len(turns), rejected_text, context,
                   (prompt, context, response, conversation))


def _text_key(record: Mapping[str, Any], km: Mapping[str, str], loose: bool) -> str:
    for k in _TEXT_KEYS:
        if k in km:
            return km[k]
    if loose:  # a tool's data under a name of its own ("review", "title"...): its first string field
        for k, v in record.items():
            if isinstance(v, str) and k.strip().lower() not in _ID_KEYS:
                return k
    raise RecordError("no text field: expected text, content, sentence, utterance or query")


def _derive_text(record: Mapping[str, Any], km: Mapping[str, str], loose: bool = False) -> Derived:
    key = _text_key(record, km, loose)
    text = record[key]
    if text is None:
        raise RecordError(f"{key} is missing")
    text = _opt_text(text, key)
    return Derived("text", None, None, text, [], 0, None, None, (None, None, None, text))


def _ls_data(task: Mapping[str, Any]) -> dict[str, Any]:
    km = _keymap(task)
    data = _get(task, km, "data")
    if not isinstance(data, dict):
        raise RecordError(f"Label Studio task {task.get('id', '')}: data is {_kind(data)}, expected an object")
    return data


def _ls_annotations(task: Mapping[str, Any]) -> list[Any]:
    km = _keymap(task)
    anns = _get(task, km, "annotations")
    tid = task.get("id", "")
    if anns is None:
        raise RecordError(f"Label Studio task {tid} has no annotations")
    if not isinstance(anns, list):
        raise RecordError(f"Label Studio task {tid}: annotations is {_kind(anns)}, expected a list")
    if not anns:
        raise RecordError(f"Label Studio task {tid} has no annotations (an empty list)")
    return anns


def _argilla_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's own fields (and flattened metadata): not questions, ids or status; vectors dropped."""
    out = {}
    for k, v in record.items():
        if k in _ARGILLA_RECORD_KEYS or _argilla_question(k) is not None:
            continue
        if isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            continue  # a vector
        out[k] = v
    return out


def _unwrap(record: Mapping[str, Any], shape: str) -> tuple[Mapping[str, Any], str, bool]:
    """``(content, content shape, loose)``: a tool export's data and its shape; other records as they are."""
    if shape == "label_studio":
        _ls_annotations(record)
        content = _ls_data(record)
    elif shape == "argilla":
        content = _argilla_fields(record)
    else:
        return record, shape, False
    inner = _content_shape(_keymap(content)) or "text"
    return content, inner, True


def _check_shape(shape: str) -> None:
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: expected one of {', '.join(SHAPES)}")


def derive(record: Mapping[str, Any], shape: str | None = None) -> Derived:
    """Read the derived texts (:class:`Derived`) of one record of the given shape (detected when ``None``).

    Per shape: ``chat`` / ``sharegpt`` normalise every turn (roles by :data:`ROLE_ALIASES`; content a string
    or a list of ``{"type": "text", "text"}`` parts, other parts shown as ``[image_url]``; an assistant turn
    with ``tool_calls`` and no content is shown as ``name(arguments)``; a ShareGPT ``system`` key becomes the
    first turn); ``instruction`` turns ``system``, ``history`` pairs, ``instruction`` + ``input`` and
    ``output`` into turns; ``preference`` takes each side as a string or a message list (a side that repeats
    the prompt turns keeps only its answer; without ``prompt`` the turns both sides share are the prompt);
    tool exports are read through their data (Label Studio ``data``, Argilla fields), whose own shape is
    ``Derived.shape``; a text field under another name is their first string field.

    Raises :class:`RecordError` with a plain message for a record that cannot be read: ``messages`` /
    ``conversations`` not a list or empty, a turn that is not an object, without role or content, or with an
    unknown role, a preference side missing or without an assistant turn, a missing instruction or text, a
    Label Studio task without annotations or data, a value of the wrong type.
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"the record is {_kind(record)}, expected an object")
    shape = detect_shape(record) if shape is None else shape
    _check_shape(shape)
    content, inner, loose = _unwrap(record, shape)
    km = _keymap(content)
    if inner == "chat":
        return _derive_chat(_turns(_get(content, km, "messages"), "messages"), "chat")
    if inner == "sharegpt":
        turns = _turns(_get(content, km, "conversations"), "conversations", "from", "value")
        system = _opt_text(_get(content, km, "system"), "system")
        if system and turns[0]["role"] != "system":
            turns.insert(0, {"role": "system", "content": system})
        return _derive_chat(turns, "sharegpt")
    if inner == "preference":
        return _derive_preference(content, km)
    if inner == "instruction":
        return _derive_instruction(content, km)
    return _derive_text(content, km, loose)


# --------------------------------------------------------------------------------------- ids


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip()
    if isinstance(value, Mapping):
        return {_normalize(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    return value


def _canonical(record: Mapping[str, Any], shape: str) -> dict[str, Any]:
    content, inner, loose = _unwrap(record, shape)
    km = _keymap(content)
    if inner == "instruction":
        return {k: v for k, v in _instruction_parts(content, km).items() if v not in (None, "")}
    if inner == "preference":
        prompt, chosen, rejected = _preference_parts(content, km)
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if inner in ("chat", "sharegpt"):
        out: dict[str, Any] = {"turns": derive(content, inner).turns}
        tools = _get(content, km, "tools")
        if tools not in (None, "", []):
            out["tools"] = tools
        return out
    return {"text": _derive_text(content, km, loose).conversation}


def content_id(record: Mapping[str, Any], shape: str | None = None) -> str:
    """A stable id for a record without one: ``"h:"`` + the first 16 hex digits of a sha256 (64 bits).

    The hash covers the record's content only, normalised: the turns (roles mapped, content parts joined),
    or instruction / input / output / system / history, or prompt / chosen / rejected, or the text — with
    every string in Unicode NFC and stripped of surrounding white space and keys in sorted order. Labels,
    annotators, confidences, probabilities, predictions, ids and any other column are left out, so the
    long-form rows of one record (one per annotator) get one id, and so does the same content written with
    another key order, an empty ``input``, a ``{type: text}`` content list or as a Label Studio task /
    Argilla record. Raises :class:`RecordError` like :func:`derive`.
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"the record is {_kind(record)}, expected an object")
    shape = detect_shape(record) if shape is None else shape
    _check_shape(shape)
    canon = _normalize(_canonical(record, shape))
    blob = json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "h:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------------------- tool exports

_LS_LABEL_KEYS = ("choices", "rating", "labels")


def _ls_results(item: Mapping[str, Any], where: str) -> list[dict]:
    result = item.get("result")
    if result is None:
        return []
    if not isinstance(result, list):
        raise RecordError(f"{where}: result is {_kind(result)}, expected a list")
    return [r for r in result if isinstance(r, dict)]


def _ls_label_values(result: Mapping[str, Any]) -> list[Any] | None:
    value = result.get("value")
    if not isinstance(value, dict):
        return None
    for key in _LS_LABEL_KEYS:
        if key in value:
            v = value[key]
            return list(v) if isinstance(v, list) else [v]
    return None


def _ls_questions(task: Mapping[str, Any]) -> list[str]:
    found: dict[str, None] = {}
    for key in ("annotations", "predictions"):
        items = task.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("result"), list):
                for r in item["result"]:
                    if isinstance(r, dict) and isinstance(r.get("from_name"), str) and \
                            _ls_label_values(r) is not None:
                        found.setdefault(r["from_name"])
    return list(found)


def _argilla_questions(record: Mapping[str, Any]) -> list[str]:
    found: dict[str, None] = {}
    for k in record:
        q = _argilla_question(k) if isinstance(k, str) else None
        if q is not None:
            found.setdefault(q)
    return list(found)


def questions(records_sample: Iterable[Mapping[str, Any]]) -> list[str]:
    """The label questions found in some records (Label Studio ``from_name`` of ``choices`` / ``rating`` /
    ``labels`` results; Argilla ``<question>.`` prefixes), in order of first appearance.

    When it lists several, ask which one is the label and pass it as ``question`` to
    :func:`label_studio_rows` / :func:`argilla_rows` (which raise :class:`QuestionRequired` otherwise).
    Records of other shapes contribute nothing.
    """
    found: dict[str, None] = {}
    for record in records_sample:
        if not isinstance(record, Mapping):
            continue
        km = _keymap(record)
        if "data" in km and ("annotations" in km or "predictions" in km):
            qs = _ls_questions(record)
        else:
            qs = _argilla_questions(record)
        for q in qs:
            found.setdefault(q)
    return list(found)


def _pick_question(found: list[str], question: str | None, where: str) -> str | None:
    if question is not None:
        return question
    if len(found) > 1:
        raise QuestionRequired(f"{where} holds several label questions ({', '.join(found)}): "
                               "choose which one is the label", found)
    return found[0] if found else None


def _label_text(values: list[Any], where: str, question: str) -> str | None:
    values = [v for v in values if v is not None]
    unique = list(dict.fromkeys(json.dumps(v, sort_keys=True, ensure_ascii=False) if not isinstance(v, str) else v
                                for v in values))
    if not unique:
        return None
    if len(unique) > 1:
        raise RecordError(f"{where} has {len(unique)} values for {question!r} ({', '.join(unique[:5])}): "
                          "only single-label answers can be imported")
    v = values[0]
    if isinstance(v, (dict, list)):
        raise RecordError(f"{where}: the answer to {question!r} is {_kind(v)}, expected a label")
    return v if isinstance(v, str) else str(v)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _row_base(sample_id: str, fields: Mapping[str, Any], id_key: str | None) -> dict[str, Any]:
    base: dict[str, Any] = {"id": sample_id}
    for k, v in fields.items():
        if k == id_key:
            continue
        base[f"data.{k}" if k in _ROW_KEYS else k] = v
    return base


def _own_id(fields: Mapping[str, Any]) -> tuple[str | None, str | None]:
    km = _keymap(fields)
    for name in _ID_KEYS[:3]:  # id, sample_id, uid
        if name in km and fields[km[name]] not in (None, ""):
            return str(fields[km[name]]), km[name]
    return None, None


def _ls_sample_id(task: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[str, str | None]:
    own, key = _own_id(data)
    if own is not None:
        return own, key
    if task.get("id") not in (None, ""):
        return str(task["id"]), None
    return content_id(task, "label_studio"), None


def _ls_annotator(ann: Mapping[str, Any]) -> str | None:
    who = ann.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return None if who in (None, "") else str(who)


def label_studio_rows(task: Mapping[str, Any], question: str | None = None) -> list[dict[str, Any]]:
    """Long-form rows of one Label Studio export task.

    Every row has ``id`` (the data's own ``id`` / ``sample_id`` / ``uid``, else the task id, else
    :func:`content_id`), the ``data`` fields (a field named like a row key is kept as ``data.<name>``) and
    ``kind``:

    * ``"annotation"``, one per annotation that is not ``was_cancelled`` and answers the question:
      ``annotator`` (``completed_by``: the id as a string, or a user object's ``email`` / ``id``; ``None``
      when absent, as in a task file written for import),
      ``label`` (the one value of ``result[].value.choices`` / ``rating`` / ``labels`` of ``from_name ==
      question``, as a string) and ``question``;
    * ``"prediction"``, one per prediction that answers it: ``prediction`` (the label), ``pred_confidence``
      (``score``), ``model`` (``model_version``), ``question``;
    * ``"sample"``, one bare row when neither exists, so the sample still lands (unlabelled).

    ``question`` is the ``from_name`` to read; ``None`` takes the task's only one and raises
    :class:`QuestionRequired` when it has several. Raises :class:`RecordError` for a task without data or
    annotations, or an annotation with several values for the question.
    """
    data = _ls_data(task)
    anns = _ls_annotations(task)
    preds = task.get("predictions")
    if preds is None:
        preds = []
    if not isinstance(preds, list):
        raise RecordError(f"Label Studio task {task.get('id', '')}: predictions is {_kind(preds)}, expected a list")
    tid = task.get("id", "")
    q = _pick_question(_ls_questions(task), question, f"Label Studio task {tid}")
    sid, id_key = _ls_sample_id(task, data)
    base = _row_base(sid, data, id_key)
    rows: list[dict[str, Any]] = []
    for kind, items in (("annotation", anns), ("prediction", preds)):
        for i, item in enumerate(items, 1):
            where = f"Label Studio task {tid} {kind} {i}"
            if not isinstance(item, dict):
                raise RecordError(f"{where} is {_kind(item)}, expected an object")
            results = _ls_results(item, where)
            if q is None or (kind == "annotation" and item.get("was_cancelled")):
                continue
            values: list[Any] = []
            scores: list[float] = []
            for r in results:
                if r.get("from_name") == q:
                    vals = _ls_label_values(r)
                    values += vals or []
                    if _number(r.get("score")) is not None:
                        scores.append(_number(r.get("score")))
            label = _label_text(values, where, q)
            if label is None:
                continue
            if kind == "annotation":
                rows.append({**base, "annotator": _ls_annotator(item), "label": label, "question": q,
                             "kind": "annotation"})
            else:
                score = _number(item.get("score"))
                rows.append({**base, "prediction": label,
                             "pred_confidence": score if score is not None else (scores[0] if scores else None),
                             "model": item.get("model_version"), "question": q, "kind": "prediction"})
    return rows or [{**base, "kind": "sample"}]


def _aligned(record: Mapping[str, Any], q: str, suffix: str, n: int) -> list[Any]:
    v = record.get(q + suffix)
    if v is None:
        return [None] * n
    if not isinstance(v, list) or len(v) != n:
        raise RecordError(f"Argilla record: {q + suffix} does not line up with {q}.responses "
                          f"({_kind(v)} for {n} responses)")
    return v


def argilla_rows(record: Mapping[str, Any], question: str | None = None) -> list[dict[str, Any]]:
    """Long-form rows of one flattened Argilla 2 record (``dataset.records.to_list(flatten=True)``).

    Every row has ``id`` (the record's ``id``, else :func:`content_id`), the record's fields (every key but
    the question columns, ``id``, ``_server_id``, ``status`` and vectors; flattened metadata comes along),
    and ``kind``:

    * ``"annotation"``, one per response to the question whose ``<q>.responses.status`` is ``submitted``
      (``discarded`` and ``draft`` do not count): ``annotator`` (``<q>.responses.users``), ``label``
      (the value as a string) and ``question``;
    * ``"prediction"`` for ``<q>.suggestion``: ``prediction``, ``pred_confidence``
      (``<q>.suggestion.score``), ``model`` (``<q>.suggestion.agent``), ``question``;
    * ``"sample"``, one bare row when neither exists.

    ``question`` names the question; ``None`` takes the record's only one and raises
    :class:`QuestionRequired` when it has several. Raises :class:`RecordError` when the response lists do
    not line up or an answer is not a single label (a multi-label or ranking answer with several values).
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"the record is {_kind(record)}, expected an object")
    rid = record.get("id")
    q = _pick_question(_argilla_questions(record), question, f"Argilla record {rid or ''}".strip())
    fields = _argilla_fields(record)
    sid = str(rid) if rid not in (None, "") else content_id(record, "argilla")
    base = _row_base(sid, fields, None)
    rows: list[dict[str, Any]] = []
    if q is not None:
        where = f"Argilla record {rid or ''}".strip()
        values = record.get(f"{q}.responses")
        if values is not None:
            if not isinstance(values, list):
                raise RecordError(f"{where}: {q}.responses is {_kind(values)}, expected a list")
            users = _aligned(record, q, ".responses.users", len(values))
            status = _aligned(record, q, ".responses.status", len(values))
            for i, (v, user, st) in enumerate(zip(values, users, status), 1):
                if st != "submitted":
                    continue
                label = _label_text(v if isinstance(v, list) else [v], f"{where} response {i}", q)
                if label is None:
                    continue
                rows.append({**base, "annotator": str(user) if user is not None else None, "label": label,
                             "question": q, "kind": "annotation"})
        suggestion = record.get(f"{q}.suggestion")
        if suggestion is not None:
            label = _label_text(suggestion if isinstance(suggestion, list) else [suggestion],
                                f"{where} suggestion", q)
            if label is not None:
                score = record.get(f"{q}.suggestion.score")
                if isinstance(score, list):
                    score = score[0] if len(score) == 1 else None
                rows.append({**base, "prediction": label, "pred_confidence": _number(score),
                             "model": record.get(f"{q}.suggestion.agent"), "question": q, "kind": "prediction"})
    return rows or [{**base, "kind": "sample"}]


# --------------------------------------------------------------------------------------- export back

_CONTENT_KEYS = {
    "chat": ("messages", "tools"), "sharegpt": ("conversations", "system", "tools"),
    "preference": ("prompt", "chosen", "rejected"),
    "instruction": (*_INSTRUCTION_KEYS, "input", *_OUTPUT_KEYS, "system", "history"),
    "text": _TEXT_KEYS,
}


def _ls_names(task: Mapping[str, Any], question: str | None) -> tuple[str, str]:
    """``(from_name, to_name)`` of the task's first label result for ``question`` (any when ``None``)."""
    for key in ("annotations", "predictions"):
        items = task.get(key)
        for item in items if isinstance(items, list) else []:
            results = item.get("result") if isinstance(item, dict) else None
            for r in results if isinstance(results, list) else []:
                if isinstance(r, dict) and _ls_label_values(r) is not None and \
                        (question is None or r.get("from_name") == question):
                    return str(r.get("from_name") or question or "label"), str(r.get("to_name") or "text")
    return question or "label", "text"


def to_label_studio_task(sample_id: str, data: Mapping[str, Any], gold_label: str, from_name: str = "label",
                         to_name: str = "text", provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A Label Studio task that imports with the gold label as its one (ground-truth) annotation.

    ``{"data": {...data, "id": sample_id}, "annotations": [{"result": [{"from_name", "to_name",
    "type": "choices", "value": {"choices": [gold_label]}}], "ground_truth": true, "was_cancelled": false}],
    "meta": provenance}``. The sample id goes into ``data["id"]`` so that a task exported from that project
    again comes back with the same id (:func:`label_studio_rows` reads the data's id first); ``from_name`` /
    ``to_name`` must match the project's labeling config (a ``<Choices name=from_name toName=to_name>``).
    """
    if gold_label is None or (isinstance(gold_label, str) and not gold_label.strip()):
        raise ValueError("gold_label is empty: a Label Studio annotation needs a label")
    if not isinstance(data, Mapping):
        raise TypeError(f"data is {_kind(data)}, expected an object")
    task: dict[str, Any] = {
        "data": {**data, "id": sample_id},
        "annotations": [{"result": [{"from_name": from_name, "to_name": to_name, "type": "choices",
                                     "value": {"choices": [str(gold_label)]}}],
                         "ground_truth": True, "was_cancelled": False}],
    }
    if provenance:
        task["meta"] = dict(provenance)
    return task


def to_shape(original_record: Mapping[str, Any], shape: str | None, gold_label: str,
             provenance: Mapping[str, Any] | None = None, *, question: str | None = None,
             drop: Iterable[str] = ()) -> dict[str, Any]:
    """The sample as it came in, with its gold label: what ``export`` writes per sample.

    Content shapes keep every key of the record (``messages`` stays a message list, ShareGPT stays
    ``conversations``, a pair keeps ``prompt`` / ``chosen`` / ``rejected``, ids and other metadata stay)
    but the per-annotator keys (:data:`ANNOTATION_KEYS`, any ``label_*`` / ``prob_*`` key, and ``drop``:
    the columns the importer mapped as label, annotator...), then add ``label`` = ``gold_label`` and the
    ``provenance`` keys at the top level (e.g. ``label_source``, ``label_agreement``). A provenance key
    may not replace a content key (``ValueError``).

    A Label Studio task comes back as :func:`to_label_studio_task` of its data (``from_name`` / ``to_name``
    from its results for ``question``, provenance in ``meta``); an Argilla record as its id and fields with
    ``label`` and the provenance, the question columns dropped.
    """
    if not isinstance(original_record, Mapping):
        raise TypeError(f"original_record is {_kind(original_record)}, expected an object")
    shape = detect_shape(original_record) if shape is None else shape
    _check_shape(shape)
    if shape == "label_studio":
        data = _ls_data(original_record)
        sid, _ = _ls_sample_id(original_record, data)
        from_name, to_name = _ls_names(original_record, question)
        return to_label_studio_task(sid, data, gold_label, from_name, to_name, provenance)
    if shape == "argilla":
        out = {"id": original_record["id"]} if original_record.get("id") not in (None, "") else {}
        out.update(_argilla_fields(original_record))
        protected: set[str] = set(out) - {"id"}
    else:
        km = _keymap(original_record)
        protected = {km[k] for k in _CONTENT_KEYS[shape] if k in km}
        dropped = set(drop)
        out = {}
        for k, v in original_record.items():
            low = k.strip().lower() if isinstance(k, str) else k
            if k not in protected and (k in dropped or low in ANNOTATION_KEYS or
                                       (isinstance(low, str) and low.startswith(("label_", "prob_")))):
                continue
            out[k] = v
    out["label"] = gold_label
    for k, v in (provenance or {}).items():
        if k in protected:
            raise ValueError(f"provenance key {k!r} would replace the record's content field of that name")
        out[k] = v
    return out
