"""How a report stage gets its files: the `Stage` record, the checks that rule build_report's
named inputs and the stages' declared inputs agree, and matching per-variant files to variants
by what each file records, so a missing or extra file cannot shift the rest (by position only
for a file that records nothing, and then checked).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lora_study.core.provenance import meta_info
from lora_study.core.results import read_result, write_result
from lora_study.report.page import Section

RULE = "build_report"
# The index rule build_report writes beside the page (rules/report.smk names the same path), and
# its layout version: bench/record_run.py reads it and refuses a version it does not know.
INDEX = "results/index.json"
INDEX_SCHEMA = 1
# Input name -> its files (a single-file input as one path, an empty list as none).
Files = Mapping[str, Sequence[Path]]


class ReportInputError(ValueError):
    """The rule's inputs and the stages disagree, or result files do not match up."""


class SectionBuilder(Protocol):
    def __call__(self, *, files: Files, config: Mapping[str, Any]) -> list[Section]: ...


@dataclass(frozen=True)
class Stage:
    """One stage's part of the page: the named inputs of rule build_report it reads and the
    function building its sections from exactly those."""

    name: str
    inputs: tuple[str, ...]
    sections: SectionBuilder

    def build(self, *, files: Files, config: Mapping[str, Any]) -> list[Section]:
        # Only the declared inputs reach the stage: reading another is a KeyError, not a silent extra.
        return self.sections(files={name: files[name] for name in self.inputs}, config=config)


def named_inputs(rule_input: Any) -> dict[str, tuple[Path, ...]]:
    """`snakemake.input` as name -> paths. An unnamed input raises: no stage could declare it."""
    named = {
        name: (Path(value),) if isinstance(value, str) else tuple(Path(path) for path in value)
        for name, value in rule_input.items()
    }
    unnamed = len(rule_input) - sum(len(paths) for paths in named.values())
    if unnamed:
        raise ReportInputError(
            f"rule {RULE} has {unnamed} unnamed input(s); name each so that a report stage can declare it"
        )
    return named


def write_index(*, files: Files, out_path: str | os.PathLike[str]) -> None:
    """results/index.json: every file the report was built from, by input name, in input order.
    It is the run's one list of its result files: bench/record_run.py reads it instead of
    keeping its own copy of the layout, so a stage that registers a report input is recorded too."""
    write_result(
        out_path,
        run={"rule": RULE, "schema": INDEX_SCHEMA},
        metrics={"inputs": {name: [str(path) for path in paths] for name, paths in files.items()}},
        meta=meta_info(),
    )


def check_inputs(*, rule_inputs: Iterable[str], stages: Sequence[Stage]) -> None:
    """Every input of the rule is read by some stage, and every stage reads only inputs the rule has."""
    rule_inputs = set(rule_inputs)
    unread = sorted(rule_inputs - {name for stage in stages for name in stage.inputs})
    missing = [
        f"{stage.name} reads {', '.join(sorted(set(stage.inputs) - rule_inputs))}"
        for stage in stages
        if set(stage.inputs) - rule_inputs
    ]
    problems = []
    if unread:
        problems.append(
            f"rule {RULE} has input(s) that no report stage reads: {', '.join(unread)} "
            "(declare each in a stage's inputs, src/lora_study/report/)"
        )
    if missing:
        problems.append(
            f"report stage(s) read input(s) that rule {RULE} does not have: {'; '.join(missing)} (rules/report.smk)"
        )
    if problems:
        raise ReportInputError("; ".join(problems))


def one(files: Files, name: str) -> Path:
    """The file of a single-file input."""
    if len(files[name]) != 1:
        raise ReportInputError(f"input {name}: expected one file, got {len(files[name])}")
    return files[name][0]


def variant_of(result: Mapping[str, Any]) -> str:
    """The variant a result file records: `run.variant` (a trained variant, the base model or a
    precision's quality run) or `run.precision` (latency.json)."""
    run = result["run"]
    return run["variant"] if "variant" in run else run["precision"]


def by_variant(paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Result files keyed by the variant each records, in input order; two for one variant raise."""
    found: dict[str, dict[str, Any]] = {}
    where: dict[str, Path] = {}
    for path in paths:
        result = read_result(path)
        name = variant_of(result)
        if name in found:
            raise ReportInputError(f"{path} and {where[name]} both hold results of {name}")
        found[name], where[name] = result, path
    return found


def same_variants(**results: Mapping[str, Any]) -> None:
    """Per-variant inputs that must cover the same variants, by input name: one lacking a variant raises."""
    (first, expected), *others = results.items()
    for name, found in others:
        if set(found) != set(expected):
            raise ReportInputError(
                f"inputs {first} and {name} hold different variants: only in {first}: "
                f"{', '.join(sorted(set(expected) - set(found))) or '-'}; only in {name}: "
                f"{', '.join(sorted(set(found) - set(expected))) or '-'}"
            )


def paired(files: Files, first: str, second: str) -> list[tuple[Path, Path]]:
    """Two per-variant inputs built by one comprehension over the same variants, pairwise;
    different lengths raise (a plain zip would drop the unpaired files silently)."""
    if len(files[first]) != len(files[second]):
        raise ReportInputError(
            f"inputs {first} and {second} differ in length: {len(files[first])} and {len(files[second])} files"
        )
    return list(zip(files[first], files[second], strict=True))


def recorded_files(*, paths: Sequence[Path], recorded: Mapping[str, str], name: str) -> dict[str, Path]:
    """Files matched to variants by the path another result file records for each
    (scores.json's `run.predictions_file`): variant -> path; an input nobody records, or a
    recorded path that is not an input, raises."""
    given = {Path(os.path.normpath(path)): path for path in paths}
    matched = {variant: Path(os.path.normpath(path)) for variant, path in recorded.items()}
    absent = sorted(f"{variant} ({path})" for variant, path in matched.items() if path not in given)
    unread = sorted(str(path) for path in set(given) - set(matched.values()))
    if absent or unread:
        raise ReportInputError(
            f"input {name}: recorded but not an input: {', '.join(absent) or '-'}; "
            f"an input no result records: {', '.join(unread) or '-'}"
        )
    return {variant: given[path] for variant, path in matched.items()}
