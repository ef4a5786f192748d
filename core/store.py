"""The DuckDB store: the only module that holds the connection and speaks SQL.

Every other ``core`` module takes the :class:`Store` returned by :func:`open_store` and calls
its methods; pages never see SQL. All values travel as query parameters (``?``); the few
identifiers that are not fixed (none come from users) are quoted by :func:`_quote_ident`.

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
"""

from __future__ import annotations

import atexit
import json
import os
import re
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import numpy as np
import polars as pl

from core.auth import authorize
from core.roles import ROLES_THAT_WRITE, Action, PermissionDenied  # noqa: F401 (re-exported)

DEFAULT_DB_PATH = Path("data") / "quality.duckdb"
DEFAULT_BUSY_TIMEOUT = 15.0
# After the last operation of a process ends, the file stays open this long before the lock is
# released: bursts of operations (a page run, a review save) then open the file once, while
# another process still gets the lock a fraction of a second after this one goes idle.
DEFAULT_LINGER = 0.3
#: The text columns of a sample, in the order every module joins them.
TEXT_FIELDS: tuple[str, ...] = ("instruction", "input", "output", "text")


class StoreError(Exception):
    """Base class of errors the store raises with a message meant for a user."""


class StoreBusy(StoreError):
    """Another process holds the database file for writing and did not release it in time."""


class UnknownDataset(StoreError, KeyError):
    """A dataset name that the store does not hold."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown dataset"




# ---------------------------------------------------------------------------------------------
# Schema migrations: numbered steps, each applied once inside its own transaction.
# ---------------------------------------------------------------------------------------------
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "initial schema",
        [
            """CREATE TABLE datasets (
                name VARCHAR PRIMARY KEY,
                labels VARCHAR[] NOT NULL,
                settings JSON,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            # No primary keys on the bulk tables: an ART index makes million-row imports several
            # times slower; ingest enforces (dataset, sample_id) uniqueness by anti-join instead.
            # Imports insert rows sorted by sample_id, so DuckDB's per-row-group min/max (zone
            # maps) let a one-sample lookup skip most of a large table.
            """CREATE TABLE samples (
                dataset VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                instruction VARCHAR,
                input VARCHAR,
                output VARCHAR,
                text VARCHAR,
                batch VARCHAR,
                round INTEGER,
                content_hash VARCHAR NOT NULL,
                meta JSON,
                excluded BOOLEAN NOT NULL DEFAULT FALSE,
                import_id INTEGER,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE annotations (
                dataset VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                annotator VARCHAR NOT NULL,
                label VARCHAR NOT NULL,
                confidence DOUBLE,
                import_id INTEGER,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE predictions (
                dataset VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                round INTEGER NOT NULL,
                model VARCHAR,
                predicted VARCHAR NOT NULL,
                confidence DOUBLE,
                probs DOUBLE[],
                import_id INTEGER,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            "CREATE SEQUENCE review_seq START 1",
            """CREATE TABLE reviews (
                review_id BIGINT NOT NULL DEFAULT nextval('review_seq'),
                dataset VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                version INTEGER NOT NULL,
                base_version INTEGER NOT NULL,
                reviewer VARCHAR NOT NULL,
                old_label VARCHAR,
                new_label VARCHAR NOT NULL,
                reason VARCHAR,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
                PRIMARY KEY (dataset, sample_id, version)
            )""",
            "CREATE SEQUENCE audit_seq START 1",
            """CREATE TABLE audit_log (
                audit_id BIGINT NOT NULL DEFAULT nextval('audit_seq'),
                logged_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
                actor VARCHAR NOT NULL,
                action VARCHAR NOT NULL,
                dataset VARCHAR,
                sample_id VARCHAR,
                old_value VARCHAR,
                new_value VARCHAR,
                detail JSON
            )""",
            """CREATE TABLE embeddings (
                model_id VARCHAR NOT NULL,
                content_hash VARCHAR NOT NULL,
                vector FLOAT[] NOT NULL,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
                PRIMARY KEY (model_id, content_hash)
            )""",
            "CREATE SEQUENCE import_seq START 1",
            """CREATE TABLE imports (
                import_id INTEGER PRIMARY KEY,
                dataset VARCHAR NOT NULL,
                file VARCHAR NOT NULL,
                file_sha256 VARCHAR NOT NULL,
                format VARCHAR NOT NULL,
                rows_total BIGINT NOT NULL,
                rows_ok BIGINT NOT NULL,
                rows_bad BIGINT NOT NULL,
                samples_new BIGINT NOT NULL,
                annotations_new BIGINT NOT NULL,
                annotations_changed BIGINT NOT NULL,
                predictions_new BIGINT NOT NULL,
                actor VARCHAR NOT NULL,
                imported_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE import_errors (
                import_id INTEGER NOT NULL,
                dataset VARCHAR NOT NULL,
                file VARCHAR NOT NULL,
                row_number BIGINT,
                reason VARCHAR NOT NULL,
                raw VARCHAR
            )""",
            "CREATE SEQUENCE queue_seq START 1",
            """CREATE TABLE review_queue (
                entry_id BIGINT NOT NULL DEFAULT nextval('queue_seq'),
                dataset VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                reason VARCHAR NOT NULL,
                priority DOUBLE NOT NULL DEFAULT 0,
                status VARCHAR NOT NULL DEFAULT 'open',
                claimed_by VARCHAR,
                claimed_at TIMESTAMP,
                created_by VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
                resolved_at TIMESTAMP,
                detail JSON
            )""",
            """CREATE TABLE imported_round_metrics (
                dataset VARCHAR NOT NULL,
                round INTEGER NOT NULL,
                n_labeled BIGINT,
                metric VARCHAR NOT NULL,
                value DOUBLE NOT NULL,
                imported_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
        ],
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

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


def _csv_layout(path: str) -> tuple[list[str], str, list[int]]:
    """Header names, delimiter and the (1-based) numbers of blank lines of a CSV file."""
    import csv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
        candidates = "\t" if path.lower().endswith(".tsv") else ",;|\t"
        delimiter = max(candidates, key=first.count) if any(c in first for c in candidates) else ","
        header = next(csv.reader([first], delimiter=delimiter), [])
        blank_lines = [i for i, line in enumerate(fh, start=2) if not line.strip()]
    header = [h.strip() for h in header]
    if not header or all(not h for h in header):
        raise StoreError("the CSV file has no header row")
    empty = [i + 1 for i, h in enumerate(header) if not h]
    if empty:
        raise StoreError(f"the CSV header has an empty column name at position {empty[0]}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise StoreError(f"the CSV header repeats column name(s): {', '.join(dupes)}")
    return header, delimiter, blank_lines


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


# ---------------------------------------------------------------------------------------------
# Import pipeline helpers (staging table ``_stg`` / view ``_src``, see Store.stage_jsonl)
# ---------------------------------------------------------------------------------------------
#: Longest raw record kept in ``import_errors``.
RAW_LIMIT = 2000
#: Largest round number (rounds are stored as INTEGER).
MAX_ROUND = 2**31 - 1
# Unicode White_Space: what Python's and polars' strip remove; DuckDB's trim() takes the set.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + \
    "\u2028\u2029\u202f\u205f\u3000"
_CONTENT_HASH = ("sha256(concat_ws(chr(31), coalesce({t}instruction, ''), coalesce({t}input, ''), "
                 "coalesce({t}output, ''), coalesce({t}text, '')))")
_STAGING_VIEWS = ("_src",)
_STAGING_TABLES = ("_stg", "_readbad", "_rownum", "_probs", "_k", "_bad", "_dupkeys", "_late", "_firsts",
                   "_stored", "_err", "_ann", "_pred", "_lines", "_values")


def _empty_bad() -> pl.DataFrame:
    return pl.DataFrame(schema={"__row": pl.Int64, "reason": pl.Utf8, "raw": pl.Utf8})


def _strip(expr: str) -> str:
    """SQL that strips Unicode white space from both ends of a text expression (NULL stays NULL).

    ``trim`` with a character set costs ~10x a plain read, so it runs only on values whose
    first or last character is white space (rare); ``''[1]`` is ``''``, which takes the trim.
    """
    return (f"CASE WHEN contains('{_WHITESPACE}', ({expr})[1]) OR contains('{_WHITESPACE}', ({expr})[-1]) "
            f"THEN trim({expr}, '{_WHITESPACE}') ELSE {expr} END")


@dataclass
class StagedFile:
    """A file read into the staging table: its source column names (staged as c0, c1...),
    their DuckDB types, the number of rows read, and the records the reader could not parse
    (``__row, reason, raw``). ``fast`` tells whether a JSON-lines file took the one-read path."""

    columns: list[str]
    types: list[str]
    rows: int
    bad: pl.DataFrame
    fast: bool = True


def _text(staged: StagedFile, i: int) -> str:
    """Staged column ``i`` as text: lists, structs and maps as JSON, other types cast."""
    col, kind = f"c{i}", staged.types[i]
    if kind == "VARCHAR":
        return col
    if kind.endswith("]") or kind.startswith(("STRUCT", "MAP", "UNION")):
        return f"CAST(to_json({col}) AS VARCHAR)"
    return f"CAST({col} AS VARCHAR)"


def _present(staged: StagedFile, columns: Sequence[int]) -> str:
    """SQL true for a staged row where any of ``columns`` has a value (not null, not blank)."""
    return " OR ".join(f"({_strip(_text(staged, i))} <> '')" for i in columns)


@dataclass
class ImportPlan:
    """How staged columns feed the store, for :meth:`Store.import_staged`.

    ``fields`` maps target fields (``id``, ``instruction``, ``label``, ``round``... as in
    :class:`core.ingest.ColumnMapping`) to a staged column index; ``wide`` lists
    ``(annotator, index)`` of wide label columns; ``meta`` the indexes kept as the sample's
    JSON metadata; ``has_probs`` says that :meth:`Store.stage_probabilities` was called.
    """

    fields: dict[str, int | None]
    labels: list[str]
    wide: list[tuple[str, int]] = field(default_factory=list)
    meta: list[int] = field(default_factory=list)
    has_probs: bool = False
    pred_round: int | None = None
    model: str | None = None
    default_annotator: str = "default"

    @property
    def key_annotator(self) -> bool:
        return self.fields.get("annotator") is not None

    @property
    def key_pred_round(self) -> bool:
        return self.fields.get("pred_round") is not None


# A number as text: decimal with optional exponent, or inf / infinity / nan (any case).
_NUMBER = r"[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)"
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


@dataclass
class DatasetInfo:
    """One dataset: its name, ordered label set and settings (e.g. ``confidence_threshold``)."""

    name: str
    labels: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


class Store:
    """A DuckDB-backed store. Create it with :func:`open_store`; share one per process.

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

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for this thread; nested calls in one thread share it."""
        local = self._local
        if getattr(local, "depth", 0):
            local.depth += 1
            try:
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

    # -- migrations ---------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending schema migrations; return the schema version now in force."""
        with self.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "description VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)"
            )
            current = _first(cur.execute("SELECT coalesce(max(version), 0) FROM schema_version"))[0]
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {current}, newer than this code "
                    f"({SCHEMA_VERSION}); upgrade the app"
                )
        for version, description, steps in MIGRATIONS:
            if version <= current:
                continue
            with self.transaction() as cur:
                for step in steps:
                    cur.execute(step)
                cur.execute(
                    "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                    [version, description],
                )
        return SCHEMA_VERSION

    def schema_version(self) -> int:
        return int(self._scalar("SELECT max(version) FROM schema_version") or 0)

    # -- datasets -----------------------------------------------------------------------------
    def list_datasets(self) -> pl.DataFrame:
        """Datasets with their label sets and sample counts, newest first."""
        return self.query_df(
            """SELECT d.name, d.labels, d.created_at,
                      (SELECT count(*) FROM samples s WHERE s.dataset = d.name) AS n_samples
               FROM datasets d ORDER BY d.created_at DESC, d.name"""
        )

    def dataset_names(self) -> list[str]:
        with self.cursor() as cur:
            return [r[0] for r in cur.execute("SELECT name FROM datasets ORDER BY name").fetchall()]

    def get_dataset(self, name: str) -> DatasetInfo:
        """The dataset ``name``; raises :class:`UnknownDataset` if there is none."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                "SELECT name, labels, settings, created_at FROM datasets WHERE name = ?", [name]
            ))
        if row is None:
            raise UnknownDataset(f"unknown dataset {name!r}")
        settings = json.loads(row[2]) if row[2] else {}
        return DatasetInfo(name=row[0], labels=list(row[1]), settings=settings, created_at=row[3])

    def has_dataset(self, name: str) -> bool:
        return self._scalar("SELECT count(*) FROM datasets WHERE name = ?", [name]) > 0

    def set_dataset_setting(self, name: str, key: str, value: Any, actor: str) -> None:
        """Set one setting of a dataset (e.g. ``confidence_threshold``), audited."""
        authorize(actor, Action.SETTINGS)
        with self.transaction() as cur:
            info = self.get_dataset(name)
            old = info.settings.get(key)
            info.settings[key] = value
            cur.execute(
                "UPDATE datasets SET settings = ? WHERE name = ?", [json.dumps(info.settings), name]
            )
            self._audit(cur, actor, "dataset.setting", name, None, json.dumps(old), json.dumps(value), {"key": key})

    # -- audit --------------------------------------------------------------------------------
    @staticmethod
    def _audit(
        cur: duckdb.DuckDBPyConnection,
        actor: str,
        action: str,
        dataset: str | None,
        sample_id: str | None,
        old_value: str | None,
        new_value: str | None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        cur.execute(
            "INSERT INTO audit_log (logged_at, actor, action, dataset, sample_id, old_value, new_value, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [_now(), actor, action, dataset, sample_id, old_value, new_value,
             json.dumps(detail, ensure_ascii=False) if detail else None],
        )

    def audit(self, actor: str, action: str, dataset: str | None = None, sample_id: str | None = None,
              old_value: str | None = None, new_value: str | None = None,
              detail: dict[str, Any] | None = None) -> None:
        """Append one row to the audit log in its own transaction (system actors only: every
        user action is audited by the write that performs it)."""
        authorize(actor, Action.AUDIT_NOTE)
        with self.transaction() as cur:
            self._audit(cur, actor, action, dataset, sample_id, old_value, new_value, detail)

    def audit_log(self, dataset: str | None = None, actor: str | None = None, action: str | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  sample_id: str | None = None, limit: int = 10_000) -> pl.DataFrame:
        """The audit log, newest first, filtered by any of the given fields (None = any)."""
        return self.query_df(
            """SELECT audit_id, logged_at, actor, action, dataset, sample_id, old_value, new_value, detail
               FROM audit_log
               WHERE (?::VARCHAR IS NULL OR dataset = ?)
                 AND (?::VARCHAR IS NULL OR actor = ?)
                 AND (?::VARCHAR IS NULL OR action = ?)
                 AND (?::TIMESTAMP IS NULL OR logged_at >= ?)
                 AND (?::TIMESTAMP IS NULL OR logged_at <= ?)
                 AND (?::VARCHAR IS NULL OR sample_id = ?)
               ORDER BY audit_id DESC LIMIT ?""",
            [dataset, dataset, actor, actor, action, action, since, since, until, until,
             sample_id, sample_id, int(limit)],
        )

    # -- reading files into the staging table (DuckDB's readers) -------------------------------
    #
    # An import reads its file once into the connection-local temp table ``_stg`` whose columns
    # are named c0..cN (the source names travel beside it in :class:`StagedFile`, and reach SQL
    # only as parameters), exposed with the 1-based row number as the view ``_src(__row, c0..)``.
    # Validation and the write then run as SQL over that view, so a million-row file never
    # leaves DuckDB. Every method below runs on the calling thread's cursor: call them inside
    # ``with store.staging():`` so that the temp tables live until the import is written.

    @contextmanager
    def staging(self) -> Iterator[None]:
        """Hold this thread's cursor (and so its temp tables) for one import; drop them after."""
        with self.cursor() as cur:
            try:
                yield
            finally:
                self._drop_staging(cur)

    def _drop_staging(self, cur: duckdb.DuckDBPyConnection) -> None:
        for name in _STAGING_VIEWS:
            cur.execute(f"DROP VIEW IF EXISTS {name}")
        for name in _STAGING_TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {name}")

    def stage_jsonl(self, path: str) -> StagedFile | None:
        """Stage a clean JSON-lines file in two fast passes; ``None`` if the file is not clean.

        Clean means: every line one JSON object, no byte-order mark, valid UTF-8, keys distinct
        even ignoring case. The first pass collects every top-level key of every line (DuckDB's
        own detection samples only the first lines), the second reads all of them as text.
        Blank lines are skipped by DuckDB, so the caller compares ``rows`` with the file's line
        count before trusting that row numbers are line numbers. A file that is not clean goes
        to :meth:`stage_jsonl_lines`, which names each bad line.
        """
        with self.cursor() as cur:
            self._drop_staging(cur)
            try:
                # A non-object line yields a NULL key: not clean.
                keys = [r[0] for r in cur.execute(
                    """SELECT DISTINCT unnest(CASE WHEN starts_with(ltrim(json::VARCHAR), '{')
                                              THEN json_keys(json) ELSE [NULL] END)
                       FROM read_ndjson_objects(?)""", [path]).fetchall()]
                if not keys or any(k is None for k in keys):
                    return None
                keys.sort()
                names = ", ".join(f"c{i}" for i in range(len(keys)))
                # Read as JSON (numbers, objects and arrays come as the same compact text the
                # line path gets, 1e-5 as 0.00001, not 1e-05); strings are unquoted.
                cur.execute(
                    f"""CREATE TEMP TABLE _stg ({names}) AS
                        SELECT CASE WHEN starts_with(COLUMNS(*), '"') THEN json_extract_string(COLUMNS(*), '$')
                                    ELSE CAST(COLUMNS(*) AS VARCHAR) END
                        FROM read_json(?, format = 'newline_delimited', columns = ?)""",
                    [path, {k: "JSON" for k in keys}])
                # (No maximum_object_size here: it slows every read; a line over DuckDB's
                # default 16 MB fails this path and takes the line reader, which allows 256 MB.)
            except duckdb.Error:  # malformed line, invalid UTF-8, BOM, duplicate or case-clashing keys
                self._drop_staging(cur)
                return None
            rows = _first(cur.execute("SELECT count(*) FROM _stg"))[0]
            cur.execute(f"CREATE TEMP VIEW _src AS SELECT CAST(rowid + 1 AS BIGINT) AS __row, {names} FROM _stg")
            cur.execute("CREATE TEMP TABLE _readbad (__row BIGINT, reason VARCHAR, raw VARCHAR)")
        return StagedFile(keys, ["VARCHAR"] * len(keys), rows, _empty_bad(), fast=True)

    def stage_jsonl_lines(self, path: str) -> StagedFile:
        """Read a JSON-lines file line by line, so that no malformed line fails the file.

        Staged columns are every top-level key found in any line (sorted; nested values as
        JSON text, JSON null as null); ``bad`` has ``__row, reason, raw`` for lines that are
        not a JSON object. Blank lines are skipped. Lines are read as raw text with the
        record-separator byte 0x1E as a "delimiter" (it cannot occur unescaped in valid JSON),
        so row numbers are exact line numbers; keys go to DuckDB as JSON-pointer parameters.
        """
        with self.cursor() as cur:
            self._drop_staging(cur)
            cur.execute(
                """CREATE TEMP TABLE _lines AS
                   SELECT CAST(row_number() OVER () AS BIGINT) AS __row,
                          -- a UTF-8 byte-order mark is not part of the first record
                          ltrim(line, chr(65279)) AS line
                   FROM read_csv(?, columns = {'line': 'VARCHAR'}, delim = '\x1e', quote = '',
                                 escape = '', header = false, auto_detect = false,
                                 null_padding = true, strict_mode = false,
                                 max_line_size = 268435456)""",
                [path],
            )
            keys = sorted(r[0] for r in cur.execute(
                """SELECT DISTINCT unnest(try(json_keys(line))) FROM _lines
                   WHERE left(ltrim(line), 1) = '{'"""
            ).fetchall())
            pointers = ["/" + k.replace("~", "~0").replace("/", "~1") for k in keys]
            cur.execute(
                """CREATE TEMP TABLE _values AS
                   SELECT __row, try(json_extract_string(line, ?::VARCHAR[])) AS v FROM _lines
                   WHERE left(ltrim(line), 1) = '{'""",
                [pointers],
            )
            cur.execute("DELETE FROM _values WHERE v IS NULL")
            names = ", ".join(f"c{i}" for i in range(len(keys)))
            values = ", ".join(f"v[{i + 1}]" for i in range(len(keys)))
            cur.execute(f"CREATE TEMP TABLE _stg (__row{', ' + names if keys else ''}) AS "
                        f"SELECT __row{', ' + values if keys else ''} FROM _values ORDER BY __row")
            cur.execute("CREATE TEMP VIEW _src AS SELECT * FROM _stg")
            cur.execute(
                """CREATE TEMP TABLE _readbad AS
                   SELECT l.__row,
                          CASE WHEN NOT json_valid(l.line) THEN 'malformed JSON'
                               ELSE 'not a JSON object (found ' || lower(json_type(l.line)) || ')' END
                               AS reason,
                          l.line AS raw
                   FROM _lines l ANTI JOIN _values g ON g.__row = l.__row
                   WHERE l.line IS NOT NULL AND trim(l.line, ' \t\r\n') <> ''
                   ORDER BY l.__row""")
            cur.execute("DROP TABLE _values")
            cur.execute("DROP TABLE _lines")
            rows = _first(cur.execute("SELECT count(*) FROM _stg"))[0]
            bad = _frame(cur, "SELECT * FROM _readbad ORDER BY __row")
        return StagedFile(keys, ["VARCHAR"] * len(keys), rows, bad, fast=False)

    def stage_csv(self, path: str) -> StagedFile:
        """A CSV file (header row; ``,`` ``;`` ``|`` or tab) with every column as text.

        Rows are numbered as data rows (header and blank lines not counted); records DuckDB
        cannot parse (wrong number of fields, unterminated quote...) go to ``bad``. The header
        is read by Python's csv module and handed to DuckDB as the column list (a parameter), so
        a malformed record cannot fool the dialect sniffer into reading the file as one column.
        """
        header, delimiter, blank_lines = _csv_layout(path)
        with self.cursor() as cur:
            self._drop_staging(cur)
            return self._stage_csv(cur, path, header, delimiter, blank_lines)

    def _stage_csv(self, cur: duckdb.DuckDBPyConnection, path: str, header: list[str], delimiter: str,
                   blank_lines: list[int]) -> StagedFile:
        # Reject tables accumulate per connection: start from empty ones for this file.
        cur.execute("DROP TABLE IF EXISTS reject_errors")
        cur.execute("DROP TABLE IF EXISTS reject_scans")
        names = ", ".join(f"c{i}" for i in range(len(header)))
        cur.execute(
            f"""CREATE TEMP TABLE _stg ({names}) AS
                SELECT * FROM read_csv(?, header = true, auto_detect = false, columns = ?, delim = ?,
                                       quote = '"', escape = '"', store_rejects = true,
                                       max_line_size = 268435456)""",
            [path, {name: "VARCHAR" for name in header}, delimiter])
        rejected = _frame(cur,
            """SELECT CAST(line AS BIGINT) AS line,
                      lower(error_type) || ': ' || error_message AS reason, csv_line AS raw
               FROM reject_errors WHERE scan_id = (SELECT max(scan_id) FROM reject_scans)
               ORDER BY line""")
        rows = _first(cur.execute("SELECT count(*) FROM _stg"))[0]
        # DuckDB numbers rejects by physical line; turn them into data-row numbers (header and
        # blank lines not counted), then give each accepted row the numbers left over (exact
        # when no quoted field spans several lines).
        lines = rejected["line"].to_numpy()
        bad_rows = lines - 1 - np.searchsorted(np.asarray(blank_lines, dtype=np.int64), lines)
        rejected = rejected.with_columns(pl.Series("__row", bad_rows, dtype=pl.Int64)).select(
            "__row", "reason", "raw").unique("__row", keep="first", maintain_order=True)
        cur.register("_rejected", rejected.to_arrow())
        cur.execute("CREATE TEMP TABLE _readbad AS SELECT * FROM _rejected")
        cur.unregister("_rejected")
        if rejected.height == 0:
            cur.execute(f"CREATE TEMP VIEW _src AS SELECT CAST(rowid + 1 AS BIGINT) AS __row, {names} FROM _stg")
        else:
            bad = rejected["__row"].to_numpy()
            numbers = np.setdiff1d(np.arange(1, rows + len(bad) + 1), bad)[:rows]
            cur.register("_numbers", pl.DataFrame({"i": np.arange(rows, dtype=np.int64),
                                                   "__row": numbers.astype(np.int64)}).to_arrow())
            cur.execute("CREATE TEMP TABLE _rownum AS SELECT * FROM _numbers")
            cur.unregister("_numbers")
            cur.execute(f"CREATE TEMP VIEW _src AS SELECT n.__row, {names} FROM _stg s "
                        "JOIN _rownum n ON n.i = s.rowid")
        return StagedFile(header, ["VARCHAR"] * len(header), rows, rejected, fast=True)

    def stage_parquet(self, path: str) -> StagedFile:
        """Stage a Parquet file with its own column types; rows numbered from 1 in file order."""
        with self.cursor() as cur:
            self._drop_staging(cur)
            return self._stage_parquet(cur, path)

    def _stage_parquet(self, cur: duckdb.DuckDBPyConnection, path: str) -> StagedFile:
        described = cur.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
        columns = [r[0] for r in described]
        types = [str(r[1]) for r in described]
        names = ", ".join(f"c{i}" for i in range(len(columns)))
        cur.execute(f"CREATE TEMP TABLE _stg ({names}{', ' if columns else ''}__file_row) AS "
                    "SELECT * FROM read_parquet(?, file_row_number = true)", [path])
        cur.execute(f"CREATE TEMP VIEW _src AS SELECT CAST(__file_row + 1 AS BIGINT) AS __row"
                    f"{', ' + names if columns else ''} FROM _stg")
        cur.execute("CREATE TEMP TABLE _readbad (__row BIGINT, reason VARCHAR, raw VARCHAR)")
        rows = _first(cur.execute("SELECT count(*) FROM _stg"))[0]
        return StagedFile(columns, types, rows, _empty_bad(), fast=True)

    def staged_rows(self, staged: StagedFile, limit: int | None = None) -> pl.DataFrame:
        """The first ``limit`` staged rows as a polars frame with the source column names, in
        file order (for previews; no row-number column, since any name could be a source one)."""
        if not staged.columns:
            return pl.DataFrame()
        cols = ", ".join(f"c{i}" for i in range(len(staged.columns)))
        with self.cursor() as cur:
            df = _frame(cur, f"SELECT {cols} FROM _src ORDER BY __row LIMIT ?",
                        [limit if limit is not None else staged.rows])
        return df.rename({f"c{i}": name for i, name in enumerate(staged.columns)})

    def staged_labels(self, staged: StagedFile, columns: Sequence[int]) -> set[str]:
        """The distinct non-empty stripped values of the given staged columns."""
        if not columns:
            return set()
        union = " UNION ".join(f"SELECT {_strip(_text(staged, i))} AS v FROM _src" for i in columns)
        with self.cursor() as cur:
            return {r[0] for r in cur.execute(f"SELECT DISTINCT v FROM ({union}) WHERE v <> ''").fetchall()}

    def staged_values(self, staged: StagedFile, columns: Sequence[int], limit: int | None = None) -> pl.DataFrame:
        """``__row`` plus the given staged columns (native types, named c<i>), for the rows
        where at least one of them is present (not null, not an empty string)."""
        present = _present(staged, columns)
        cols = ", ".join(f"c{i}" for i in columns)
        with self.cursor() as cur:
            return _frame(cur, f"SELECT __row, {cols} FROM _src WHERE {present} ORDER BY __row"
                               f"{' LIMIT ?' if limit is not None else ''}",
                          [limit] if limit is not None else [])

    def stage_clean_probabilities(self, staged: StagedFile, columns: Sequence[int | None], *, as_list: bool,
                                  n_labels: int, tolerance: float) -> pl.DataFrame:
        """Parse in SQL the probabilities of the rows where that is clean; return the other rows.

        With ``as_list``, ``columns`` is one staged column holding a list aligned with the label
        set (JSON text or a native list); otherwise one column per label, in label order
        (``None``: no column for that label, probability 0). A row is clean when its vector has
        one number in [0, 1] per label summing to 1 within ``tolerance``: such rows go to
        ``_probs`` here. Every other row that has a value comes back as ``__row`` plus the
        given columns (native types, named c<i>), for the caller to parse and report through
        :meth:`stage_probabilities` (objects ``{label: p}``, NaN, bad numbers...).
        """
        given = [i for i in columns if i is not None]
        present = _present(staged, given)
        if as_list:
            i = given[0]
            kind = staged.types[i]
            if kind == "VARCHAR":
                # DuckDB's JSON reader is several times faster than its list cast; JSON has no
                # NaN, so a NaN (which Python's reader takes) leaves the row to Python.
                # (It also takes a trailing comma, which Python's does not: such rows go to Python.)
                vector = f"""CASE WHEN starts_with(ltrim(c{i}), '[') AND NOT regexp_matches(c{i}, ',\\s*\\]')
                                 THEN try(json_transform(c{i}, '["DOUBLE"]')) END"""
            elif kind.endswith("]"):
                vector = f"TRY_CAST(c{i} AS DOUBLE[])"
            else:
                vector = "NULL::DOUBLE[]"
        else:
            vector = "list_value(" + ", ".join(
                "0.0::DOUBLE" if i is None else f"TRY_CAST({_strip(_text(staged, i))} AS DOUBLE)" for i in columns) + ")"
        with self.cursor() as cur:
            # Two statements: a WHERE on v in the first would be pushed down and parse v per test.
            cur.execute(f"""CREATE OR REPLACE TEMP TABLE _probs AS
                            SELECT __row, {vector} AS probs, NULL::VARCHAR AS err FROM _src WHERE {present}""")
            cur.execute(
                """DELETE FROM _probs
                   WHERE NOT coalesce(len(probs) = ? AND list_count(probs) = len(probs)
                                      AND list_min(probs) >= 0
                                      AND list_max(probs) <= 1   -- a NaN is the largest double: not clean
                                      AND abs(list_sum(probs) - 1) <= ?, false)""",
                [int(n_labels), float(tolerance)])
            cols = ", ".join(f"s.c{i}" for i in given)
            return _frame(cur, f"""SELECT s.__row, {cols} FROM _src s ANTI JOIN _probs p ON p.__row = s.__row
                                   WHERE {present} ORDER BY s.__row""")

    def stage_probabilities(self, probs: pl.DataFrame) -> None:
        """Add parsed probabilities ``__row, probs (list of float), err`` for the validation."""
        with self.cursor() as cur:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS _probs (__row BIGINT, probs DOUBLE[], err VARCHAR)")
            cur.register("_probs_in", probs.select(
                pl.col("__row").cast(pl.Int64), pl.col("probs").cast(pl.List(pl.Float64)),
                pl.col("err").cast(pl.Utf8)).to_arrow())
            cur.execute("INSERT INTO _probs SELECT * FROM _probs_in")
            cur.unregister("_probs_in")

    # -- import: validation and write as SQL over the staged rows (one transaction) ------------
    def import_staged(self, staged: StagedFile, plan: ImportPlan, *, dataset: str, file: str,
                      file_sha256: str, fmt: str, actor: str) -> tuple[dict[str, int], pl.DataFrame]:
        """Validate the staged rows against ``plan`` and write the valid ones, in one transaction.

        A row with any problem is rejected whole (its sample, annotations and prediction), with
        the first problem as its reason, in this order: its own fields (missing id, round,
        confidence, labels, probabilities), a repeated key within the file (sample id, plus the
        annotator in long form and the prediction round when mapped), text that differs from the
        first row of the same id, text that differs from the stored sample, or no text for an id
        that is neither in the file nor stored. Returns the counts written and the errors
        (``__row, reason, raw``, read errors included, by row).
        """
        authorize(actor, Action.IMPORT)
        p = _Params()
        d = p(dataset)
        # Rows still in the running: parsed fields (_k) minus rejected rows (_bad).
        ok = "(SELECT k.* FROM _k k ANTI JOIN _bad b ON b.__row = k.__row)"
        with self.transaction() as cur:
            # 1. each row's own fields, parsed once into _k (ids, labels and numbers stripped,
            # text reduced to a hash) with the row's first problem. No WHERE on this statement:
            # a filter would be pushed into the projection and re-parse each field per test.
            p.execute(cur, f"""CREATE OR REPLACE TEMP TABLE _k AS
                            SELECT *, {self._error_sql(staged, plan, p)} AS reason
                            FROM ({self._rows_sql(staged, plan, p)}) w""")
            cur.execute("CREATE OR REPLACE TEMP TABLE _bad AS SELECT __row, reason FROM _k WHERE reason IS NOT NULL")
            # 2. a key repeated within the file: the first row wins. Candidates are found by
            # grouping a 64-bit hash of the key (several times faster than grouping the strings);
            # the exact grouping then runs on those few rows only.
            key = ["sample_id"] + (["annotator"] if plan.key_annotator else []) + \
                  (["pred_round_raw"] if plan.key_pred_round else [])
            hashed = f"hash({', '.join(key)})"
            p.execute(cur, f"""CREATE OR REPLACE TEMP TABLE _dupkeys AS
                            SELECT {', '.join(key)}, min(__row) AS first_row FROM {ok} o
                            WHERE {hashed} IN (SELECT {hashed} FROM {ok} o GROUP BY 1 HAVING count(*) > 1)
                            GROUP BY ALL HAVING count(*) > 1""")
            if _first(cur.execute("SELECT count(*) FROM _dupkeys"))[0]:
                on = " AND ".join(f"o.{k} IS NOT DISTINCT FROM k.{k}" for k in key)
                p.execute(cur, f"""CREATE OR REPLACE TEMP TABLE _late AS
                                SELECT o.__row, 'duplicate id ''' || o.sample_id || ''' (first at row '
                                       || k.first_row || ')' AS reason
                                FROM {ok} o JOIN _dupkeys k ON {on} WHERE o.__row <> k.first_row""")
                cur.execute("INSERT INTO _bad SELECT __row, reason FROM _late")
            # 3. the first row with text of each id gives the sample; later rows must agree
            p.execute(cur, f"""CREATE OR REPLACE TEMP TABLE _firsts AS
                            SELECT sample_id, min(__row) AS first_row, arg_min(h, __row) AS h0,
                                   min(h) <> max(h) AS conflict
                            FROM {ok} o WHERE has_text GROUP BY sample_id""")
            has_stored = _first(cur.execute("SELECT count(*) FROM (SELECT 1 FROM samples WHERE dataset = ? LIMIT 1)",
                                            [dataset]))[0]
            if has_stored:
                p.execute(cur, f"""CREATE OR REPLACE TEMP TABLE _stored AS
                                SELECT s.sample_id, s.content_hash FROM samples s
                                SEMI JOIN {ok} o ON o.sample_id = s.sample_id WHERE s.dataset = {d}""")
            else:
                cur.execute("CREATE OR REPLACE TEMP TABLE _stored (sample_id VARCHAR, content_hash VARCHAR)")
            late = []
            if _first(cur.execute("SELECT count(*) FROM _firsts WHERE conflict"))[0]:
                late.append(f"""SELECT o.__row, 1 AS prio, 'text differs from row ' || f.first_row
                                       || ' with the same id ''' || o.sample_id || '''' AS reason
                                FROM {ok} o JOIN _firsts f ON f.sample_id = o.sample_id
                                WHERE f.conflict AND o.has_text AND o.__row <> f.first_row AND o.h <> f.h0""")
            if has_stored:
                late.append(f"""SELECT o.__row, 2 AS prio, 'sample ''' || o.sample_id
                                       || ''' is already stored with different text; not overwritten' AS reason
                                FROM {ok} o JOIN _stored st ON st.sample_id = o.sample_id
                                     JOIN ({self._bodies_sql(staged, plan)}) b ON b.__row = o.__row
                                WHERE o.has_text AND {_CONTENT_HASH.format(t='b.')} <> st.content_hash""")
            late.append(f"""SELECT o.__row, 3 AS prio, 'unknown sample id ''' || o.sample_id
                                   || ''': the row has no text and the id is not stored' AS reason
                            FROM {ok} o ANTI JOIN _stored s ON s.sample_id = o.sample_id
                                        ANTI JOIN _firsts f ON f.sample_id = o.sample_id
                            WHERE NOT o.has_text""")
            p.execute(cur, f"""CREATE OR REPLACE TEMP TABLE _late AS
                            SELECT __row, arg_min(reason, prio) AS reason
                            FROM ({' UNION ALL '.join(late)}) GROUP BY __row""")
            cur.execute("INSERT INTO _bad SELECT __row, reason FROM _late")

            # 4. what lands
            good = ok  # _bad now holds every rejected row
            samples = f"""SELECT o.sample_id, b.instruction, b.input, b.output, b.text, o.batch,
                                 CAST(o.round_f AS INTEGER) AS round, b.meta
                          FROM {good} o SEMI JOIN _firsts f ON f.first_row = o.__row
                          JOIN ({self._bodies_sql(staged, plan, self._meta_sql(staged, plan, p))}) b
                            ON b.__row = o.__row"""
            parts = []
            if plan.fields.get("label") is not None:
                parts.append(f"""SELECT sample_id, coalesce(annotator, {p(plan.default_annotator)}) AS annotator,
                                        label, confidence, 0 AS part, __row FROM {good} o WHERE label <> ''""")
            for k, (annotator, _) in enumerate(plan.wide):
                parts.append(f"""SELECT sample_id, {p(annotator)} AS annotator, {_strip(f'w{k}')} AS label,
                                        NULL::DOUBLE AS confidence, {k + 1} AS part, __row
                                 FROM {good} o WHERE {_strip(f'w{k}')} <> ''""")
            annotations = None
            if parts:
                annotations = f"SELECT * FROM ({' UNION ALL '.join(parts)})"
                if len(parts) > 1 or plan.key_pred_round:  # otherwise the row key made them unique
                    annotations += " QUALIFY row_number() OVER (PARTITION BY sample_id, annotator ORDER BY part, __row) = 1"
                annotations = f"SELECT sample_id, annotator, label, confidence FROM ({annotations})"
            predictions = None
            if plan.fields.get("prediction") is not None or plan.has_probs:
                labels = p(plan.labels)
                predictions = f"""
                    SELECT sample_id, round, model, predicted, confidence, probs FROM (
                        SELECT sample_id, __row,
                               CAST(coalesce(pred_round_f, {p(plan.pred_round)}::DOUBLE, round_f, 0) AS INTEGER) AS round,
                               coalesce(model, {p(plan.model)}::VARCHAR) AS model, predicted,
                               coalesce(pred_conf, probs[list_position({labels}::VARCHAR[], predicted)]) AS confidence,
                               probs
                        FROM (SELECT o.* REPLACE (
                                  CASE WHEN predicted <> '' THEN predicted
                                       -- argmax of the probabilities; a tie goes to the first label
                                       ELSE ({labels}::VARCHAR[])[list_position(probs, list_max(probs))] END
                                  AS predicted)
                              FROM {good} o WHERE predicted <> '' OR probs IS NOT NULL))
                    QUALIFY row_number() OVER (PARTITION BY sample_id, round ORDER BY __row) = 1"""
            raw = self._raw_sql(staged, p)
            errors = f"""SELECT b.__row, b.reason, left({raw}, {RAW_LIMIT}) AS raw
                         FROM _bad b JOIN _src s ON s.__row = b.__row
                         UNION ALL SELECT __row, reason, left(raw, {RAW_LIMIT}) FROM _readbad"""
            p.execute(cur, f"CREATE OR REPLACE TEMP TABLE _err AS {errors}")
            counts = self._write_import_rows(
                cur, dataset=dataset, labels=plan.labels, file=file, file_sha256=file_sha256, fmt=fmt,
                rows_total=staged.rows + staged.bad.height, samples=samples, annotations=annotations,
                predictions=predictions, errors="SELECT * FROM _err", params=p, actor=actor)
            error_frame = _frame(cur, "SELECT __row, reason, raw FROM _err ORDER BY __row")
        return counts, error_frame

    def _rows_sql(self, staged: StagedFile, plan: ImportPlan, p: _Params) -> str:
        """One row per staged row with the mapped fields as text (ids, labels and numbers stripped)."""
        f = plan.fields

        def txt(name: str) -> str:
            i = f.get(name)
            return "NULL::VARCHAR" if i is None else _text(staged, i)

        def stripped(name: str) -> str:
            return _strip(txt(name))

        def number(name: str) -> str:
            # DuckDB's cast also takes "1_0" and "+-0"; only plain decimal numbers count here.
            value = stripped(name)
            return f"CASE WHEN regexp_full_match({value}, '{_NUMBER}', 'i') THEN TRY_CAST({value} AS DOUBLE) END"

        cols = [
            "s.__row AS __row", f"{stripped('id')} AS sample_id",
            f"hash({', '.join(txt(t) for t in TEXT_FIELDS)}) AS h",
            f"{txt('batch')} AS batch",
            f"{stripped('round')} AS round_raw", f"{number('round')} AS round_f",
            f"{stripped('pred_round')} AS pred_round_raw", f"{number('pred_round')} AS pred_round_f",
            f"{stripped('label')} AS label", f"{stripped('annotator')} AS annotator",
            f"{stripped('confidence')} AS confidence_raw", f"{number('confidence')} AS confidence",
            f"{stripped('prediction')} AS predicted", f"{number('pred_confidence')} AS pred_conf",
            f"{txt('model')} AS model",
            *[f"{_text(staged, i)} AS w{k}" for k, (_, i) in enumerate(plan.wide)],
            "(" + " OR ".join(f"{txt(t)} IS NOT NULL" for t in TEXT_FIELDS) + ") AS has_text",
        ]
        if plan.has_probs:
            cols += ["pr.probs AS probs", "pr.err AS prob_err"]
            source = "_src s LEFT JOIN _probs pr ON pr.__row = s.__row"
        else:
            cols += ["NULL::DOUBLE[] AS probs", "NULL::VARCHAR AS prob_err"]
            source = "_src s"
        return f"SELECT {', '.join(cols)} FROM {source}"

    def _bodies_sql(self, staged: StagedFile, plan: ImportPlan, meta: str | None = None) -> str:
        """``__row`` and the text fields of each staged row (plus ``meta`` when given)."""
        cols = ["s.__row AS __row"]
        for t in TEXT_FIELDS:
            i = plan.fields.get(t)
            cols.append(f"{'NULL::VARCHAR' if i is None else _text(staged, i)} AS {t}")
        if meta is not None:
            cols.append(f"{meta} AS meta")
        return f"SELECT {', '.join(cols)} FROM _src s"

    def _error_sql(self, staged: StagedFile, plan: ImportPlan, p: _Params) -> str:
        """The first problem of a row's own fields, or NULL (a CASE over :meth:`_rows_sql`)."""
        labels = f"{p(plan.labels)}::VARCHAR[]"
        whens = ["WHEN sample_id IS NULL OR sample_id = '' THEN 'missing id'"]
        for raw, value, what in (("round_raw", "round_f", "round"),
                                 ("pred_round_raw", "pred_round_f", "prediction round")):
            whens += [
                f"""WHEN {raw} <> '' AND ({value} IS NULL OR isnan({value}) OR isinf({value})
                                        OR {value} <> round({value}))
                    THEN '{what} ' || {raw} || ' is not a whole number'""",
                f"""WHEN {raw} <> '' AND NOT ({value} BETWEEN 0 AND {MAX_ROUND})
                    THEN '{what} ' || {raw} || ' is out of range (0 to {MAX_ROUND})'""",
            ]
        whens += [
            """WHEN confidence_raw <> '' AND (confidence IS NULL OR isnan(confidence) OR confidence < 0
                                            OR confidence > 1)
               THEN 'confidence ' || confidence_raw || ' is not a number in [0, 1]'""",
            f"""WHEN label <> '' AND NOT list_contains({labels}, label)
                THEN 'label ''' || label || ''' is not in the label set'""",
            f"""WHEN predicted <> '' AND NOT list_contains({labels}, predicted)
                THEN 'predicted label ''' || predicted || ''' is not in the label set'""",
        ]
        for k, (annotator, _) in enumerate(plan.wide):
            whens.append(f"""WHEN {_strip(f'w{k}')} <> '' AND NOT list_contains({labels}, {_strip(f'w{k}')})
                             THEN 'label ''' || w{k} || ''' of annotator ' || {p(annotator)}
                                  || ' is not in the label set'""")
        return "CASE " + " ".join(whens) + " ELSE prob_err END"

    def _meta_sql(self, staged: StagedFile, plan: ImportPlan, p: _Params) -> str:
        """The unmapped columns of a row as one JSON object (NULL if all are null).

        Text that is itself a JSON object or array (a nested field of a JSONL record) stays
        nested; other values keep their type (Parquet numbers stay numbers).
        """
        if not plan.meta:
            return "NULL::JSON"
        args, present = [], []
        for i in plan.meta:
            col = f"s.c{i}"
            if staged.types[i] == "VARCHAR":
                value = (f"CASE WHEN (starts_with({col}, '{{') OR starts_with({col}, '[')) AND json_valid({col}) "
                         f"THEN json({col}) ELSE to_json({col}) END")
            elif staged.types[i] in ("DOUBLE", "FLOAT"):  # JSON has no NaN or infinity: null
                value = f"CASE WHEN isfinite({col}) THEN to_json({col}) END"
            else:
                value = f"to_json({col})"
            args += [p(staged.columns[i]), value]
            present.append(f"{col} IS NOT NULL")
        return f"CASE WHEN {' OR '.join(present)} THEN json_object({', '.join(args)}) END"

    def _raw_sql(self, staged: StagedFile, p: _Params) -> str:
        """A staged row (alias ``s``) as compact JSON text, for the error report."""
        if not staged.columns:
            return "''"
        args = []
        for i, name in enumerate(staged.columns):
            args += [p(name), f"s.c{i}"]
        return f"CAST(json_object({', '.join(args)}) AS VARCHAR)"

    def write_import(
        self,
        *,
        dataset: str,
        labels: list[str],
        file: str,
        file_sha256: str,
        fmt: str,
        rows_total: int,
        samples: pl.DataFrame,
        annotations: pl.DataFrame,
        predictions: pl.DataFrame,
        errors: pl.DataFrame,
        actor: str,
    ) -> dict[str, int]:
        """Write already validated rows given as polars frames, in one transaction.

        ``samples``: sample_id, instruction, input, output, text, batch, round, meta.
        ``annotations``: sample_id, annotator, label, confidence. ``predictions``: sample_id,
        round, model, predicted, confidence, probs (aligned with ``labels``). ``errors``:
        __row, reason, raw. Same rules as :meth:`import_staged`.
        """
        authorize(actor, Action.IMPORT)
        frames = {"_f_samples": samples, "_f_ann": annotations, "_f_pred": predictions, "_f_err": errors}
        with self.transaction() as cur:
            for name, frame in frames.items():
                cur.register(name, frame.to_arrow())
            try:
                return self._write_import_rows(
                    cur, dataset=dataset, labels=labels, file=file, file_sha256=file_sha256, fmt=fmt,
                    rows_total=rows_total,
                    samples="SELECT sample_id, instruction, input, output, text, batch, round, meta FROM _f_samples",
                    annotations="SELECT sample_id, annotator, label, confidence FROM _f_ann" if annotations.height else None,
                    predictions=("SELECT sample_id, round, model, predicted, confidence, probs FROM _f_pred"
                                 if predictions.height else None),
                    errors="SELECT __row, reason, raw FROM _f_err", params=_Params(), actor=actor)
            finally:
                for name in frames:
                    cur.unregister(name)

    def _write_import_rows(self, cur: duckdb.DuckDBPyConnection, *, dataset: str, labels: list[str], file: str,
                           file_sha256: str, fmt: str, rows_total: int, samples: str, annotations: str | None,
                           predictions: str | None, errors: str, params: _Params, actor: str) -> dict[str, int]:
        """Insert the rows of the given relations (SQL text over ``params``) inside ``cur``'s transaction.

        Existing samples are never overwritten; an annotation of the same (sample, annotator)
        with a new label replaces the old one; a prediction of the same (sample, round) is
        replaced. The dataset is created, or its label set extended (label sets only grow, so
        stored probability vectors stay aligned).
        """
        row = _first(cur.execute("SELECT labels FROM datasets WHERE name = ?", [dataset]))
        if row is None:
            cur.execute("INSERT INTO datasets (name, labels, settings) VALUES (?, ?, ?)",
                        [dataset, labels, json.dumps({})])
            self._audit(cur, actor, "dataset.create", dataset, None, None, json.dumps(labels, ensure_ascii=False))
        elif list(row[0]) != labels:
            old = list(row[0])
            if labels[: len(old)] != old:
                raise StoreError("label sets may only grow by appending new labels")
            cur.execute("UPDATE datasets SET labels = ? WHERE name = ?", [labels, dataset])
            self._audit(cur, actor, "dataset.labels", dataset, None,
                        json.dumps(old, ensure_ascii=False), json.dumps(labels, ensure_ascii=False))
        import_id = _first(cur.execute("SELECT nextval('import_seq')"))[0]
        p = params
        when = _now()
        d, iid, now = p(dataset), p(import_id), p(when)

        def run(sql: str) -> None:
            p.execute(cur, sql)

        def count(sql: str) -> int:
            return int(_first(p.execute(cur, sql))[0])

        run(f"""INSERT INTO samples (dataset, sample_id, instruction, input, output, text, batch, round,
                                     content_hash, meta, import_id, created_at)
                SELECT {d}, n.sample_id, n.instruction, n.input, n.output, n.text, n.batch, n.round,
                       {_CONTENT_HASH.format(t='n.')}, n.meta, {iid}, {now}
                FROM ({samples}) n
                ANTI JOIN (SELECT sample_id FROM samples WHERE dataset = {d}) e ON e.sample_id = n.sample_id
                ORDER BY n.sample_id""")
        samples_new = count(f"SELECT count(*) FROM samples WHERE import_id = {iid}")

        changed = annotations_written = 0
        if annotations is not None:
            if count(f"SELECT count(*) FROM (SELECT 1 FROM annotations WHERE dataset = {d} LIMIT 1)"):
                run(f"CREATE OR REPLACE TEMP TABLE _ann AS {annotations}")
                annotations = "SELECT * FROM _ann"
                changed = count(f"""SELECT count(*) FROM annotations a JOIN _ann n
                                      ON a.dataset = {d} AND a.sample_id = n.sample_id AND a.annotator = n.annotator
                                    WHERE a.label <> n.label OR a.confidence IS DISTINCT FROM n.confidence""")
                if changed:
                    run(f"""DELETE FROM annotations a USING _ann n
                            WHERE a.dataset = {d} AND a.sample_id = n.sample_id AND a.annotator = n.annotator
                              AND (a.label <> n.label OR a.confidence IS DISTINCT FROM n.confidence)""")
            run(f"""INSERT INTO annotations (dataset, sample_id, annotator, label, confidence, import_id, created_at)
                    SELECT {d}, n.sample_id, n.annotator, n.label, n.confidence, {iid}, {now}
                    FROM ({annotations}) n
                    ANTI JOIN (SELECT sample_id, annotator FROM annotations WHERE dataset = {d}) a
                           ON a.sample_id = n.sample_id AND a.annotator = n.annotator
                    ORDER BY n.sample_id, n.annotator""")
            annotations_written = count(f"SELECT count(*) FROM annotations WHERE import_id = {iid}")

        predictions_new = 0
        if predictions is not None:
            run(f"CREATE OR REPLACE TEMP TABLE _pred AS {predictions}")
            run(f"""DELETE FROM predictions p USING _pred n
                    WHERE p.dataset = {d} AND p.sample_id = n.sample_id AND p.round = n.round
                      AND (p.predicted <> n.predicted OR p.probs IS DISTINCT FROM n.probs
                           OR p.model IS DISTINCT FROM n.model)""")
            run(f"""INSERT INTO predictions (dataset, sample_id, round, model, predicted, confidence, probs,
                                             import_id, created_at)
                    SELECT {d}, n.sample_id, n.round, n.model, n.predicted, n.confidence, n.probs, {iid}, {now}
                    FROM _pred n
                    ANTI JOIN (SELECT sample_id, round FROM predictions WHERE dataset = {d}) e
                           ON e.sample_id = n.sample_id AND e.round = n.round
                    ORDER BY n.round, n.sample_id""")
            predictions_new = count(f"SELECT count(*) FROM predictions WHERE import_id = {iid}")
            run("DROP TABLE _pred")

        run(f"""INSERT INTO import_errors (import_id, dataset, file, row_number, reason, raw)
                SELECT {iid}, {d}, {p(file)}, __row, reason, left(raw, {RAW_LIMIT}) FROM ({errors})""")
        rows_bad = count(f"SELECT count(*) FROM import_errors WHERE import_id = {iid}")
        counts = {
            "import_id": int(import_id),
            "samples_new": samples_new,
            "annotations_new": annotations_written - changed,
            "annotations_changed": changed,
            "predictions_new": predictions_new,
            "rows_bad": rows_bad,
        }
        cur.execute(
            """INSERT INTO imports (import_id, dataset, file, file_sha256, format, rows_total, rows_ok,
                                    rows_bad, samples_new, annotations_new, annotations_changed,
                                    predictions_new, actor, imported_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [import_id, dataset, file, file_sha256, fmt, rows_total, rows_total - rows_bad,
             rows_bad, counts["samples_new"], counts["annotations_new"], counts["annotations_changed"],
             counts["predictions_new"], actor, when],
        )
        self._audit(cur, actor, "import", dataset, None, None, file,
                    dict(counts) | {"rows_total": rows_total, "format": fmt})
        return counts

    def find_import(self, dataset: str, file_sha256: str) -> dict[str, Any] | None:
        """An earlier import of a file with this content into ``dataset``, if any."""
        df = self.query_df(
            "SELECT * FROM imports WHERE dataset = ? AND file_sha256 = ? ORDER BY import_id LIMIT 1",
            [dataset, file_sha256],
        )
        return df.row(0, named=True) if df.height else None


    def import_errors(self, import_id: int) -> pl.DataFrame:
        """The row-level errors of one import, by row number."""
        return self.query_df(
            'SELECT row_number AS "row", reason, raw FROM import_errors WHERE import_id = ? ORDER BY row_number',
            [import_id],
        )

    def imports(self, dataset: str | None = None) -> pl.DataFrame:
        return self.query_df(
            "SELECT * FROM imports WHERE (?::VARCHAR IS NULL OR dataset = ?) ORDER BY import_id DESC",
            [dataset, dataset],
        )


    # -- reads for the pages ------------------------------------------------------------------
    def samples(self, dataset: str, batch: str | None = None, round: int | None = None,
                include_excluded: bool = True) -> pl.DataFrame:
        """Samples of a dataset (optionally one batch or round), ordered by sample_id."""
        return self.query_df(
            """SELECT sample_id, instruction, input, output, text, batch, round, content_hash, meta, excluded
               FROM samples WHERE dataset = ?
                 AND (?::VARCHAR IS NULL OR batch = ?) AND (?::INTEGER IS NULL OR round = ?)
                 AND (? OR NOT excluded)
               ORDER BY sample_id""",
            [dataset, batch, batch, round, round, include_excluded],
        )

    def sample(self, dataset: str, sample_id: str) -> dict[str, Any] | None:
        df = self.query_df(
            """SELECT sample_id, instruction, input, output, text, batch, round, content_hash, meta, excluded
               FROM samples WHERE dataset = ? AND sample_id = ?""",
            [dataset, sample_id],
        )
        return df.row(0, named=True) if df.height else None

    def annotations(self, dataset: str, batch: str | None = None, round: int | None = None) -> pl.DataFrame:
        """Long-form annotations: sample_id, annotator, label, confidence, batch, round."""
        return self.query_df(
            """SELECT a.sample_id, a.annotator, a.label, a.confidence, s.batch, s.round
               FROM annotations a JOIN samples s ON s.dataset = a.dataset AND s.sample_id = a.sample_id
               WHERE a.dataset = ? AND (?::VARCHAR IS NULL OR s.batch = ?)
                 AND (?::INTEGER IS NULL OR s.round = ?)
               ORDER BY a.sample_id, a.annotator""",
            [dataset, batch, batch, round, round],
        )

    def predictions(self, dataset: str, round: int | None = None) -> pl.DataFrame:
        """Predictions: sample_id, round, model, predicted, confidence, probs (aligned with labels)."""
        return self.query_df(
            """SELECT sample_id, round, model, predicted, confidence, probs FROM predictions
               WHERE dataset = ? AND (?::INTEGER IS NULL OR round = ?) ORDER BY round, sample_id""",
            [dataset, round, round],
        )

    def batches(self, dataset: str) -> list[str]:
        with self.cursor() as cur:
            return [r[0] for r in cur.execute(
                "SELECT DISTINCT batch FROM samples WHERE dataset = ? AND batch IS NOT NULL ORDER BY batch",
                [dataset]).fetchall()]

    def rounds(self, dataset: str) -> list[int]:
        """Rounds that have samples or predictions, ascending."""
        with self.cursor() as cur:
            return [r[0] for r in cur.execute(
                """SELECT round FROM (SELECT round FROM samples WHERE dataset = ? AND round IS NOT NULL
                   UNION SELECT round FROM predictions WHERE dataset = ?) ORDER BY round""",
                [dataset, dataset]).fetchall()]

    def latest_reviews(self, dataset: str) -> pl.DataFrame:
        """The latest review of each reviewed sample: sample_id, version, new_label, reviewer, created_at."""
        return self.query_df(
            """SELECT sample_id, version, new_label, reviewer, created_at FROM reviews
               WHERE dataset = ? QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY version DESC) = 1
               ORDER BY sample_id""",
            [dataset],
        )

    def reviews(self, dataset: str, sample_id: str | None = None) -> pl.DataFrame:
        """All reviews (append-only history), oldest first."""
        return self.query_df(
            """SELECT review_id, sample_id, version, base_version, reviewer, old_label, new_label, reason, created_at
               FROM reviews WHERE dataset = ? AND (?::VARCHAR IS NULL OR sample_id = ?)
               ORDER BY sample_id, version""",
            [dataset, sample_id, sample_id],
        )

    def overview_counts(self, dataset: str) -> dict[str, int]:
        """KPI counts for the overview page."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                """SELECT
                     (SELECT count(*) FROM samples WHERE dataset = $1),
                     (SELECT count(DISTINCT sample_id) FROM (
                         SELECT sample_id FROM annotations WHERE dataset = $1
                         UNION ALL SELECT sample_id FROM reviews WHERE dataset = $1)),
                     (SELECT count(DISTINCT annotator) FROM annotations WHERE dataset = $1),
                     (SELECT count(*) FROM (SELECT round FROM samples WHERE dataset = $1 AND round IS NOT NULL
                                            UNION SELECT round FROM predictions WHERE dataset = $1)),
                     (SELECT count(*) FROM review_queue WHERE dataset = $1 AND status IN ('open', 'claimed')),
                     (SELECT count(*) FROM predictions WHERE dataset = $1),
                     (SELECT count(DISTINCT sample_id) FROM reviews WHERE dataset = $1)""",
                [dataset],
            ))
        keys = ["samples", "labeled", "annotators", "rounds", "open_review", "predictions", "reviewed"]
        return dict(zip(keys, (int(v) for v in row)))

    def label_counts(self, dataset: str) -> pl.DataFrame:
        """Annotation counts per label (all annotators), for the overview chart."""
        return self.query_df(
            "SELECT label, count(*) AS n FROM annotations WHERE dataset = ? GROUP BY label ORDER BY n DESC",
            [dataset],
        )

    def samples_per_batch(self, dataset: str) -> pl.DataFrame:
        return self.query_df(
            """SELECT coalesce(batch, '(none)') AS batch, count(*) AS n FROM samples WHERE dataset = ?
               GROUP BY ALL ORDER BY batch""",
            [dataset],
        )

    # -- embeddings cache ---------------------------------------------------------------------
    def cached_embeddings(self, model_id: str, hashes: list[str]) -> dict[str, np.ndarray]:
        """Cached vectors for ``hashes`` under ``model_id`` (missing ones are absent)."""
        if not hashes:
            return {}
        with self.cursor() as cur:
            cur.register("_h", pl.DataFrame({"h": list(dict.fromkeys(hashes))}).to_arrow())
            try:
                df = _frame(cur, 
                    """SELECT e.content_hash, e.vector FROM embeddings e SEMI JOIN _h ON e.content_hash = _h.h
                       WHERE e.model_id = ?""",
                    [model_id],
                )
            finally:
                cur.unregister("_h")
        if df.height == 0:
            return {}
        width = len(df["vector"][0])
        vectors = df["vector"].list.to_array(width).to_numpy().astype(np.float32, copy=False)
        return dict(zip(df["content_hash"].to_list(), vectors))

    def save_embeddings(self, model_id: str, hashes: list[str], vectors: np.ndarray) -> None:
        """Store vectors (one row per hash) under ``model_id``; existing entries are kept."""
        if len(hashes) != len(vectors):
            raise ValueError(f"{len(hashes)} hashes but {len(vectors)} vectors")
        if not hashes:
            return
        frame = pl.DataFrame(
            {"content_hash": hashes, "vector": np.asarray(vectors, dtype=np.float32)}
        ).unique("content_hash", keep="first", maintain_order=True)
        with self.transaction() as cur:
            cur.register("_v", frame.to_arrow())
            try:
                cur.execute(
                    """INSERT INTO embeddings (model_id, content_hash, vector)
                       SELECT ?, v.content_hash, v.vector::FLOAT[] FROM _v v
                       ANTI JOIN (SELECT content_hash FROM embeddings WHERE model_id = ?) e
                              ON e.content_hash = v.content_hash""",
                    [model_id, model_id],
                )
            finally:
                cur.unregister("_v")

    # -- review queue (enqueue is shared by agreement, selection and quality pages) ------------
    def enqueue(self, dataset: str, sample_ids: Sequence[str], reason: str, actor: str,
                priority: Sequence[float] | float = 0.0, detail: dict[str, Any] | None = None) -> int:
        """Add open queue entries; a sample already open/claimed for the same reason is skipped.

        Returns the number of entries added. Audited as one ``queue.add`` row.
        """
        authorize(actor, Action.QUEUE_RULES)
        ids = list(dict.fromkeys(str(s) for s in sample_ids))
        if not ids:
            return 0
        prio = [float(priority)] * len(ids) if np.isscalar(priority) else [float(p) for p in priority]
        if len(prio) != len(ids):
            raise ValueError("priority must be a number or one number per sample id")
        frame = pl.DataFrame({"sample_id": ids, "priority": prio})
        with self.transaction() as cur:
            cur.register("_q", frame.to_arrow())
            try:
                unknown = cur.execute(
                    """SELECT q.sample_id FROM _q q ANTI JOIN (SELECT sample_id FROM samples WHERE dataset = ?) s
                       ON s.sample_id = q.sample_id LIMIT 5""",
                    [dataset],
                ).fetchall()
                if unknown:
                    raise StoreError(f"unknown sample id(s) in {dataset!r}: {', '.join(r[0] for r in unknown)}")
                before = _first(cur.execute("SELECT count(*) FROM review_queue"))[0]
                cur.execute(
                    """INSERT INTO review_queue (dataset, sample_id, reason, priority, created_by, created_at, detail)
                       SELECT ?, q.sample_id, ?, q.priority, ?, ?, ? FROM _q q
                       ANTI JOIN (SELECT sample_id FROM review_queue
                                  WHERE dataset = ? AND reason = ? AND status IN ('open', 'claimed')) e
                              ON e.sample_id = q.sample_id""",
                    [dataset, reason, actor, _now(), json.dumps(detail, ensure_ascii=False) if detail else None,
                     dataset, reason],
                )
                added = _first(cur.execute("SELECT count(*) FROM review_queue"))[0] - before
            finally:
                cur.unregister("_q")
            self._audit(cur, actor, "queue.add", dataset, None, None, reason,
                        {"added": int(added), "requested": len(ids), "reason": reason})
        return int(added)

    def set_excluded(self, dataset: str, sample_ids: Sequence[str], excluded: bool, actor: str,
                     reason: str | None = None) -> int:
        """Mark samples excluded from (or back into) export; returns how many changed. Audited."""
        authorize(actor, Action.EXCLUDE)
        ids = list(dict.fromkeys(str(s) for s in sample_ids))
        if not ids:
            return 0
        with self.transaction() as cur:
            self.get_dataset(dataset)
            changed = _first(cur.execute(
                """SELECT count(*) FROM samples WHERE dataset = ? AND list_contains(?::VARCHAR[], sample_id)
                   AND excluded <> ?""",
                [dataset, ids, excluded],
            ))[0]
            cur.execute(
                "UPDATE samples SET excluded = ? WHERE dataset = ? AND list_contains(?::VARCHAR[], sample_id)",
                [excluded, dataset, ids],
            )
            self._audit(cur, actor, "sample.exclude" if excluded else "sample.include", dataset, None,
                        None, None, {"sample_ids": ids[:1000], "count": len(ids), "reason": reason})
        return int(changed)

    def queue(self, dataset: str, status: Sequence[str] | None = None, reason: str | None = None) -> pl.DataFrame:
        """Queue entries of a dataset, highest priority first."""
        return self.query_df(
            """SELECT entry_id, sample_id, reason, priority, status, claimed_by, claimed_at, created_by,
                      created_at, resolved_at, detail
               FROM review_queue WHERE dataset = ?
                 AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], status))
                 AND (?::VARCHAR IS NULL OR reason = ?)
               ORDER BY priority DESC, entry_id""",
            [dataset, list(status) if status else None, list(status) if status else None, reason, reason],
        )

    # -- reviews and the claim protocol of the queue (logic in core.review) -------------------
    def review_head(self, dataset: str, sample_id: str) -> dict[str, Any] | None:
        """The latest review of a sample (version, reviewer, old_label, new_label, reason, created_at), or None."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                """SELECT version, reviewer, old_label, new_label, reason, created_at FROM reviews
                   WHERE dataset = ? AND sample_id = ? ORDER BY version DESC LIMIT 1""",
                [dataset, sample_id]))
        if row is None:
            return None
        return dict(zip(("version", "reviewer", "old_label", "new_label", "reason", "created_at"), row))

    def has_sample(self, dataset: str, sample_id: str) -> bool:
        return self._scalar("SELECT count(*) FROM samples WHERE dataset = ? AND sample_id = ?", [dataset, sample_id]) > 0

    def majority_label(self, dataset: str, sample_id: str) -> str | None:
        """The label with strictly the most annotators on one sample, or None (no votes, or a tie).

        The same rule as :func:`core.metrics.gold_labels`, for one sample in one query.
        """
        with self.cursor() as cur:
            rows = cur.execute(
                """SELECT label, count(DISTINCT annotator) AS votes FROM annotations
                   WHERE dataset = ? AND sample_id = ? GROUP BY label ORDER BY votes DESC, label LIMIT 2""",
                [dataset, sample_id]).fetchall()
        if not rows or (len(rows) == 2 and rows[0][1] == rows[1][1]):
            return None
        return rows[0][0]

    def append_review(self, dataset: str, sample_id: str, version: int, base_version: int, reviewer: str,
                      old_label: str | None, new_label: str, reason: str | None, action: str = "review.save") -> None:
        """Insert one review row, close the sample's queue entries and audit it (one transaction).

        The primary key (dataset, sample_id, version) makes a concurrent save of the same
        version fail at commit, which :mod:`core.review` turns into a ``ReviewConflict``.
        """
        authorize(reviewer, Action.REVIEW)
        now = _now()
        with self.transaction() as cur:
            cur.execute(
                """INSERT INTO reviews (dataset, sample_id, version, base_version, reviewer, old_label,
                                        new_label, reason, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [dataset, sample_id, version, base_version, reviewer, old_label, new_label, reason, now],
            )
            cur.execute(
                """UPDATE review_queue SET status = 'done', resolved_at = ?
                   WHERE dataset = ? AND sample_id = ? AND status IN ('open', 'claimed')""",
                [now, dataset, sample_id],
            )
            self._audit(cur, reviewer, action, dataset, sample_id, old_label, new_label,
                        {"version": version, "base_version": base_version, "reason": reason})

    def sample_annotations(self, dataset: str, sample_id: str) -> pl.DataFrame:
        """Annotations of one sample: annotator, label, confidence, created_at."""
        return self.query_df(
            """SELECT annotator, label, confidence, created_at FROM annotations
               WHERE dataset = ? AND sample_id = ? ORDER BY annotator""",
            [dataset, sample_id],
        )

    def sample_predictions(self, dataset: str, sample_id: str) -> pl.DataFrame:
        """Predictions of one sample, latest round first."""
        return self.query_df(
            """SELECT round, model, predicted, confidence, probs FROM predictions
               WHERE dataset = ? AND sample_id = ? ORDER BY round DESC""",
            [dataset, sample_id],
        )

    def claim_queue_entry(self, dataset: str, reviewer: str, claim_ttl_seconds: float,
                          reasons: Sequence[str] | None = None) -> dict[str, Any] | None:
        """Atomically claim the highest-priority open entry (or one whose claim expired).

        Returns the claimed entry, or None when nothing is left. A reviewer who already holds
        an unexpired claim gets that entry back. Two sessions never get the same entry: the
        UPDATE is conditional on the status read, and a lost race is retried.
        """
        authorize(reviewer, Action.CLAIM)
        reason_list = list(reasons) if reasons else None
        for _attempt in range(20):
            try:
                with self.transaction() as cur:
                    now = _now()
                    held = _first(cur.execute(
                        """SELECT entry_id FROM review_queue
                           WHERE dataset = ? AND status = 'claimed' AND claimed_by = ?
                             AND claimed_at > ? - to_seconds(?)
                             AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], reason))
                           ORDER BY priority DESC, entry_id LIMIT 1""",
                        [dataset, reviewer, now, float(claim_ttl_seconds), reason_list, reason_list],
                    ))
                    if held is None:
                        cand = _first(cur.execute(
                            """SELECT entry_id FROM review_queue
                               WHERE dataset = ? AND (status = 'open' OR (status = 'claimed'
                                     AND claimed_at <= ? - to_seconds(?)))
                                 AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], reason))
                               ORDER BY priority DESC, entry_id LIMIT 1""",
                            [dataset, now, float(claim_ttl_seconds), reason_list, reason_list],
                        ))
                        if cand is None:
                            return None
                        cur.execute(
                            "UPDATE review_queue SET status = 'claimed', claimed_by = ?, claimed_at = ? WHERE entry_id = ?",
                            [reviewer, now, cand[0]],
                        )
                        entry_id = cand[0]
                    else:
                        entry_id = held[0]
                    df = _frame(cur, "SELECT * FROM review_queue WHERE entry_id = ?", [entry_id])
                return df.row(0, named=True)
            except (duckdb.TransactionException, duckdb.ConstraintException):
                time.sleep(0.005 * (_attempt + 1))  # another session won this entry: try the next
        raise StoreBusy("could not claim a queue entry: too many concurrent claims, try again")

    def set_queue_status(self, entry_id: int, status: str, actor: str) -> None:
        """Set an entry's status (``open`` releases a claim, ``skipped``, ``done``), audited."""
        authorize(actor, Action.QUEUE_STATUS)
        if status not in {"open", "claimed", "done", "skipped"}:
            raise ValueError(f"unknown queue status {status!r}")
        with self.transaction() as cur:
            row = _first(cur.execute("SELECT dataset, sample_id, status FROM review_queue WHERE entry_id = ?",
                                     [entry_id]))
            if row is None:
                raise StoreError(f"no queue entry {entry_id}")
            cur.execute(
                """UPDATE review_queue SET status = ?,
                          claimed_by = CASE WHEN ? = 'open' THEN NULL ELSE claimed_by END,
                          resolved_at = CASE WHEN ? IN ('done', 'skipped') THEN ? ELSE NULL END
                   WHERE entry_id = ?""",
                [status, status, status, _now(), entry_id],
            )
            self._audit(cur, actor, f"queue.{status}", row[0], row[1], row[2], status, {"entry_id": entry_id})

    def selection_predictions(self, dataset: str, batch: str | None = None, round: int | None = None,
                              include_excluded: bool = True) -> pl.DataFrame:
        """Predictions of the samples in one batch and/or sample round, every prediction round.

        Columns: sample_id, pred_round (the prediction's round), predicted, confidence.
        """
        with self.cursor() as cur:
            return _frame(cur,
                          """SELECT p.sample_id, p.round AS pred_round, p.predicted, p.confidence
                             FROM predictions p JOIN samples s ON s.dataset = p.dataset AND s.sample_id = p.sample_id
                             WHERE p.dataset = ? AND (?::VARCHAR IS NULL OR s.batch = ?)
                               AND (?::INTEGER IS NULL OR s.round = ?) AND (? OR NOT s.excluded)
                             ORDER BY p.round, p.sample_id""",
                          [dataset, batch, batch, round, round, include_excluded])

    def prediction_labels(self, dataset: str) -> pl.DataFrame:
        """Predicted labels only, every round: sample_id, round, predicted (unordered; for metrics).

        A lean read of the predictions table: without the probability lists it is a fraction
        of :meth:`predictions` on millions of rows.
        """
        with self.cursor() as cur:
            return _frame(cur, "SELECT sample_id, round, predicted FROM predictions WHERE dataset = ?", [dataset])

    # -- queue rules, bulk review and the audit page (logic in core.queue / core.review) ------
    def prediction_confidences(self, dataset: str, round: int | None = None) -> pl.DataFrame:
        """Model confidence of one prediction round (default: the latest): sample_id, round, confidence."""
        return self.query_df(
            """SELECT sample_id, round, confidence FROM predictions
               WHERE dataset = ? AND round = coalesce(?::INTEGER, (SELECT max(round) FROM predictions WHERE dataset = ?))
               ORDER BY sample_id""",
            [dataset, round, dataset],
        )

    def sample_review_state(self, dataset: str, sample_ids: Sequence[str] | None = None,
                            with_text: bool = False) -> pl.DataFrame:
        """Per sample: sample_id, excluded, version (0 before any review), review_label, reviewer and
        reviewed_at of its latest review, and the text fields (null unless ``with_text``).

        Every sample of ``dataset``, or only ``sample_ids`` (ids not in the dataset are absent).
        """
        sql = """SELECT s.sample_id, s.excluded, coalesce(r.version, 0) AS version, r.new_label AS review_label,
                        r.reviewer, r.created_at AS reviewed_at,
                        CASE WHEN ? THEN s.instruction END AS instruction, CASE WHEN ? THEN s.input END AS input,
                        CASE WHEN ? THEN s.output END AS output, CASE WHEN ? THEN s.text END AS text
                 FROM samples s
                 LEFT JOIN (SELECT sample_id, version, new_label, reviewer, created_at FROM reviews WHERE dataset = ?
                            QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY version DESC) = 1) r
                        ON r.sample_id = s.sample_id
                 WHERE s.dataset = ?"""
        params = [bool(with_text)] * 4 + [dataset, dataset]
        with self.cursor() as cur:
            if sample_ids is None:
                return _frame(cur, sql + " ORDER BY s.sample_id", params)
            ids = pl.DataFrame({"sample_id": list(dict.fromkeys(str(s) for s in sample_ids))},
                               schema={"sample_id": pl.Utf8})
            cur.register("_srs_ids", ids.to_arrow())
            try:
                return _frame(cur, sql + " AND s.sample_id IN (SELECT sample_id FROM _srs_ids) ORDER BY s.sample_id",
                              params)
            finally:
                cur.unregister("_srs_ids")

    def annotations_of(self, dataset: str, sample_ids: Sequence[str]) -> pl.DataFrame:
        """Annotations (sample_id, annotator, label) of the given samples only."""
        ids = pl.DataFrame({"sample_id": list(dict.fromkeys(str(s) for s in sample_ids))}, schema={"sample_id": pl.Utf8})
        with self.cursor() as cur:
            cur.register("_ao_ids", ids.to_arrow())
            try:
                return _frame(cur,
                              """SELECT a.sample_id, a.annotator, a.label FROM annotations a
                                 SEMI JOIN _ao_ids i ON a.sample_id = i.sample_id
                                 WHERE a.dataset = ? ORDER BY a.sample_id, a.annotator""",
                              [dataset])
            finally:
                cur.unregister("_ao_ids")

    def append_reviews(self, dataset: str, rows: pl.DataFrame, reviewer: str, reason: str | None,
                       action: str = "review.save") -> int:
        """Insert many review rows (sample_id, version, base_version, old_label, new_label), close the
        samples' open queue entries and write one audit row per review, all in one transaction.

        The primary key (dataset, sample_id, version) makes a concurrent save of any of the same
        versions fail, which :mod:`core.review` turns into a ``ReviewConflict``.
        """
        authorize(reviewer, Action.REVIEW)
        frame = rows.select(pl.col("sample_id").cast(pl.Utf8), pl.col("version").cast(pl.Int32),
                            pl.col("base_version").cast(pl.Int32), pl.col("old_label").cast(pl.Utf8),
                            pl.col("new_label").cast(pl.Utf8))
        now = _now()
        with self.transaction() as cur:
            cur.register("_ar_rows", frame.to_arrow())
            try:
                cur.execute(
                    """INSERT INTO reviews (dataset, sample_id, version, base_version, reviewer, old_label,
                                            new_label, reason, created_at)
                       SELECT ?, sample_id, version, base_version, ?, old_label, new_label, ?, ? FROM _ar_rows""",
                    [dataset, reviewer, reason, now],
                )
                cur.execute(
                    """UPDATE review_queue SET status = 'done', resolved_at = ?
                       WHERE dataset = ? AND status IN ('open', 'claimed')
                         AND sample_id IN (SELECT sample_id FROM _ar_rows)""",
                    [now, dataset],
                )
                cur.execute(
                    """INSERT INTO audit_log (logged_at, actor, action, dataset, sample_id, old_value, new_value, detail)
                       SELECT ?, ?, ?, ?, sample_id, old_label, new_label,
                              json_object('version', version, 'base_version', base_version, 'reason', ?::VARCHAR,
                                          'bulk', true)
                       FROM _ar_rows ORDER BY sample_id""",
                    [now, reviewer, action, dataset, reason],
                )
            finally:
                cur.unregister("_ar_rows")
        return frame.height

    def audit_facets(self) -> pl.DataFrame:
        """Distinct (actor, action, dataset) of the audit log with their row counts (filter choices)."""
        return self.query_df(
            "SELECT actor, action, dataset, count(*) AS n FROM audit_log GROUP BY ALL ORDER BY actor, action, dataset"
        )

    # -- imported evaluation rounds -----------------------------------------------------------
    def imported_round_metrics(self, dataset: str) -> pl.DataFrame:
        return self.query_df(
            "SELECT round, n_labeled, metric, value FROM imported_round_metrics WHERE dataset = ? ORDER BY round, metric",
            [dataset],
        )

    def save_imported_round_metrics(self, dataset: str, table: pl.DataFrame, actor: str) -> int:
        """Replace the imported evaluation rows of ``dataset`` with ``table`` (round, n_labeled, metric, value)."""
        authorize(actor, Action.EVALUATION)
        with self.transaction() as cur:
            self.get_dataset(dataset)
            cur.execute("DELETE FROM imported_round_metrics WHERE dataset = ?", [dataset])
            cur.register("_m", table.select("round", "n_labeled", "metric", "value").to_arrow())
            try:
                cur.execute(
                    """INSERT INTO imported_round_metrics (dataset, round, n_labeled, metric, value)
                       SELECT ?, round, n_labeled, metric, value FROM _m""",
                    [dataset],
                )
            finally:
                cur.unregister("_m")
            self._audit(cur, actor, "metrics.import", dataset, None, None, None, {"rows": table.height})
        return table.height

    def table_counts(self) -> dict[str, int]:
        """Row counts of every table (for tests and the CLI's ``info``)."""
        names = ["datasets", "samples", "annotations", "predictions", "reviews", "audit_log",
                 "embeddings", "imports", "import_errors", "review_queue", "imported_round_metrics"]
        with self.cursor() as cur:
            return {n: _first(cur.execute(f"SELECT count(*) FROM {_quote_ident(n)}"))[0] for n in names}


_OPEN_STORES: "weakref.WeakSet[Store]" = weakref.WeakSet()


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


def open_store(path: str | os.PathLike[str] | None = None, busy_timeout: float | None = None,
               linger: float | None = None) -> Store:
    """Open (creating and migrating if needed) the store at ``path``.

    ``path`` defaults to ``$QUALITY_DB`` or ``data/quality.duckdb``; ``":memory:"`` gives a
    private in-memory store (tests). ``busy_timeout`` (default ``$QUALITY_DB_BUSY_TIMEOUT`` or
    15 s) is how long to wait for another process that holds the file; ``linger`` (default
    0.3 s) how long the file stays open after the last operation before its lock is released.
    """
    if busy_timeout is None:
        busy_timeout = float(os.environ.get("QUALITY_DB_BUSY_TIMEOUT", DEFAULT_BUSY_TIMEOUT))
    if linger is None:
        linger = float(os.environ.get("QUALITY_DB_LINGER", DEFAULT_LINGER))
    return Store(default_db_path() if path is None else path, busy_timeout=busy_timeout, linger=linger)
