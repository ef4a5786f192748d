"""Import of JSON lines, JSON arrays, CSV / TSV and Parquet files of any record shape: mapping, row validation, one transaction.

File → container by content (:func:`core.records.sniff_container`; a JSON array is streamed into JSON
lines first) → DuckDB staging table (:mod:`core.store`) → for chat, ShareGPT, preference and tool-export
records, or records without ids, the derived texts, ids and shape of each record in Python
(:mod:`core.record_rows`, in batches) → column mapping and probabilities here → validation and write as
SQL in one transaction (``Store.import_staged``). Plain instruction and text files with ids never pass
through Python row by row.
Row-level problems (malformed JSON line, a record whose shape cannot be read, missing id, unknown label,
bad probabilities, duplicate id in the file...) become entries of ``import_errors`` with the 1-based row
number, and the valid rows land. File-level problems (missing, unreadable, not UTF-8, empty, no id
column where one is needed, several label questions and none chosen) raise :class:`ImportFileError`
before anything is written.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core import records, vocab
from core.auth import authorize
from core.record_rows import (
    CONTENT_NAMES,
    TOOL_SHAPES,
    DeriveRules,
    derive_items,
    derive_jsonl_part,
    jsonl_items,
    parse_nested,
    split_jsonl,
)
from core.roles import Action
from core.store import TEXT_FIELDS, ImportPlan, StagedFile, Store

#: Import formats: what :func:`detect_format` returns (``json`` is a file holding one JSON array).
FORMAT_NAMES: tuple[str, ...] = ("jsonl", "json", "csv", "tsv", "parquet")
# By extension, only when the content cannot tell (the reader then names the problem).
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
           ".parquet": "parquet", ".pq": "parquet"}
_BY_CONTAINER = {"jsonl": "jsonl", "json_array": "json", "csv": "csv", "tsv": "tsv", "parquet": "parquet"}
PROB_TOLERANCE = vocab.PROB_SUM_TOLERANCE
DEFAULT_ANNOTATOR = "default"
#: A prediction read from a Label Studio or Argilla export with no round given gets this round.
TOOL_PRED_ROUND = 1
#: Where the Import page may read server paths from (issue 15): ``$QUALITY_IMPORT_DIR`` or this.
IMPORT_DIR_ENV, DEFAULT_IMPORT_DIR = "QUALITY_IMPORT_DIR", Path("data") / "incoming"
# Record shapes whose texts come from a record's own keys, never from mapped columns.
_DERIVED_SHAPES = ("preference", "chat", "sharegpt")
# Keys that hold a record's content (any shape): kept in the record, not repeated in the metadata.
_CONTENT_KEYS = frozenset({"messages", "conversations", "chosen", "rejected", "prompt", "question", "instruction",
                           "input", "output", "response", "completion", "answer", "system", "history", "tools",
                           "text", "content", "sentence", "utterance", "query"})
# Above this many bytes a JSON-lines file's records are derived by worker processes, one per core.
PARALLEL_BYTES = 64 << 20


# Common source names for each target field, matched case-insensitively.
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "sample_id", "uid", "guid", "_id", "idx", "record_id"),
    "instruction": ("instruction", "prompt", "question"),
    "input": ("input", "context"),
    "output": ("output", "response", "answer", "completion"),
    "text": ("text", "content", "sentence", "utterance", "query"),
    "label": ("label", "intent", "category", "class", "grade"),
    "annotator": ("annotator", "rater", "labeler", "labeller", "worker", "annotator_id"),
    "confidence": ("confidence", "annotator_confidence", "label_confidence"),
    "prediction": ("prediction", "predicted", "pred", "pred_label", "predicted_label"),
    "pred_confidence": ("pred_confidence", "model_confidence", "prediction_confidence"),
    "probs": ("probs", "probabilities", "pred_probs", "predicted_probs"),
    "round": ("round", "iteration", "labeling_round"),
    "pred_round": ("pred_round", "model_round", "prediction_round"),
    "batch": ("batch", "batch_id"),
    "model": ("model", "model_name", "model_id"),
    # a gold (honeypot) question's true label: the sample is marked gold on import (core.store.gold)
    "gold_label": ("gold_label", "true_label", "ground_truth", "gold"),
}
WIDE_LABEL_PREFIX = "label_"
#: ``label_*`` columns that are not an annotator's label: the provenance an export writes beside ``label``.
PROVENANCE_COLUMNS = frozenset({"label_source", "label_agreement", "label_question"})
PROB_PREFIX = "prob_"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; nothing was written."""


@dataclass
class ColumnMapping:
    """Which source column feeds each target field. ``None`` means absent.

    ``wide_labels`` maps annotator name → column (``label_<annotator>``), ``prob_columns`` maps
    label → column (``prob_<label>``); every other source column is kept in ``meta`` as JSON.
    """

    id: str | None = None
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    text: str | None = None
    label: str | None = None
    annotator: str | None = None
    confidence: str | None = None
    prediction: str | None = None
    pred_confidence: str | None = None
    probs: str | None = None
    round: str | None = None
    pred_round: str | None = None
    batch: str | None = None
    model: str | None = None
    gold_label: str | None = None
    wide_labels: dict[str, str] = field(default_factory=dict)
    prob_columns: dict[str, str] = field(default_factory=dict)
    meta: list[str] = field(default_factory=list)

    def used(self) -> set[str]:
        single = {getattr(self, k) for k in ALIASES} - {None}
        return single | set(self.wide_labels.values()) | set(self.prob_columns.values())

    def describe(self) -> dict[str, Any]:
        """A JSON-able view (for the page and the CLI)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in ALIASES if getattr(self, k)}
        if self.wide_labels:
            out["wide_labels"] = dict(self.wide_labels)
        if self.prob_columns:
            out["prob_columns"] = dict(self.prob_columns)
        if self.meta:
            out["meta"] = list(self.meta)
        return out


def detect_mapping(columns: list[str]) -> ColumnMapping:
    """Guess the mapping from column names (case-insensitive, first alias wins)."""
    mapping = ColumnMapping()
    lowered = {c.strip().lower(): c for c in reversed(columns)}
    for target, aliases in ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                setattr(mapping, target, lowered[alias])
                break
    taken = mapping.used()
    for c in columns:
        low = c.strip().lower()
        if c in taken:
            continue
        if low.startswith(WIDE_LABEL_PREFIX) and len(low) > len(WIDE_LABEL_PREFIX) and low not in PROVENANCE_COLUMNS:
            mapping.wide_labels[c.strip()[len(WIDE_LABEL_PREFIX):]] = c
        elif low.startswith(PROB_PREFIX) and len(low) > len(PROB_PREFIX):
            mapping.prob_columns[c.strip()[len(PROB_PREFIX):]] = c
    taken = mapping.used()
    mapping.meta = [c for c in columns if c not in taken]
    return mapping


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """``"1 row"``, ``"2 rows"``, ``"1,000 rows"``."""
    return f"{n:,} {noun if n == 1 else (plural_form or noun + 's')}"


@dataclass
class ImportResult:
    """What an import did. ``errors`` has ``row, reason, raw`` for every rejected row.

    ``shape``: the file's record shape (``None`` when its columns name none, e.g. a predictions file);
    ``ids_from_content``: how many distinct sample ids were derived from content (records without an id).
    """

    dataset: str
    file: str
    format: str
    import_id: int | None
    rows_total: int
    rows_ok: int
    samples_new: int
    annotations_new: int
    annotations_changed: int
    predictions_new: int
    labels: list[str]
    mapping: ColumnMapping
    errors: pl.DataFrame
    already_imported: bool = False
    shape: str | None = None
    question: str | None = None
    ids_from_content: int = 0
    #: Samples marked (or re-marked with a new label) as gold questions by a ``gold_label`` column.
    gold_questions: int = 0

    @property
    def rows_bad(self) -> int:
        return self.errors.height

    def summary(self) -> str:
        if self.already_imported:
            return (f"{self.file}: identical to import #{self.import_id} into {self.dataset!r}; nothing changed")
        text = (f"{self.file} → {self.dataset!r}: {self.rows_ok:,} of {plural(self.rows_total, 'row')} imported "
                f"({plural(self.samples_new, 'new sample')}, {plural(self.annotations_new, 'new annotation')}, "
                f"{self.annotations_changed:,} changed, {plural(self.predictions_new, 'prediction')}); "
                f"{plural(self.rows_bad, 'row')} rejected")
        if self.ids_from_content:
            text += f"; {plural(self.ids_from_content, 'id')} derived from content"
        if self.gold_questions:
            text += f"; {plural(self.gold_questions, 'gold question')} marked"
        return text


Progress = Callable[[str, float], None]


def _noop(stage: str, fraction: float) -> None:  # default progress sink
    return None


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The import format of a file (one of :data:`FORMAT_NAMES`), by its content.

    ``fmt`` given is checked and returned. Otherwise :func:`core.records.sniff_container` reads the head:
    Parquet by its magic bytes, ``[`` a JSON array, ``{`` JSON lines, else CSV or TSV by the header's
    delimiters, whatever the file is called. When the content cannot tell (not UTF-8, only blanks...)
    a known extension decides and that format's reader names the problem (with the line of a bad byte);
    without one, the sniffer's reason is the error.
    """
    if fmt:
        if fmt not in FORMAT_NAMES:
            raise ImportFileError(f"unknown format {fmt!r}: expected one of {', '.join(FORMAT_NAMES)}")
        return fmt
    p = Path(path)
    if not p.exists():
        raise ImportFileError(f"file not found: {p}")
    if not p.is_file():
        raise ImportFileError(f"not a file: {p}")
    try:
        return _BY_CONTAINER[records.sniff_container(p)]
    except ValueError as exc:
        known = FORMATS.get(p.suffix.lower())
        if known is None:
            raise ImportFileError(str(exc)) from None
        return known


def import_dir() -> Path:
    """The folder server-path imports may read from: ``$QUALITY_IMPORT_DIR``, default ``data/incoming``."""
    return Path(os.environ.get(IMPORT_DIR_ENV) or DEFAULT_IMPORT_DIR).expanduser()


def resolve_server_path(path: str | os.PathLike[str]) -> Path:
    """The real path of a server-side file named on the Import page, which must lie in :func:`import_dir`.

    A relative path is taken inside the import folder. Symlinks are followed (also the folder's own), so
    the check is on the file that would really be read: an absolute path elsewhere, ``..`` that climbs out,
    or a symlink to ``/etc/passwd`` raise ``ValueError`` naming the folder. Whether the file exists is
    checked later, by the import.
    """
    text = str(path).strip()
    if not text:
        raise ValueError("no server path given")
    base = import_dir().resolve()
    p = Path(text).expanduser()
    real = (p if p.is_absolute() else base / p).resolve()
    if real != base and base not in real.parents:
        raise ValueError(f"{text} is outside the import folder {base}: server paths must lie inside it "
                         f"(copy the file there, or set {IMPORT_DIR_ENV})")
    return real


_BLANK = frozenset(b" \t\n\r\x0b\x0c")


def _scan(path: str | os.PathLike[str], fmt: str, decode: bool) -> tuple[str, int]:
    """Read the file once: ``(sha256, lines)``; ``decode`` also checks UTF-8.

    ``lines`` is the number of lines up to the last non-blank byte (trailing blank lines do
    not count). Raises :class:`ImportFileError` for a missing, empty or (with ``decode``)
    non-UTF-8 file, naming the offending line.
    """
    p = Path(path)
    if not p.exists():
        raise ImportFileError(f"file not found: {p}")
    if not p.is_file():
        raise ImportFileError(f"not a file: {p}")
    if p.stat().st_size == 0:
        raise ImportFileError(f"{p.name} is empty")
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    newlines, last_line, offset = 0, 0, 0
    text = fmt != "parquet"
    try:
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
                if text:
                    if decode:
                        try:
                            decoder.decode(chunk)
                        except UnicodeDecodeError as exc:
                            bad_at = exc.start
                            line = newlines + chunk.count(b"\n", 0, bad_at) + 1
                            raise ImportFileError(
                                f"{p.name} is not UTF-8: byte 0x{chunk[bad_at]:02x} at line {line} "
                                f"(offset {offset + bad_at}) cannot be decoded; save the file as UTF-8 "
                                "(for example `iconv -f GBK -t UTF-8`) and import it again"
                            ) from None
                    in_chunk = chunk.count(b"\n")
                    end = len(chunk)  # the last non-blank byte of the chunk, found from the end
                    while end and chunk[end - 1] in _BLANK:
                        end -= 1
                    if end:
                        last_line = newlines + in_chunk - chunk.count(b"\n", end) + 1
                    newlines += in_chunk
                offset += len(chunk)
            if text and decode:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise ImportFileError(f"{p.name} is not UTF-8: it ends inside a multi-byte character") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    return digest.hexdigest(), last_line


def stage(store: Store, path: str, fmt: str) -> tuple[StagedFile, str]:
    """Read a JSON-lines, CSV / TSV or Parquet file into the store's staging table (call inside
    ``store.staging()``; a JSON array goes through :func:`staged_file`).

    Returns the staged file and the file's sha256. A JSON-lines file is hashed and its lines
    counted, then tried on the fast path (DuckDB checks its UTF-8 itself); when it is not
    clean, or its rows are not its lines (a blank line inside), it is checked for UTF-8 here,
    so that the message names the line, and read line by line. File-level problems and
    reader failures become one :class:`ImportFileError`.
    """
    try:
        if fmt != "jsonl":
            sha, _ = _scan(path, fmt, decode=fmt in ("csv", "tsv"))
            return (store.stage_csv(path) if fmt in ("csv", "tsv") else store.stage_parquet(path)), sha
        sha, lines = _scan(path, fmt, decode=False)  # hashing in a thread beside DuckDB gained nothing
        staged = store.stage_jsonl(path)
        if staged is None or staged.rows != lines:
            _scan(path, fmt, decode=True)
            staged = store.stage_jsonl_lines(path)
        return staged, sha
    except ImportFileError:
        raise
    except Exception as exc:  # a reader error is a file-level problem: say it plainly
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportFileError(f"cannot read {Path(path).name} as {fmt}: {first}") from None


@contextmanager
def staged_file(store: Store, path: str | os.PathLike[str], fmt: str) -> Iterator[tuple[StagedFile, str, str | None]]:
    """Stage a file of any format (inside ``store.staging()``): ``(staged, sha256, JSON-lines path)``.

    The JSON-lines path is what :mod:`core.record_rows` reads the records from: the file itself, or for
    a JSON array its conversion (:func:`core.records.json_array_to_jsonl`, streamed, so memory stays
    bounded) in the store's import folder, removed on exit; ``None`` for CSV, TSV and Parquet (their
    records are read back from the staging table). The sha256 is the original file's. A JSON array's
    row numbers are its record numbers, and a record that is not an object keeps the reader's reason.
    """
    path = str(path)
    if fmt != "json":
        staged, sha = stage(store, path, fmt)
        yield staged, sha, path if fmt == "jsonl" else None
        return
    name = Path(path).name
    sha, _ = _scan(path, fmt, decode=False)
    fd, tmp = tempfile.mkstemp(prefix="array-", suffix=".jsonl", dir=store.import_temp_dir())
    os.close(fd)
    try:
        try:
            n, errors = records.json_array_to_jsonl(path, tmp)
        except ValueError as exc:
            raise ImportFileError(str(exc)) from None
        if n == 0:
            raise ImportFileError(f"{name} has no data rows (an empty array)")
        try:
            staged, _ = stage(store, tmp, "jsonl")
        except ImportFileError as exc:
            raise ImportFileError(str(exc).replace(Path(tmp).name, name)) from None
        if errors:
            staged = store.restate_read_errors(
                staged, pl.DataFrame({"__row": [r for r, _ in errors], "reason": [m for _, m in errors]}),
                strip=(records.MALFORMED_PREFIX, records.NOT_OBJECT_PREFIX))
        yield staged, sha, tmp
    finally:
        with suppress(OSError):
            os.unlink(tmp)


def file_shape(columns: list[str]) -> str | None:
    """The record shape a file's columns name (:func:`core.records.detect_shape`), or ``None``."""
    try:
        return records.detect_shape(columns)
    except records.RecordError:
        return None


def derives_records(shape: str | None, mapping: ColumnMapping, columns: list[str]) -> bool:
    """Whether an import reads each record through :mod:`core.records` (else all SQL, as for plain files).

    Yes for tool exports, chat, ShareGPT and preference records, records without an id column (their ids
    come from their content) and Alpaca records with ``system`` or ``history``.
    """
    if shape in TOOL_SHAPES or shape in _DERIVED_SHAPES:
        return True
    if shape in ("instruction", "text"):
        if mapping.id is None:
            return True
        return shape == "instruction" and bool({c.strip().lower() for c in columns} & {"system", "history"})
    return False


def _record_items(store: Store, staged: StagedFile, fmt: str, jsonl: str | None) -> Iterator[tuple[int, Any, str | None]]:
    """``(row number, record, raw JSON text or None)`` of every row of a staged file."""
    if jsonl is not None:
        yield from jsonl_items(jsonl)
    else:
        for n, record in store.staged_records(staged):
            yield n, record, None


def _objects(store: Store, staged: StagedFile, fmt: str, jsonl: str | None) -> Iterator[dict]:
    """The records of a staged file that are objects, nested CSV cells parsed (close it when stopping early:
    that releases the staging cursor's pending result)."""
    items = _record_items(store, staged, fmt, jsonl)
    try:
        for _, record, _ in items:
            if isinstance(record, dict):
                yield parse_nested(record) if fmt in ("csv", "tsv") else record
    finally:
        items.close()


def _first_records(store: Store, staged: StagedFile, fmt: str, jsonl: str | None, limit: int | None) -> list[dict]:
    """The first ``limit`` records that are objects (all with ``None``)."""
    if limit == 0:
        return []
    objects = _objects(store, staged, fmt, jsonl)
    try:
        return list(islice(objects, limit))
    finally:
        objects.close()


def _file_questions(store: Store, staged: StagedFile, fmt: str, jsonl: str | None) -> list[str]:
    objects = _objects(store, staged, fmt, jsonl)
    try:
        return records.questions(objects)
    finally:
        objects.close()


def choose_question(found: list[str], question: str | None, name: str) -> str | None:
    """The label question of a tool export: ``question`` (which must be in ``found``), the only one, or an
    :class:`ImportFileError` listing them when there are several and none was chosen."""
    if question is not None:
        if found and question not in found:
            raise ImportFileError(f"{name} has no label question {question!r}; its questions: {', '.join(found)}")
        return question
    if len(found) > 1:
        raise ImportFileError(f"{name} holds several label questions ({', '.join(found)}): choose the one that is "
                              "the label (on the command line: --question NAME)")
    return found[0] if found else None


@dataclass
class FileInfo:
    """What the Import page shows before an import (:func:`inspect_file`).

    ``head``: the first rows with the file's columns; ``rows``: rows read; ``bad``: ``__row, reason, raw`` of
    records that could not be read; ``shape``: the shape the columns name (``None``: none, e.g. a
    predictions file); ``record_shapes``: the shapes of the first records, with counts (a file may mix
    chat records and preference pairs); ``questions``: the label questions of a tool export; ``mapping``:
    the detected column mapping; ``derived``: whether the texts are derived from each record (then the
    text columns of the mapping are not used).
    """

    format: str
    head: pl.DataFrame
    rows: int
    bad: pl.DataFrame
    shape: str | None
    record_shapes: dict[str, int]
    questions: list[str]
    mapping: ColumnMapping
    derived: bool

    @property
    def columns(self) -> list[str]:
        return list(self.head.columns)


def inspect_file(store: Store, path: str | os.PathLike[str], fmt: str | None = None, limit: int = 50,
                 sample: int = 1000) -> FileInfo:
    """Read a file as an import would, without writing: its format, head, shape(s) and label questions.

    The whole file is staged in DuckDB, but only ``limit`` rows come back to Python, and ``sample``
    records are read for their shapes (every record of a tool export, for its questions).
    """
    fmt = detect_format(path, fmt)
    with store.staging(), staged_file(store, path, fmt) as (staged, _, jsonl):
        head = store.staged_rows(staged, limit)
        shape = file_shape(staged.columns)
        mapping = detect_mapping(staged.columns)
        first = _first_records(store, staged, fmt, jsonl, sample)
        found = _file_questions(store, staged, fmt, jsonl) if shape in TOOL_SHAPES else []
        shapes: dict[str, int] = {}
        for record in first[:sample]:
            with suppress(records.RecordError):
                s = records.detect_shape(record)
                shapes[s] = shapes.get(s, 0) + 1
        return FileInfo(fmt, head, staged.rows, staged.bad, shape, shapes, found, mapping,
                        derives_records(shape, mapping, staged.columns))


def preview_file(store: Store, path: str, fmt: str | None = None,
                 limit: int = 50) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """``(head, rows, errors)`` of :func:`inspect_file`: the first ``limit`` rows with the file's columns
    (all of them, even those empty in the first rows), the number of rows read, and ``__row, reason,
    raw`` of the records that could not be read."""
    info = inspect_file(store, path, fmt, limit, sample=0)
    return info.head, info.rows, info.bad


def _parse_probs(values: list[Any], labels: list[str]) -> tuple[list[list[float] | None], list[str | None]]:
    """Parse one probability vector per row (JSON list aligned with ``labels``, or label→p object)."""
    out: list[list[float] | None] = []
    errs: list[str | None] = []
    index = {lab: i for i, lab in enumerate(labels)}
    for v in values:
        if v is None:
            out.append(None)
            errs.append(None)
            continue
        try:
            obj = json.loads(v) if isinstance(v, str) else v
        except (ValueError, TypeError):
            out.append(None)
            errs.append(f"probabilities are not a JSON list: {str(v)[:80]!r}")
            continue
        if isinstance(obj, dict):
            unknown = [k for k in obj if k not in index]
            if unknown:
                out.append(None)
                errs.append(f"probabilities name labels not in the label set: {unknown[:3]}")
                continue
            vec = [0.0] * len(labels)
            for k, p in obj.items():
                vec[index[k]] = p
            obj = vec
        if not isinstance(obj, list) or len(obj) != len(labels):
            out.append(None)
            got = len(obj) if isinstance(obj, list) else type(obj).__name__
            errs.append(f"probabilities must be a list of {len(labels)} numbers (one per label), got {got}")
            continue
        try:
            vec = [float("nan") if p is None else float(p) for p in obj]
        except (TypeError, ValueError):
            out.append(None)
            errs.append("probabilities contain a value that is not a number")
            continue
        out.append(vec)
        errs.append(None)
    return out, errs


def _prob_problem(vec: list[float] | None) -> str | None:
    if vec is None:
        return None
    if any(math.isnan(p) for p in vec):
        return "probabilities contain NaN"
    if any(p < 0 or p > 1 for p in vec):
        return "probabilities must lie in [0, 1]"
    total = sum(vec)
    if abs(total - 1.0) > PROB_TOLERANCE:
        return f"probabilities sum to {total:.6g}, not 1 (tolerance {PROB_TOLERANCE:g})"
    return None


def infer_labels(store: Store, staged: StagedFile, m: ColumnMapping,
                 fields: dict[str, int | None] | None = None) -> list[str]:
    """The sorted set of labels a staged file uses (annotations, predictions, probability columns, and the
    annotations and predictions read from a tool export's records when ``fields`` maps them)."""
    pos = {name: i for i, name in enumerate(staged.source_columns)}
    columns = [pos[c] for c in [m.label, m.prediction, *m.wide_labels.values()] if c is not None]
    tool = fields is not None and fields.get("annotations") is not None
    if tool:
        columns.append(fields["prediction"])
    seen = store.staged_labels(staged, columns)
    if tool:
        seen |= store.staged_list_labels(staged, fields["annotations"])
    seen.update(m.prob_columns)
    if m.probs is not None:
        i = pos[m.probs]
        for v in store.staged_values(staged, [i], limit=10_000)[f"c{i}"].to_list():
            try:
                obj = json.loads(v) if isinstance(v, str) else v
            except (ValueError, TypeError):
                continue
            if isinstance(obj, dict):
                seen.update(str(k) for k in obj)
    return sorted(seen)


def parse_probabilities(store: Store, staged: StagedFile, m: ColumnMapping, labels: list[str]) -> None:
    """Parse the probabilities of every staged row that carries them, for the validation.

    A ``probs`` column holds a list aligned with ``labels`` or a ``{label: p}`` object;
    ``prob_<label>`` columns give one label each (labels without a column get 0). Clean
    vectors (one number in [0, 1] per label, summing to 1 within the tolerance) are parsed
    in SQL; the rest (objects, NaN, bad numbers, wrong lengths...) here in Python, which
    also words the row's error. Python's JSON reader accepts the ``NaN`` that exporters
    write, so a NaN is reported as a NaN rather than as bad JSON.
    """
    pos = {name: i for i, name in enumerate(staged.columns)}
    if m.probs is not None:
        i = pos[m.probs]
        values = store.stage_clean_probabilities(staged, [i], as_list=True, n_labels=len(labels),
                                                 tolerance=PROB_TOLERANCE)
        probs, errs = _parse_probs(values[f"c{i}"].to_list(), labels)
    else:
        unknown = [lab for lab in m.prob_columns if lab not in set(labels)]
        if unknown:
            raise ImportFileError(f"probability columns name labels not in the label set: {unknown}")
        columns = {lab: pos[col] for lab, col in m.prob_columns.items()}
        values = store.stage_clean_probabilities(staged, [columns.get(lab) for lab in labels], as_list=False,
                                                 n_labels=len(labels), tolerance=PROB_TOLERANCE)
        cells = {lab: values[f"c{i}"].to_list() for lab, i in columns.items()}
        probs, errs = [], []
        for r in range(values.height):
            vec: list[float] = []
            bad = None
            for lab in labels:
                if lab not in cells:
                    vec.append(0.0)
                    continue
                raw = cells[lab][r]
                raw = raw.strip() if isinstance(raw, str) else raw
                if raw is None or raw == "":
                    vec.append(float("nan"))
                    continue
                try:
                    vec.append(float(raw))
                except (TypeError, ValueError):
                    bad = f"probability of {lab} {raw!r} is not a number"
                    break
            probs.append(None if bad else vec)
            errs.append(bad)
    errs = [e or _prob_problem(v) for v, e in zip(probs, errs)]
    store.stage_probabilities(pl.DataFrame({"__row": values["__row"],
                                            "probs": pl.Series(probs, dtype=pl.List(pl.Float64)),
                                            "err": pl.Series(errs, dtype=pl.Utf8)}))


def _derive_parts(store: Store, staged: StagedFile, fmt: str, jsonl: str | None, rules: DeriveRules,
                  group: list[int] | None, workers: int | None = None) -> list[str]:
    """Derive the records into Parquet parts in the store's import folder; their paths (the caller removes
    them). With ``group`` (staged columns: a record's content and id) only the first row of each group of
    equal values is read (see :meth:`core.store.Store.stage_representatives`). A large JSON-lines file is
    cut at line starts and derived by ``workers`` processes (default: one per core, at most 4, above
    :data:`PARALLEL_BYTES`); other files in this process."""
    folder = store.import_temp_dir()
    stem = f"derived-{os.getpid()}-{id(staged):x}"
    reps = store.stage_representatives(group) if group is not None else None
    if jsonl is None:
        part = str(folder / f"{stem}-0.parquet")
        items = ((n, record, None) for n, record in store.staged_records(staged, representatives=reps is not None))
        derive_items(items, rules, part)
        return [part]
    only = None
    if reps is not None:
        marks = np.zeros(int(reps[-1]) + 1 if len(reps) else 1, dtype=np.uint8)
        marks[reps] = 1
        only = marks.tobytes()
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if os.path.getsize(jsonl) >= PARALLEL_BYTES else 1
    ranges = split_jsonl(jsonl, workers) if workers > 1 else [(0, None, 1)]
    parts = [str(folder / f"{stem}-{k}.parquet") for k in range(len(ranges))]
    if len(ranges) == 1:
        derive_jsonl_part(jsonl, 0, None, 1, rules, parts[0], only)
        return parts
    _derive_in_workers(jsonl, ranges, rules, parts, only, folder / f"{stem}-only.bin")
    return parts


def _derive_in_workers(jsonl: str, ranges: list[tuple[int, int | None, int]], rules: DeriveRules, parts: list[str],
                       only: bytes | None, only_file: Path) -> None:
    """Run ``python -m core.record_rows`` once per range, at the same time, and wait for all.

    Plain subprocesses rather than multiprocessing: they import only :mod:`core.record_rows`, never the
    caller's main module (a Streamlit page, a notebook), and the parent's DuckDB threads are not forked.
    """
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    rules_json = json.dumps(dataclasses.asdict(rules))
    extra = []
    if only is not None:
        only_file.write_bytes(only)
        extra = [str(only_file)]
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "core.record_rows", jsonl, str(start),
                                   "-" if end is None else str(end), str(first), rules_json, out, *extra],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for (start, end, first), out in zip(ranges, parts)]
        failed = []
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode:
                failed.append(err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no message)"])
        if failed:
            raise ImportFileError(f"reading the records failed in a worker process: {failed[0][0]}")
    finally:
        with suppress(OSError):
            only_file.unlink()


# The content keys of a plain record of each shape, exactly as written (see core.record_rows.PLAIN).
_PLAIN_KEYS = {"chat": {"messages"}, "instruction": {"instruction", "input", "output"}, "text": {"text"}}
_MAIN_KEY = {"chat": "messages", "sharegpt": "conversations", "instruction": "instruction", "text": "text"}


def _uniform(columns: list[str], shape: str | None) -> tuple[str | None, str | None]:
    """``(content key, plain shape)`` of a file whose columns name one shape only (then no record's shape
    needs detecting): the column holding each record's content, and the shape when its content columns are
    exactly the plain ones of :data:`core.record_rows.PLAIN`; ``(None, None)`` otherwise."""
    key = _MAIN_KEY.get(shape or "")
    content = {c.strip().lower() for c in columns if c.strip().lower() in CONTENT_NAMES}
    found = [c for c in columns if c.strip().lower() == key]
    others = [c for c in columns if c.strip().lower() != key]
    if key is None or len(found) != 1 or file_shape(others) not in (None, shape if shape == "instruction" else None):
        return None, None
    written = {c for c in columns if c.strip().lower() in CONTENT_NAMES}
    plain = shape if shape in _PLAIN_KEYS and written <= _PLAIN_KEYS[shape] and written == content \
        and key in written else None
    return found[0], plain


def _derived_plan(store: Store, staged: StagedFile, fmt: str, jsonl: str | None, m: ColumnMapping,
                  shape: str | None, tool: str | None, question: str | None,
                  ) -> tuple[StagedFile, ColumnMapping, dict[str, int | None], list[str], int]:
    """Read every record through :mod:`core.records` and stage the derived rows beside the kept columns.

    Returns the new staged file, the mapping actually used (text fields derived, so unmapped; nothing
    mapped for a tool export, whose labels and predictions are read from its records), the plan's fields,
    the keys dropped from stored records, and the number of ids derived from content.
    """
    columns = staged.columns
    if tool is not None:
        used = ColumnMapping()
    else:
        used = ColumnMapping(**{k: getattr(m, k) for k in ALIASES if k not in TEXT_FIELDS},
                             wide_labels=dict(m.wide_labels), prob_columns=dict(m.prob_columns))
        taken = used.used()
        used.meta = [c for c in m.meta + [getattr(m, t) for t in TEXT_FIELDS if getattr(m, t)]
                     if c not in taken and c.strip().lower() not in _CONTENT_KEYS]
    pos = {c: i for i, c in enumerate(columns)}
    uniform, plain = (None, None) if tool is not None else _uniform(columns, shape or file_shape(columns))
    the_shape = None if tool is not None else (shape or (file_shape(columns) if uniform else None))
    rules = DeriveRules(shape=the_shape, tool=tool, question=question, id_key=None if tool is not None else m.id,
                        nested_text=fmt in ("csv", "tsv"), content_key=uniform,
                        plain=plain if the_shape == plain else None)
    # Rows with the same content (and id) derive alike: read the first of each only. Not for tool exports,
    # whose records carry their annotations.
    group = None if tool is not None else \
        [i for i, c in enumerate(columns) if c.strip().lower() in CONTENT_NAMES or c == m.id]
    parts = _derive_parts(store, staged, fmt, jsonl, rules, group)
    try:
        keep = list(dict.fromkeys(pos[c] for c in [*(getattr(used, k) for k in ALIASES), *used.wide_labels.values(),
                                                   *used.prob_columns.values(), *used.meta] if c is not None))
        staged, from_content = store.stage_derived(staged, parts, keep, representatives=group is not None)
    finally:
        for part in parts:
            with suppress(OSError):
                os.unlink(part)
    pos = {c: i for i, c in enumerate(staged.source_columns)}
    fields: dict[str, int | None] = {k: pos[getattr(used, k)] for k in ALIASES
                                     if k != "probs" and getattr(used, k) is not None}
    derived = ["id", *TEXT_FIELDS, "shape", "record"]
    if tool is not None:
        derived += ["annotations", "prediction", "pred_confidence", "model"]
    fields.update({k: staged.derived(k) for k in derived})
    drop = [c for c in used.used() if c != used.id and c not in (used.batch, used.round)]
    return staged, used, fields, drop, from_content


def import_file(
    store: Store,
    path: str | os.PathLike[str],
    dataset: str,
    *,
    fmt: str | None = None,
    labels: list[str] | None = None,
    mapping: ColumnMapping | None = None,
    pred_round: int | None = None,
    model: str | None = None,
    annotator: str = DEFAULT_ANNOTATOR,
    actor: str = "cli",
    display_name: str | None = None,
    progress: Progress | None = None,
    shape: str | None = None,
    question: str | None = None,
    add_labels: bool = False,
) -> ImportResult:
    """Import one file into ``dataset`` (created on first import) in one transaction.

    ``fmt`` (one of :data:`FORMAT_NAMES`) is read from the content when ``None``. ``shape`` reads every
    record as that shape (:data:`core.records.SHAPES`; default: each record's own, see
    :func:`core.records.detect_shape`). Chat, ShareGPT, preference and tool-export records, and records
    without an id column, go through :func:`core.records.derive` (texts), :func:`core.records.content_id`
    (ids) and, for a Label Studio or Argilla export, :func:`core.records.label_studio_rows` /
    :func:`core.records.argilla_rows` (annotations and predictions of ``question``, which must be given
    when the file holds several; their predictions get round ``pred_round`` or 1). Each sample keeps its
    record whole (without the columns mapped as one annotator's label or a prediction) and its shape.

    ``labels`` fixes the label set (for a new dataset, or new labels to append); otherwise the
    dataset's stored set is used, or for a new dataset the sorted labels seen in the file. A label
    outside the set is a row error, unless ``add_labels`` appends the file's new labels to a stored set.
    A ``probs`` list is aligned with that label order; a JSON object ``{label: p}`` or
    ``prob_<label>`` columns name labels explicitly. ``pred_round`` sets the round of
    predictions that carry none. Importing the same file again (same bytes) writes nothing.

    The file is read once into a DuckDB staging table; validation and the write run there as
    SQL (:meth:`core.store.Store.import_staged`), so big files never travel through Python
    (except, in batches, the records whose texts are derived).
    """
    authorize(actor, Action.IMPORT)
    report = progress or _noop
    dataset = (dataset or "").strip()
    if not dataset:
        raise ImportFileError("a dataset name is required")
    if shape is not None and shape not in records.SHAPES:
        raise ImportFileError(f"unknown record shape {shape!r}: expected one of {', '.join(records.SHAPES)}")
    name = display_name or Path(path).name
    fmt = detect_format(path, fmt)
    report("reading", 0.0)
    with store.staging(), staged_file(store, path, fmt) as (staged, sha, jsonl):
        if staged.rows == 0 and staged.bad.height == 0:
            raise ImportFileError(f"{name} has no data rows")
        source_cols = staged.columns
        if not source_cols and staged.bad.height:
            first = staged.bad.row(0, named=True)
            raise ImportFileError(f"{name}: no row could be read ({staged.bad.height} bad rows; "
                                  f"row {first['__row']}: {first['reason']})")
        m = mapping or detect_mapping(source_cols)
        missing = [c for c in m.used() if c not in source_cols]
        if missing:
            raise ImportFileError(f"mapped column(s) not in the file: {missing}")
        the_shape = shape or file_shape(source_cols)
        tool = the_shape if the_shape in TOOL_SHAPES else None
        derived = derives_records(the_shape, m, source_cols)
        if not derived:
            if m.id is None:
                raise ImportFileError(
                    f"{name} has no id column: expected one of {', '.join(ALIASES['id'])} "
                    f"(columns found: {', '.join(source_cols[:20]) or 'none'})"
                )
            if m.label is None and not m.wide_labels and m.prediction is None and m.probs is None \
                    and not m.prob_columns and not any(getattr(m, f) for f in TEXT_FIELDS):
                raise ImportFileError(f"{name} has an id but no text, label or prediction columns")

        # The same bytes again change nothing, unless this import may add labels that rejected rows lacked.
        stored = store.get_dataset(dataset).labels if store.has_dataset(dataset) else None
        widens = add_labels or (labels is not None and stored is not None and bool(set(labels) - set(stored)))
        earlier = None if widens else store.find_import(dataset, sha)
        if earlier is not None:
            report("done", 1.0)
            info = store.get_dataset(dataset)
            return ImportResult(dataset, name, fmt, earlier["import_id"], earlier["rows_total"], 0, 0, 0, 0, 0,
                                info.labels, m,
                                pl.DataFrame(schema={"row": pl.Int64, "reason": pl.Utf8, "raw": pl.Utf8}),
                                already_imported=True, shape=the_shape, question=question)

        from_content = 0
        record_drop: list[str] = []
        if derived:
            if tool is not None:
                question = choose_question(_file_questions(store, staged, fmt, jsonl), question, name)
            report("reading records", 0.15)
            staged, m, fields, record_drop, from_content = _derived_plan(
                store, staged, fmt, jsonl, m, shape, tool, question)
            if staged.rows == 0:
                first = staged.bad.row(0, named=True)
                raise ImportFileError(f"{name}: no record could be read ({plural(staged.bad.height, 'bad row')}; "
                                      f"row {first['__row']}: {first['reason']})")
            if tool is not None and pred_round is None:
                pred_round = TOOL_PRED_ROUND
        else:
            pos = {c: i for i, c in enumerate(source_cols)}
            fields = {target: pos[getattr(m, target)] for target in ALIASES
                      if target != "probs" and getattr(m, target) is not None}

        stored_labels = store.get_dataset(dataset).labels if store.has_dataset(dataset) else None
        if labels is not None:
            labels = [str(x).strip() for x in labels if str(x).strip()]
            if len(set(labels)) != len(labels):
                raise ImportFileError("the label set has duplicates")
            if stored_labels is not None:
                labels = stored_labels + [x for x in labels if x not in stored_labels]
        elif stored_labels is not None:
            labels = stored_labels
            if add_labels:
                labels = stored_labels + [x for x in infer_labels(store, staged, m, fields) if x not in stored_labels]
        else:
            labels = infer_labels(store, staged, m, fields)
        if not labels and (m.label or m.wide_labels or m.prediction or m.probs or m.prob_columns):
            raise ImportFileError(f"{name} has label columns but no labels in them")

        report("validating and writing", 0.5)
        has_probs = m.probs is not None or bool(m.prob_columns)
        if has_probs:
            parse_probabilities(store, staged, m, labels)
        pos = {c: i for i, c in enumerate(staged.source_columns)}
        plan = ImportPlan(
            fields=fields,
            labels=labels,
            wide=[(ann, pos[col]) for ann, col in m.wide_labels.items()],
            meta=[pos[c] for c in m.meta],
            has_probs=has_probs, pred_round=pred_round, model=model, default_annotator=annotator,
            shape=None if derived else the_shape, record_drop=record_drop,
        )
        counts, errors = store.import_staged(staged, plan, dataset=dataset, file=name, file_sha256=sha,
                                             fmt=fmt, actor=actor)
    report("done", 1.0)
    rows_total = staged.rows + staged.bad.height
    result = ImportResult(
        dataset=dataset, file=name, format=fmt, import_id=counts["import_id"], rows_total=rows_total,
        rows_ok=rows_total - errors.height, samples_new=counts["samples_new"],
        annotations_new=counts["annotations_new"], annotations_changed=counts["annotations_changed"],
        predictions_new=counts["predictions_new"], labels=labels, mapping=m,
        errors=errors.rename({"__row": "row"}), shape=the_shape, question=question,
        ids_from_content=from_content, gold_questions=counts.get("gold_questions", 0),
    )
    _after_import(store, dataset, result)
    return result


#: Called as ``hook(store, dataset, result)`` after every import that wrote something (e.g. the server's job
#: worker queues the dataset's now-stale analyses: :func:`core.jobs.worker.enqueue_after_import`). Stored
#: results need no hook to go stale: the import's audit row bumps the data version they are checked against.
AFTER_IMPORT_HOOKS: list[Callable[[Store, str, ImportResult], Any]] = []


def _after_import(store: Store, dataset: str, result: ImportResult) -> None:
    import logging

    for hook in AFTER_IMPORT_HOOKS:
        try:
            hook(store, dataset, result)
        except Exception:  # the import is committed: a hook failing must not turn its success into an error
            logging.getLogger(__name__).exception("after-import hook %r failed on %s", hook, dataset)
