"""One executor interface for the heavy per-sample maps (issue 18): in-process by default, Ray when asked.

A *map* is ``fn(batch: pl.DataFrame) -> pl.DataFrame``: a module-level function (so another process or a
Ray worker can import it by name) whose output rows depend only on the rows of its input batch — per-sample
findings, signatures, vectors. :meth:`Executor.map_batches` cuts a frame into batches, runs ``fn`` on each
and returns the concatenated outputs **in input order** (batch by batch), so every backend gives the same
frame for the same input.

- :class:`LocalExecutor` (the default): small inputs run inline; larger ones on a pool of worker processes,
  one per local core (the maps are Python-bound: threads would share one core through the GIL), started on the
  first such map and kept for the process's life; inside the Streamlit server too (its workers skip the app
  script that Streamlit made ``__main__``, see :func:`spawn_safe`).
- ``core.executor_ray.RayExecutor``: Ray Data ``map_batches`` over Parquet shards of the input, results
  written back as Parquet and read in order; chosen when ``QUALITY_RAY_ADDRESS`` is set (``local`` starts a
  Ray instance on this machine). Ray is an optional extra (``requirements-scale.txt``).

:func:`get_executor` picks one from the environment. Nothing here touches the store: callers load the
results into it in one transaction.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.context
import multiprocessing.spawn
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

import polars as pl

BatchFn = Callable[[pl.DataFrame], pl.DataFrame]
#: ``progress(stage, fraction)`` as jobs report it (:mod:`core.jobs.base`); may raise to cancel.
Progress = Callable[[str, float], Any]

#: Default rows per batch: large enough that a process hop (pickling a batch both ways) is noise next to the
#: work on it, small enough that a progress bar moves and a batch's working set stays in tens of MB.
DEFAULT_BATCH_ROWS = 20_000
#: Below this many rows a local map runs inline: starting worker processes (each imports polars and the
#: check code, ~1-2 s) costs more than it saves.
POOL_MIN_ROWS = 40_000
ENV_RAY_ADDRESS = "QUALITY_RAY_ADDRESS"
ENV_WORKERS = "QUALITY_WORKERS"


class Executor(Protocol):
    name: str

    def map_batches(self, fn: BatchFn, frame: pl.DataFrame, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                    progress: Progress | None = None, stage: str = "") -> pl.DataFrame:
        """``fn`` over ``frame`` in batches of ``batch_rows``; the outputs concatenated in input order."""


def batches(frame: pl.DataFrame, batch_rows: int) -> Iterator[pl.DataFrame]:
    """``frame`` cut into consecutive slices of at most ``batch_rows`` rows (none for an empty frame)."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows!r}")
    for start in range(0, frame.height, batch_rows):
        yield frame.slice(start, batch_rows)


def concat(parts: list[pl.DataFrame], fn: BatchFn, empty: pl.DataFrame) -> pl.DataFrame:
    """The outputs of a map, one frame (``fn`` on an empty batch gives the schema when there are none)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return fn(empty)
    return pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done / total if total else 1.0)


class LocalExecutor:
    """Batches inline, or on ``workers`` processes (default: one per core; ``QUALITY_WORKERS`` overrides)."""

    name = "local"

    def __init__(self, workers: int | None = None, pool_min_rows: int = POOL_MIN_ROWS):
        env = os.environ.get(ENV_WORKERS)
        self.workers = max(1, int(workers or (int(env) if env else 0) or os.cpu_count() or 1))
        self.pool_min_rows = pool_min_rows

    def map_batches(self, fn: BatchFn, frame: pl.DataFrame, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                    progress: Progress | None = None, stage: str = "") -> pl.DataFrame:
        parts_in = list(batches(frame, batch_rows))
        total = len(parts_in)
        out: list[pl.DataFrame] = []
        if self.workers == 1 or frame.height < self.pool_min_rows or total < 2:
            for i, part in enumerate(parts_in):
                out.append(fn(part))
                _report(progress, stage, i + 1, total)
            return concat(out, fn, frame.clear())
        pool = _shared_pool(self.workers)
        futures = [pool.submit(fn, part) for part in parts_in]
        try:
            for i, future in enumerate(futures):
                out.append(future.result())
                _report(progress, stage, i + 1, total)
        except BrokenProcessPool:
            _drop_pool(pool)  # a worker died (killed, out of memory): the next map starts a fresh pool
            raise
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return concat(out, fn, frame.clear())


def spawn_safe() -> bool:
    """Whether a spawned process may re-run the parent's ``__main__``, as ``multiprocessing`` has it do first.
    Imported by name (``python -m core``) or from the script that was started (guarded by ``if __name__ ==
    "__main__"``), that is harmless. Streamlit replaces ``__main__`` with the app's script, a module no loader
    made (``__loader__`` None): a worker would run the whole app (found in a real server: the pool broke on the
    first map). The executor's own workers are then started without it (:class:`ExecutorWorker`)."""
    main = sys.modules.get("__main__")
    if main is None or getattr(getattr(main, "__spec__", None), "name", None):
        return True
    return getattr(main, "__file__", None) is None or getattr(main, "__loader__", None) is not None


class ExecutorWorker(multiprocessing.context.SpawnProcess):
    """A pool worker (named ``ExecutorWorker-N``) that skips the parent's ``__main__`` where re-running it is not
    safe. The maps are module-level functions of importable modules (the module docstring), so a worker never needs
    the parent's main; ``multiprocessing`` has no option to leave it out, hence the filter on the preparation data
    of these processes only (:func:`_preparation_data`)."""


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = ExecutorWorker


_STDLIB_PREPARATION_DATA = multiprocessing.spawn.get_preparation_data


def _preparation_data(name: str) -> dict:
    data = _STDLIB_PREPARATION_DATA(name)
    if str(name).startswith(ExecutorWorker.__name__ + "-") and not spawn_safe():
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


# One pool per process and size, kept between maps: starting workers (spawn, then importing polars and the check
# code) costs 1-3 s, which a per-call pool paid on every pass of every job. Shut down when the process exits.
_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _shared_pool(workers: int) -> ProcessPoolExecutor:
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            # spawn: the caller may be a server thread beside DuckDB's own threads, which fork would copy mid-state.
            multiprocessing.spawn.get_preparation_data = _preparation_data  # (idempotent) see ExecutorWorker
            pool = _POOLS[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=_WorkerContext())
        return pool


def _drop_pool(pool: ProcessPoolExecutor) -> None:
    with _POOLS_LOCK:
        for key, held in list(_POOLS.items()):
            if held is pool:
                del _POOLS[key]
    pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def shutdown_pools() -> None:
    """Stop the worker processes of every shared pool (at exit; tests may call it)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def remote_executor() -> Executor | None:
    """The Ray executor when ``QUALITY_RAY_ADDRESS`` is set, else None: for work that already uses every local core
    (an embedding model), where a local process pool would only add a hop."""
    return get_executor() if os.environ.get(ENV_RAY_ADDRESS, "").strip() else None


def get_executor() -> Executor:
    """The executor the environment asks for: Ray at ``QUALITY_RAY_ADDRESS`` when set, else local."""
    address = os.environ.get(ENV_RAY_ADDRESS, "").strip()
    if address:
        from core.executor_ray import RayExecutor

        return RayExecutor(address)
    return LocalExecutor()
