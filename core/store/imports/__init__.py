"""Importing a file: staging it with DuckDB's readers, the row checks as SQL, and the write."""

from core.store.imports.staging import StagedFile, Staging
from core.store.imports.validation import RowChecks
from core.store.imports.write import ImportPlan, ImportWriter

__all__ = ["ImportPlan", "ImportWriter", "RowChecks", "StagedFile", "Staging"]
