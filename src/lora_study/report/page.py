"""Page assembly and the HTML helpers every stage uses: sections, tables, escaping."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lora_study.core.io import atomic_write_text

TITLE = "lora-study report"
# Beside every time measured in a lane (rules/common.smk): training and generation jobs.
LANE_TIMES = (
    "Times of training and generation are this run's costs, not clean speed figures: on one machine "
    "several such jobs may run at once, one thread each (lanes, docs/PERFORMANCE.md). The quantisation "
    "latency and serving jobs run alone, on every core."
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;vertical-align:top}
th{background:#f3f3f5;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#666;font-size:.9rem}pre{background:#f6f6f8;padding:.8rem;overflow-x:auto;font-size:.85rem}
.text{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.92rem;margin:.3rem 0}
table.example{width:100%;table-layout:fixed}table.example th:first-child{width:14rem}
table.example td{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.92rem}
.example-block{margin:1rem 0 1.6rem}details>summary{cursor:pointer;color:#333}
summary .preview{display:block;color:#1d1d1f}details[open] summary .preview{display:none}
.verdict-yes{color:#1b5e20;font-weight:600}.verdict-no{color:#8a1c1c;font-weight:600}
figure{margin:.6rem 0}figure svg{max-width:100%;height:auto}
section{overflow-x:auto}  /* a wide table scrolls inside its section, not the page */
"""


@dataclass(frozen=True)
class Section:
    """One titled part of the page; stages contribute sections built from their files."""

    anchor: str
    title: str
    body: str


def escape(value: Any) -> str:
    return html.escape(str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric_from: int = 1) -> str:
    """Every cell escaped; cells from column `numeric_from` on are right-aligned numbers."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(cell)}</td>' if index >= numeric_from else f"<td>{escape(cell)}</td>"
            for index, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_page(*, sections: Sequence[Section], out_path: str | Path) -> None:
    """report.html: a table of contents, then the sections in order."""
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    contents = "".join(f'<li><a href="#{escape(s.anchor)}">{escape(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{escape(s.anchor)}"><h2>{escape(s.title)}</h2>{s.body}</section>' for s in sections)
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{TITLE}</title><style>{CSS}</style></head><body>"
        f"<h1>{TITLE}</h1><p class=muted>Built {created} from the files under results/.</p>"
        f"<nav><ol>{contents}</ol></nav>{body}</body></html>\n"
    )
    atomic_write_text(out_path, page)
