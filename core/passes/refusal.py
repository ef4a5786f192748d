"""Pass ``refusal``: refusal and assistant-boilerplate findings in each response (the per-sample part of the check)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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

SCHEMA = PASS_FINDING_SCHEMA


def refusal_findings(view: InstructionView, extra_patterns: Sequence[str] = ()) -> pl.DataFrame:
    """:func:`core.textchecks.refusals` over each response of ``view`` (plus a lead's ``extra_patterns``), as
    findings rows without labels."""
    findings = textchecks.refusals(view.texts("output"), list(extra_patterns), field="output")
    return findings_table("refusal", view, findings).drop("label")


def compute(batch: pl.DataFrame, extra_patterns: Sequence[str] = ()) -> pl.DataFrame:
    return refusal_findings(batch_view(batch), extra_patterns)


def dataset_options(store: Any, dataset: str) -> dict[str, Any]:
    """The lead's extra phrases of ``dataset`` (its ``refusal_patterns`` setting): they change the findings."""
    from core.checks.refusal import refusal_patterns

    return {"extra_patterns": refusal_patterns(store.get_dataset(dataset).settings)}


PASS = register(SamplePass(name="refusal", version=1, columns=("output",), compute=compute, schema=SCHEMA,
                           options=dataset_options, title="refusals", pool_min_rows=5_000_000))
