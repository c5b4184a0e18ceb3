"""Tidy tables of a study: every result under results/ as rows of CSV files (results/tables/).

    python -c "import glob, pandas as pd; print(pd.concat(pd.read_csv(f) for f in glob.glob('results/tables/*.csv')))"

One row per variant and metric with its interval (scores.csv), per comparison (comparisons.csv),
per precision (quantisation.csv), per training run (training.csv), per drift measure of a
variant or group (drift.csv), per served batch size (serving.csv), per serving overhead
(serving_overhead.csv), and per config setting (config.csv). Every row carries `run` (the
study: config hash and code version, so two studies' tables concatenate and stay apart), the
config's hash, the code version and date its result file records, that file's path, the
variant's full spec as `spec.<field>` columns (empty for the base model and precisions), and
`in_config`: whether the current config asks for it. Besides the current config's results (the
rule's declared inputs), every complete result already on disk under
results/<stage>/<model>/<dataset>/ is gathered, so a variant a changed setting left behind
stays in the tables (`in_config` false).

Standard library and numpy only (lora_study.stats.inference for intervals): the job runs without torch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from lora_study.core.checksums import TRAIN_KEY
from lora_study.core.grid import as_spec
from lora_study.core.io import atomic_write_text
from lora_study.core.results import read_result
from lora_study.stats.inference import bootstrap_ci, wilson_interval, within
from lora_study.tasks import task_named

log = logging.getLogger(__name__)

# Every result of a kind on disk, by the input name the rule gives its current ones.
SOURCES: dict[str, str] = {
    "scores": "results/eval/*/*/*/scores.json",
    "quant_scores": "results/quant/*/*/*/scores.json",
    "quant_latency": "results/quant/*/*/*/latency.json",
    "train": "results/adapters/*/*/*/train.json",
    "validation": "results/adapters/*/*/*/validation.json",
    "selection": "results/selection/*/*/*/selection.json",
    "comparisons": "results/compare/*/*/comparisons.json",
    "drift": "results/drift/*/*/*/drift.json",
    "drift_summary": "results/drift/*/*/summary.json",
    "serving": "results/serving/*/*/*/*.json",
    "multi_adapter": "results/serving/*/*/multi_adapter.json",
    "serving_summary": "results/serving/*/*/summary.json",
}
TABLES = (
    "scores",
    "comparisons",
    "quantisation",
    "training",
    "validation",
    "drift",
    "serving",
    "serving_overhead",
    "config",
)
# First in every result row, in this order; config.csv has the first three and its own.
COMMON = ("run", "config_hash", "in_config", "model", "dataset", "source", "code_version", "created_at", "device_name")
SPEC_PREFIXES = ("spec.", "a.spec.", "b.spec.")

Row = dict[str, Any]


@dataclass(frozen=True)
class Found:
    """One result file: its path relative to the study's root, its content, and whether the
    current config asks for it (None: not known, for a folder read without its config)."""

    path: str
    result: Mapping[str, Any]
    in_config: bool | None

    @property
    def parts(self) -> tuple[str, ...]:
        return Path(self.path).parts

    @property
    def model(self) -> str | None:  # results/<stage>/<model>/<dataset>/...
        return self.parts[2] if len(self.parts) > 4 else None

    @property
    def dataset(self) -> str | None:
        return self.parts[3] if len(self.parts) > 4 else None

    @property
    def folder(self) -> str:
        """The variant or precision folder the file is in (a dataset-level file: its dataset)."""
        return self.parts[-2]

    @property
    def place(self) -> tuple[str | None, str | None]:
        return self.model, self.dataset


# ---------------------------------------------------------------------------------------------
# Gathering


def collect(*, root: Path, current: Mapping[str, Sequence[str | os.PathLike[str]]] | None) -> dict[str, list[Found]]:
    """Per input name of SOURCES: the current config's files (`current`, relative to `root`;
    each must parse), then every other complete result of that kind on disk (one that does not
    parse, or is of another shape, is left out with a warning). `current` None: a folder read
    without its config, every file's `in_config` unknown."""
    unknown = sorted(set(current or {}) - set(SOURCES))
    if unknown:
        raise ValueError(f"inputs {', '.join(unknown)}: no table reads them (lora_study.stages.tables.tables.SOURCES)")
    found: dict[str, list[Found]] = {}
    for name, pattern in SOURCES.items():
        declared = [_relative(path) for path in (current or {}).get(name, [])]
        items = [Found(path=path, result=read_result(root / path), in_config=True) for path in declared]
        for path in sorted(_relative(p.relative_to(root)) for p in root.glob(pattern)):
            if path in declared:
                continue
            try:
                items.append(
                    Found(path=path, result=read_result(root / path), in_config=None if current is None else False)
                )
            except (OSError, ValueError) as error:
                log.warning("left out %s: %s", path, error)
        found[name] = items
    return found


def _relative(path: str | os.PathLike[str]) -> str:
    return Path(os.path.normpath(path)).as_posix()


# ---------------------------------------------------------------------------------------------
# Building


def config_hash(config: Mapping[str, Any]) -> str:
    """The MD5 of the config as JSON with sorted keys: Snakemake's `Config MD5` of the same
    (validated, canonical) config, as bench/record_run.py records it beside each run."""
    return hashlib.md5(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()


def study_id(*, config_hash: str, code_version: str) -> str:
    """What tells two studies' rows apart: the config and the code that tabulated them."""
    return f"{config_hash[:12]}-{code_version}"


def build_tables(
    *, found: Mapping[str, Sequence[Found]], config: Mapping[str, Any] | None, code_version: str
) -> dict[str, list[Row]]:
    """Every table's rows (TABLES order). `config`: the study's config (None: unknown, and the
    settings the result files record stand in for it in config.csv)."""
    hashed = config_hash(config) if config is not None else ""
    ident = {"run": study_id(config_hash=hashed or "unknown", code_version=code_version), "config_hash": hashed}
    statistics = config.get("statistics") if config is not None else None
    tables = {
        "scores": score_rows(found=found, statistics=statistics),
        "comparisons": comparison_rows(found=found),
        "quantisation": quantisation_rows(found=found),
        "training": training_rows(found=found),
        "validation": validation_rows(found=found),
        "drift": drift_rows(found=found),
        "serving": serving_rows(found=found),
        "serving_overhead": overhead_rows(found=found),
    }
    tables = {name: [{**ident, **row} for row in rows] for name, rows in tables.items()}
    settings = config_settings(config) if config is not None else recorded_settings(found)
    tables["config"] = [{**ident, "code_version": code_version, **row} for row in settings]
    return tables


def common(item: Found) -> Row:
    """The columns every result row starts with (run and config_hash are added by build_tables)."""
    meta = item.result["meta"]
    return {
        "in_config": item.in_config,
        "model": item.model,
        "dataset": item.dataset,
        "source": item.path,
        "code_version": meta.get("code_version"),
        "created_at": meta.get("created_at"),
        "device_name": meta.get("device_name"),
    }


def flatten(value: Mapping[str, Any], *, prefix: str = "", lists: bool = False) -> Row:
    """Nested mappings as `a.b.c` columns of their scalars. Lists are left out (raw runs and
    per-example rows, summarised beside them), or kept as JSON text with `lists`."""
    flat: Row = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(flatten(item, prefix=f"{name}.", lists=lists))
        elif isinstance(item, list | tuple):
            if lists:
                flat[name] = json.dumps(item)
        else:
            flat[name] = item
    return flat


def spec_columns(spec: Mapping[str, Any] | None, *, prefix: str = "spec.") -> Row:
    """A recorded `run.spec` as columns (read as recorded, never through grid.VariantSpec: an old
    variant's spec may have other fields than today's)."""
    return flatten(spec or {}, prefix=prefix, lists=True)


def group_spec(spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the variants of a group share: the spec without its name and seed."""
    return None if spec is None else {k: v for k, v in spec.items() if k not in ("name", "seed")}


def group_of(spec: Mapping[str, Any] | None, *, fallback: str) -> str:
    """The group (variants differing only by seed) the comparisons and drift summary use, or
    `fallback` for a spec today's grid cannot read (an older variant's)."""
    try:
        resolved = as_spec(spec)
    except (TypeError, ValueError):
        return fallback
    return fallback if resolved is None else resolved.group


def each(items: Iterable[Found], build: Callable[[Found], list[Row]]) -> list[Row]:
    """`build`'s rows of every file. A current result must fit (an error names it); an older one
    in a shape this version does not read is left out with a warning."""
    rows = []
    for item in items:
        try:
            rows += build(item)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            if item.in_config:
                raise ValueError(f"{item.path}: cannot tabulate it: {error!r}") from error
            log.warning("left out %s: not in a shape this version reads (%r)", item.path, error)
    return rows


def score_rows(*, found: Mapping[str, Sequence[Found]], statistics: Mapping[str, Any] | None) -> list[Row]:
    """One row per variant or precision and metric: its mean over the evaluation examples and
    the interval comparisons.json gives it, else one computed the same way (a variant the
    current comparisons do not hold)."""
    comparisons = {item.place: item.result for item in found["comparisons"]}
    rows = []
    for stage, name in (("eval", "scores"), ("quant", "quant_scores")):
        rows += each(found[name], partial(_variant_scores, stage=stage, comparisons=comparisons, statistics=statistics))
    return rows


def _variant_scores(
    item: Found, *, stage: str, comparisons: Mapping[Any, Any], statistics: Mapping[str, Any] | None
) -> list[Row]:
    comparisons = comparisons.get(item.place)
    run, metrics = item.result["run"], item.result["metrics"]
    variant = run.get("variant", item.folder)
    spec = run.get("spec") if stage == "eval" else None
    recorded = _recorded_intervals(comparisons=comparisons, variant=variant, stage=stage)
    settings = comparisons["run"] if comparisons is not None else statistics
    rows = []
    for metric, mean in metrics["mean_values"].items():
        values = [float(row["values"][metric]) for row in metrics["per_example"]]
        if metric in recorded:
            interval, source = recorded[metric], "comparisons.json"
        elif settings is not None:
            interval = metric_interval(values, metric=metric, task=run.get("task"), settings=settings)
            source = "computed as comparisons.json computes it"
        else:
            interval, source = {}, ""
        rows.append(
            {
                **common(item),
                "stage": stage,
                "variant": variant,
                "group": group_of(spec, fallback=variant),
                **spec_columns(spec),
                "metric": metric,
                "value": mean,
                "low": interval.get("low"),
                "high": interval.get("high"),
                "confidence": interval.get("confidence"),
                "interval_method": interval.get("method"),
                "interval_source": source,
                "examples": len(values),
            }
        )
    return rows


def _recorded_intervals(*, comparisons: Mapping[str, Any] | None, variant: str, stage: str) -> dict[str, Any]:
    if comparisons is None:
        return {}
    held = comparisons["metrics"].get("variants" if stage == "eval" else "precision_variants", {})
    return dict(held.get(variant, {}).get("intervals", {}))


def metric_interval(
    values: Sequence[float], *, metric: str, task: str | None, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """The interval of a metric's mean as lora_study.stages.compare.compare.compare_variants gives it: Wilson's
    for a 0/1 metric, else the studentised bootstrap kept inside [0, 1] (tests/test_tables.py
    checks the two agree)."""
    binary = metric in task_named(task or "summarisation").binary_metrics
    confidence = settings["confidence"]
    if binary:
        return wilson_interval(values, confidence=confidence).to_dict()
    interval = bootstrap_ci(values, resamples=settings["resamples"], seed=settings["seed"], confidence=confidence)
    return within(interval, low=0.0, high=1.0).to_dict()


def comparison_rows(*, found: Mapping[str, Sequence[Found]]) -> list[Row]:
    """One row per paired comparison (and per precision against full): every scalar of its
    record, so fields a later version adds (a detectable effect, the examples it would need)
    appear without a change here, and each side's group spec as `a.spec.*`, `b.spec.*`."""
    return each(found["comparisons"], partial(_comparisons, found=found))


def _comparisons(item: Found, *, found: Mapping[str, Sequence[Found]]) -> list[Row]:
    groups = _group_specs(found=found, item=item)
    metrics = item.result["metrics"]
    return [
        {
            **common(item),
            "kind": kind,
            "metric": item.result["run"].get("metric"),
            "a": record["a"],
            "b": record["b"],
            **spec_columns(groups.get(record["a"]), prefix="a.spec."),
            **spec_columns(groups.get(record["b"]), prefix="b.spec."),
            **flatten({k: v for k, v in record.items() if k not in ("a", "b")}),
        }
        for kind, records in (
            ("variants", metrics.get("comparisons", [])),
            ("precisions", metrics.get("precisions", [])),
        )
        for record in records
    ]


def _group_specs(*, found: Mapping[str, Sequence[Found]], item: Found) -> dict[str, dict[str, Any] | None]:
    """Group name -> the spec its variants share, from the scores files of the comparisons'
    variants (comparisons.json records each variant's group)."""
    specs = {
        s.result["run"].get("variant"): s.result["run"].get("spec") for s in found["scores"] if s.place == item.place
    }
    groups: dict[str, dict[str, Any] | None] = {}
    for variant, info in item.result["metrics"].get("variants", {}).items():
        groups.setdefault(info.get("group", variant), group_spec(specs.get(variant)))
    return groups


def quantisation_rows(*, found: Mapping[str, Sequence[Found]]) -> list[Row]:
    """One row per precision: its latency.json's summaries (raw runs left out) and options, and
    the mean of each metric of the quality run beside it (`score.<metric>`)."""
    quality = {(s.place, s.folder): s.result["metrics"].get("mean_values", {}) for s in found["quant_scores"]}
    return each(found["quant_latency"], partial(_latency, quality=quality))


def _latency(item: Found, *, quality: Mapping[Any, Mapping[str, Any]]) -> list[Row]:
    run = item.result["run"]
    return [
        {
            **common(item),
            "precision": run.get("precision", item.folder),
            "dtype": item.result["meta"].get("dtype"),
            **flatten(run.get("options", {}), prefix="options."),
            **flatten(item.result["metrics"]),
            **flatten(quality.get((item.place, item.folder), {}), prefix="score."),
        }
    ]


def training_rows(*, found: Mapping[str, Sequence[Found]]) -> list[Row]:
    """One row per training run: its spec and train.json's metrics (file hashes left out)."""
    return each(found["train"], _training)


def _training(item: Found) -> list[Row]:
    run = item.result["run"]
    spec = run.get("spec")
    variant = run.get("variant", item.folder)
    metrics = {k: v for k, v in item.result["metrics"].items() if k != TRAIN_KEY}
    return [
        {
            **common(item),
            "variant": variant,
            "group": group_of(spec, fallback=variant),
            **spec_columns(spec),
            "dtype": item.result["meta"].get("dtype"),
            "examples": run.get("examples"),
            **flatten(metrics),
        }
    ]


def validation_rows(*, found: Mapping[str, Sequence[Found]]) -> list[Row]:
    """One row per validated variant (a sweep's candidates): its spec, its mean validation loss
    and whether its method's selection on disk chose its rate."""
    chosen = {
        variant
        for item in found.get("selection", [])
        for variant in item.result["metrics"]["chosen"]["variants"]
        if item.in_config is not False
    }

    def rows(item: Found) -> list[Row]:
        run, metrics = item.result["run"], item.result["metrics"]
        return [
            {
                **common(item),
                "variant": run["variant"],
                "group": group_of(run.get("spec"), fallback=run["variant"]),
                **spec_columns(run.get("spec")),
                "criterion": metrics["criterion"],
                "mean_loss": metrics["mean_loss"],
                "examples": len(metrics["per_example"]),
                "chosen": run["variant"] in chosen,
            }
        ]

    return each(found.get("validation", []), rows)


def drift_rows(*, found: Mapping[str, Sequence[Found]]) -> list[Row]:
    """Long rows (`measure`, `layer`, `value`, `low`, `high`): per variant from its drift.json
    (mean drift, drift per layer, change of cross-entropy per text set; no interval), and per
    group from the drift summary (the same with intervals over prompts and seeds, and the
    drift ratio to full fine-tuning)."""
    specs = {(d.place, d.result["run"].get("variant")): d.result["run"].get("spec") for d in found["drift"]}
    return each(found["drift"], _variant_drift) + each(found["drift_summary"], partial(_group_drift, specs=specs))


def _variant_drift(item: Found) -> list[Row]:
    run, metrics = item.result["run"], item.result["metrics"]
    variant = run.get("variant", item.folder)
    head = {
        **common(item),
        "level": "variant",
        "variant": variant,
        "group": group_of(run.get("spec"), fallback=variant),
        **spec_columns(run.get("spec")),
    }
    return [
        {**head, "measure": "mean_drift", "value": metrics.get("mean_drift")},
        *(
            {**head, "measure": "drift", "layer": layer, "value": value}
            for layer, value in enumerate(metrics.get("drift_per_layer", []))
        ),
        *(
            {**head, "measure": f"forgetting.{name}", "value": text.get("change")}
            for name, text in metrics.get("forgetting", {}).items()
        ),
    ]


def _group_drift(item: Found, *, specs: Mapping[Any, Any]) -> list[Row]:
    metrics = item.result["metrics"]
    rows = []
    for group, info in metrics.get("groups", {}).items():
        members = info.get("variants", [])
        head = {
            **common(item),
            "level": "group",
            "group": group,
            "seeds": info.get("seeds"),
            **spec_columns(group_spec(specs.get((item.place, members[0]))) if members else None),
        }
        rows.append({**head, "measure": "mean_drift", **interval_columns(info["mean_drift"])})
        rows += [
            {**head, "measure": "drift", "layer": layer["layer"], **interval_columns(layer)}
            for layer in info.get("per_layer", [])
        ]
        rows += [
            {**head, "measure": f"forgetting.{name}", **interval_columns(text)}
            for name, text in info.get("forgetting", {}).items()
        ]
        rows += [
            {
                **head,
                "measure": "ratio_to_fft",
                "fft": v["fft"],
                "outcome": v.get("drift"),
                **interval_columns(v["ratio"]),
            }
            for v in metrics.get("verdicts", [])
            if v.get("variant") == group
        ]
    return rows


def interval_columns(interval: Mapping[str, Any]) -> Row:
    """value, low, high, confidence of an interval recorded as mean/estimate, low, high."""
    return {
        "value": interval.get("estimate", interval.get("mean")),
        "low": interval.get("low"),
        "high": interval.get("high"),
        "confidence": interval.get("confidence"),
    }


def serving_rows(*, found: Mapping[str, Sequence[Found]]) -> list[Row]:
    """One row per served batch size of every serving file: the base, each variant merged and
    unmerged, and each way of serving several adapters at once (`multi:<mode>`)."""
    return each(found["serving"], _served) + each(found["multi_adapter"], _multi_adapter)


def _served(item: Found) -> list[Row]:
    run, metrics = item.result["run"], item.result["metrics"]
    head = {
        **common(item),
        "variant": run.get("variant", item.folder),
        "mode": run["mode"],
        **spec_columns(run.get("spec")),
        "dtype": item.result["meta"].get("dtype"),
        **flatten({k: v for k, v in metrics.items() if k not in ("batches", "under_load")}),
    }
    return [_batch_row(head=head, batch=batch) for batch in metrics["batches"]]


def _multi_adapter(item: Found) -> list[Row]:
    adapters = "+".join(item.result["run"].get("adapters", []))
    rows = []
    for mode, served in item.result["metrics"].get("modes", {}).items():
        head = {
            **common(item),
            "variant": adapters,
            "mode": f"multi:{mode}",
            "dtype": served.get("dtype"),
            **flatten({k: v for k, v in served.items() if k not in ("batches", "device", "dtype")}),
        }
        rows += [_batch_row(head=head, batch=batch) for batch in served["batches"]]
    return rows


def _batch_row(*, head: Row, batch: Mapping[str, Any]) -> Row:
    return {
        **head,
        "batch_size": batch["batch_size"],
        "calls_per_batch": batch.get("calls_per_batch"),
        **flatten(batch["metrics"]),
    }


def overhead_rows(*, found: Mapping[str, Sequence[Found]]) -> list[Row]:
    """One row per variant and batch size of the serving summary: the overhead of the unmerged
    adapter over the merged model (`value`, `low`, `high`) and its outcome."""
    specs = {(s.place, s.result["run"].get("variant")): s.result["run"].get("spec") for s in found["serving"]}
    return each(found["serving_summary"], partial(_overhead, specs=specs))


def _overhead(item: Found, *, specs: Mapping[Any, Any]) -> list[Row]:
    return [
        {
            **common(item),
            "variant": row["variant"],
            **spec_columns(specs.get((item.place, row["variant"]))),
            "batch_size": row["batch_size"],
            **interval_columns(row["overhead"]),
            **flatten({k: v for k, v in row.items() if k not in ("variant", "batch_size", "overhead")}),
        }
        for row in item.result["metrics"].get("overhead", [])
    ]


def config_settings(config: Mapping[str, Any]) -> list[Row]:
    """One row per setting of the config (`a.b.c`), lists as JSON text."""
    return [
        {"setting": key, "value": value, "setting_source": "config"}
        for key, value in flatten(config, lists=True).items()
    ]


def recorded_settings(found: Mapping[str, Sequence[Found]]) -> list[Row]:
    """For a folder read without its config: the config blocks its result files record
    (`run.config`), one row per setting; a setting recorded with several values gets them all."""
    values: dict[str, list[str]] = {}
    for items in found.values():
        for item in items:
            for key, value in flatten(item.result["run"].get("config", {}), lists=True).items():
                text = cell(value)
                if text not in values.setdefault(key, []):
                    values[key].append(text)
    return [
        {"setting": key, "value": " | ".join(texts), "setting_source": "recorded by the result files"}
        for key, texts in sorted(values.items())
    ]


# ---------------------------------------------------------------------------------------------
# Writing


def cell(value: Any) -> str:
    """A CSV cell pandas reads back as the value: empty for None, True/False, full-precision numbers."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def columns(rows: Iterable[Mapping[str, Any]], *, front: Sequence[str] = COMMON) -> list[str]:
    """`front` first, then the table's own columns, then the spec columns (`spec.*`, then `a.spec.*`
    and `b.spec.*`), each in first-seen order; every row gets every column, so a base row has
    empty spec columns."""
    seen: dict[str, None] = dict.fromkeys(front)
    for row in rows:
        seen.update(dict.fromkeys(row))
    rest = [c for c in seen if c not in front]
    specs = [c for prefix in SPEC_PREFIXES for c in rest if c.startswith(prefix)]
    return [*front, *[c for c in rest if c not in specs], *specs]


def csv_text(rows: Sequence[Mapping[str, Any]], *, front: Sequence[str]) -> str:
    """The table as CSV: a header always (pandas reads an empty table as no rows, not an error)."""
    out = io.StringIO()
    header = columns(rows, front=front)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([cell(row.get(column)) for column in header] for row in rows)
    return out.getvalue()


def write_tables(
    *, tables: Mapping[str, Sequence[Mapping[str, Any]]], out: Mapping[str, str | os.PathLike[str]]
) -> None:
    """Each table to its file (`out`: table name -> path), atomically."""
    if set(out) != set(TABLES) or set(tables) != set(TABLES):
        raise ValueError(
            f"expected the tables {', '.join(TABLES)}; got outputs {', '.join(out)} and tables {', '.join(tables)}"
        )
    for name in TABLES:
        front = ("run", "config_hash", "code_version") if name == "config" else COMMON
        atomic_write_text(out[name], csv_text(tables[name], front=front))
        older = sum(row.get("in_config") is False for row in tables[name])
        log.info("%s: %d rows (%d of results the config no longer asks for)", out[name], len(tables[name]), older)
