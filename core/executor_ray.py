"""The Ray backend of :mod:`core.executor`: Ray Data ``map_batches`` over Parquet shards on a spill directory.

``RayExecutor(address).map_batches(fn, frame)`` writes ``frame`` (plus a row-number column) as Parquet shards of
``batch_rows`` rows into a fresh directory under the *spill directory* and maps them with
``ray.data.read_parquet(...).map_batches(..., batch_format="pyarrow")``: one read task a shard, so each call of
``fn`` gets the batch :class:`core.executor.LocalExecutor` would give it (a shard larger than Ray Data's 128 MiB
block may come in parts, each mapped on its own and kept in order). Each task writes ``fn``'s output
for its shard as a Parquet file named by the shard's first row and hands the driver one small row of counts; the
driver reports progress as those arrive (a raising ``progress`` cancels the run there), then reads the outputs
back in row order, concatenates them as the local executor does, and removes the directory.

**On a cluster the spill directory must be a filesystem every node sees at the same path** (NFS, a shared volume):
the server writes the shards, the workers read them and write their outputs, the server reads those.
``QUALITY_RAY_SPILL_DIR`` sets it (default: the system temporary directory, right for ``local`` and ``auto`` only);
the server must itself be a node of the cluster (Ray Data does not run through Ray Client, ``ray://``). The workers
need the same Python packages as the server (``requirements-scale.txt``); the project's ``core`` package itself is
shipped to them with the job (``runtime_env`` ``py_modules``), so they import the map functions by name.

A process connects to one Ray cluster, once: the first executor to connect wins, and a process where Ray is
already initialised (a notebook, the tests) maps on that connection as it is. Several server threads may map at
the same time: each map has its own directory and its own Ray Data dataset.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import polars as pl

from core.executor import (
    DEFAULT_BATCH_ROWS,
    ENV_RAY_ADDRESS,
    BatchFn,
    Progress,
    batches,
    concat,
)

ENV_SPILL_DIR = "QUALITY_RAY_SPILL_DIR"
#: The row-number column carried through the shards (an input frame may not have a column of this name).
ROW = "__quality_row"
#: Seconds to wait for a cluster's port before calling it unreachable (``ray.init`` itself retries for minutes).
CONNECT_TIMEOUT_S = 5.0
#: What each map task hands the driver: one row per shard.
STATS = ("first_row", "rows_in", "rows_out", "error")
ADDRESS_FORMS = "local, auto or HOST:PORT (the head node's address)"

_log = logging.getLogger(__name__)


class RayExecutorError(RuntimeError):
    """Ray is asked for (``QUALITY_RAY_ADDRESS``) but is not installed, or its cluster cannot be reached."""


def _ray() -> Any:
    try:
        import ray
        import ray.data  # the [data] extra
    except ImportError as exc:
        raise RayExecutorError(
            f"{ENV_RAY_ADDRESS} is set, but Ray is not installed in this environment ({exc}): install it with "
            f"`pip install -r requirements-scale.txt`, or unset {ENV_RAY_ADDRESS} to map in-process") from None
    return ray


def spill_root() -> Path:
    """The directory map inputs and outputs are spilled under (``QUALITY_RAY_SPILL_DIR``, else the temp dir)."""
    return Path(os.environ.get(ENV_SPILL_DIR) or tempfile.gettempdir())


def cluster_endpoint(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a cluster's address (``head:6379``); None for ``local`` and ``auto``."""
    if address in ("local", "auto"):
        return None
    if address.startswith("ray://"):
        # Ray Data needs a driver with a core worker, which a Ray Client connection does not have
        # (ray-project/ray#48682: "'Worker' object has no attribute 'core_worker'" at the first map).
        raise ValueError(f"{ENV_RAY_ADDRESS}={address!r}: Ray Data does not run through Ray Client (ray://); run "
                         f"the server on a node of the cluster and give the head's address, HOST:6379")
    parts = urlsplit(f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if "://" in address or not parts.hostname or port is None:
        raise ValueError(f"{ENV_RAY_ADDRESS}={address!r}: expected {ADDRESS_FORMS}")
    return parts.hostname, port


def _check_reachable(address: str) -> None:
    endpoint = cluster_endpoint(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayExecutorError(
            f"{ENV_RAY_ADDRESS}={address!r}: no Ray cluster answers at {endpoint[0]}:{endpoint[1]} ({exc}); start "
            f"it (`ray start --head`), fix the address, or unset {ENV_RAY_ADDRESS} to map in-process") from None


# One connection per process. ray.init runs on a thread of its own that lives as long as the connection: the
# processes a local instance starts are bound to the *thread* that started them (Linux PR_SET_PDEATHSIG), so a
# Ray started from a job thread that then ends would go down with it.
_connect_lock = threading.Lock()
_owner_stop: threading.Event | None = None
# Planning a read (``read_parquet``: resolving the paths) imports modules on first use (fsspec's HTTP filesystem);
# two threads planning their first maps at once saw a half-imported module (ImportError). Planning takes
# milliseconds: one at a time; the maps themselves still run side by side.
_plan_lock = threading.Lock()


def _runtime_env() -> dict[str, Any]:
    return {"py_modules": [str(Path(__file__).resolve().parent)], "excludes": ["__pycache__", "*.pyc"]}


def _configure_ray_data(ray: Any) -> None:
    context = ray.data.DataContext.get_current()
    # A server's log is no place for progress bars and per-dataset execution plans.
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # The V1 Parquet reader makes one read task a file (override_num_blocks = files); 2.60's default V2 reader packs
    # small files into one task in no set order and starts 32 footer-reading actors for each read.
    context.use_datasource_v2 = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def connect(address: str, *, num_cpus: int | None = None, object_store_memory: int | None = None) -> Any:
    """Connect this process to Ray at ``address`` unless it already is; returns the ``ray`` module.

    ``local`` starts an instance inside this process (``num_cpus`` and ``object_store_memory`` size it; Ray's
    defaults are every core and 30% of memory); ``auto`` attaches to one started with ``ray start`` on this machine;
    ``HOST:PORT`` is a cluster's head (its GCS port, 6379 by default), with this machine one of the cluster's nodes.
    Ray Client addresses (``ray://``) are refused: Ray Data does not run through Ray Client. Raises
    :class:`RayExecutorError` when Ray is missing or the cluster does not answer (within
    :data:`CONNECT_TIMEOUT_S` when nothing listens on the port).
    """
    global _owner_stop
    ray = _ray()
    with _connect_lock:
        if ray.is_initialized():
            _configure_ray_data(ray)
            return ray
        address = address.strip()
        _check_reachable(address)
        if cluster_endpoint(address) is not None and not os.environ.get(ENV_SPILL_DIR):
            _log.warning("%s=%s without %s: maps spill to %s, which the other nodes of a cluster do not see",
                         ENV_RAY_ADDRESS, address, ENV_SPILL_DIR, spill_root())
        kwargs: dict[str, Any] = {"address": address, "ignore_reinit_error": True, "runtime_env": _runtime_env(),
                                  "log_to_driver": False, "include_dashboard": False, "logging_level": logging.WARNING}
        if address == "local":
            kwargs.update({k: v for k, v in (("num_cpus", num_cpus), ("object_store_memory", object_store_memory))
                           if v is not None})
        ready, stop = threading.Event(), threading.Event()
        failure: list[BaseException] = []

        def own() -> None:
            try:
                ray.init(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below, which raises it
                failure.append(exc)
                ready.set()
                return
            ready.set()
            stop.wait()

        threading.Thread(target=own, name="quality-ray-owner", daemon=True).start()
        ready.wait()
        if failure:
            # ray.init's ConnectionError hides the reason (e.g. an AuthenticationError) in its cause.
            reasons = [exc for exc in (failure[0], failure[0].__cause__) if exc is not None]
            reason = "; ".join(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                               for exc in reasons)
            raise RayExecutorError(
                f"{ENV_RAY_ADDRESS}={address!r}: cannot connect to Ray ({reason}); check the cluster, that it runs "
                f"the Ray of requirements-scale.txt and, with token authentication, RAY_AUTH_MODE=token and the "
                f"cluster's token here; or unset {ENV_RAY_ADDRESS}") from failure[0]
        _owner_stop = stop
        _configure_ray_data(ray)
        return ray


def shutdown() -> None:
    """Disconnect this process from Ray (a ``local`` instance stops)."""
    global _owner_stop
    ray = _ray()
    with _connect_lock:
        ray.shutdown()
        if _owner_stop is not None:
            _owner_stop.set()
            _owner_stop = None


def _map_shard(table: Any, *, fn: BatchFn, out_dir: str, batch_rows: int) -> Any:
    """Ray Data UDF: ``fn`` on each shard in ``table`` (a ``pyarrow.Table``), its output saved as
    ``<out_dir>/<first row>.parquet``; returns a row of :data:`STATS` per shard (``fn``'s exception pickled)."""
    import pyarrow as pa
    from ray import cloudpickle

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    # A block is one shard (one read task reads one file); grouping by shard only guards against Ray ever handing
    # over two at once, or part of one: a part is mapped on its own and named by its own first row.
    shard = f"{ROW}_shard"
    pieces = frame.with_columns((pl.col(ROW) // batch_rows).alias(shard)).partition_by(
        shard, maintain_order=True, include_key=False)
    stats: dict[str, list[Any]] = {key: [] for key in STATS}

    def record(*values: Any) -> None:
        for key, value in zip(STATS, values):
            stats[key].append(value)

    for piece in pieces:
        first = int(piece[ROW][0])
        try:
            out = fn(piece.drop(ROW))
            if out is not None:
                target = Path(out_dir) / f"{first:012d}.parquet"
                # Written aside, then renamed: a retried task or a cancelled run never leaves half a file to read.
                scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
                out.write_parquet(scratch)
                os.replace(scratch, target)
        except Exception as exc:  # noqa: BLE001 - re-raised by the driver
            # Handed back as data, so the caller gets fn's own exception (as from the local executor's pool),
            # not Ray's wrapper of it.
            exc.add_note(f"(raised on a Ray worker, in the batch from row {first})\n{traceback.format_exc()}")
            try:
                error = cloudpickle.dumps(exc)
            except Exception:  # noqa: BLE001 - an exception that does not pickle: its type and message
                error = cloudpickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
            record(first, 0, -1, error)
            break
        record(first, piece.height, -1 if out is None else out.height, None)
    types = (pa.int64(), pa.int64(), pa.int64(), pa.binary())
    return pa.table({key: pa.array(stats[key], t) for key, t in zip(STATS, types)})


class RayExecutor:
    """Maps on Ray at ``address`` (see :func:`connect`) through Parquet shards under :func:`spill_root`.

    Building one checks that Ray is installed and the address well formed; the connection is made by the first
    map (or :meth:`connect`). ``num_cpus`` / ``object_store_memory`` size a ``local`` instance. ``fn``'s output
    must be storable as Parquet (no ``pl.Object`` columns).
    """

    name = "ray"

    def __init__(self, address: str, *, num_cpus: int | None = None, object_store_memory: int | None = None):
        _ray()
        self.address = (address or "").strip()
        if not self.address:
            raise ValueError(f"{ENV_RAY_ADDRESS}: expected {ADDRESS_FORMS}, got {address!r}")
        cluster_endpoint(self.address)
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory

    def __repr__(self) -> str:
        return f"RayExecutor({self.address!r})"

    def connect(self) -> Any:
        return connect(self.address, num_cpus=self.num_cpus, object_store_memory=self.object_store_memory)

    def map_batches(self, fn: BatchFn, frame: pl.DataFrame, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                    progress: Progress | None = None, stage: str = "") -> pl.DataFrame:
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, got {batch_rows!r}")
        if ROW in frame.columns:
            raise ValueError(f"frame has a column named {ROW!r}, which the Ray executor uses for row order")
        if frame.height == 0:
            return concat([], fn, frame.clear())
        ray = self.connect()
        root = spill_root()
        root.mkdir(parents=True, exist_ok=True)
        spill = Path(tempfile.mkdtemp(prefix="quality-ray-", dir=root))
        try:
            in_dir, out_dir = spill / "in", spill / "out"
            in_dir.mkdir()
            out_dir.mkdir()
            shards = 0
            for shards, part in enumerate(batches(frame.with_row_index(ROW), batch_rows), start=1):
                part.write_parquet(in_dir / f"{shards - 1:08d}.parquet")
            # batch_size=None: a call gets a whole block, i.e. one shard, and the read fuses with the map (with an
            # int batch_size Ray 2.60 runs them as two operators and every shard passes through the object store).
            with _plan_lock:
                dataset = ray.data.read_parquet(str(in_dir), override_num_blocks=shards).map_batches(
                    _map_shard, fn_kwargs={"fn": fn, "out_dir": str(out_dir), "batch_rows": batch_rows},
                    batch_format="pyarrow", batch_size=None)
            done = 0
            outputs: dict[int, int] = {}
            # A shard's counts arrive as it finishes. Leaving this loop (fn failed, progress raised) stops the run:
            # Ray Data shuts the dataset's execution down.
            for stats in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                for first, rows_in, rows_out, error in zip(*(stats[key].to_pylist() for key in STATS)):
                    if error is not None:
                        raise ray.cloudpickle.loads(error)
                    done += rows_in
                    outputs[first] = rows_out
                if progress is not None:
                    progress(stage, min(done, frame.height) / frame.height)
            if done != frame.height:
                raise RuntimeError(f"Ray mapped {done} of {frame.height} rows: a shard was lost or mapped twice")
            parts = [pl.read_parquet(out_dir / f"{first:012d}.parquet")
                     for first, rows_out in sorted(outputs.items()) if rows_out >= 0]
            return concat(parts, fn, frame.clear())
        finally:
            shutil.rmtree(spill, ignore_errors=True)
