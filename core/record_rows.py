"""The derived rows of shaped records, the Python half of an import: id, texts, shape, record, tool annotations.

A chat, ShareGPT, preference or tool-export file (and any file without ids) is staged by DuckDB like any
other (:mod:`core.store.imports.staging`); its records then pass once through :mod:`core.records` here,
in batches, and each becomes one row of :data:`DERIVED_SCHEMA` written to a Parquet part file that the
store reads back beside the staged columns (:meth:`core.store.Store.stage_derived`). Validation and the
write stay SQL. Only the standard library, pyarrow and :mod:`core.records` are imported, so that a
worker process starts in a fraction of a second.

Row numbers are the file's: line numbers of a JSON-lines file (blank lines skipped, not renumbered),
record numbers of a JSON array (converted to JSON lines first), data rows of a CSV, rows of a Parquet file.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.records import (
    ARGILLA_SUFFIXES,
    RecordError,
    argilla_rows,
    content_id,
    derive,
    detect_shape,
    label_studio_rows,
)

#: The shapes a tool wrote (annotations and predictions inside each record).
TOOL_SHAPES = ("label_studio", "argilla")

#: One derived row per record. ``err`` set: the record is a row error (the other fields may be empty);
#: ``id`` null and no ``err``: the row had no id (SQL says "missing id"); ``shape`` null and no ``err``:
#: a row with an id but no content (an annotation of a sample stored or given by another row).
#: ``anns`` / ``prediction`` / ``pred_confidence`` / ``model`` are read from a tool export's record.
DERIVED_SCHEMA = pa.schema([
    ("__row", pa.int64()), ("id", pa.string()), ("derived_id", pa.bool_()),
    ("instruction", pa.string()), ("input", pa.string()), ("output", pa.string()), ("text", pa.string()),
    ("shape", pa.string()), ("record", pa.string()), ("err", pa.string()),
    ("anns", pa.list_(pa.struct([("annotator", pa.string()), ("label", pa.string())]))),
    ("prediction", pa.string()), ("pred_confidence", pa.float64()), ("model", pa.string()),
])

# Keys whose CSV cell holds JSON (a message list, a Label Studio task's parts, Argilla response lists).
_NESTED_KEYS = frozenset({"messages", "conversations", "chosen", "rejected", "prompt", "history", "tools",
                          "data", "annotations", "predictions"})
_CONTENT_ID = re.compile(r"^h:[0-9a-f]{16}$")
#: Every key :func:`core.records.derive` and :func:`core.records.content_id` read from a content record
#: (lower-cased); two records with the same keys and the same values under these derive alike.
CONTENT_NAMES = frozenset({"messages", "tools", "conversations", "system", "prompt", "chosen", "rejected",
                           "instruction", "question", "input", "output", "response", "completion", "answer",
                           "history", "text", "content", "sentence", "utterance", "query"})


@dataclass(frozen=True)
class DeriveRules:
    """How the records of one file are read.

    ``shape``: the shape every record is read as (the Import page's override); ``None`` reads each record
    as its own shape (:func:`core.records.detect_shape`), so a file may mix chat records and preference
    pairs. ``tool``: ``label_studio`` / ``argilla`` when the file is a tool's export (``question`` names
    the label question). ``id_key``: the record key holding the sample id; ``None`` derives every id
    from the content (:func:`core.records.content_id`). ``nested_text``: the values of nested keys come
    as JSON text (a CSV file) and are parsed first.
    """

    shape: str | None = None
    tool: str | None = None
    question: str | None = None
    id_key: str | None = None
    nested_text: bool = False
    #: With ``shape``: the key that holds a record's content (``messages``...); a record with an id whose
    #: content key is empty is an annotation of a sample given elsewhere, not an error.
    content_key: str | None = None
    #: ``chat`` / ``instruction`` / ``text`` when the file's only content keys are the plain ones of that
    #: shape (``messages``; ``instruction``, ``input``, ``output``; ``text``): its records may take
    #: :data:`PLAIN` instead of :mod:`core.records` (same results, a fraction of the time).
    plain: str | None = None


def _id_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():  # a Parquet / CSV float id 7.0 is the id 7
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers become null (Parquet floats may carry them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def record_json(record: Mapping[str, Any]) -> str:
    """A record as compact JSON text (UTF-8, no NaN; dates and other values as strings)."""
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        return json.dumps(_clean(record), ensure_ascii=False, separators=(",", ":"), default=str)


def parse_nested(record: dict[str, Any]) -> dict[str, Any]:
    """Parse the JSON text of nested keys (``messages``, ``data``, Argilla response lists...) in place."""
    for k, v in record.items():
        if not isinstance(v, str) or not isinstance(k, str):
            continue
        low = k.strip().lower()
        if low in _NESTED_KEYS or low.endswith(ARGILLA_SUFFIXES[:3]):
            s = v.lstrip()
            if s[:1] in ("[", "{"):
                try:
                    record[k] = json.loads(s)
                except ValueError:
                    pass  # left as text: derive names the problem ("messages is a string")
    return record


def _error(n: int, raw: str | None, message: str) -> tuple:
    return (n, None, False, None, None, None, None, None, raw, message)


def _tool_row(n: int, record: dict[str, Any], raw: str, rules: DeriveRules) -> tuple:
    tool = rules.tool
    rows = (label_studio_rows if tool == "label_studio" else argilla_rows)(record, rules.question)
    fields = derive(record, tool).text_fields()
    sid = rows[0]["id"]
    derived = bool(_CONTENT_ID.match(sid)) and sid == content_id(record, tool)
    anns: dict[str | None, str] = {}
    pred = None
    for r in rows:
        if r["kind"] == "annotation":
            label = r["label"].strip()
            if label:
                anns.pop(r["annotator"], None)  # the same annotator twice: the later annotation counts
                anns[r["annotator"]] = label
        elif r["kind"] == "prediction":
            pred = r  # one prediction per sample and round: the last (newest) one
    return (n, sid, derived, fields["instruction"], fields["input"], fields["output"], fields["text"], tool, raw,
            None, [{"annotator": a, "label": lab} for a, lab in anns.items()] or None,
            None if pred is None else pred["prediction"], None if pred is None else pred["pred_confidence"],
            None if pred is None or pred["model"] is None else str(pred["model"]))


_PLAIN_ROLES = frozenset({"system", "user", "assistant", "tool"})


def plain_chat(messages: Any, with_id: bool) -> tuple[tuple[str | None, ...], str | None] | None:
    """The text fields (instruction, input, output, text) of a plain OpenAI message list, and with
    ``with_id`` its :func:`core.records.content_id`; ``None`` when the list is not plain.

    Plain: a non-empty list of ``{"role", "content"}`` objects with no other key, each role written exactly
    ``system`` / ``user`` / ``assistant`` / ``tool`` and each content a string. For those this gives what
    ``derive({"messages": messages}, "chat").text_fields()`` and ``content_id(...)`` give (the tests check
    it on generated conversations), without their general handling of aliases, content parts and tool
    calls; anything else goes to :mod:`core.records`.
    """
    if type(messages) is not list or not messages:
        return None
    roles, contents = [], []
    for msg in messages:
        if type(msg) is not dict or len(msg) != 2:
            return None
        role, content = msg.get("role"), msg.get("content")
        if role not in _PLAIN_ROLES or type(content) is not str:
            return None
        roles.append(role)
        contents.append(content)
    n = len(roles)
    final = next((i for i in range(n - 1, -1, -1) if roles[i] == "assistant"), None)
    k = (final if final is not None else n) - 1
    while k >= 0 and roles[k] != "user":
        k -= 1
    first = k
    while first >= 1 and roles[first - 1] == "user":
        first -= 1
    lines = [f"{r}: {c}" for r, c in zip(roles, contents)]
    rest = [lines[i] for i in range(n) if not first <= i <= k and i != final]
    fields = ("\n".join(contents[first:k + 1]) if k >= 0 else None, "\n".join(rest) if rest else None,
              contents[final] if final is not None else None, "\n".join(lines))
    if not with_id:
        return fields, None
    nfc = unicodedata.normalize
    turns = [{"content": nfc("NFC", c).strip(), "role": r} for r, c in zip(roles, contents)]
    return fields, _hash_id({"turns": turns})


def _hash_id(canonical: dict[str, Any]) -> str:
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "h:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def plain_instruction(record: dict[str, Any], with_id: bool) -> tuple[tuple[str | None, ...], str | None] | None:
    """Like :func:`plain_chat` for an Alpaca record whose only content keys are ``instruction`` (a string),
    ``input`` and ``output`` (strings or absent)."""
    ins, inp, out = record.get("instruction"), record.get("input"), record.get("output")
    if type(ins) is not str or (inp is not None and type(inp) is not str) or (out is not None and type(out) is not str):
        return None
    fields = (ins, inp or None, out, None)
    if not with_id:
        return fields, None
    return fields, _hash_id({k: _nfc(v) for k, v in (("instruction", ins), ("input", inp), ("output", out))
                             if v not in (None, "")})


def plain_text(record: dict[str, Any], with_id: bool) -> tuple[tuple[str | None, ...], str | None] | None:
    """Like :func:`plain_chat` for a record whose only content key is ``text`` (a string)."""
    text = record.get("text")
    if type(text) is not str:
        return None
    return (None, None, None, text), (_hash_id({"text": _nfc(text)}) if with_id else None)


#: The fast readers of plain records, by shape (see :attr:`DeriveRules.plain`).
PLAIN = {"chat": lambda record, with_id: plain_chat(record.get("messages"), with_id),
         "instruction": plain_instruction, "text": plain_text}


def derive_row(n: int, record: Any, raw: str | None, rules: DeriveRules) -> tuple:
    """The derived row (a tuple in :data:`DERIVED_SCHEMA` order; without the last four, the tool columns,
    when they are empty) of record number ``n``.

    ``raw`` is the record's JSON text when the caller has it (a JSON line), else it is written here. A
    record that cannot be read is a row with ``err`` = the plain message of :class:`core.records.RecordError`.
    A key whose value is null counts as absent when the shape is detected (a CSV or Parquet row has every
    column, and the staging cannot tell a JSON null from a missing key either).
    """
    if not isinstance(record, dict):
        return _error(n, raw, "the record is not a JSON object")
    if rules.nested_text:
        parse_nested(record)
    if raw is None:
        raw = record_json(record)
    try:
        if rules.tool is not None:
            return _tool_row(n, record, raw, rules)
        shape = rules.shape
        sid = _id_text(record.get(rules.id_key)) if rules.id_key is not None else None
        if sid is not None and rules.content_key is not None and record.get(rules.content_key) is None:
            return (n, sid, False, None, None, None, None, None, None, None)
        if rules.plain is not None:
            fast = PLAIN[rules.plain](record, rules.id_key is None)
            if fast is not None:
                (instruction, input_, output, text), cid = fast
                return (n, sid if cid is None else cid, cid is not None, instruction, input_, output, text,
                        rules.plain, raw, None)
        if shape is None:
            try:
                shape = detect_shape([k for k, v in record.items() if v is not None])
            except RecordError:
                if sid is not None:  # an id and no content: an annotation of a sample given elsewhere
                    return (n, sid, False, None, None, None, None, None, None, None)
                raise
        fields = derive(record, shape).text_fields()
        derived = rules.id_key is None
        if derived:
            sid = content_id(record, shape)
        return (n, sid, derived, fields["instruction"], fields["input"], fields["output"], fields["text"], shape,
                raw, None)
    except RecordError as exc:
        return _error(n, raw, str(exc))


_CONTENT_WIDTH = 10  # a row of a content record: the tool columns are left off
_NO_TOOL = (None, None, None, None)


class DerivedWriter:
    """Collects derived rows and writes them to one Parquet file, ``batch`` rows at a time."""

    def __init__(self, path: str | os.PathLike[str], batch: int = 20_000):
        self.path, self.batch = Path(path), batch
        self.rows: list[tuple] = []
        self.written = 0
        self._writer = pq.ParquetWriter(self.path, DERIVED_SCHEMA, compression="none")

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        n = len(self.rows)
        width = max(map(len, self.rows))
        rows = self.rows if width == _CONTENT_WIDTH else [r + _NO_TOOL[: width - len(r)] for r in self.rows]
        columns = list(zip(*rows))
        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, DERIVED_SCHEMA)]
        arrays += [pa.nulls(n, f.type) for f in list(DERIVED_SCHEMA)[len(arrays):]]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=DERIVED_SCHEMA))
        self.written += n
        self.rows = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


def jsonl_items(path: str | os.PathLike[str], start: int = 0, end: int | None = None, first_line: int = 1,
                only: bytes | None = None) -> Iterator[tuple[int, Any, str | None]]:
    """``(line number, record, raw text)`` for each non-blank line of a JSON-lines file.

    ``record`` is the parsed value (``None`` with ``raw`` for a line that is not JSON: the staging has
    already named it). ``start`` / ``end`` select the lines that begin in that byte range (``start`` at a
    line start, numbered from ``first_line``), for a worker that takes a part of the file. ``only``: a
    map of the lines to read (byte ``n`` non-zero for line ``n``); the others are skipped unparsed.
    """
    loads = json.loads
    with open(path, "rb") as fh:
        fh.seek(start)
        pos, n = start, first_line - 1
        for line in fh:
            if end is not None and pos >= end:
                break
            pos += len(line)
            n += 1
            if only is not None and (n >= len(only) or not only[n]):
                continue
            if n == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                text = line.decode("utf-8").strip()
            except UnicodeDecodeError:
                yield n, None, None
                continue
            if not text:
                continue
            try:
                yield n, loads(text), text
            except ValueError:
                yield n, None, text


def derive_items(items: Iterable[tuple[int, Any, str | None]], rules: DeriveRules, out: str | os.PathLike[str],
                 batch: int = 20_000) -> int:
    """Derive every ``(row number, record, raw)`` item into the Parquet file ``out``; the rows written."""
    writer = DerivedWriter(out, batch)
    # The pass makes millions of short-lived dicts and lists and no reference cycles: the cyclic
    # collector would only rescan them (it cost a third of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        add = writer.add
        for n, record, raw in items:
            add(_error(n, raw, "malformed JSON" if raw is not None else "not UTF-8") if record is None
                else derive_row(n, record, raw, rules))
    finally:
        if collecting:
            gc.enable()
        writer.close()
    return writer.written


def derive_jsonl_part(path: str, start: int, end: int | None, first_line: int, rules: DeriveRules, out: str,
                      only: bytes | None = None) -> int:
    """Derive the lines of ``path`` that begin in ``[start, end)`` (those marked in ``only``, see
    :func:`jsonl_items`) into ``out``: a worker's task."""
    return derive_items(jsonl_items(path, start, end, first_line, only), rules, out)


def split_jsonl(path: str | os.PathLike[str], parts: int) -> list[tuple[int, int | None, int]]:
    """Cut a JSON-lines file into ``parts`` byte ranges at line starts: ``(start, end, first line number)``."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as fh:
        for k in range(1, parts):
            fh.seek(max(size * k // parts, cuts[-1]))
            fh.readline()  # to the start of the next line
            at = fh.tell()
            if at >= size:
                break
            if at > cuts[-1]:
                cuts.append(at)
    ranges: list[tuple[int, int | None, int]] = []
    line = 1
    with open(path, "rb") as fh:
        for i, start in enumerate(cuts):
            end = cuts[i + 1] if i + 1 < len(cuts) else None
            ranges.append((start, end, line))
            if end is not None:  # count the newlines of this part for the next one's first line number
                fh.seek(start)
                left, newlines = end - start, 0
                while left > 0:
                    chunk = fh.read(min(left, 1 << 22))
                    newlines += chunk.count(b"\n")
                    left -= len(chunk)
                line += newlines
    return ranges


def _main(argv: list[str]) -> int:
    """``python -m core.record_rows PATH START END FIRST_LINE RULES_JSON OUT [ONLY_FILE]``: one worker's part
    of a large JSON-lines file (see :func:`derive_jsonl_part`); ``END`` ``-`` for the end of the file."""
    path, start, end, first, rules_json, out = argv[:6]
    only = Path(argv[6]).read_bytes() if len(argv) > 6 else None
    rules = DeriveRules(**json.loads(rules_json))
    derive_jsonl_part(path, int(start), None if end == "-" else int(end), int(first), rules, out, only)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
