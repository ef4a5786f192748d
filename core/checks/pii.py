"""Personal data: e-mail addresses, phone numbers, ID numbers, bank cards and IP addresses, with masking."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from core.checks import register
from core.checks.base import (
    _SPAN_SCHEMA,
    Check,
    CheckContext,
    CheckResult,
    by_kind,
    distinct_count,
    span_report,
    text_fields,
)
from core.quality import find_pii, mask_pii


def pii_report(samples: pl.DataFrame, fields: Sequence[str] | None = None) -> pl.DataFrame:
    """Personal data, one row per match: ``sample_id, field, kind, start, end, before, match, after, masked``.

    ``masked`` is the whole field after :func:`core.quality.mask_pii` (``***`` + last 4 characters).
    """
    fields = list(fields) if fields is not None else text_fields(samples)
    return span_report(samples, fields, find_pii, mask_pii, "masked")


def _run(ctx: CheckContext) -> CheckResult:
    frame = pii_report(ctx.samples, ctx.fields)
    return CheckResult(frame, distinct_count(frame), by_kind(frame))


CHECK = register(Check(
    name="pii", title="Personal data", severity="error", order=50, run=_run, empty={**_SPAN_SCHEMA, "masked": pl.Utf8},
    help="E-mail addresses, phone numbers, Chinese resident ID numbers (valid check digit), Luhn-valid bank card "
         "numbers, IPv4 addresses. Count: samples with personal data.",
))
