"""Persisted analysis results (table ``analysis_results``) and the data versions they are checked against.

A job's result is stored as bytes in a safe, self-describing format (never pickle: a store file may
come from someone else): a JSON tree whose leaves are plain values, with polars frames as Arrow IPC
parts, numeric numpy arrays as raw little-endian parts with their dtype and shape, and dataclasses
only of the types registered with :func:`register_result_type` (the decoder refuses any other
name). See :func:`encode_result` / :func:`decode_result`.

Data versions (:meth:`Results.data_versions`) come from the audit log, which every write appends
to: ``content`` is the latest audit id of a write that changes a dataset's samples (an import with
new samples, an exclusion, the dataset's creation); ``labels`` the latest of any write that changes
its data at all (imports, reviews, gold questions, settings such as the consensus method, evaluation
rounds, exclusions). Audit ids only grow, so ``labels >= content`` and a result computed on a
version is current while that version is the latest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import struct
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl

from core.auth import authorize
from core.roles import Action
from core.store.db import Database, _first, _now

#: What a job's result depends on: the samples' content only, or the labels too (every data write).
DEPENDS = ("content", "labels")

_MAGIC = b"QRES1\n"
_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float: the only numpy arrays stored as raw bytes
_RESULT_TYPES: dict[str, type] = {}


def register_result_type(cls: type) -> type:
    """Allow dataclass ``cls`` in stored results (a class decorator); the decoder rebuilds only these."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    _RESULT_TYPES[f"{cls.__module__}:{cls.__qualname__}"] = cls
    return cls


def params_key(params: dict[str, Any] | None) -> str:
    """A short stable key of a job's parameters (canonical JSON, hashed)."""
    text = json.dumps(params or {}, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


# -- the codec -----------------------------------------------------------------------------------
class _Encoder:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def part(self, data: bytes) -> int:
        self.parts.append(data)
        return len(self.parts) - 1

    def tree(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if math.isfinite(value) else {"$f": repr(value)}
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, pl.DataFrame):
            buf = io.BytesIO()
            value.write_ipc(buf, compression="zstd")
            return {"$pl": self.part(buf.getvalue())}
        if isinstance(value, pl.Series):
            return {"$ps": self.tree(value.to_frame())}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in _NUMERIC_KINDS:
                arr = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
                return {"$np": self.part(arr.tobytes()), "dtype": arr.dtype.str, "shape": list(arr.shape)}
            return {"$npo": [self.tree(v) for v in value.ravel().tolist()], "shape": list(value.shape)}
        if isinstance(value, datetime):
            return {"$dt": value.isoformat()}
        if isinstance(value, date):
            return {"$date": value.isoformat()}
        if isinstance(value, tuple):
            return {"$t": [self.tree(v) for v in value]}
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in value):
                return {k: self.tree(v) for k, v in value.items()}
            return {"$map": [[self.tree(k), self.tree(v)] for k, v in value.items()]}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            name = f"{type(value).__module__}:{type(value).__qualname__}"
            if name not in _RESULT_TYPES:
                raise TypeError(f"cannot store a {name}: register it with register_result_type")
            return {"$dc": name, "fields": {f.name: self.tree(getattr(value, f.name))
                                            for f in dataclasses.fields(value)}}
        raise TypeError(f"cannot store a value of type {type(value).__name__} in an analysis result")


def encode_result(value: Any) -> bytes:
    """``value`` as bytes: magic, a JSON manifest (tree + part sizes) and the binary parts."""
    enc = _Encoder()
    tree = enc.tree(value)
    manifest = json.dumps({"tree": tree, "parts": [len(p) for p in enc.parts]}, ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    return b"".join([_MAGIC, struct.pack("<Q", len(manifest)), manifest, *enc.parts])


def decode_result(data: bytes) -> Any:
    """The value :func:`encode_result` stored (ValueError on anything else)."""
    data = bytes(data)
    if not data.startswith(_MAGIC):
        raise ValueError("not a stored analysis result")
    offset = len(_MAGIC)
    (size,) = struct.unpack_from("<Q", data, offset)
    offset += 8
    manifest = json.loads(data[offset:offset + size].decode("utf-8"))
    offset += size
    parts = []
    for n in manifest["parts"]:
        parts.append(data[offset:offset + n])
        offset += n

    def tree(node: Any) -> Any:
        if isinstance(node, list):
            return [tree(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$f" in node:
            return float(node["$f"])
        if "$pl" in node:
            return pl.read_ipc(io.BytesIO(parts[node["$pl"]]))
        if "$ps" in node:
            return tree(node["$ps"]).to_series(0)
        if "$np" in node:
            dtype = np.dtype(node["dtype"])
            if dtype.kind not in _NUMERIC_KINDS:
                raise ValueError(f"refusing a stored array of dtype {dtype}")
            return np.frombuffer(parts[node["$np"]], dtype=dtype).reshape(node["shape"]).copy()
        if "$npo" in node:
            out = np.empty(len(node["$npo"]), dtype=object)
            out[:] = [tree(v) for v in node["$npo"]]
            return out.reshape(node["shape"])
        if "$dt" in node:
            return datetime.fromisoformat(node["$dt"])
        if "$date" in node:
            return date.fromisoformat(node["$date"])
        if "$t" in node:
            return tuple(tree(v) for v in node["$t"])
        if "$map" in node:
            return {_hashable(tree(k)): tree(v) for k, v in node["$map"]}
        if "$dc" in node:
            cls = _RESULT_TYPES.get(node["$dc"])
            if cls is None:
                import core.jobs  # noqa: F401 (its job modules register the result types of the jobs)

                cls = _RESULT_TYPES.get(node["$dc"])
            if cls is None:
                raise ValueError(f"a stored result of unknown type {node['$dc']!r}")
            return cls(**{k: tree(v) for k, v in node["fields"].items()})
        return {k: tree(v) for k, v in node.items()}

    return tree(manifest["tree"])


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


# -- the table -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataVersion:
    """A dataset's data versions: ``content`` (samples) and ``labels`` (every data write; >= content)."""

    content: int
    labels: int

    def of(self, depends: str) -> int:
        if depends not in DEPENDS:
            raise ValueError(f"depends must be one of {', '.join(DEPENDS)}, got {depends!r}")
        return self.content if depends == "content" else self.labels


@dataclass(frozen=True)
class StoredResult:
    """A persisted result: the decoded ``value`` and when, on which data version and how fast it was computed."""

    dataset: str
    job: str
    params: dict[str, Any]
    data_version: int
    computed_at: datetime
    seconds: float | None
    value: Any


# Writes that change a dataset's samples; every other audited write except the queue's, raw-data reveals
# and the results' own changes the labels (and so the "labels" version).
_CONTENT_SQL = """(action IN ('dataset.create', 'sample.exclude', 'sample.include')
                   OR (action = 'import'
                       AND coalesce(TRY_CAST(json_extract_string(detail, '$.samples_new') AS BIGINT), 1) > 0))"""
_DATA_SQL = "(action NOT LIKE 'queue.%' AND action NOT IN ('pii.reveal') AND action NOT LIKE 'analysis.%')"


class Results(Database):
    """Stores, reads and deletes analysis results; reports each dataset's data versions."""

    def data_versions(self, dataset: str) -> DataVersion:
        """The dataset's current :class:`DataVersion` (0, 0 before any write)."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                f"""SELECT coalesce(max(audit_id) FILTER (WHERE {_CONTENT_SQL}), 0),
                           coalesce(max(audit_id) FILTER (WHERE {_DATA_SQL}), 0)
                    FROM audit_log WHERE dataset = ?""", [dataset]))
        return DataVersion(int(row[0]), int(row[1]))

    def data_version(self, dataset: str, depends: str = "labels") -> int:
        """The version a result that depends on ``depends`` (``content`` or ``labels``) is checked against."""
        return self.data_versions(dataset).of(depends)

    def put_result(self, dataset: str, job: str, params: dict[str, Any] | None, value: Any, *, data_version: int,
                   seconds: float | None, actor: str) -> datetime:
        """Store (replace) the result of ``job`` with ``params`` on ``dataset``, computed on ``data_version``;
        returns the time it is stored with (``computed_at``)."""
        authorize(actor, Action.ANALYZE)
        blob = encode_result(value)
        params = params or {}
        now = _now()
        with self.transaction() as cur:
            self.get_dataset(dataset)  # type: ignore[attr-defined]  (a clear error for an unknown dataset)
            cur.execute(
                """INSERT OR REPLACE INTO analysis_results (dataset, job, params_key, data_version, computed_at, seconds,
                                                 params, result)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [dataset, job, params_key(params), int(data_version), now, seconds,
                 json.dumps(params, sort_keys=True, ensure_ascii=False, default=str), blob])
        return now

    def get_result(self, dataset: str, job: str, params: dict[str, Any] | None = None) -> StoredResult | None:
        """The stored result of ``job`` with ``params`` (whatever its version), or None."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                """SELECT data_version, computed_at, seconds, params, result FROM analysis_results
                   WHERE dataset = ? AND job = ? AND params_key = ?""", [dataset, job, params_key(params)]))
        if row is None:
            return None
        return StoredResult(dataset, job, json.loads(row[3]) if row[3] else {}, int(row[0]), row[1], row[2],
                            decode_result(row[4]))

    def result_info(self, dataset: str, job: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """``data_version, computed_at, seconds, bytes`` of a stored result without reading its value, or None."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                """SELECT data_version, computed_at, seconds, octet_length(result) FROM analysis_results
                   WHERE dataset = ? AND job = ? AND params_key = ?""", [dataset, job, params_key(params)]))
        if row is None:
            return None
        return {"data_version": int(row[0]), "computed_at": row[1], "seconds": row[2], "bytes": int(row[3])}

    def result_versions(self, dataset: str, job: str | None = None) -> pl.DataFrame:
        """The stored results of ``dataset`` (of ``job``; None = all) without their values:
        ``job, params_key, params, data_version, computed_at, seconds, bytes``."""
        return self.query_df(
            """SELECT job, params_key, params, data_version, computed_at, seconds, octet_length(result) AS bytes
               FROM analysis_results WHERE dataset = ? AND (?::VARCHAR IS NULL OR job = ?)
               ORDER BY job, computed_at""", [dataset, job, job])

    def delete_results(self, dataset: str, actor: str, job: str | None = None) -> int:
        """Delete the stored results of ``dataset`` (of ``job``; None = all); returns how many."""
        authorize(actor, Action.ANALYZE)
        with self.transaction() as cur:
            row = _first(cur.execute(
                "SELECT count(*) FROM analysis_results WHERE dataset = ? AND (?::VARCHAR IS NULL OR job = ?)",
                [dataset, job, job]))
            cur.execute("DELETE FROM analysis_results WHERE dataset = ? AND (?::VARCHAR IS NULL OR job = ?)",
                        [dataset, job, job])
        return int(row[0])
