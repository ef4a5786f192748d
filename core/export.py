"""Gold-label export (JSONL in instruction format, CSV, Parquet) with the provenance of each label."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from core.gold import gold_labels
from core.store import Store

EXPORT_FORMATS = ("jsonl", "csv", "parquet")


def gold_frame(store: Store, dataset: str, include_excluded: bool = False) -> pl.DataFrame:
    """Samples that have a gold label: text fields, ``label`` and ``label_source``.

    The gold label is the latest review if any, else the annotators' majority vote when it
    is not a tie (see :func:`core.gold.gold_labels`); samples with neither are left out.
    """
    store.get_dataset(dataset)  # raises UnknownDataset with a clear message
    gold = gold_labels(store.annotations(dataset), store.latest_reviews(dataset))
    gold = gold.filter(pl.col("gold_label").is_not_null())
    samples = store.samples(dataset, include_excluded=include_excluded)
    return (
        samples.join(gold, on="sample_id", how="inner")
        .select("sample_id", "instruction", "input", "output", "text", "batch", "round",
                pl.col("gold_label").alias("label"), pl.col("source").alias("label_source"))
        .sort("sample_id")
    )


def export_gold(store: Store, dataset: str, out: str | os.PathLike[str], fmt: str = "jsonl",
                mask_pii: bool = False, include_excluded: bool = False) -> int:
    """Write the gold labels of ``dataset`` to ``out``; return the number of samples written.

    ``mask_pii`` replaces e-mails, phone, ID and bank-card numbers and IPv4 addresses in the
    text fields by ``***`` plus their last 4 characters. Samples marked excluded are left out
    unless ``include_excluded``. The file is written to a temporary name and renamed, so a
    failed export never leaves half a file.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    frame = gold_frame(store, dataset, include_excluded=include_excluded)
    if mask_pii:
        from core.quality import mask_pii as mask

        frame = frame.with_columns(
            pl.col(c).map_elements(mask, return_dtype=pl.Utf8) for c in ("instruction", "input", "output", "text")
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    if fmt == "jsonl":
        frame.write_ndjson(tmp)
    elif fmt == "csv":
        frame.write_csv(tmp)
    else:
        frame.write_parquet(tmp)
    os.replace(tmp, out)
    return frame.height
