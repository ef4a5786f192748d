"""Language mismatch: a response in another language than its instruction (unless a translation is asked for)."""

from __future__ import annotations

import polars as pl

from core.checks import register
from core.checks.base import (
    FINDING_SCHEMA,
    Check,
    CheckContext,
    CheckResult,
    findings_result,
    instruction_view,
    per_sample,
    with_labels,
)

EXTRAS = {"prompt_language": pl.Utf8, "response_language": pl.Utf8}


def _run(ctx: CheckContext) -> CheckResult:
    # imported at run time: core.passes imports core.checks
    from core.passes.language_mismatch import language_findings

    view = instruction_view(ctx)
    identifier = ctx.options.get("identifier")

    def direct():
        return language_findings(view, identifier)

    # Another identifier than langid's (a test's, a notebook's) gives other findings than the cached ones.
    frame = direct() if identifier is not None else per_sample(ctx, "language_mismatch", direct)
    return findings_result(with_labels(frame, view, CHECK.empty))


CHECK = register(Check(
    name="language_mismatch", reason="language_mismatch", title="Language mismatch", severity="warning", order=60, run=_run,
    empty={**FINDING_SCHEMA, **EXTRAS},
    help="The response (output, final assistant turn, chosen answer) is in another language than its instruction: "
         "a Chinese instruction answered in English, or the reverse (any pair of languages; same-script pairs such as "
         "English/French are info). Not a mismatch: an instruction that asks for a translation or names the answer's "
         "language, Chinese text with English product names or code, short texts. Scripts and English function words "
         "decide most texts; langid (its model ships inside the package) the rest. Count: samples with a finding.",
))
