"""Pass ``repetition``: degenerate repetition in each response, or in a plain text record's text."""

from __future__ import annotations

import polars as pl

from core import textchecks
from core.checks.base import (
    PASS_FINDING_SCHEMA,
    InstructionView,
    batch_view,
    findings_table,
)
from core.passes import register
from core.passes.base import SamplePass

EXTRAS = {"unit": pl.Utf8, "count": pl.Int64, "coverage": pl.Float64}
SCHEMA = {**PASS_FINDING_SCHEMA, **EXTRAS}


def repetition_findings(view: InstructionView) -> pl.DataFrame:
    """:func:`core.textchecks.repetition` over each response of ``view`` and each plain text (a record with neither
    instruction nor output: its text is what a model learns from), as findings rows without labels."""
    findings = textchecks.repetition(view.texts("output"), field="output")
    if view.present("text"):
        rows = [i for i, only in enumerate(view.text_only()) if only]
        texts = view.texts("text")
        more = textchecks.repetition([texts[i] for i in rows], field="text")
        findings += [{**f, "index": rows[f["index"]]} for f in more]
    return findings_table("repetition", view, findings, EXTRAS).drop("label")


def compute(batch: pl.DataFrame) -> pl.DataFrame:
    return repetition_findings(batch_view(batch))


PASS = register(SamplePass(name="repetition", version=1, columns=("instruction", "output", "text"), compute=compute,
                           schema=SCHEMA, title="repetition", pool_min_rows=150_000))
