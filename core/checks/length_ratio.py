"""Length ratio: responses much shorter or longer than usual for their instruction (robust z-score per label)."""

from __future__ import annotations

import numpy as np
import polars as pl

from core import textchecks
from core.checks import register
from core.checks.base import (
    FINDING_SCHEMA,
    Check,
    CheckContext,
    CheckResult,
    findings_result,
    findings_table,
    instruction_view,
)

EXTRAS = {"z": pl.Float64, "ratio": pl.Float64, "typical_ratio": pl.Float64}
#: :func:`core.textchecks.asks_for_language`'s translation test, for a vectorised pass (Rust regex).
TRANSLATION_REQUEST = "(?i)" + textchecks._TRANSLATION_RE.pattern


def _run(ctx: CheckContext) -> CheckResult:
    view = instruction_view(ctx)
    prompts, responses, labels = view.texts("instruction"), view.texts("output"), view.labels()
    # An empty or missing output is the completeness check's; here only answers that exist are compared. A
    # translation's length is set by the text to translate, not by what the label's answers usually need.
    p = pl.Series(prompts, dtype=pl.Utf8)
    r = pl.Series(responses, dtype=pl.Utf8)
    keep = ((p.str.strip_chars().str.len_chars() > 0) & (r.str.strip_chars().str.len_chars() > 0)
            & ~p.str.contains(TRANSLATION_REQUEST)).fill_null(False)
    rows = np.flatnonzero(keep.to_numpy()).tolist()
    findings = textchecks.length_ratio([prompts[i] for i in rows], [responses[i] for i in rows],
                                       [labels[i] for i in rows], z=float(ctx.options.get("length_z", 3.5)),
                                       field="output")
    return findings_result(findings_table(CHECK.name, view, findings, EXTRAS, rows=rows))


CHECK = register(Check(
    name="length_ratio", title="Length ratio", reason="length_ratio", severity="warning", order=66, run=_run,
    empty={**FINDING_SCHEMA, **EXTRAS},
    help="Responses much shorter (warning) or longer (info) than is typical for their instruction: the robust "
         "z-score (median and MAD, cut-off 3.5) of log(response length / instruction length) within the sample's "
         "gold label (all samples pooled for a label with fewer than 20). Lengths in words for space-separated text "
         "and characters for Chinese. Empty outputs (completeness's) and translation requests are left out. Count: samples with a finding.",
))
