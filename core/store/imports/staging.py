"""Reading a file into the staging table ``_stg`` / view ``_src`` with DuckDB's readers (:class:`StagedFile`).

An import reads its file once into the connection-local temp table ``_stg`` whose columns are
named c0..cN (the source names travel beside it in :class:`StagedFile`, and reach SQL only as
parameters), exposed with the 1-based row number as the view ``_src(__row, c0..)``. Validation
and the write then run as SQL over that view, so a million-row file never leaves DuckDB. Every
method here runs on the calling thread's cursor: call them inside ``with store.staging():`` so
that the temp tables live until the import is written.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import numpy as np
import polars as pl

from core.store.db import Database, _first, _frame
from core.store.errors import StoreError

# Unicode White_Space: what Python's and polars' strip remove; DuckDB's trim() takes the set.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + \
    "\u2028\u2029\u202f\u205f\u3000"

_STAGING_VIEWS = ("_src", "_src0")

_STAGING_TABLES = ("_stg", "_readbad", "_rownum", "_probs", "_k", "_bad", "_dupkeys", "_late", "_firsts",
                   "_stored", "_err", "_ann", "_pred", "_lines", "_values", "_derived", "_shaped", "_rep")

#: The columns :meth:`Staging.stage_derived` adds after the kept source columns (see
#: :data:`core.record_rows.DERIVED_SCHEMA`), with their DuckDB types.
DERIVED_COLUMNS: dict[str, str] = {
    "id": "VARCHAR", "instruction": "VARCHAR", "input": "VARCHAR", "output": "VARCHAR", "text": "VARCHAR",
    "shape": "VARCHAR", "record": "VARCHAR", "annotations": "STRUCT(annotator VARCHAR, label VARCHAR)[]",
    "prediction": "VARCHAR", "pred_confidence": "DOUBLE", "model": "VARCHAR",
}
# The derived column of each: the Parquet part's name (core.record_rows.DERIVED_SCHEMA).
_DERIVED_SOURCE = {"annotations": "anns"}


def _empty_bad() -> pl.DataFrame:
    return pl.DataFrame(schema={"__row": pl.Int64, "reason": pl.Utf8, "raw": pl.Utf8})


def _sql_text(value: str) -> str:
    """A fixed string (never a user's) as a SQL literal."""
    return "'" + value.replace("'", "''") + "'"


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
    (``__row, reason, raw``). ``fast`` tells whether a JSON-lines file took the one-read path.
    ``n_source``: after :meth:`Staging.stage_derived`, the first ``n_source`` columns are the file's
    and the rest are derived (:data:`DERIVED_COLUMNS`); ``None``: every column is the file's."""

    columns: list[str]
    types: list[str]
    rows: int
    bad: pl.DataFrame
    fast: bool = True
    n_source: int | None = None

    @property
    def source_columns(self) -> list[str]:
        return self.columns if self.n_source is None else self.columns[: self.n_source]

    def derived(self, name: str) -> int:
        """The staged index of a derived column (:data:`DERIVED_COLUMNS`)."""
        if self.n_source is None:
            raise KeyError(f"no derived columns staged (asked for {name!r})")
        return self.n_source + list(DERIVED_COLUMNS).index(name)


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


class Staging(Database):
    """Stages a JSON-lines, CSV or Parquet file and reads the staged rows."""

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

    def staged_list_labels(self, staged: StagedFile, column: int) -> set[str]:
        """The distinct labels of a staged list-of-``{annotator, label}`` column."""
        with self.cursor() as cur:
            return {r[0] for r in cur.execute(
                f"SELECT DISTINCT a.label FROM (SELECT unnest(c{column}) AS a FROM _src) WHERE a.label <> ''"
            ).fetchall()}

    def import_temp_dir(self) -> Path:
        """The store's scratch folder for imports (``tmp/import`` beside the store file; the system's
        temporary folder for an in-memory store), created on demand."""
        base = Path(tempfile.gettempdir()) if self.in_memory else Path(self.path).resolve().parent / "tmp"
        folder = base / "import"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def stage_representatives(self, columns: Sequence[int]) -> np.ndarray:
        """Group the staged rows by the values of ``columns`` (a record's content and id) and return the
        first row of each group, sorted: the rows whose records :mod:`core.record_rows` reads. The other
        rows of a group (the long-form rows of one record, one per annotator) take its derived values in
        :meth:`stage_derived` (``_rep`` maps each row to its group's first row)."""
        group = ", ".join(f"c{i}" for i in columns) or "NULL"
        with self.cursor() as cur:
            cur.execute(f"""CREATE OR REPLACE TEMP TABLE _rep AS
                            SELECT __row, min(__row) OVER (PARTITION BY {group}) AS rep FROM _src""")
            table = cur.sql("SELECT __row FROM _rep WHERE __row = rep ORDER BY __row").to_arrow_table()
        return table.column(0).to_numpy()

    def staged_records(self, staged: StagedFile, batch_rows: int = 10_000,
                       representatives: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(row number, record)`` of every staged row in file order (only the first of each group with
        ``representatives``, see :meth:`stage_representatives`), the record keyed by the source column
        names, null cells left out (native values: Parquet lists and structs as Python lists and dicts;
        CSV cells as text), read in Arrow batches of ``batch_rows``. Nothing else may run on this
        thread's cursor until the iterator is exhausted."""
        names = staged.source_columns
        cols = "".join(f", s.c{i}" for i in range(len(names)))
        only = " JOIN _rep r ON r.__row = s.__row AND r.rep = s.__row" if representatives else ""
        with self.cursor() as cur:
            reader = cur.sql(f"SELECT s.__row{cols} FROM _src s{only} ORDER BY s.__row").to_arrow_reader(batch_rows)
            for batch in reader:
                rows = batch.column(0).to_pylist()
                values = [batch.column(i + 1).to_pylist() for i in range(len(names))]
                for k, n in enumerate(rows):
                    yield n, {name: col[k] for name, col in zip(names, values) if col[k] is not None}

    def restate_read_errors(self, staged: StagedFile, errors: pl.DataFrame, strip: Sequence[str] = ()) -> StagedFile:
        """Replace the reason of read errors with more precise ones (``__row, reason``: what the JSON-array
        reader said about records the JSON-lines reader could only call malformed); ``strip``: prefixes the
        converter put before such a record's text, taken off its raw text."""
        if errors.height == 0:
            return staged
        raw = "raw"
        for prefix in strip:
            raw = f"CASE WHEN starts_with(raw, {_sql_text(prefix)}) THEN substr(raw, {len(prefix) + 1}) ELSE {raw} END"
        with self.cursor() as cur:
            cur.register("_restated", errors.select(pl.col("__row").cast(pl.Int64),
                                                    pl.col("reason").cast(pl.Utf8)).to_arrow())
            try:
                cur.execute(f"""UPDATE _readbad SET reason = r.reason, raw = {raw} FROM _restated r
                                WHERE _readbad.__row = r.__row""")
            finally:
                cur.unregister("_restated")
            bad = _frame(cur, "SELECT * FROM _readbad ORDER BY __row")
        return StagedFile(staged.columns, staged.types, staged.rows, bad, staged.fast, staged.n_source)

    def stage_derived(self, staged: StagedFile, parts: Sequence[str], keep: Sequence[int],
                      representatives: bool = False) -> tuple[StagedFile, int]:
        """Put the rows derived in Python (Parquet ``parts`` of :mod:`core.record_rows`) beside the staged rows.

        Afterwards ``_src`` holds, per row that derived cleanly, the kept source columns ``keep`` (in that
        order, as c0..) and then :data:`DERIVED_COLUMNS`; the rows whose record could not be read (and any
        staged row without a derived one) move to the read errors with their reason and record. With
        ``representatives`` the parts hold the first row of each group only (:meth:`stage_representatives`)
        and every row takes its group's. Returns the new staged file and the number of distinct ids
        derived from content.
        """
        names = "".join(f", b.c{i} AS c{k}" for k, i in enumerate(keep))
        kept = "".join(f", s.c{k}" for k in range(len(keep)))
        derived = ", ".join(f"d.{_DERIVED_SOURCE.get(name, name)} AS c{len(keep) + j}"
                            for j, name in enumerate(DERIVED_COLUMNS))
        source = staged.source_columns
        # a row's own text in the error report (the derived record is its group's first row's)
        own = "CAST(json_object(" + ", ".join(f"?, b.c{i}" for i in range(len(source))) + ") AS VARCHAR)" \
            if source else "''"
        if representatives:
            rows, rep = "_src b JOIN _rep r ON r.__row = b.__row", "r.rep"
            raw = f"CASE WHEN b.__row = r.rep THEN d.record ELSE {own} END"
        else:
            rows, rep, raw = "_src b", "b.__row", "d.record"
        with self.cursor() as cur:
            # The derived values are held once per group (not once per row: the long-form rows of a record
            # share them), and the rows point at their group's.
            cur.execute("CREATE OR REPLACE TEMP TABLE _derived AS SELECT * FROM read_parquet(?) WHERE err IS NULL",
                        [list(parts)])
            cur.execute(f"""INSERT INTO _readbad
                            SELECT b.__row, coalesce(d.err, 'the record could not be read'), coalesce({raw}, '')
                            FROM {rows} LEFT JOIN read_parquet(?) d ON d.__row = {rep}
                            WHERE d.__row IS NULL OR d.err IS NOT NULL""",
                        [*(source if representatives else []), list(parts)])
            cur.execute(f"""CREATE OR REPLACE TEMP TABLE _shaped AS
                            SELECT b.__row{names}, {rep} AS __rep FROM {rows}
                            SEMI JOIN _derived d ON d.__row = {rep}""")
            cur.execute("DROP VIEW _src")
            for table in ("_rep", "_rownum", "_stg"):  # the source rows now live in _shaped
                cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"""CREATE TEMP VIEW _src AS SELECT s.__row{kept}, {derived}
                            FROM _shaped s JOIN _derived d ON d.__row = s.__rep""")
            n_rows = _first(cur.execute("SELECT count(*) FROM _shaped"))[0]
            from_content = _first(cur.execute("SELECT count(DISTINCT id) FILTER (WHERE derived_id) FROM _derived"))[0]
            bad = _frame(cur, "SELECT * FROM _readbad ORDER BY __row")
        columns = [staged.columns[i] for i in keep] + [f"<derived {name}>" for name in DERIVED_COLUMNS]
        types = [staged.types[i] for i in keep] + list(DERIVED_COLUMNS.values())
        return StagedFile(columns, types, int(n_rows), bad, staged.fast, n_source=len(keep)), int(from_content)

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
