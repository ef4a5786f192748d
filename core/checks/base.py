"""The quality-check contract: a check is a small named unit with a title, help, severity and a run.

A check module builds one :class:`Check` and hands it to :func:`core.checks.register`; the report
(:mod:`core.quality_report`), the CLI and the Data quality page loop over the registry, so adding a
check is adding a module to this package. Shared helpers for checks over text fields live here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from core.quality import combine_fields
from core.vocab import TEXT_FIELDS

#: Characters of context shown before and after a matched span.
CONTEXT_CHARS = 30
#: Characters of a text shown in a findings table (the JSON report has the ids to look up the rest).
PREVIEW_CHARS = 300
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")

Progress = Callable[[str, float], Any]


@dataclass
class CheckContext:
    """What a check runs on: the dataset's samples (excluded ones skipped unless asked) and options."""

    store: Any
    dataset: str
    samples: pl.DataFrame
    fields: list[str]
    threshold: float = 0.8
    #: Options of on-demand checks (e.g. ``label_errors``: the method; ``model``: the encoder).
    options: dict[str, Any] = field(default_factory=dict)
    progress: Progress | None = None
    #: Work shared by the checks of one run (e.g. :func:`instruction_view`): one dict handed to every context.
    cache: dict[str, Any] = field(default_factory=dict)
    #: Read the per-sample part of each check through the store's pass cache (:func:`per_sample`); False computes
    #: every sample here (the results are the same).
    cached: bool = True


@dataclass
class CheckResult:
    """A check's findings: ``frame`` (one row per finding, with ``sample_id``), the summary card's
    ``count`` (None: not computed) and ``detail``, and ``extra`` frames or objects (e.g. pairs)."""

    frame: pl.DataFrame
    count: int | None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """One registered quality check.

    ``run(context) -> CheckResult``. ``on_demand`` checks (they may embed every text) run only
    when the caller asks for them; ``empty`` is the frame schema shown before they ran.
    """

    name: str
    title: str
    help: str
    severity: str
    run: Callable[[CheckContext], CheckResult]
    empty: dict[str, Any]
    order: int = 100
    on_demand: bool = False
    #: The queue reason its findings get by default when sent to review (else ``manual``).
    reason: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"check name {self.name!r}: lowercase letters, digits and _ only")
        if self.severity not in SEVERITIES:
            raise ValueError(f"check {self.name!r}: severity must be one of {', '.join(SEVERITIES)}")

    @property
    def queue_reason(self) -> str:
        return self.reason or "manual"

    def not_run(self, note: str = "not computed") -> CheckResult:
        return CheckResult(pl.DataFrame(schema=self.empty), None, note)


def distinct_count(frame: pl.DataFrame) -> int:
    """Samples with at least one finding."""
    return frame["sample_id"].n_unique() if frame.height else 0


def by_kind(frame: pl.DataFrame) -> str:
    """``"kind n, kind n"``: samples per kind of finding, most first."""
    if frame.height == 0:
        return ""
    counts = frame.group_by("kind").agg(pl.col("sample_id").n_unique().alias("n")).sort(["n", "kind"],
                                                                                         descending=[True, False])
    return ", ".join(f"{k} {n}" for k, n in counts.iter_rows())


def text_fields(samples: pl.DataFrame) -> list[str]:
    """The text fields (of :data:`TEXT_FIELDS`) that hold a value in at least one sample."""
    return [f for f in TEXT_FIELDS if f in samples.columns and samples.get_column(f).is_not_null().any()]


def required_fields(samples: pl.DataFrame) -> list[str]:
    """Fields the completeness check requires: instruction and output when the dataset has them, else ``text``."""
    present = set(text_fields(samples))
    required = [f for f in ("instruction", "output") if f in present]
    if not required:
        required = ["text"] if "text" in present else []
    return required


def preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def joined_texts(samples: pl.DataFrame, fields: Sequence[str]) -> list[str]:
    if samples.height == 0 or not fields:
        return [""] * samples.height
    return combine_fields(samples, fields)


def sample_ids(samples: pl.DataFrame) -> list[str]:
    return samples.get_column("sample_id").cast(pl.Utf8).to_list()


_SPAN_SCHEMA = {"sample_id": pl.Utf8, "field": pl.Utf8, "kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64,
                "before": pl.Utf8, "match": pl.Utf8, "after": pl.Utf8}


def span_report(samples: pl.DataFrame, fields: Sequence[str], finder: Callable[[str], list],
                 fixer: Callable[[str], str], fixed_name: str) -> pl.DataFrame:
    schema = {**_SPAN_SCHEMA, fixed_name: pl.Utf8}
    rows: dict[str, list] = {k: [] for k in schema}
    ids = sample_ids(samples)
    for f in fields:
        if f not in samples.columns:
            continue
        for sid, text in zip(ids, samples.get_column(f).to_list()):
            if not text:
                continue
            found = finder(text)
            if not found:
                continue
            fixed = fixer(text)
            for kind, start, end, matched in found:
                lo, hi = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
                rows["sample_id"].append(sid)
                rows["field"].append(f)
                rows["kind"].append(kind)
                rows["start"].append(start)
                rows["end"].append(end)
                rows["before"].append(("…" if lo > 0 else "") + text[lo:start])
                rows["match"].append(matched)
                rows["after"].append(text[end:hi] + ("…" if hi < len(text) else ""))
                rows[fixed_name].append(fixed)
    return sort_findings(pl.DataFrame(rows, schema=schema))


# ---------------------------------------------------------------------------------------------
# Instruction and chat data: the derived texts of each sample, shared by the checks of one run
# ---------------------------------------------------------------------------------------------

#: Shapes whose kept record holds a conversation (read turn by turn by the chat-structure check).
CONVERSATION_SHAPES: tuple[str, ...] = ("chat", "sharegpt", "preference")
#: The columns every finding of an instruction-data check has (then the check's own extras).
#: ``excerpt``: the field's text around the span with the span marked «like this» (a preview of the field when
#: the finding has no span); ``before`` / ``after``: the context either side of the span.
FINDING_SCHEMA: dict[str, Any] = {
    "check": pl.Utf8, "sample_id": pl.Utf8, "label": pl.Utf8, "kind": pl.Utf8, "severity": pl.Utf8,
    "message": pl.Utf8, "field": pl.Utf8, "start": pl.Int64, "end": pl.Int64, "span_text": pl.Utf8,
    "excerpt": pl.Utf8, "before": pl.Utf8, "after": pl.Utf8,
}
#: A pass's findings (:mod:`core.passes`): without ``label``, which changes with every review and is attached when
#: the findings are read (:func:`with_labels`).
PASS_FINDING_SCHEMA: dict[str, Any] = {k: v for k, v in FINDING_SCHEMA.items() if k != "label"}
_FIELD_ORDER = {f: i for i, f in enumerate((*TEXT_FIELDS, "rejected", "conversation"))}


class InstructionView:
    """What the instruction-data checks read, one entry per sample of ``ctx.samples`` (in its order).

    The store keeps each record's derived texts (:meth:`core.records.Derived.text_fields`) in its four columns,
    whatever the record's shape: ``instruction`` is the prompt (the Alpaca instruction, the user turn(s) the final
    answer replies to, a pair's prompt), ``input`` the context (Alpaca input, system and earlier turns), ``output``
    the response (output, final assistant turn, chosen answer) and ``text`` a text record (for a conversation, its
    rendering). Those are read as stored, vectorised; only the turns of a conversation and the rejected answer of a
    preference pair come from the kept record (:func:`core.records.derive`), parsed once, for those shapes only.
    Gold labels (:func:`core.gold.dataset_gold`) name each sample's group; None where a sample has none.
    """

    def __init__(self, ctx: CheckContext):
        self.ctx = ctx
        self.samples = ctx.samples
        self.ids = sample_ids(ctx.samples)
        self.n = len(self.ids)
        self._texts: dict[str, list[str | None]] = {}
        self._turns: dict[int, list[dict[str, str]] | str] | None = None
        self._rejected: dict[int, str | None] = {}
        self._labels: list[str | None] | None = None

    def texts(self, name: str) -> list[str | None]:
        """A text column (``instruction``, ``input``, ``output``, ``text``) or ``rejected``; None where absent."""
        if name not in self._texts:
            if name == "rejected":
                self.conversations()
                out: list[str | None] = [None] * self.n
                for i, rejected in self._rejected.items():
                    out[i] = rejected
                self._texts[name] = out
            elif name in self.samples.columns:
                self._texts[name] = self.samples.get_column(name).cast(pl.Utf8).to_list()
            else:
                self._texts[name] = [None] * self.n
        return self._texts[name]

    def present(self, name: str) -> bool:
        return any(t is not None for t in self.texts(name))

    def text_only(self) -> list[bool]:
        """Samples that are a plain text (no instruction and no output): their ``text`` is the thing to check."""
        ins, out, text = self.texts("instruction"), self.texts("output"), self.texts("text")
        return [a is None and b is None and c is not None for a, b, c in zip(ins, out, text)]

    def conversations(self) -> dict[int, list[dict[str, str]] | str]:
        """Row -> the turns (``{"role", "content"}``, OpenAI roles) of each sample whose kept record is a
        conversation or a preference pair, as :func:`core.records.derive` reads them (the error message, a str,
        for a record that cannot be read)."""
        if self._turns is None:
            out: dict[int, list[dict[str, str]] | str] = {}
            for i, shape, record in self._shaped_records():
                try:
                    out[i], self._rejected[i] = _record_turns(json.loads(record) if isinstance(record, str)
                                                              else record, shape)
                except (ValueError, TypeError, KeyError, AttributeError) as exc:  # RecordError is a ValueError
                    out[i] = str(exc) or type(exc).__name__
            self._turns = out
        return self._turns

    def _shaped_records(self) -> list[tuple[int, str, Any]]:
        samples = self.samples
        if "shape" in samples.columns and "record" in samples.columns:
            recs = samples.select("shape", "record").with_row_index("_row")
        elif self.ctx.store is not None and hasattr(self.ctx.store, "sample_records") and self.n:
            stored = self.ctx.store.sample_records(self.ctx.dataset, include_excluded=True)
            recs = (samples.select(pl.col("sample_id").cast(pl.Utf8)).with_row_index("_row")
                    .join(stored.with_columns(pl.col("sample_id").cast(pl.Utf8)), on="sample_id", how="inner")
                    .select("_row", "shape", "record"))
        else:
            return []
        recs = recs.filter(pl.col("shape").is_in(list(CONVERSATION_SHAPES)) & pl.col("record").is_not_null())
        return list(zip(recs["_row"].to_list(), recs["shape"].to_list(), recs["record"].to_list()))

    def labels(self) -> list[str | None]:
        """Each sample's gold label (None: no gold label, or no store to read it from)."""
        if self._labels is None:
            gold = self.ctx.cache.get("gold")
            if gold is None and self.ctx.store is not None and hasattr(self.ctx.store, "get_dataset"):
                from core.gold import dataset_gold

                gold = dataset_gold(self.ctx.store, self.ctx.dataset).labels.select("sample_id", "gold_label")
                self.ctx.cache["gold"] = gold
            if gold is None or gold.height == 0:
                self._labels = [None] * self.n
            else:
                gold = gold.select(pl.col("sample_id").cast(pl.Utf8), pl.col("gold_label").cast(pl.Utf8))
                self._labels = (pl.DataFrame({"sample_id": self.ids}, schema={"sample_id": pl.Utf8})
                                .join(gold.unique("sample_id", keep="last"), on="sample_id", how="left",
                                      maintain_order="left")["gold_label"].to_list())
        return self._labels


def _record_turns(record: Any, shape: str) -> tuple[list[dict[str, str]], str | None]:
    """``(turns, rejected answer)`` of a kept record. A plain chat or ShareGPT record takes the short way (the
    same normalisation of its messages as :func:`core.records.derive`, without rendering every text: about a
    third of the time, which matters at a million records); anything else goes through ``derive``."""
    from core.records import _turns, derive

    if isinstance(record, dict):
        if shape == "chat" and isinstance(record.get("messages"), list):
            return _turns(record["messages"], "messages"), None
        if shape == "sharegpt" and isinstance(record.get("conversations"), list):
            turns = _turns(record["conversations"], "conversations", "from", "value")
            system = record.get("system")
            if isinstance(system, str) and system and turns[0]["role"] != "system":
                turns.insert(0, {"role": "system", "content": system})
            return turns, None
    derived = derive(record, shape)
    return derived.turns, derived.rejected


def instruction_view(ctx: CheckContext) -> InstructionView:
    """The :class:`InstructionView` of a run, built once and shared by its checks (``ctx.cache``)."""
    key = ("instruction_view", id(ctx.samples))
    view = ctx.cache.get(key)
    if view is None:
        view = ctx.cache[key] = InstructionView(ctx)
    return view


def span_excerpt(text: str | None, start: int | None, end: int | None,
                 context: int = CONTEXT_CHARS) -> tuple[str | None, str | None, str]:
    """``(before, after, excerpt)`` of a span: up to ``context`` characters either side (``…`` where cut), and the
    excerpt with the span marked «so». Without a span: no context, and a preview of the text as the excerpt."""
    text = text or ""
    if start is None or end is None:
        return None, None, preview(" ".join(text.split()), 160)
    lo, hi = max(0, start - context), min(len(text), end + context)
    before = ("…" if lo > 0 else "") + text[lo:start]
    after = text[end:hi] + ("…" if hi < len(text) else "")
    excerpt = f"{before}«{text[start:end]}»{after}"
    return before, after, excerpt.replace("\r\n", "\n").replace("\n", " ⏎ ")


def findings_table(check: str, view: InstructionView, findings: Sequence[dict[str, Any]],
                   extras: dict[str, Any] | None = None, rows: Sequence[int] | None = None) -> pl.DataFrame:
    """Findings of :mod:`core.textchecks` as a check's frame: :data:`FINDING_SCHEMA` then ``extras`` (name -> dtype).

    Each finding's ``index`` is a row of ``view`` (or of ``rows``, the rows the function ran on); its ``field`` a
    name :meth:`InstructionView.texts` knows (``conversation``: the record's turns, ``turn`` names which).
    Sorted by sample, field and span.
    """
    extras = dict(extras or {})
    schema = {**FINDING_SCHEMA, **extras}
    cols: dict[str, list] = {k: [] for k in schema}
    labels = view.labels()
    for f in findings:
        i = int(f["index"]) if rows is None else int(rows[int(f["index"])])
        name = f.get("field")
        start, end = f.get("start"), f.get("end")
        if name == "conversation":
            turns = view.conversations().get(i)
            turn = f.get("turn")
            before = after = None
            if isinstance(turns, str) or turns is None:
                excerpt = ""
            elif turn is not None and turn < len(turns):
                t = turns[turn]
                excerpt = f"turn {turn + 1} · {t['role']}: " + (preview(" ".join(t["content"].split()), 120)
                                                                 or "(empty)")
            else:
                excerpt = preview(" ⏎ ".join(f"{t['role']}: {' '.join(t['content'].split())}" for t in turns), 160)
        else:
            text = view.texts(name)[i] if name else None
            before, after, excerpt = span_excerpt(text, start, end)
        cols["check"].append(check)
        cols["sample_id"].append(view.ids[i])
        cols["label"].append(labels[i])
        for k in ("kind", "severity", "message", "span_text"):
            cols[k].append(f.get(k))
        cols["field"].append(name)
        cols["start"].append(start)
        cols["end"].append(end)
        cols["excerpt"].append(excerpt)
        cols["before"].append(before)
        cols["after"].append(after)
        for k in extras:
            cols[k].append(f.get(k))
    return sort_findings(pl.DataFrame(cols, schema=schema))


def sort_findings(frame: pl.DataFrame) -> pl.DataFrame:
    """A findings or spans frame in table order: by sample, field (:data:`TEXT_FIELDS` order, then the rejected
    answer and the conversation) and span start; rows that tie keep their order."""
    return (frame.with_columns(pl.col("field").replace_strict(_FIELD_ORDER, default=99, return_dtype=pl.Int32)
                               .alias("_f"))
            .sort(["sample_id", "_f", "start"], nulls_last=True, maintain_order=True).drop("_f"))


def with_labels(frame: pl.DataFrame, view: InstructionView, schema: dict[str, Any]) -> pl.DataFrame:
    """A label-free findings frame (a pass's rows) with each sample's gold label (:meth:`InstructionView.labels`)
    in its ``label`` column, columns in ``schema`` order. Labels change with every review, so they are attached
    here, never cached with the findings."""
    labels = pl.DataFrame({"sample_id": view.ids, "label": view.labels()},
                          schema={"sample_id": pl.Utf8, "label": pl.Utf8}).unique("sample_id", keep="first")
    frame = frame.drop("label", strict=False).join(labels, on="sample_id", how="left", maintain_order="left")
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def uses_cache(ctx: CheckContext) -> bool:
    """Whether a check of ``ctx`` reads its per-sample part through the pass cache (a store, and not turned off)."""
    return ctx.store is not None and ctx.cached and hasattr(ctx.store, "cached_pass_rows")


def per_sample(ctx: CheckContext, name: str, direct: Callable[[], pl.DataFrame],
               options: dict[str, Any] | None = None) -> pl.DataFrame:
    """The per-sample part of a check: pass ``name``'s rows for ``ctx.samples`` through the store's cache
    (:func:`core.passes.runner.pass_frame`: only new or changed samples are computed) when the context has a store,
    else ``direct()`` (the same rows computed here: a notebook, a test, ``ctx.cached`` False). ``options``: the
    pass's options (default: the dataset's)."""
    if not uses_cache(ctx):
        return direct()
    # imported at run time: core.passes imports this module
    from core.passes.runner import pass_frame

    return pass_frame(ctx.store, ctx.dataset, name, ctx.samples, progress=ctx.progress, options=options)


def batch_view(batch: pl.DataFrame) -> InstructionView:
    """The :class:`InstructionView` of a batch of samples on its own (no store, no labels): what a pass reads.
    Conversations come from the batch's ``shape`` and ``record`` columns."""
    return InstructionView(CheckContext(store=None, dataset="", samples=batch, fields=[]))


def findings_result(frame: pl.DataFrame, note: str = "") -> CheckResult:
    """A :class:`CheckResult` of a findings frame: count = samples with a finding, detail = samples per kind."""
    detail = by_kind(frame)
    return CheckResult(frame, distinct_count(frame), "; ".join(x for x in (detail, note) if x))
