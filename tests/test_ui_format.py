"""ui.format: the shared table formatter (readable headers, no literal "None", timestamps to the second,
rounded floats) and the small text helpers."""

from __future__ import annotations

import math
from datetime import date, datetime

import polars as pl
import pytest
import streamlit as st

from ui.format import MISSING, cell, column_labels, header, readable, safe_filename


@pytest.mark.parametrize("column, expected", [
    ("sample_id", "Sample"), ("agreement_with_majority", "Agreement with majority"), ("logged_at", "Logged"),
    ("macro_f1", "Macro-F1"), ("n_items", "Items"), ("label", "Label"), ("", ""),
])
def test_header(column, expected):
    assert header(column) == expected


@pytest.mark.parametrize("value, expected", [
    (None, "—"), (float("nan"), "—"), (datetime(2026, 1, 2, 3, 4, 5, 678901), "2026-01-02 03:04:05"),
    (0.123456, "0.123"), (1234.5, "1,234.500"), (True, "yes"), (3, "3"), ("x", "x"),
])
def test_cell(value, expected):
    assert cell(value) == expected


def test_readable_values_keep_their_names_and_show_no_none():
    df = pl.DataFrame({
        "logged_at": [datetime(2026, 1, 2, 3, 4, 5, 678901), None],
        "day": [date(2026, 1, 2), None],
        "note": ["ok", None],
        "score": [0.123456, 0.5],
        "gap": [0.25, None],
        "bad": [1.0, math.nan],
        "n": [1, None],
        "count": [1, 2],
        "flag": [True, None],
    })
    out = readable(df)
    assert out.columns == df.columns
    assert out["logged_at"].to_list() == ["2026-01-02 03:04:05", MISSING]
    assert out["day"].to_list() == ["2026-01-02", MISSING]
    assert out["note"].to_list() == ["ok", MISSING]
    assert out["score"].to_list() == [0.123, 0.5] and out["score"].dtype == pl.Float64  # still a number
    assert out["gap"].to_list() == ["0.250", MISSING]
    assert out["bad"].to_list() == ["1.000", MISSING]
    assert out["n"].to_list() == ["1", MISSING]
    assert out["count"].to_list() == [1, 2] and out["count"].dtype == pl.Int64
    assert "None" not in out.select(pl.all().cast(pl.Utf8)).to_pandas().to_csv()
    assert readable(df, keep={"gap"})["gap"].to_list() == [0.25, None]  # a column the page formats itself


def test_column_labels_give_readable_titles_and_keep_the_pages_own():
    own = st.column_config.NumberColumn("F1", format="%.3f")
    config = column_labels(["sample_id", "new_label", "f1", "entry_id"], f1=own, entry_id=None)
    assert config == {"sample_id": "Sample", "new_label": "New label", "f1": own, "entry_id": None}


def test_safe_filename():
    assert safe_filename("客服 数据/集", "v1") == "客服_数据_集_v1"
    assert safe_filename("..", default="x") == "x"
