"""The tables stage's section: where the study's tidy CSV tables are (results/tables/, written
by rule build_tables from the same result files, plus older results still on disk), how many
rows each holds and how many belong to variants the config no longer asks for."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lora_study.report.inputs import Files, Stage
from lora_study.report.page import Section, escape, table

ONE_LINE = "pd.concat(pd.read_csv(f) for f in glob.glob('results/tables/*.csv'))"


def table_counts(path: Path) -> tuple[int, int, int]:
    """(rows, rows not in the config, columns) of one table."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        width = len(reader.fieldnames or [])
    return len(rows), sum(row.get("in_config") == "False" for row in rows), width


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    rows = [[path.as_posix(), *table_counts(path)] for path in files["tables"]]
    body = (
        "<p>Every figure of this report, and the results of variants the config no longer asks for "
        "(a changed setting makes a new variant beside the old one), as CSV rows; each row carries "
        "the variant's spec, the config's hash and the code version. In pandas: "
        f"<code>{escape(ONE_LINE)}</code>; two studies' tables concatenate and stay apart by "
        "<code>run</code>. <code>python -m lora_study.stages.tables.compare_runs A B</code> compares two studies.</p>"
        + table(["table", "rows", "not in the config", "columns"], rows)
    )
    return [Section(anchor="tables", title="Tables", body=body)]


STAGE = Stage(name="tables", inputs=("tables",), sections=sections)
