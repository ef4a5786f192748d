"""Writing an import in one transaction (samples, annotations, predictions) and the import history."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from core.auth import authorize
from core.roles import Action
from core.store.db import Database, _first, _frame, _now, _Params
from core.store.errors import StoreError
from core.store.imports.staging import StagedFile, _strip

#: Longest raw record kept in ``import_errors``.
RAW_LIMIT = 2000

_CONTENT_HASH = ("sha256(concat_ws(chr(31), coalesce({t}instruction, ''), coalesce({t}input, ''), "
                 "coalesce({t}output, ''), coalesce({t}text, '')))")


@dataclass
class ImportPlan:
    """How staged columns feed the store, for :meth:`Store.import_staged`.

    ``fields`` maps target fields (``id``, ``instruction``, ``label``, ``round``... as in
    :class:`core.ingest.ColumnMapping`) to a staged column index; ``wide`` lists
    ``(annotator, index)`` of wide label columns; ``meta`` the indexes kept as the sample's
    JSON metadata; ``has_probs`` says that :meth:`Store.stage_probabilities` was called.
    Records read by :mod:`core.record_rows` add ``fields["shape"]``, ``fields["record"]`` (the record's
    JSON text) and, for a tool export, ``fields["annotations"]`` (a list of ``{annotator, label}``).
    """

    fields: dict[str, int | None]
    labels: list[str]
    wide: list[tuple[str, int]] = field(default_factory=list)
    meta: list[int] = field(default_factory=list)
    has_probs: bool = False
    pred_round: int | None = None
    model: str | None = None
    default_annotator: str = "default"
    #: The shape of every sample when no staged column gives it (``fields["shape"]``).
    shape: str | None = None
    #: Keys dropped from the record (``fields["record"]``) before it is stored: the columns that hold one
    #: annotator's label or a prediction.
    record_drop: list[str] = field(default_factory=list)

    @property
    def key_annotator(self) -> bool:
        return self.fields.get("annotator") is not None

    @property
    def key_pred_round(self) -> bool:
        return self.fields.get("pred_round") is not None


class ImportWriter(Database):
    """Validates and writes staged rows, and reads the import history.

    :meth:`write_import` (rows given as polars frames) is used only by tests: the app and the
    CLI import through :meth:`import_staged`."""

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
            if plan.fields.get("gold_label") is not None:
                late.append(f"""SELECT o.__row, 0 AS prio, 'gold label ''' || o.gold_label || ''' differs from row '
                                       || g.first_row || ' with the same id ''' || o.sample_id || '''' AS reason
                                FROM {ok} o JOIN (SELECT sample_id, min(__row) AS first_row,
                                                         arg_min(gold_label, __row) AS g0
                                                  FROM {ok} o WHERE gold_label <> '' GROUP BY sample_id
                                                  HAVING count(DISTINCT gold_label) > 1) g ON g.sample_id = o.sample_id
                                WHERE o.gold_label <> '' AND o.gold_label <> g.g0""")
            p.execute(cur, f"""CREATE OR REPLACE TEMP TABLE _late AS
                            SELECT __row, arg_min(reason, prio) AS reason
                            FROM ({' UNION ALL '.join(late)}) GROUP BY __row""")
            cur.execute("INSERT INTO _bad SELECT __row, reason FROM _late")

            # 4. what lands
            good = ok  # _bad now holds every rejected row
            samples = f"""SELECT o.sample_id, b.instruction, b.input, b.output, b.text, o.batch,
                                 CAST(o.round_f AS INTEGER) AS round, b.meta, b.shape, b.record
                          FROM {good} o SEMI JOIN _firsts f ON f.first_row = o.__row
                          JOIN ({self._bodies_sql(staged, plan, self._meta_sql(staged, plan, p), p)}) b
                            ON b.__row = o.__row"""
            parts = []
            if plan.fields.get("label") is not None:
                parts.append(f"""SELECT sample_id, coalesce(annotator, {p(plan.default_annotator)}) AS annotator,
                                        label, confidence, 0 AS part, __row FROM {good} o WHERE label <> ''""")
            for k, (annotator, _) in enumerate(plan.wide):
                parts.append(f"""SELECT sample_id, {p(annotator)} AS annotator, {_strip(f'w{k}')} AS label,
                                        NULL::DOUBLE AS confidence, {k + 1} AS part, __row
                                 FROM {good} o WHERE {_strip(f'w{k}')} <> ''""")
            if plan.fields.get("annotations") is not None:
                parts.append(f"""SELECT sample_id, coalesce(a.annotator, {p(plan.default_annotator)}) AS annotator,
                                        a.label, NULL::DOUBLE AS confidence, {len(plan.wide) + 1} AS part, __row
                                 FROM (SELECT sample_id, __row, unnest(anns) AS a FROM {good} o
                                       WHERE anns IS NOT NULL)""")
            annotations = None
            if parts:
                annotations = f"SELECT * FROM ({' UNION ALL '.join(parts)})"
                if len(parts) > 1 or plan.key_pred_round or plan.fields.get("annotations") is not None:
                    # otherwise the row key made them unique
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
            if plan.fields.get("gold_label") is not None:
                # a gold_label column marks gold questions, in this transaction; unchanged ones are not rewritten
                gold = _frame(cur, f"""SELECT n.* FROM (SELECT sample_id, arg_min(gold_label, __row) AS gold_label
                                                        FROM {good} o WHERE gold_label <> '' GROUP BY sample_id) n
                                       ANTI JOIN (SELECT sample_id, gold_label FROM gold_questions WHERE dataset = ?) q
                                         ON q.sample_id = n.sample_id AND q.gold_label = n.gold_label
                                       ORDER BY n.sample_id""", [dataset])
                counts["gold_questions"] = 0
                if gold.height:
                    authorize(actor, Action.GOLD)
                    counts["gold_questions"] = self._write_gold_questions(cur, dataset, gold, actor, "import")
            error_frame = _frame(cur, "SELECT __row, reason, raw FROM _err ORDER BY __row")
        return counts, error_frame

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
                    samples=("SELECT sample_id, instruction, input, output, text, batch, round, meta, "
                             + ", ".join(c if c in samples.columns else f"NULL AS {c}" for c in ("shape", "record"))
                             + " FROM _f_samples"),
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
                                     content_hash, meta, shape, record, import_id, created_at)
                SELECT {d}, n.sample_id, n.instruction, n.input, n.output, n.text, n.batch, n.round,
                       {_CONTENT_HASH.format(t='n.')}, n.meta, n.shape, n.record, {iid}, {now}
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
