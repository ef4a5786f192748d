"""The schema: numbered migrations, each applied once in its own transaction, and the version in force."""

from __future__ import annotations

from core.store.db import Database, _first
from core.store.errors import StoreError

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
    (
        2,
        "record shapes: the original record and its shape kept with each sample",
        [
            # shape: instruction | chat | sharegpt | preference | text (core.records); record: the
            # record as it came in (JSON), from which export writes it back in its own shape.
            "ALTER TABLE samples ADD COLUMN shape VARCHAR",
            "ALTER TABLE samples ADD COLUMN record JSON",
        ],
    ),
    (
        3,
        "gold questions: samples with a known true label, to score annotators",
        [
            """CREATE TABLE gold_questions (
                dataset VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                gold_label VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                set_by VARCHAR NOT NULL,
                set_at TIMESTAMP NOT NULL,
                PRIMARY KEY (dataset, sample_id)
            )""",
        ],
    ),
    (
        4,
        "analysis results: persisted outputs of jobs, keyed by dataset, job, parameters and data version",
        [
            """CREATE TABLE analysis_results (
                dataset VARCHAR NOT NULL,
                job VARCHAR NOT NULL,
                params_key VARCHAR NOT NULL,
                data_version BIGINT NOT NULL,
                computed_at TIMESTAMP NOT NULL,
                seconds DOUBLE,
                params JSON,
                result BLOB NOT NULL,
                PRIMARY KEY (dataset, job, params_key)
            )""",
        ],
    ),
    (
        5,
        "per-sample pass cache: each pass's output rows by dataset, pass, version, options and sample content",
        [
            # One row per saved part: a pass's output rows for up to core.store.passes.PART_SAMPLES samples, as
            # Arrow IPC (each pass has its own columns; a part is read whole, then filtered by pass_samples).
            "CREATE SEQUENCE pass_part_seq START 1",
            """CREATE TABLE pass_parts (
                part_id BIGINT PRIMARY KEY,
                dataset VARCHAR NOT NULL,
                pass VARCHAR NOT NULL,
                version INTEGER NOT NULL,
                options_key VARCHAR NOT NULL,
                n_samples BIGINT NOT NULL,
                n_rows BIGINT NOT NULL,
                computed_at TIMESTAMP NOT NULL,
                rows BLOB NOT NULL
            )""",
            # One row per computed sample (with or without output rows): which part holds its rows. No primary
            # key (an ART index slows bulk inserts): the store inserts only samples it does not hold (anti-join).
            """CREATE TABLE pass_samples (
                dataset VARCHAR NOT NULL,
                pass VARCHAR NOT NULL,
                version INTEGER NOT NULL,
                options_key VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                content_hash VARCHAR NOT NULL,
                part_id BIGINT NOT NULL
            )""",
        ],
    ),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]


class Schema(Database):
    """Creates and upgrades the tables when a store is opened."""

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
