"""Gold-label export: each sample in its own shape (JSONL, CSV, Parquet) or as Label Studio tasks, with provenance.

A sample imported with its record (chat, ShareGPT, preference, Alpaca, text, tool exports: see
:mod:`core.ingest`) is written back as it came in (:func:`core.records.to_shape`): a message list stays a
message list, ShareGPT stays ``conversations``, a pair keeps ``prompt`` / ``chosen`` / ``rejected``; the
annotators' labels give way to the gold ``label`` and its ``label_source``. A sample imported without a
record (a plain file, all in SQL) is written as its columns: ``sample_id``, the four text fields,
``batch``, ``round``, ``label``, ``label_source``, ``label_confidence``.

Gold labels follow the dataset's gold rule (:func:`core.gold.dataset_gold`: the latest review, else a gold
question, else the consensus of the dataset's method), so ``label_source`` is one of ``review``,
``gold_question``, ``majority``, ``dawid_skene``, ``crowdlab``. Personal data is masked unless a team lead
asks for it raw (:mod:`core.privacy`: checked and audited).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from core import privacy, records
from core.gold import dataset_gold
from core.privacy import mask_strings  # re-exported: its old home
from core.store import Store
from core.vocab import TEXT_FIELDS

#: The file formats of a gold export (the Audit page offers these).
EXPORT_FORMATS = ("jsonl", "csv", "parquet")
#: Label Studio tasks (a JSON array) with the gold label as a ground-truth annotation.
LABEL_STUDIO = "label-studio"
ALL_EXPORT_FORMATS = (*EXPORT_FORMATS, LABEL_STUDIO)
_FLAT = ("sample_id", *TEXT_FIELDS, "batch", "round", "label", "label_source", "label_confidence")


def gold_frame(store: Store, dataset: str, include_excluded: bool = False, texts: bool = True) -> pl.DataFrame:
    """Samples that have a gold label: text fields (raw), ``label``, ``label_source``, ``label_confidence``.

    The gold label is :func:`core.gold.dataset_gold`'s (latest review, else gold question, else the
    consensus of the dataset's method, with its confidence); samples without one (a tie nobody
    reviewed) are left out. ``texts=False``: without the text fields (read page by page: no text is loaded).
    """
    store.get_dataset(dataset)  # raises UnknownDataset with a clear message
    gold = dataset_gold(store, dataset).labels.filter(pl.col("gold_label").is_not_null())
    if texts:
        samples = store.samples(dataset, include_excluded=include_excluded)
    else:
        pages = list(store.sample_pages(dataset, ("sample_id", "batch", "round"), include_excluded=include_excluded))
        samples = pl.concat(pages) if pages else pl.DataFrame(
            schema={"sample_id": pl.Utf8, "batch": pl.Utf8, "round": pl.Int32})
    fields = list(TEXT_FIELDS) if texts else []
    return (
        samples.join(gold.with_columns(pl.col("sample_id").cast(samples.schema["sample_id"])), on="sample_id",
                     how="inner")
        .select("sample_id", *fields, "batch", "round",
                pl.col("gold_label").alias("label"), pl.col("source").alias("label_source"),
                pl.col("confidence").alias("label_confidence"))
        .sort("sample_id")
    )


@dataclass(frozen=True)
class GoldSummary:
    """What the export tab shows before a file is prepared: ``n`` gold labels, how many come from each
    ``label_source``, and the ``head`` rows (no text) of :func:`gold_frame`."""

    dataset: str
    include_excluded: bool
    n: int
    by_source: dict[str, int]
    head: pl.DataFrame


def gold_summary(store: Store, dataset: str, include_excluded: bool = False, rows: int = 100) -> GoldSummary:
    """:class:`GoldSummary` of a dataset's gold labels (the ``gold_summary`` job stores it)."""
    gold = gold_frame(store, dataset, include_excluded=include_excluded, texts=False)
    counts = gold.group_by("label_source").len().sort("label_source")
    return GoldSummary(dataset, include_excluded, gold.height,
                       dict(zip(counts["label_source"].to_list(), counts["len"].to_list())), gold.head(rows))


def _display_text(record: dict[str, Any], shape: str | None, flat: dict[str, Any]) -> str:
    """The text a Label Studio task shows (its ``text`` field) for a record without one."""
    if record and shape:
        try:
            return records.derive(record, shape).conversation
        except records.RecordError:
            pass
    return "\n".join(str(flat[f]) for f in TEXT_FIELDS if flat.get(f))


def _raw_allowed(store: Store, dataset: str, mask_pii: bool, actor: str | None,
                 reveal: privacy.Reveal | None, where: str) -> Callable[[str], str] | None:
    """The mask to apply (None: raw). A raw export needs a team lead: the given ``reveal`` of this
    dataset, else one made now for ``actor`` (checked and audited; PermissionDenied otherwise)."""
    if mask_pii:
        return privacy.masker()
    if not privacy.is_revealed(reveal, dataset):
        privacy.reveal(store, actor, dataset, where)
    return None


def gold_records(store: Store, dataset: str, fmt: str = "jsonl", mask_pii: bool = True,
                 include_excluded: bool = False, actor: str | None = None,
                 reveal: privacy.Reveal | None = None) -> list[dict[str, Any]]:
    """The gold export of ``dataset`` as a list of dicts, one per sample with a gold label, by sample id.

    ``fmt`` ``label-studio`` gives Label Studio tasks (:func:`core.records.to_label_studio_task`; a task
    exported from Label Studio comes back as its own task), anything else the samples in their own shape
    (see the module docstring). ``mask_pii`` (default) masks personal data in every string of the record
    (or the text fields of a sample without one), before the label is added. ``mask_pii=False`` is a
    team lead's: ``actor`` is checked (:class:`core.roles.PermissionDenied` for anyone else) and the raw
    export audited (``pii.reveal``), unless ``reveal`` is a decision of :func:`core.privacy.reveal` for
    this dataset that was audited already.
    """
    if fmt not in ALL_EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: expected one of {', '.join(ALL_EXPORT_FORMATS)}")
    store.get_dataset(dataset)
    mask = _raw_allowed(store, dataset, mask_pii, actor, reveal, f"gold export ({fmt})")
    frame = gold_frame(store, dataset, include_excluded=include_excluded)
    kept = store.sample_records(dataset, include_excluded=include_excluded)
    by_id = {sid: (shape, rec) for sid, shape, rec in kept.iter_rows()}
    out: list[dict[str, Any]] = []
    for flat in frame.iter_rows(named=True):
        shape, text = by_id.get(flat["sample_id"], (None, None))
        record = json.loads(text) if text is not None else None
        if mask is not None:
            if record is not None:
                record = mask_strings(record, mask)
            for f in TEXT_FIELDS:
                if flat[f] is not None:
                    flat[f] = mask(flat[f])
        provenance = {"label_source": flat["label_source"], "label_confidence": flat["label_confidence"]}
        if fmt == LABEL_STUDIO:
            if record is not None and shape == "label_studio":
                out.append(records.to_shape(record, shape, flat["label"], provenance))
                continue
            if record is not None:
                data = records.to_shape(record, shape, flat["label"])
                data.pop("label", None)
            else:
                data = {f: flat[f] for f in TEXT_FIELDS if flat[f] is not None}
            if "text" not in data:
                data["text"] = _display_text(record, shape, flat)
            out.append(records.to_label_studio_task(flat["sample_id"], data, flat["label"], provenance=provenance))
        elif record is not None:
            out.append(records.to_shape(record, shape, flat["label"], provenance))
        else:
            out.append({k: flat[k] for k in _FLAT})
    return out


def _column(values: list[Any]) -> pa.Array:
    """One Parquet column: Arrow's own type (nested lists and structs stay nested, as Hugging Face
    ``datasets`` writes them), or JSON text when the values do not share one type."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                         for v in values], type=pa.string())


def records_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as an Arrow table: every key of every row a column, in the order first seen."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    if not rows:
        return pa.table({k: pa.array([], type=pa.string()) for k in _FLAT})
    return pa.table({k: _column([row.get(k) for row in rows]) for k in keys})


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export_gold(store: Store, dataset: str, out: str | os.PathLike[str], fmt: str = "jsonl",
                mask_pii: bool = True, include_excluded: bool = False, actor: str | None = None,
                reveal: privacy.Reveal | None = None) -> int:
    """Write the gold labels of ``dataset`` to ``out``; return the number of samples written.

    ``fmt``: ``jsonl`` (one record a line, in its own shape), ``csv`` (one column per key; nested values
    as JSON text), ``parquet`` (nested values as Arrow lists and structs: ``datasets.load_dataset(
    "parquet", data_files=out)`` reads it) or ``label-studio`` (a JSON array of tasks). ``mask_pii``
    (default) replaces e-mails, phone, ID and bank-card numbers and IP addresses in every string of the
    record by ``***`` plus their last 4 characters; an unmasked export is a team lead's ``actor``'s, checked
    and audited (see :func:`gold_records`). Samples marked excluded are left out unless
    ``include_excluded``. The file is written to a temporary name and renamed, so a failed export never
    leaves half a file.
    """
    if fmt not in ALL_EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: expected one of {', '.join(ALL_EXPORT_FORMATS)}")
    rows = gold_records(store, dataset, fmt, mask_pii=mask_pii, include_excluded=include_excluded, actor=actor,
                        reveal=reveal)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        elif fmt == LABEL_STUDIO:
            tmp.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
        elif fmt == "csv":
            keys: dict[str, None] = {} if rows else dict.fromkeys(_FLAT)
            for row in rows:
                keys.update(dict.fromkeys(row))
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(keys)
                writer.writerows([_csv_cell(row.get(k)) for k in keys] for row in rows)
        else:
            pq.write_table(records_table(rows), tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(rows)
