"""Annotation quality engine: store, import, metrics and selection, with no UI dependency."""

__version__ = "0.1.0"
