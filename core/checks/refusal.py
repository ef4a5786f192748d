"""Refusals and assistant boilerplate in responses, from a curated bilingual list a lead can extend per dataset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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

#: The dataset setting holding a lead's extra refusal phrases (a list of strings).
REFUSAL_SETTING = "refusal_patterns"
#: Limits on the extra phrases (each is matched as a literal, never as a regular expression).
MAX_PATTERNS = 200
MAX_PATTERN_CHARS = 200


def refusal_patterns(settings: Mapping[str, Any] | None) -> list[str]:
    """The dataset's extra refusal phrases (its ``refusal_patterns`` setting; [] when unset or malformed)."""
    value = (settings or {}).get(REFUSAL_SETTING)
    if not isinstance(value, list):
        return []
    return [p for p in value if isinstance(p, str) and p.strip()]


def check_refusal_patterns(patterns: Iterable[str]) -> list[str]:
    """Validated phrases: stripped, blank lines dropped, duplicates (ignoring case) dropped; errors name the entry."""
    if isinstance(patterns, (str, bytes)):
        raise ValueError("patterns: expected a list of phrases, got a single string (split it into lines)")  # noqa: TRY004
    out: list[str] = []
    seen: set[str] = set()
    for i, p in enumerate(patterns):
        if not isinstance(p, str):
            raise ValueError(f"patterns[{i}]: expected a phrase (text), got {type(p).__name__}")  # noqa: TRY004
        phrase = " ".join(p.split())
        if not phrase:
            continue
        if len(phrase) > MAX_PATTERN_CHARS:
            raise ValueError(f"patterns[{i}]: a phrase may have at most {MAX_PATTERN_CHARS} characters, "
                             f"got {len(phrase)}")
        if phrase.casefold() not in seen:
            seen.add(phrase.casefold())
            out.append(phrase)
    if len(out) > MAX_PATTERNS:
        raise ValueError(f"patterns: at most {MAX_PATTERNS} phrases, got {len(out)}")
    return out


def set_refusal_patterns(store: Any, dataset: str, patterns: Iterable[str], actor: str) -> list[str]:
    """Replace ``dataset``'s extra refusal phrases (leads only: :data:`core.roles.Action.SETTINGS`; audited as a
    ``dataset.setting`` row); returns the phrases stored. Phrases are literals matched case-insensitively with any
    whitespace between words (:func:`core.textchecks.refusals`), so no entry can make a slow pattern."""
    if not (actor or "").strip():
        raise ValueError("an actor name is required for the audit trail")
    phrases = check_refusal_patterns(patterns)
    store.set_dataset_setting(dataset, REFUSAL_SETTING, phrases, actor)
    return phrases


def _extra_patterns(ctx: CheckContext) -> list[str]:
    if "refusal_patterns" in ctx.options:
        return list(ctx.options["refusal_patterns"] or [])
    if ctx.store is None or not hasattr(ctx.store, "get_dataset"):
        return []
    return refusal_patterns(ctx.store.get_dataset(ctx.dataset).settings)


def _run(ctx: CheckContext) -> CheckResult:
    # imported at run time: core.passes imports core.checks
    from core.passes.refusal import refusal_findings

    view = instruction_view(ctx)
    extra = _extra_patterns(ctx)
    frame = per_sample(ctx, "refusal", lambda: refusal_findings(view, extra), {"extra_patterns": extra})
    note = f"{len(extra)} extra phrase(s) from the dataset settings" if extra else ""
    return findings_result(with_labels(frame, view, CHECK.empty), note)


CHECK = register(Check(
    name="refusal", reason="refusal", title="Refusals", severity="warning", order=61, run=_run, empty=dict(FINDING_SCHEMA),
    help="The response refuses or carries assistant boilerplate (\"I'm sorry, but I can't\", \"As an AI language "
         "model\", \"抱歉，我无法\", \"作为一个人工智能语言模型\" and their common variants): a curated English and "
         "Chinese list, plus the phrases a team lead adds in this dataset's settings. Count: samples with a finding.",
))
