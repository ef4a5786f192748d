"""Running a per-sample pass with the store's cache: only samples the cache does not hold are computed.

:func:`pass_frame` is what a check calls for its per-sample part when it has a store: it looks the samples up by
``(sample_id, content_hash)`` under the pass's name, version and options (:mod:`core.store.passes`), maps the
missing ones through the executor (:func:`core.executor.get_executor`: inline, a process pool or Ray) and saves
them in one transaction. A run that fails or is cancelled part way saves nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from core.executor import DEFAULT_BATCH_ROWS, Executor, LocalExecutor, get_executor
from core.passes import PASSES
from core.passes.base import SamplePass, conform
from core.store.errors import StoreConflict

Progress = Callable[[str, float], Any]


def options_key(options: dict[str, Any] | None) -> str:
    """The cache key of a pass's options (canonical JSON, hashed; ``""`` for none)."""
    from core.store.results import params_key

    return params_key(options) if options else ""


def pass_inputs(store: Any, dataset: str, sample_pass: SamplePass, samples: pl.DataFrame) -> pl.DataFrame:
    """The columns ``sample_pass`` reads, for the rows of ``samples``: those ``samples`` lacks (a record and its
    shape: the store's samples frame leaves them out) are read from the store for these samples only."""
    wanted = ["sample_id", *[c for c in sample_pass.columns if c != "sample_id"]]
    have = [c for c in wanted if c in samples.columns]
    frame = samples.select(have).with_columns(pl.col("sample_id").cast(pl.Utf8))
    lacking = [c for c in wanted if c not in samples.columns]
    if lacking and frame.height:
        if not set(lacking) <= {"shape", "record"}:
            raise ValueError(f"pass {sample_pass.name!r} reads column(s) {', '.join(lacking)} the samples lack")
        stored = store.sample_records_of(dataset, frame["sample_id"].to_list())
        frame = frame.join(stored.select("sample_id", *lacking), on="sample_id", how="left", maintain_order="left")
    elif lacking:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(c) for c in lacking)
    return frame.select(wanted)


def pass_executor(sample_pass: SamplePass) -> Executor:
    """The environment's executor (:func:`core.executor.get_executor`), with a local pool started only for as many
    rows as the pass is worth it (:attr:`SamplePass.pool_min_rows`)."""
    executor = get_executor()
    if isinstance(executor, LocalExecutor) and sample_pass.pool_min_rows:
        executor = LocalExecutor(workers=executor.workers,
                                 pool_min_rows=max(executor.pool_min_rows, sample_pass.pool_min_rows))
    return executor


def pass_frame(store: Any, dataset: str, name: str, samples: pl.DataFrame, progress: Progress | None = None,
               executor: Executor | None = None, options: dict[str, Any] | None = None) -> pl.DataFrame:
    """The output rows of pass ``name`` for ``samples`` (``sample_id``, ``content_hash`` and the text columns, as
    :meth:`core.store.Store.samples` gives them), in the order of ``samples`` (a sample's rows in the pass's order).

    Cached samples are read; the others (new, or changed content) are computed with ``executor`` (default
    :func:`pass_executor`) and saved, so the next call reads them. ``options``: the pass's options
    (default: read from the dataset, :meth:`SamplePass.dataset_options`). ``progress(stage, fraction)`` follows the
    computation (it may raise to cancel: then nothing is saved).
    """
    sample_pass = PASSES.get(name)
    if sample_pass is None:
        raise ValueError(f"unknown pass {name!r}: expected one of {', '.join(PASSES)}")
    if options is None:
        options = sample_pass.dataset_options(store, dataset)
    key = options_key(options)
    keys = samples.select(pl.col("sample_id").cast(pl.Utf8), pl.col("content_hash").cast(pl.Utf8))
    cached, missing = store.cached_pass_rows(dataset, sample_pass.name, sample_pass.version, key, keys)
    parts = [] if cached is None else [conform(cached, sample_pass.schema)]
    if missing.height:
        todo = samples.join(missing.select("sample_id"), on="sample_id", how="semi", maintain_order="left")
        inputs = pass_inputs(store, dataset, sample_pass, todo)
        fn = sample_pass.bound(options)
        computed = (executor or pass_executor(sample_pass)).map_batches(
            fn, inputs, batch_rows=sample_pass.batch_rows or DEFAULT_BATCH_ROWS, progress=progress,
            stage=sample_pass.title or sample_pass.name)
        computed = conform(computed, sample_pass.schema)
        try:
            store.save_pass_rows(dataset, sample_pass.name, sample_pass.version, key, missing, computed)
        except StoreConflict:
            pass  # another run saved these samples first (the cache keeps its entries); these rows are as right
        parts.append(computed)
    if not parts:
        return sample_pass.empty()
    rows = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
    order = keys.select("sample_id").with_row_index("_pos")
    return (rows.join(order, on="sample_id", how="inner", maintain_order="left")
            .sort("_pos", maintain_order=True).drop("_pos"))
