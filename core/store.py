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

DEFAULT_DB_PATH = Path("data") / "quality.duckdb"
DEFAULT_BUSY_TIMEOUT = 15.0
# After the last operation of a process ends, the file stays open this long before the lock is
# released: bursts of operations (a page run, a review save) then open the file once, while
# another process still gets the lock a fraction of a second after this one goes idle.
DEFAULT_LINGER = 0.3
ROLES_THAT_WRITE = frozenset({"lead", "reviewer", "system"})
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


class PermissionDenied(StoreError):
    """The acting user's role may not perform this write."""


def _require_write(actor: str | None) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` may change data (rules in :mod:`core.auth`)."""
    from core.auth import require_write  # imported here: core.auth imports this module

    require_write(actor)


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
        _require_write(actor)
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
        """Append one row to the audit log in its own transaction."""
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

    # -- reading files (DuckDB's readers) -----------------------------------------------------
    def read_jsonl(self, path: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Read a JSON-lines file into ``(rows, bad)`` without failing on a malformed line.

        ``rows`` has ``__row`` (the 1-based line number) plus one Utf8 column per top-level key
        found in any line (sorted; nested values as JSON text, JSON null as null); ``bad`` has
        ``__row, reason, raw`` for lines that are not a JSON object. Blank lines are skipped.
        Lines are read as raw text with the record-separator byte 0x1E as a "delimiter" (it
        cannot occur unescaped in valid JSON), so row numbers are exact line numbers; keys go
        to DuckDB as JSON-pointer parameters, never spliced into SQL.
        """
        with self.cursor() as cur:
            cur.execute(
                """CREATE OR REPLACE TEMP TABLE _jsonl_lines AS
                   SELECT CAST(row_number() OVER () AS BIGINT) AS __row,
                          -- a UTF-8 byte-order mark is not part of the first record
                          ltrim(line, chr(65279)) AS line
                   FROM read_csv(?, columns = {'line': 'VARCHAR'}, delim = '\x1e', quote = '',
                                 escape = '', header = false, auto_detect = false,
                                 null_padding = true, strict_mode = false,
                                 max_line_size = 268435456)""",
                [path],
            )
            try:
                keys = sorted(r[0] for r in cur.execute(
                    """SELECT DISTINCT unnest(try(json_keys(line))) FROM _jsonl_lines
                       WHERE left(ltrim(line), 1) = '{'"""
                ).fetchall())
                pointers = ["/" + k.replace("~", "~0").replace("/", "~1") for k in keys]
                cur.execute(
                    """CREATE OR REPLACE TEMP TABLE _jsonl_values AS
                       SELECT __row, try(json_extract_string(line, ?::VARCHAR[])) AS v FROM _jsonl_lines
                       WHERE left(ltrim(line), 1) = '{'""",
                    [pointers],
                )
                columns = ", ".join(f"v[{i + 1}] AS c{i}" for i in range(len(keys)))
                values = _frame(cur, f"SELECT __row{', ' + columns if columns else ''} FROM _jsonl_values "
                                     "WHERE v IS NOT NULL ORDER BY __row")
                bad = _frame(cur,
                    """SELECT l.__row,
                              CASE WHEN NOT json_valid(l.line) THEN 'malformed JSON'
                                   ELSE 'not a JSON object (found ' || lower(json_type(l.line)) || ')' END
                                   AS reason,
                              l.line AS raw
                       FROM _jsonl_lines l ANTI JOIN (SELECT __row FROM _jsonl_values WHERE v IS NOT NULL) g
                            ON g.__row = l.__row
                       WHERE l.line IS NOT NULL AND trim(l.line, ' \t\r\n') <> ''
                       ORDER BY l.__row""")
            finally:
                cur.execute("DROP TABLE IF EXISTS _jsonl_values")
                cur.execute("DROP TABLE IF EXISTS _jsonl_lines")
        rows = values.rename({f"c{i}": k for i, k in enumerate(keys)})
        return rows, bad

    def read_csv_rows(self, path: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Read a CSV file (header row; ``,`` ``;`` ``|`` or tab) with every column as text.

        Returns ``(rows, rejected)``: ``rows`` has ``__row`` (1-based data row, blank lines not
        counted) plus the file's columns; ``rejected`` has ``__row, reason, raw`` for records
        DuckDB could not parse (wrong number of fields, unterminated quote...). The header is
        read by Python's csv module and handed to DuckDB as the column list (a parameter), so a
        malformed record cannot fool the dialect sniffer into reading the file as one column.
        """
        header, delimiter, blank_lines = _csv_layout(path)
        with self.cursor() as cur:
            # Reject tables accumulate per connection: start from empty ones for this file.
            cur.execute("DROP TABLE IF EXISTS reject_errors")
            cur.execute("DROP TABLE IF EXISTS reject_scans")
            rel = _frame(cur,
                """SELECT * FROM read_csv(?, header = true, auto_detect = false, columns = ?, delim = ?,
                                          quote = '"', escape = '"', store_rejects = true,
                                          max_line_size = 268435456)""",
                [path, {name: "VARCHAR" for name in header}, delimiter])
            rejected = _frame(cur,
                """SELECT CAST(line AS BIGINT) AS line,
                          lower(error_type) || ': ' || error_message AS reason, csv_line AS raw
                   FROM reject_errors WHERE scan_id = (SELECT max(scan_id) FROM reject_scans)
                   ORDER BY line""")
        # DuckDB numbers rejects by physical line; turn them into data-row numbers (header and
        # blank lines not counted), then give each accepted row the numbers left over (exact
        # when no quoted field spans several lines).
        lines = rejected["line"].to_numpy()
        bad_rows = lines - 1 - np.searchsorted(np.asarray(blank_lines, dtype=np.int64), lines)
        rejected = rejected.with_columns(pl.Series("__row", bad_rows, dtype=pl.Int64)).select(
            "__row", "reason", "raw").unique("__row", keep="first", maintain_order=True)
        bad = rejected["__row"].to_numpy()
        numbers = np.setdiff1d(np.arange(1, rel.height + len(bad) + 1), bad)[: rel.height]
        return rel.insert_column(0, pl.Series("__row", numbers, dtype=pl.Int64)), rejected

    def read_parquet_rows(self, path: str) -> pl.DataFrame:
        """Read a Parquet file; adds ``__row`` (1-based row number) as the first column."""
        with self.cursor() as cur:
            df = _frame(cur, 
                "SELECT * FROM read_parquet(?, file_row_number = true)", [path]
            )
        row = (df["file_row_number"] + 1).cast(pl.Int64).alias("__row")
        return df.drop("file_row_number").insert_column(0, row)

    # -- import write (one transaction) -------------------------------------------------------
    def find_import(self, dataset: str, file_sha256: str) -> dict[str, Any] | None:
        """An earlier import of a file with this content into ``dataset``, if any."""
        df = self.query_df(
            "SELECT * FROM imports WHERE dataset = ? AND file_sha256 = ? ORDER BY import_id LIMIT 1",
            [dataset, file_sha256],
        )
        return df.row(0, named=True) if df.height else None

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
        """Write one validated import in a single transaction; returns the counts written.

        ``samples``: sample_id, instruction, input, output, text, batch, round, meta.
        ``annotations``: sample_id, annotator, label, confidence.
        ``predictions``: sample_id, round, model, predicted, confidence, probs (aligned with
        ``labels``). ``errors``: __row, reason, raw. Existing samples are never overwritten;
        an annotation of the same (sample, annotator) with a new label replaces the old one;
        a prediction of the same (sample, round) is replaced. The dataset is created, or its
        label set extended (label sets only grow, so stored probability vectors stay aligned).
        """
        _require_write(actor)
        with self.transaction() as cur:
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
            now = _now()

            cur.register("_samples", samples.to_arrow())
            cur.execute(
                """INSERT INTO samples (dataset, sample_id, instruction, input, output, text, batch,
                                        round, content_hash, meta, import_id, created_at)
                   SELECT ?, s.sample_id, s.instruction, s.input, s.output, s.text, s.batch,
                          s.round, sha256(concat_ws(chr(31), coalesce(s.instruction, ''),
                          coalesce(s.input, ''), coalesce(s.output, ''), coalesce(s.text, ''))),
                          s.meta, ?, ?
                   FROM _samples s
                   ANTI JOIN (SELECT sample_id FROM samples WHERE dataset = ?) e
                          ON e.sample_id = s.sample_id
                   ORDER BY s.sample_id""",
                [dataset, import_id, now, dataset],
            )
            samples_new = _first(cur.execute("SELECT count(*) FROM samples WHERE import_id = ?", [import_id]))[0]
            cur.unregister("_samples")

            cur.register("_ann", annotations.to_arrow())
            changed = _first(cur.execute(
                """SELECT count(*) FROM annotations a JOIN _ann n
                     ON a.dataset = ? AND a.sample_id = n.sample_id AND a.annotator = n.annotator
                   WHERE a.label <> n.label OR a.confidence IS DISTINCT FROM n.confidence""",
                [dataset],
            ))[0]
            if changed:
                cur.execute(
                    """DELETE FROM annotations a USING _ann n
                       WHERE a.dataset = ? AND a.sample_id = n.sample_id AND a.annotator = n.annotator
                         AND (a.label <> n.label OR a.confidence IS DISTINCT FROM n.confidence)""",
                    [dataset],
                )
            cur.execute(
                """INSERT INTO annotations (dataset, sample_id, annotator, label, confidence, import_id, created_at)
                   SELECT ?, n.sample_id, n.annotator, n.label, n.confidence, ?, ?
                   FROM _ann n
                   ANTI JOIN (SELECT sample_id, annotator FROM annotations WHERE dataset = ?) a
                          ON a.sample_id = n.sample_id AND a.annotator = n.annotator
                   ORDER BY n.sample_id, n.annotator""",
                [dataset, import_id, now, dataset],
            )
            annotations_written = _first(cur.execute(
                "SELECT count(*) FROM annotations WHERE import_id = ?", [import_id]
            ))[0]
            cur.unregister("_ann")

            cur.register("_pred", predictions.to_arrow())
            cur.execute(
                """DELETE FROM predictions p USING _pred n
                   WHERE p.dataset = ? AND p.sample_id = n.sample_id AND p.round = n.round
                     AND (p.predicted <> n.predicted OR p.probs IS DISTINCT FROM n.probs
                          OR p.model IS DISTINCT FROM n.model)""",
                [dataset],
            )
            cur.execute(
                """INSERT INTO predictions (dataset, sample_id, round, model, predicted, confidence, probs,
                                            import_id, created_at)
                   SELECT ?, n.sample_id, n.round, n.model, n.predicted, n.confidence, n.probs, ?, ?
                   FROM _pred n
                   ANTI JOIN (SELECT sample_id, round FROM predictions WHERE dataset = ?) p
                          ON p.sample_id = n.sample_id AND p.round = n.round
                   ORDER BY n.round, n.sample_id""",
                [dataset, import_id, now, dataset],
            )
            predictions_new = _first(cur.execute(
                "SELECT count(*) FROM predictions WHERE import_id = ?", [import_id]
            ))[0]
            cur.unregister("_pred")

            cur.register("_err", errors.to_arrow())
            cur.execute(
                """INSERT INTO import_errors (import_id, dataset, file, row_number, reason, raw)
                   SELECT ?, ?, ?, __row, reason, left(raw, 2000) FROM _err""",
                [import_id, dataset, file],
            )
            cur.unregister("_err")
            counts = {
                "import_id": int(import_id),
                "samples_new": int(samples_new),
                "annotations_new": int(annotations_written - changed),
                "annotations_changed": int(changed),
                "predictions_new": int(predictions_new),
                "rows_bad": int(errors.height),
            }
            cur.execute(
                """INSERT INTO imports (import_id, dataset, file, file_sha256, format, rows_total, rows_ok,
                                        rows_bad, samples_new, annotations_new, annotations_changed,
                                        predictions_new, actor, imported_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [import_id, dataset, file, file_sha256, fmt, rows_total, rows_total - errors.height,
                 errors.height, counts["samples_new"], counts["annotations_new"], counts["annotations_changed"],
                 counts["predictions_new"], actor, now],
            )
            self._audit(cur, actor, "import", dataset, None, None, file,
                        {k: v for k, v in counts.items()} | {"rows_total": rows_total, "format": fmt})
        return counts

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

    def existing_samples(self, dataset: str, sample_ids: pl.Series) -> pl.DataFrame:
        """Stored (sample_id, content_hash) of the given ids in ``dataset``."""
        with self.cursor() as cur:
            cur.register("_ids", pl.DataFrame({"sample_id": sample_ids}).to_arrow())
            try:
                return _frame(cur, 
                    """SELECT s.sample_id, s.content_hash FROM samples s SEMI JOIN _ids i
                       ON s.sample_id = i.sample_id WHERE s.dataset = ?""",
                    [dataset],
                )
            finally:
                cur.unregister("_ids")

    def content_hashes(self, frame: pl.DataFrame) -> pl.Series:
        """The store's content hash (sha256 over the text fields) for rows of ``frame``."""
        with self.cursor() as cur:
            cur.register("_f", frame.select("instruction", "input", "output", "text").to_arrow())
            try:
                return _frame(cur, 
                    """SELECT sha256(concat_ws(chr(31), coalesce(instruction, ''), coalesce(input, ''),
                              coalesce(output, ''), coalesce(text, ''))) AS h FROM _f"""
                )["h"]
            finally:
                cur.unregister("_f")

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
        _require_write(actor)
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
        _require_write(actor)
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
        _require_write(reviewer)
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
        _require_write(actor)
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
        _require_write(actor)
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
