"""Pass ``cleaning``: cleaning findings (:func:`core.checks.cleaning.cleaning_report`) of each text field of a sample."""

from __future__ import annotations

import polars as pl

from core.checks.base import _SPAN_SCHEMA
from core.passes import register
from core.passes.base import SamplePass
from core.vocab import TEXT_FIELDS

SCHEMA = {**_SPAN_SCHEMA, "cleaned": pl.Utf8}


def compute(batch: pl.DataFrame) -> pl.DataFrame:
    from core.checks.cleaning import cleaning_report

    return cleaning_report(batch, [f for f in TEXT_FIELDS if f in batch.columns])


PASS = register(SamplePass(name="cleaning", version=1, columns=TEXT_FIELDS, compute=compute, schema=SCHEMA,
                           title="cleaning", pool_min_rows=150_000))
