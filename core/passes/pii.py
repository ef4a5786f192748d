"""Pass ``pii``: personal-data spans (:func:`core.quality.find_pii`) in each text field of a sample, unmasked.

The spans only: the masked or revealed context a report shows is cut from the sample's text when it is read
(:func:`core.checks.pii.pii_rows`), as the reader is allowed to see it.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from core.checks.base import sort_findings
from core.passes import register
from core.passes.base import SamplePass
from core.quality import find_pii
from core.vocab import TEXT_FIELDS

SCHEMA = {"sample_id": pl.Utf8, "field": pl.Utf8, "kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64,
          "matched": pl.Utf8}


def pii_spans(samples: pl.DataFrame, fields: Sequence[str] | None = None) -> pl.DataFrame:
    """One row per :func:`core.quality.find_pii` match in ``fields`` (default: every text field the frame has):
    ``sample_id, field, kind, start, end, matched``, by sample, field (:data:`TEXT_FIELDS` order) and start."""
    fields = [f for f in (TEXT_FIELDS if fields is None else fields) if f in samples.columns]
    ids = samples.get_column("sample_id").cast(pl.Utf8).to_list()
    rows = [(sid, f, *found) for f in fields for sid, text in zip(ids, samples.get_column(f).to_list()) if text
            for found in find_pii(text)]
    return sort_findings(pl.DataFrame(rows, schema=SCHEMA, orient="row"))


def compute(batch: pl.DataFrame) -> pl.DataFrame:
    return pii_spans(batch)


PASS = register(SamplePass(name="pii", version=1, columns=TEXT_FIELDS, compute=compute, schema=SCHEMA,
                           title="personal data", pool_min_rows=150_000))
