"""The per-sample pass contract: a named, versioned map from each sample's row to output rows of that sample alone.

A pass is the per-sample part of a quality check (PII spans, refusal findings, MinHash signatures...): what does not
depend on any other sample, nor on the labels. Because of that its output for a sample can be cached by the sample's
content (:mod:`core.store.passes`) and computed anywhere — inline, on a pool of processes or on Ray workers
(:mod:`core.executor`). :func:`core.passes.runner.pass_frame` computes only the samples the cache does not hold.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from core.executor import BatchFn


@dataclass(frozen=True)
class SamplePass:
    """One registered per-sample pass.

    ``compute(batch, **options) -> pl.DataFrame``: a module-level function (another process or a Ray worker imports
    it by name) from a batch of samples (``sample_id`` and the ``columns`` the pass reads) to its output rows, each
    with ``sample_id`` and depending only on that sample's row. A sample may give no row (nothing found): it is
    still recorded as computed. ``schema``: the output columns and dtypes (an empty batch gives them too).
    ``version``: bump it when the output for the same sample changes (the cached rows of older versions are then
    recomputed). ``options(store, dataset) -> dict``: dataset settings that change the output (e.g. a lead's extra
    refusal phrases), passed to ``compute`` as keyword arguments and part of the cache key; plain JSON values only.
    """

    name: str
    version: int
    columns: tuple[str, ...]
    compute: Callable[..., pl.DataFrame]
    schema: dict[str, Any]
    options: Callable[[Any, str], dict[str, Any]] | None = None
    title: str = ""
    #: Rows per executor batch (default :data:`core.executor.DEFAULT_BATCH_ROWS`).
    batch_rows: int | None = None
    #: Fewest rows worth a local process pool for this pass (None: the executor's own threshold). Starting worker
    #: processes costs seconds, and a light pass (a regex prefilter that rules out nearly every text) costs less
    #: inline; the heavy ones (PII, cleaning, language, signatures: ~50 s per million samples) pay for it.
    pool_min_rows: int | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"pass name {self.name!r}: lowercase letters, digits and _ only")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"pass {self.name!r}: version must be a positive integer, got {self.version!r}")
        if "sample_id" not in self.schema:
            raise ValueError(f"pass {self.name!r}: its output schema must have sample_id")

    def dataset_options(self, store: Any, dataset: str) -> dict[str, Any]:
        """The options of ``dataset`` (none when the pass reads no setting)."""
        return dict(self.options(store, dataset)) if self.options is not None else {}

    def bound(self, options: dict[str, Any] | None = None) -> BatchFn:
        """``compute`` with ``options`` bound: a ``fn(batch)`` that pickles (a partial of a module-level function)."""
        return functools.partial(self.compute, **options) if options else self.compute

    def run(self, batch: pl.DataFrame, options: dict[str, Any] | None = None) -> pl.DataFrame:
        """The pass on ``batch`` here and now (no cache), its columns cast to :attr:`schema`."""
        return conform(self.bound(options)(batch), self.schema)

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)


def conform(frame: pl.DataFrame, schema: dict[str, Any]) -> pl.DataFrame:
    """``frame``'s columns of ``schema``, in its order and dtypes (a missing column is an error: the pass is wrong)."""
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise ValueError(f"pass output lacks column(s) {', '.join(missing)}")
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])
