"""The connection manager: one DuckDB connection per process, a cursor per thread, transactions, parameters.

Every store module (one per table family) is a mixin over :class:`Database`; values reach SQL only
as query parameters (``?`` or :class:`_Params`), and the few identifiers that are not fixed (none
come from users) are quoted by :func:`_quote_ident`.

Concurrency model
-----------------
DuckDB lets one *process* open a database file for writing. A long-lived connection in the
Streamlit app would lock the CLI out for as long as the app runs, so the store opens the file
only while work is under way: the first operation opens one process-wide connection, every
thread works on its own ``cursor()`` of it, and when the last operation of the process ends the
connection is closed and the file lock released (one connection per process, a cursor per
thread, short-lived). A process that finds the file locked by another retries for
``busy_timeout`` seconds and then raises :class:`StoreBusy` with a plain message. Every write
is one transaction: it commits whole or not at all.

Errors
------
No DuckDB exception leaves a store operation: :meth:`Database.cursor` (and so every
``transaction()``) turns one raised by a store statement into :class:`StoreConflict` (a commit
or insert that lost a race with a concurrent write), :class:`StoreBusy` (a file lock) or
:class:`StoreError`. SQL a caller runs itself on a cursor it was handed keeps DuckDB's error.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import time
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import polars as pl

from core.store.errors import StoreBusy, StoreConflict, StoreError

DEFAULT_DB_PATH = Path("data") / "quality.duckdb"

DEFAULT_BUSY_TIMEOUT = 15.0

# After the last operation of a process ends, the file stays open this long before the lock is
# released: bursts of operations (a page run, a review save) then open the file once, while
# another process still gets the lock a fraction of a second after this one goes idle.
DEFAULT_LINGER = 0.3

_IDENT_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote_ident(name: str) -> str:
    """Quote an identifier for SQL. Only internal, fixed names reach this; user names never do."""
    if not _IDENT_OK.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return '"' + name + '"'


def _frame(cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
    """Run a query on ``cur`` and return the whole result as a polars DataFrame (via Arrow)."""
    return pl.from_arrow(cur.sql(sql, params=list(params) if params else None).to_arrow_table())


def _first(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of a pending result (fetched to the end, so the cursor is free again)."""
    rows = result.fetchall()
    return rows[0] if rows else None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


_PARAM_NAME = re.compile(r"\$(v\d+)(?!\d)")


class _Params:
    """Named query parameters collected while a statement is built: ``p(value)`` gives ``$vNNNN``.

    Values only ever reach SQL through here; :meth:`bind` picks the ones a statement uses.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        name = f"v{len(self.values):04d}"
        self.values[name] = value
        return "$" + name

    def bind(self, sql: str) -> dict[str, Any]:
        return {k: self.values[k] for k in dict.fromkeys(_PARAM_NAME.findall(sql))}

    def execute(self, cur: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
        return cur.execute(sql, self.bind(sql))




@contextmanager
def _store_errors() -> Iterator[None]:
    """Translate a DuckDB error raised by a store statement into the store's own exceptions.

    A lost race (DuckDB's transaction conflict, or the primary key hit by a concurrent insert)
    is :class:`StoreConflict`; a file lock :class:`StoreBusy`; anything else :class:`StoreError`.
    SQL a caller runs on a cursor it was handed is translated too: no DuckDB exception leaves the package.
    """
    try:
        yield
    except duckdb.Error as exc:
        if isinstance(exc, (duckdb.TransactionException, duckdb.ConstraintException)):
            raise StoreConflict(f"a concurrent write to the same rows came first; this one was rolled back "
                                f"({exc})") from exc
        if _is_lock_error(exc):
            raise StoreBusy(f"store busy: the file is being written by another process ({exc})") from exc
        raise StoreError(f"the store could not complete the operation: {exc}") from exc


class Database:
    """The connection manager every store module builds on. Create a store with
    :func:`core.store.open_store`; share one per process.

    Thread-safe: each thread gets its own cursor. Opening the file waits up to
    ``busy_timeout`` seconds for another process to release it, then raises :class:`StoreBusy`.
    """

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                 linger: float = DEFAULT_LINGER):
        self.path = str(path)
        self.busy_timeout = float(busy_timeout)
        self.linger = float(linger)
        self._idle_timer: threading.Timer | None = None
        self.in_memory = self.path == ":memory:"
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._users = 0
        self._local = threading.local()
        if not self.in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        _OPEN_STORES.add(self)
        self.migrate()

    def migrate(self) -> int:
        """Apply pending schema migrations (:class:`core.store.schema.Schema` provides this)."""
        raise NotImplementedError

    # -- connection management ----------------------------------------------------------------
    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.02
        while True:
            try:
                return duckdb.connect(self.path)
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    raise StoreError(f"cannot open store {self.path}: {exc}") from exc
                if time.monotonic() >= deadline:
                    holder = re.search(r"\(PID (\d+)\)", str(exc))
                    who = f" (process {holder.group(1)})" if holder else ""
                    raise StoreBusy(
                        f"store busy: {self.path} is being written by another process{who}; "
                        f"waited {self.busy_timeout:.0f} s. Try again when it finishes."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except duckdb.Error as exc:  # not a DuckDB file, a newer storage format...
                raise StoreError(f"cannot open store {self.path}: {exc}") from exc

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for this thread; nested calls in one thread share it.

        A DuckDB error raised while it is in use comes out as a store error (see :func:`_store_errors`).
        """
        local = self._local
        if getattr(local, "depth", 0):
            local.depth += 1
            try:
                with _store_errors():
                    yield local.cur
            finally:
                local.depth -= 1
            return
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            if self._con is None:
                self._con = self._open()
            self._users += 1
            cur = self._con.cursor()
        local.cur, local.depth = cur, 1
        try:
            with _store_errors():
                yield cur
        finally:
            local.depth = 0
            local.cur = None
            cur.close()
            with self._lock:
                self._users -= 1
                if self._users == 0 and not self.in_memory and self._con is not None:
                    # Last user in this process: release the file lock for other processes,
                    # after a short linger so that a burst of operations opens the file once.
                    if self.linger <= 0:
                        self._release()
                    else:
                        self._idle_timer = threading.Timer(self.linger, self._release_if_idle)
                        self._idle_timer.daemon = True
                        self._idle_timer.start()

    def _release(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _release_if_idle(self) -> None:
        with self._lock:
            if self._users == 0:
                self._idle_timer = None
                self._release()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor inside BEGIN/COMMIT; any exception rolls the whole transaction back.

        Nested use inside an open transaction joins it (no savepoints in DuckDB).
        """
        with self.cursor() as cur:
            if getattr(self._local, "in_tx", False):
                yield cur
                return
            cur.execute("BEGIN TRANSACTION")
            self._local.in_tx = True
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except duckdb.Error:
                    pass  # the transaction was already aborted by DuckDB itself
                raise
            finally:
                self._local.in_tx = False

    def close(self) -> None:
        """Close the process connection now (releases the file lock without waiting for the linger)."""
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            self._release()

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        """Run a read query with parameters and return a polars DataFrame."""
        with self.cursor() as cur:
            return _frame(cur, sql, params or [])

    def _scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        with self.cursor() as cur:
            row = _first(cur.execute(sql, params or []))
            return None if row is None else row[0]


_OPEN_STORES: "weakref.WeakSet[Database]" = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    """Close lingering connections at interpreter exit (checkpoints the WAL cleanly)."""
    for store in list(_OPEN_STORES):
        try:
            store.close()
        except Exception:  # exiting anyway; never mask the real exit status
            pass


def default_db_path() -> Path:
    """``$QUALITY_DB`` if set, else ``data/quality.duckdb`` under the current directory."""
    env = os.environ.get("QUALITY_DB")
    return Path(env) if env else DEFAULT_DB_PATH
