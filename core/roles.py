"""Roles, the actions they may take, and the one permission check every write in core calls.

A leaf module: it imports nothing from ``core``. Who an actor *is* (the users file, the local
single-lead mode, system actors) is :mod:`core.auth`'s business; what a role *may do* is decided
here, once, by :data:`ALLOWED`. :func:`core.auth.authorize` joins the two and is called first by
every write function of ``core`` (store, ingest, review, queue, quality actions, export of raw
personal data), so a rule holds whatever a page shows. Pages hide the controls that core would
refuse with the same table (:func:`allowed`).
"""

from __future__ import annotations

from enum import StrEnum

LEAD = "lead"
REVIEWER = "reviewer"
STAKEHOLDER = "stakeholder"
SYSTEM = "system"      # cli, demo-loader, system:...: whoever runs them already holds the store file
NO_ROLE = "none"       # a name that is not a configured user

#: The roles a person can have (system actors are not people and are not configured).
ROLES: tuple[str, ...] = (LEAD, REVIEWER, STAKEHOLDER)


class Action(StrEnum):
    """Everything in core that changes stored data or reveals raw personal data."""

    IMPORT = "import data"
    SETTINGS = "change dataset settings"
    QUEUE_RULES = "add samples to the review queue"
    EXCLUDE = "exclude samples from export"
    EVALUATION = "import evaluation results"
    RAW_PII = "see or export unmasked personal data"
    CLAIM = "claim review queue entries"
    REVIEW = "save reviews"
    QUEUE_STATUS = "skip or release review queue entries"
    AUDIT_NOTE = "write to the audit log directly"
    GOLD = "mark gold questions"
    ANALYZE = "run or recompute analyses"


_LEADS = frozenset({LEAD, SYSTEM})
_REVIEWERS = frozenset({LEAD, REVIEWER, SYSTEM})

#: Which roles may take each action. Reviewers claim and correct labels; everything that shapes
#: a dataset (imports, settings, queue rules, exclusions, raw personal data) is a lead's.
ALLOWED: dict[Action, frozenset[str]] = {
    Action.IMPORT: _LEADS,
    Action.SETTINGS: _LEADS,
    Action.QUEUE_RULES: _LEADS,
    Action.EXCLUDE: _LEADS,
    Action.EVALUATION: _LEADS,
    Action.RAW_PII: _LEADS,  # core.privacy.reveal checks it and audits every raw view or export
    Action.CLAIM: _REVIEWERS,
    Action.REVIEW: _REVIEWERS,
    Action.QUEUE_STATUS: _REVIEWERS,
    Action.AUDIT_NOTE: frozenset({SYSTEM}),
    Action.GOLD: _LEADS,  # a gold question scores the annotators: only a lead decides its truth
    Action.ANALYZE: _LEADS,  # a job may run for minutes: leads (and the server itself, a system actor)
}
assert set(ALLOWED) == set(Action), "every action needs a rule"

#: Roles that may change anything at all (the pages' read-only switch).
ROLES_THAT_WRITE = frozenset().union(*ALLOWED.values())

_WHO = {_LEADS: "team leads only", _REVIEWERS: "team leads and reviewers", frozenset({SYSTEM}): "system actors only"}


class PermissionDenied(PermissionError):
    """The acting user's role may not take this action (the message names actor, role and action)."""


def allowed(role: str, action: Action | str) -> bool:
    """Whether ``role`` may take ``action`` (an unknown action is never allowed: fail closed)."""
    try:
        return role in ALLOWED[Action(action)]
    except ValueError:
        return False


def may_write(role: str) -> bool:
    """Whether ``role`` may change anything at all."""
    return role in ROLES_THAT_WRITE


def check(role: str, action: Action | str | None, actor: str | None) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` may take ``action``.

    ``action=None`` asks only whether the role may write at all.
    """
    shown = (actor or "").strip() or "(no name)"
    what = "not a configured user" if role == NO_ROLE else role
    if not may_write(role):
        raise PermissionDenied(f"{shown} ({what}) may not change data")
    if action is None:
        return
    try:
        act = Action(action)
    except ValueError:
        raise PermissionDenied(f"{shown}: unknown action {action!r}") from None
    if role not in ALLOWED[act]:
        raise PermissionDenied(f"{shown} ({what}) may not {act.value} ({_WHO[ALLOWED[act]]})")
