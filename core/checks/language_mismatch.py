"""Language mismatch: a response in another language than its instruction (unless a translation is asked for)."""

from __future__ import annotations

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

EXTRAS = {"prompt_language": pl.Utf8, "response_language": pl.Utf8}


def _run(ctx: CheckContext) -> CheckResult:
    view = instruction_view(ctx)
    prompts, responses = view.texts("instruction"), view.texts("output")
    findings = textchecks.language_mismatch(prompts, responses, identifier=ctx.options.get("identifier"),
                                            field="output")
    return findings_result(findings_table(CHECK.name, view, findings, EXTRAS))


CHECK = register(Check(
    name="language_mismatch", reason="language_mismatch", title="Language mismatch", severity="warning", order=60, run=_run,
    empty={**FINDING_SCHEMA, **EXTRAS},
    help="The response (output, final assistant turn, chosen answer) is in another language than its instruction: "
         "a Chinese instruction answered in English, or the reverse (any pair of languages; same-script pairs such as "
         "English/French are info). Not a mismatch: an instruction that asks for a translation or names the answer's "
         "language, Chinese text with English product names or code, short texts. Scripts and English function words "
         "decide most texts; langid (its model ships inside the package) the rest. Count: samples with a finding.",
))
