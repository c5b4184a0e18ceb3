"""Compare two studies: which settings differ, and which figures moved beyond their intervals.

    python -m lora_study.stages.tables.compare_runs RUN_A RUN_B          # the variants each config asks for
    python -m lora_study.stages.tables.compare_runs RUN_A RUN_B --all    # and every older result on disk

RUN is a project directory holding results/ (its results/tables/*.csv, written by rule
build_tables; without them the result files themselves are read) or a folder of those CSV files.

Figures are matched by table, model, dataset, metric or measure and the variant's grid position
(kind, rank, targets, training size, seed: what its readable name spells), so a variant whose
learning rate changed is compared with its earlier self, and the spec fields that differ are
listed; with --all, variants are matched by their full spec instead. A figure moved when each
run's value lies outside the other run's interval; figures without an interval (timings,
training loss) are only counted.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lora_study.stages.tables.tables import TABLES, build_tables, cell, collect, columns

# The fields of a spec that place a variant in the grid (grid.VariantSpec.name spells them);
# every other field is a setting whose change a comparison reports.
COORDINATES = ("kind", "rank", "targets", "train_size", "seed")

Table = list[dict[str, str]]
KEY_LABELS = {"batch_size": "batch size {}", "layer": "layer {}"}  # how a numeric key reads in a label


@dataclass(frozen=True)
class Figure:
    """Where a table keeps a figure with an interval, and what says which figure it is."""

    key: tuple[str, ...]  # columns naming the figure (besides model, dataset and who)
    who: tuple[tuple[str, str], ...]  # (name columns, "|"-separated: the first filled; spec prefix) per variant
    value: str = "value"
    low: str = "low"
    high: str = "high"


FIGURES: dict[str, Figure] = {
    "scores": Figure(key=("stage", "metric"), who=(("variant", "spec."),)),
    "comparisons": Figure(
        key=("kind", "metric"),
        who=(("a", "a.spec."), ("b", "b.spec.")),
        value="difference.mean",
        low="difference.low",
        high="difference.high",
    ),
    "drift": Figure(key=("level", "measure", "layer"), who=(("variant|group", "spec."),)),
    "serving_overhead": Figure(key=("batch_size",), who=(("variant", "spec."),)),
}


class RunError(ValueError):
    """A folder holds no results to compare; the message names it."""


# ---------------------------------------------------------------------------------------------
# Reading


def read_run(path: Path) -> dict[str, Table]:
    """The tables of a study folder: its results/tables/*.csv, a folder of them, or built in
    memory from its results/ (no config: `in_config` unknown, settings as the files record them)."""
    for folder in (path / "results" / "tables", path):
        if all((folder / f"{name}.csv").is_file() for name in ("scores", "config")):
            return {name: read_csv(folder / f"{name}.csv") for name in TABLES if (folder / f"{name}.csv").is_file()}
    if not (path / "results").is_dir():
        raise RunError(
            f"{path}: no results here (expected {path}/results/tables/*.csv, {path}/results/ or a folder of those CSV files)"
        )
    found = collect(root=path, current=None)
    if not any(found.values()):
        raise RunError(f"{path}/results: no result files (scores.json, train.json, ...) under it")
    built = build_tables(found=found, config=None, code_version="unknown (read from the result files)")
    return {name: as_text(rows) for name, rows in built.items()}


def read_csv(path: Path) -> Table:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def as_text(rows: Sequence[Mapping[str, object]]) -> Table:
    """Rows built in memory as the CSV file would hold them."""
    header = columns(rows, front=())
    return [{column: cell(row.get(column)) for column in header} for row in rows]


def number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Settings


def settings(run: Mapping[str, Table]) -> dict[str, str]:
    return {row["setting"]: row["value"] for row in run.get("config", [])}


def setting_changes(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    changed = [f"{key}: {a[key]} -> {b[key]}" for key in sorted(set(a) & set(b)) if a[key] != b[key]]
    changed += [f"{key}: only in A ({a[key]})" for key in sorted(set(a) - set(b))]
    changed += [f"{key}: only in B ({b[key]})" for key in sorted(set(b) - set(a))]
    return changed


# ---------------------------------------------------------------------------------------------
# Figures


def spec_of(row: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {column.removeprefix(prefix): value for column, value in row.items() if column.startswith(prefix) and value}


def name_of(row: Mapping[str, str], names: str) -> str:
    """The first filled of `names` ("variant|group": a variant's row, else its group's)."""
    return next((row[n] for n in names.split("|") if row.get(n)), "")


def identity(row: Mapping[str, str], *, names: str, prefix: str, full: bool) -> tuple[tuple[str, str], ...]:
    """Who a row is about: its grid position (or, `full`, its whole spec but the derived name);
    the name of a row without a spec (the base model, a precision)."""
    spec = spec_of(row, prefix)
    if not spec:
        return (("name", name_of(row, names)),)
    fields = [f for f in spec if f != "name"] if full else [f for f in COORDINATES if f in spec]
    return tuple((field, spec[field]) for field in fields)


def in_scope(row: Mapping[str, str], *, everything: bool) -> bool:
    """A row of a variant the config asks for (or of unknown standing); every row with `everything`."""
    return everything or row.get("in_config") != "False"


def figure_key(row: Mapping[str, str], figure: Figure, *, full: bool) -> tuple:
    who = [identity(row, names=n, prefix=p, full=full) for n, p in figure.who]
    return (row.get("model"), row.get("dataset"), *(row.get(k, "") for k in figure.key), tuple(who))


def keyed(
    a: Table, b: Table, figure: Figure, *, everything: bool
) -> tuple[dict[tuple, dict[str, str]], dict[tuple, dict[str, str]]]:
    """Both studies' figures by what they are. A grid position held twice in either study (older
    results of a variant read without their config) is matched by full spec on both sides."""
    rows = [[row for row in table if in_scope(row, everything=everything)] for table in (a, b)]
    ambiguous = {
        key
        for side in rows
        for key, count in Counter(figure_key(row, figure, full=everything) for row in side).items()
        if count > 1
    }

    def by_key(side: list[dict[str, str]]) -> dict[tuple, dict[str, str]]:
        return {
            figure_key(row, figure, full=everything or figure_key(row, figure, full=everything) in ambiguous): row
            for row in side
        }

    return by_key(rows[0]), by_key(rows[1])


@dataclass(frozen=True)
class Moved:
    table: str
    label: str
    a: Mapping[str, str]
    b: Mapping[str, str]
    figure: Figure

    def text(self) -> str:
        def shown(row: Mapping[str, str]) -> str:
            return f"{float(row[self.figure.value]):.4g} [{float(row[self.figure.low]):.4g}, {float(row[self.figure.high]):.4g}]"

        return f"{self.table}: {self.label}: {shown(self.a)} -> {shown(self.b)}"


def outside(value: float, low: float, high: float) -> bool:
    return value < low or value > high


@dataclass
class FigureReport:
    moved: list[Moved]
    within: int
    without_interval: int
    only_a: list[str]
    only_b: list[str]


def compare_figures(a: Mapping[str, Table], b: Mapping[str, Table], *, everything: bool) -> FigureReport:
    report = FigureReport(moved=[], within=0, without_interval=0, only_a=[], only_b=[])
    for name, figure in FIGURES.items():
        rows_a, rows_b = keyed(a.get(name, []), b.get(name, []), figure, everything=everything)
        report.only_a += [f"{name}: {label(row, figure)}" for k, row in rows_a.items() if k not in rows_b]
        report.only_b += [f"{name}: {label(row, figure)}" for k, row in rows_b.items() if k not in rows_a]
        for k in rows_a.keys() & rows_b.keys():
            row_a, row_b = rows_a[k], rows_b[k]
            ends = [number(row.get(c)) for row in (row_a, row_b) for c in (figure.value, figure.low, figure.high)]
            if any(e is None or math.isnan(e) for e in ends):
                report.without_interval += 1
                continue
            va, la, ha, vb, lb, hb = ends
            if outside(vb, la, ha) and outside(va, lb, hb):
                report.moved.append(
                    Moved(table=name, label=label(row_a, figure, other=row_b), a=row_a, b=row_b, figure=figure)
                )
            else:
                report.within += 1
    report.moved.sort(key=lambda m: (m.table, m.label))
    return report


def label(row: Mapping[str, str], figure: Figure, *, other: Mapping[str, str] | None = None) -> str:
    """`variant metric` (`a vs b` for a comparison), naming B's variant too where it differs."""
    names = []
    for name, _ in figure.who:
        mine, theirs = name_of(row, name), name_of(other or {}, name)
        if mine or theirs:
            names.append(mine if not other or mine == theirs else f"{mine} (B: {theirs})")
    what = " ".join(
        KEY_LABELS.get(k, "{}").format(row[k]) for k in figure.key if row.get(k) and k not in ("kind", "level")
    )
    return f"{' vs '.join(names)} {what}".strip()


def spec_changes(a: Mapping[str, Table], b: Mapping[str, Table], *, everything: bool) -> list[str]:
    """Per variant evaluated in both (matched by grid position): the spec fields that differ."""
    figure = Figure(key=(), who=(("variant", "spec."),))

    def evaluated(run: Mapping[str, Table]) -> Table:
        # One row per scores file: the spec is the same on each of its metrics' rows.
        return list({row.get("source"): row for row in run.get("scores", []) if row.get("stage") == "eval"}.values())

    evaluated_a, evaluated_b = keyed(evaluated(a), evaluated(b), figure, everything=everything)
    changes = []
    for k in sorted(evaluated_a.keys() & evaluated_b.keys(), key=str):
        spec_a, spec_b = spec_of(evaluated_a[k], "spec."), spec_of(evaluated_b[k], "spec.")
        fields = [f for f in dict.fromkeys([*spec_a, *spec_b]) if f != "name" and spec_a.get(f) != spec_b.get(f)]
        if fields:
            diff = ", ".join(f"{f} {spec_a.get(f, '-')} -> {spec_b.get(f, '-')}" for f in fields)
            changes.append(f"{label(evaluated_a[k], figure, other=evaluated_b[k])}: {diff}")
    return changes


# ---------------------------------------------------------------------------------------------
# The command


def describe(path: Path, run: Mapping[str, Table]) -> str:
    rows = [row for name in TABLES if name != "config" for row in run.get(name, [])]
    ids = sorted({row.get("run", "") for row in run.get("config", []) + rows} - {""})
    code = sorted({row.get("code_version", "") for row in rows} - {""})
    scores = run.get("scores", [])
    variants = {(r.get("model"), r.get("dataset"), r.get("variant")): r.get("in_config") for r in scores}
    old = sum(v == "False" for v in variants.values())
    return (
        f"{path}: run {', '.join(ids) or 'unknown'}; results from code {', '.join(code) or 'unknown'}; "
        f"{len(variants)} variants and precisions scored ({old} not in its config)"
    )


def compare_runs(*, a: Path, b: Path, everything: bool = False) -> str:
    """The comparison's text; RunError for a folder without results."""
    run_a, run_b = read_run(a), read_run(b)
    lines = [f"A: {describe(a, run_a)}", f"B: {describe(b, run_b)}", ""]
    changes = setting_changes(settings(run_a), settings(run_b))
    lines.append(f"Settings that differ ({len(changes)}):" if changes else "Settings: the same.")
    lines += [f"  {line}" for line in changes]
    specs = spec_changes(run_a, run_b, everything=everything)
    if specs:
        lines += ["", f"Variants whose spec differs, matched by grid position ({len(specs)}):"]
        lines += [f"  {line}" for line in specs]
    figures = compare_figures(run_a, run_b, everything=everything)
    judged = len(figures.moved) + figures.within
    lines += [
        "",
        f"Figures that moved beyond their intervals ({len(figures.moved)} of {judged}: each value outside the other's interval):",
    ]
    lines += [f"  {moved.text()}" for moved in figures.moved] or ["  none"]
    lines.append(
        f"Within each other's intervals: {figures.within}; without an interval, not judged: {figures.without_interval}."
    )
    for side, only in (("A", figures.only_a), ("B", figures.only_b)):
        if only:
            shown = "; ".join(sorted(only)[:5]) + (f"; ... ({len(only) - 5} more)" if len(only) > 5 else "")
            lines.append(f"Only in {side} ({len(only)}): {shown}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lora_study.stages.tables.compare_runs", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_a", type=Path, help="a project directory holding results/, or a results/tables folder")
    parser.add_argument("run_b", type=Path, help="the same for the other study")
    parser.add_argument(
        "--all",
        action="store_true",
        help="also results of variants the configs no longer ask for, matched by full spec",
    )
    args = parser.parse_args(argv)
    try:
        print(compare_runs(a=args.run_a, b=args.run_b, everything=args.all))
    except RunError as error:
        print(f"compare_runs: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
