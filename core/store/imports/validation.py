"""The row checks of an import as SQL over the staged rows: parsed fields, each row's first problem, metadata."""

from __future__ import annotations

from core.store.db import Database, _Params
from core.store.imports.staging import StagedFile, _strip, _text
from core.store.imports.write import ImportPlan
from core.vocab import TEXT_FIELDS

#: Largest round number (rounds are stored as INTEGER).
MAX_ROUND = 2**31 - 1

# A number as text: decimal with optional exponent, or inf / infinity / nan (any case).
_NUMBER = r"[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)"


class RowChecks(Database):
    """Builds the SQL that :meth:`ImportWriter.import_staged` runs (no statement runs here)."""

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
            f"{txt('model')} AS model", f"{stripped('gold_label')} AS gold_label",
            *[f"{_text(staged, i)} AS w{k}" for k, (_, i) in enumerate(plan.wide)],
            "(" + " OR ".join(f"{txt(t)} IS NOT NULL" for t in TEXT_FIELDS) + ") AS has_text",
            # the annotations a tool export carries per record (core.record_rows), a list of {annotator, label}
            (f"s.c{f['annotations']}" if f.get("annotations") is not None
             else "NULL::STRUCT(annotator VARCHAR, label VARCHAR)[]") + " AS anns",
        ]
        if plan.has_probs:
            cols += ["pr.probs AS probs", "pr.err AS prob_err"]
            source = "_src s LEFT JOIN _probs pr ON pr.__row = s.__row"
        else:
            cols += ["NULL::DOUBLE[] AS probs", "NULL::VARCHAR AS prob_err"]
            source = "_src s"
        return f"SELECT {', '.join(cols)} FROM {source}"

    def _bodies_sql(self, staged: StagedFile, plan: ImportPlan, meta: str | None = None,
                    p: _Params | None = None) -> str:
        """``__row`` and the text fields of each staged row (plus ``meta``, ``shape`` and ``record`` when
        ``meta`` is given: the columns of a new sample)."""
        cols = ["s.__row AS __row"]
        for t in TEXT_FIELDS:
            i = plan.fields.get(t)
            cols.append(f"{'NULL::VARCHAR' if i is None else _text(staged, i)} AS {t}")
        if meta is not None:
            assert p is not None
            cols += [f"{meta} AS meta", f"{self._shape_sql(plan, p)} AS shape", f"{self._record_sql(plan, p)} AS record"]
        return f"SELECT {', '.join(cols)} FROM _src s"

    def _shape_sql(self, plan: ImportPlan, p: _Params) -> str:
        i = plan.fields.get("shape")
        return f"s.c{i}" if i is not None else f"{p(plan.shape)}::VARCHAR"

    def _record_sql(self, plan: ImportPlan, p: _Params) -> str:
        """The record as JSON, without the keys that hold one annotator's label or a prediction
        (``plan.record_drop``): the long-form rows of one record then keep one and the same record."""
        i = plan.fields.get("record")
        if i is None:
            return "NULL::JSON"
        record = f"CAST(s.c{i} AS JSON)"
        if not plan.record_drop:
            return record
        drop = ", ".join(f"{p(k)}, NULL::JSON" for k in plan.record_drop)
        return f"json_merge_patch({record}, json_object({drop}))"

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
            f"""WHEN gold_label <> '' AND NOT list_contains({labels}, gold_label)
                THEN 'gold label ''' || gold_label || ''' is not in the label set'""",
        ]
        for k, (annotator, _) in enumerate(plan.wide):
            whens.append(f"""WHEN {_strip(f'w{k}')} <> '' AND NOT list_contains({labels}, {_strip(f'w{k}')})
                             THEN 'label ''' || w{k} || ''' of annotator ' || {p(annotator)}
                                  || ' is not in the label set'""")
        if plan.fields.get("annotations") is not None:
            unknown = f"list_filter(anns, lambda a: NOT list_contains({labels}, a.label))"
            whens.append(f"WHEN len({unknown}) > 0 THEN 'label ''' || {unknown}[1].label || ''' of annotator ' "
                         f"|| coalesce({unknown}[1].annotator, {p(plan.default_annotator)}) "
                         "|| ' is not in the label set'")
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
        """A staged row (alias ``s``) as compact JSON text, for the error report (its record, when the
        record was read in Python)."""
        if staged.n_source is not None:
            return f"s.c{staged.derived('record')}"
        if not staged.source_columns:
            return "''"
        args = []
        for i, name in enumerate(staged.source_columns):
            args += [p(name), f"s.c{i}"]
        return f"CAST(json_object({', '.join(args)}) AS VARCHAR)"
