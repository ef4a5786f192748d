"""The job contract: a named, dataset-scoped analysis whose result the store keeps (see :mod:`core.jobs`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.store.results import DEPENDS

#: ``progress(stage, fraction)``: fraction in [0, 1]. The worker's progress raises :class:`JobCancelled`
#: when the job was cancelled, so a job stops at its next progress call.
Progress = Callable[[str, float], Any]


class JobCancelled(Exception):
    """A running job was cancelled (raised from its progress callback)."""


def no_progress(stage: str, fraction: float) -> None:
    """The progress sink of a run nobody watches."""


@dataclass(frozen=True)
class Job:
    """One registered analysis.

    ``run(store, dataset, params, progress) -> result``: the result is any value the result codec stores
    (frames, arrays, plain values, registered dataclasses: :func:`core.store.results.register_result_type`).
    ``depends``: ``content`` (the samples' texts: imports of new samples and exclusions make it stale) or
    ``labels`` (every data write: reviews, gold questions, settings too). ``defaults``: every parameter the
    job takes, with its default; a run's parameters are the defaults updated by the caller's (an unknown
    name is an error), so the same analysis always has the same stored key. ``in_analyze``: run by
    ``python -m core analyze`` without ``--jobs`` (jobs that need a model download or take hours are not).
    """

    name: str
    title: str
    run: Callable[..., Any]
    depends: str = "labels"
    defaults: dict[str, Any] = field(default_factory=dict)
    order: int = 100
    in_analyze: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"job name {self.name!r}: lowercase letters, digits and _ only")
        if self.depends not in DEPENDS:
            raise ValueError(f"job {self.name!r}: depends must be one of {', '.join(DEPENDS)}")

    def resolve(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The defaults updated by ``params`` (ValueError naming an unknown parameter)."""
        unknown = sorted(set(params or {}) - set(self.defaults))
        if unknown:
            raise ValueError(f"job {self.name!r} has no parameter(s) {', '.join(unknown)}; it takes "
                             f"{', '.join(self.defaults) or 'none'}")
        return {**self.defaults, **(params or {})}
