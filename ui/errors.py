"""One way to show an error a user can cause: a plain message, never a traceback."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from core.roles import PermissionDenied

log = logging.getLogger("quality.ui")

def user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is written for the user (row numbers, names, what was expected)."""
    from core.store import StoreError  # on first use: the store loads DuckDB and polars

    return (StoreError, ValueError, PermissionDenied, OSError)


def show_error(exc: BaseException) -> None:
    """Show a store, permission or input error as a plain message (never a traceback)."""
    from core.store import StoreBusy

    if isinstance(exc, StoreBusy):
        st.warning(str(exc))
    elif isinstance(exc, user_errors()):
        st.error(str(exc))
    else:
        log.exception("unexpected error in a page", exc_info=exc)
        st.error(f"Unexpected error: {type(exc).__name__}: {exc}")


# The name the pages used before the ui package existed.
show_store_error = show_error


@contextmanager
def shown_errors(*, stop: bool = False) -> Iterator[None]:
    """Run a block of a page; an exception is shown with :func:`show_error` instead of a traceback.

    ``stop=True``: the page cannot go on without the block's result, so the run ends there
    (``st.stop``); otherwise the rest of the page still draws. Streamlit's own control flow
    (stop, rerun, switch page) derives from BaseException and passes through untouched.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the one place a page turns any error into a message
        show_error(exc)
        if stop:
            st.stop()
