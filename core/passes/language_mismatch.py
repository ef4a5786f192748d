"""Pass ``language_mismatch``: a response in another language than its instruction (per sample: both its texts)."""

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

EXTRAS = {"prompt_language": pl.Utf8, "response_language": pl.Utf8}
SCHEMA = {**PASS_FINDING_SCHEMA, **EXTRAS}


def language_findings(view: InstructionView, identifier: textchecks.Identifier | None = None) -> pl.DataFrame:
    """:func:`core.textchecks.language_mismatch` of each instruction and response of ``view``, as findings rows
    without labels (``identifier``: another language identifier than langid's)."""
    findings = textchecks.language_mismatch(view.texts("instruction"), view.texts("output"), identifier=identifier,
                                            field="output")
    return findings_table("language_mismatch", view, findings, EXTRAS).drop("label")


def compute(batch: pl.DataFrame) -> pl.DataFrame:
    return language_findings(batch_view(batch))


PASS = register(SamplePass(name="language_mismatch", version=1, columns=("instruction", "output"), compute=compute,
                           schema=SCHEMA, title="language", pool_min_rows=150_000))
