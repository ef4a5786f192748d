"""The quality-check registry: every module of this package registers one :class:`Check`.

``CHECKS`` maps a check's name to it, in display order. The report, the CLI and the Data quality
page loop over it, so a new check is a new module here (or a :func:`register` call elsewhere).
"""

from __future__ import annotations

import importlib
import pkgutil

from core.checks.base import Check, CheckContext, CheckResult

__all__ = ["CHECKS", "Check", "CheckContext", "CheckResult", "ordered", "register", "unregister"]

CHECKS: dict[str, Check] = {}


def register(check: Check) -> Check:
    """Add ``check`` to the registry (a name registered twice is an error: two modules disagree)."""
    if check.name in CHECKS and CHECKS[check.name] is not check:
        raise ValueError(f"a check named {check.name!r} is already registered")
    CHECKS[check.name] = check
    ordered_names = sorted(CHECKS, key=lambda n: (CHECKS[n].order, n))
    items = [(n, CHECKS[n]) for n in ordered_names]
    CHECKS.clear()
    CHECKS.update(items)
    return check


def unregister(name: str) -> None:
    """Remove a check (tests that register a check of their own clean up with this)."""
    CHECKS.pop(name, None)


def ordered(include_on_demand: bool = True) -> list[Check]:
    return [c for c in CHECKS.values() if include_on_demand or not c.on_demand]


for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")
