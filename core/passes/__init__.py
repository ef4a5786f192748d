"""The per-sample pass registry: every module of this package registers one :class:`SamplePass`.

``PASSES`` maps a pass's name to it. The checks read a pass's output through :func:`core.passes.runner.pass_frame`
(cached by sample content), so a new pass is a new module here (or a :func:`register` call elsewhere).
"""

from __future__ import annotations

import importlib
import pkgutil

from core.passes.base import SamplePass

__all__ = ["PASSES", "SamplePass", "register", "unregister"]

PASSES: dict[str, SamplePass] = {}


def register(sample_pass: SamplePass) -> SamplePass:
    """Add ``sample_pass`` to the registry (a name registered twice is an error: two modules disagree)."""
    if sample_pass.name in PASSES and PASSES[sample_pass.name] is not sample_pass:
        raise ValueError(f"a pass named {sample_pass.name!r} is already registered")
    PASSES[sample_pass.name] = sample_pass
    return sample_pass


def unregister(name: str) -> None:
    """Remove a pass (tests that register a pass of their own clean up with this)."""
    PASSES.pop(name, None)


for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "runner"):
        importlib.import_module(f"{__name__}.{_module.name}")
