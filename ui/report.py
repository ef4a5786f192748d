"""A standalone HTML report: headline cards, plotly charts (plotly.js inline once, so it opens offline), a table."""

from __future__ import annotations

import html
from datetime import datetime, timezone

import plotly.graph_objects as go
import polars as pl


def report_html(name: str, cards: list[tuple[str, str, str]], figures: list[tuple[str, go.Figure]],
                table: pl.DataFrame, notes: list[str]) -> str:
    """One standalone HTML file: headline, charts (plotly.js inline once, so it opens offline), table."""
    esc = html.escape
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{esc(name)}</title>",
        "<style>body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1200px;"
        "color:#1d2433;padding:0 16px}.cards{display:flex;gap:16px;flex-wrap:wrap}.card{border:1px solid #d8dde6;"
        "border-radius:8px;padding:10px 16px;min-width:180px}.card .v{font-size:1.6em;font-weight:600}"
        ".card .d{color:#555}table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #d8dde6;"
        "padding:4px 8px;text-align:right}th{background:#f3f5f9}.note{color:#555}</style></head><body>",
        f"<h1>{esc(name)}</h1><p class=\"note\">Generated {esc(stamp)} by the annotation quality "
        "dashboard.</p><div class=\"cards\">",
    ]
    for label, value, delta in cards:
        parts.append(f"<div class=\"card\"><div>{esc(label)}</div><div class=\"v\">{esc(value)}</div>"
                     f"<div class=\"d\">{esc(delta)}</div></div>")
    parts.append("</div>")
    parts.extend(f"<p class=\"note\">{esc(n)}</p>" for n in notes)
    for i, (title, fig) in enumerate(figures):
        parts.append(f"<h2>{esc(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}))
    parts.append("<h2>Rounds</h2><table><thead><tr>")
    parts.extend(f"<th>{esc(c)}</th>" for c in table.columns)
    parts.append("</tr></thead><tbody>")
    for row in table.iter_rows():
        cells = ("—" if v is None else f"{v:.4f}" if isinstance(v, float) else f"{v}" for v in row)
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table></body></html>\n")
    return "".join(parts)
