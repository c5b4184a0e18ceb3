"""Record a finished run in docs/results/: its headline figures, read from the run's own files.

    python bench/record_run.py --root /path/to/run --out docs/results --not-quiet --note "tests ran beside it"
    python bench/record_run.py --root . --config config.yaml --command "snakemake --cores 1 report.html" \\
        --out docs/results --quiet
    python bench/record_run.py --readme-table docs/results     # the results index's table over every recorded run
    python bench/record_run.py --readme-table docs/results --update-readme docs/results/README.md   # write it there

Writes docs/results/<YYYY-MM-DD>-<code version>-<config name>/ holding README.md (what ran:
commit, config, command, machine, wall time overall and per rule; the headline tables),
summary.json (the same numbers, machine-readable), the config file(s) as given (config/) and
the resolved config (config.resolved.yaml: files merged as Snakemake merges them, schema
defaults filled in). Nothing is typed: every number comes from a file of the run.

What it reads, under --root (the folder snakemake ran in):
- `results/index.json`, which rule build_report writes beside report.html: the files the
  report was built from, by report input. The record reads those it knows (layout: top-level
  `run`, `metrics`, `meta`, and `meta.code_version`, the `git describe --always --dirty` of
  the job), matches each to the variant, precision or method it records, and keeps no list
  of paths of its own; a missing one stops it with the path and where the index lists it;
- `.snakemake/log/*.snakemake.log`: every invocation's command, config files, config MD5,
  start, elapsed time, and each job's start and finish (one-second stamps);
- `benchmarks/`: the benchmark file each job's log entry names (seconds, peak memory).
Jobs a later invocation ran again count once, at their last run; the whole run's wall time
is the sum of the invocations' elapsed times.
--config takes the files lowest precedence first (`config.yaml configs/tiny.yaml` for
`--configfile configs/tiny.yaml`); without it, the log's files are used in Snakemake's order.
The resolved config's MD5 is checked against the `Config MD5` snakemake logged.
The date is that of the newest result file (UTC); the code version is the result files' own:
if they disagree, every version is named (folder and README) with the files it made.
The machine (CPU model, cores, RAM) is read on the machine running this script, so run it
where the workflow ran; the result files record the device and threads each job used (and a
GPU's name), which are shown beside it. Whether the machine was quiet is yours to say:
--quiet or --not-quiet (with --note saying what else ran).

Standard library, PyYAML and jsonschema only (no torch): it runs in the report environment.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import yaml

from lora_study.core.config import dataset_name, model_name, workflow_config
from lora_study.core.grid import (
    BASE_VARIANT,
    LORA_KINDS,
    VariantSpec,
    fft_partner,
    rate_label,
)
from lora_study.core.provenance import cpu_model
from lora_study.core.results import check_result
from lora_study.report.inputs import INDEX, INDEX_SCHEMA  # the index rule build_report writes
from lora_study.stages.selection.selection import edge_text, grid_edge, rate_ratio, ratio_edge_text

SUMMARY_SCHEMA = 1
MB = 1e6


class RecordError(RuntimeError):
    """The run's folder lacks something a record needs; the message names it."""


# ---------------------------------------------------------------------------------------------
# Result files


@dataclass(frozen=True)
class ResultFile:
    """One result JSON in the run/metrics/meta layout."""

    path: str  # relative to the run's root, as the workflow names it
    listed: str  # where results/index.json lists it ("under scores")
    data: dict[str, Any]

    @property
    def run(self) -> dict[str, Any]:
        return self.data["run"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.data["metrics"]

    @property
    def meta(self) -> dict[str, Any]:
        return self.data["meta"]


# Report input -> the record's key for each of its files, which is then keyed by what the file
# records (its variant, precision or method), never by its position or path.
PER_FILE_INPUTS = {
    "generation": "generation",
    "scores": "rouge",
    "train": "train",
    "drift": "drift",
    "weights": "weights",
    "mitigation": "mitigation",
    "selection": "selection",
    "quant_latency": "latency",
    "quant_generation": "quant_generation",
    "quant_scores": "quant_scores",
}
REQUIRED_INPUTS = ("subsets", "parameter_counts", "comparisons")
OPTIONAL_INPUTS = ("drift_summary",)  # one file, or none in a run that trains nothing


def read_result(*, root: Path, path: str, listed: str) -> ResultFile:
    """Read `root/path`; a missing file, invalid JSON or another layout raises RecordError naming it."""
    full = root / path
    if not full.is_file():
        raise RecordError(
            f"missing result file {path} (listed {listed} in {INDEX}) under {root}: was it deleted after the run?"
        )
    try:
        data = json.loads(full.read_text(encoding="utf-8"))
        check_result(data, source=path)
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: not valid JSON: {error}") from error
    except ValueError as error:  # lora_study.core.results names the file and what is wrong
        raise RecordError(str(error)) from error
    return ResultFile(path=path, listed=listed, data=data)


def read_index(*, root: Path) -> dict[str, list[str]]:
    """The files the run's report was built from, by report input (results/index.json)."""
    path = root / INDEX
    if not path.is_file():
        raise RecordError(
            f"{INDEX} not found under {root}: it is written with report.html by rule build_report; is the "
            "run finished, and is --root the folder snakemake ran in?"
        )
    index = read_result(root=root, path=INDEX, listed="as itself").data
    if index["run"].get("schema") != INDEX_SCHEMA or not isinstance(index["metrics"].get("inputs"), dict):
        raise RecordError(f"{INDEX}: not an index of schema {INDEX_SCHEMA}; rebuild report.html")
    return index["metrics"]["inputs"]


def file_identity(*, result: ResultFile, prefix: str) -> str:
    """What a per-variant file is about, as it records it: the method of a selection, else
    the variant (or the precision, for latency.json)."""
    run = result.run
    key = "method" if prefix == "selection" else ("variant" if "variant" in run else "precision")
    if key not in run:
        raise RecordError(f"{result.path}: run.{key} is missing, so the file cannot be matched to what it measured")
    return str(run[key])


def read_results(*, root: Path, index: Mapping[str, Sequence[str]]) -> dict[str, ResultFile]:
    """Every file the record reads, keyed `name` or `prefix/what-it-records` (rouge/base,
    latency/int8, selection/fft-n100): the files the index lists, no others."""
    results: dict[str, ResultFile] = {}
    for name in (*REQUIRED_INPUTS, *OPTIONAL_INPUTS):
        paths = index.get(name, [])
        if len(paths) > 1 or (name in REQUIRED_INPUTS and len(paths) != 1):
            raise RecordError(f"{INDEX}: input {name} lists {len(paths)} files, expected one")
        if paths:
            results[name] = read_result(root=root, path=paths[0], listed=f"as {name}")
    for name, prefix in PER_FILE_INPUTS.items():
        for path in index.get(name, []):
            result = read_result(root=root, path=path, listed=f"under {name}")
            key = f"{prefix}/{file_identity(result=result, prefix=prefix)}"
            if key in results:
                raise RecordError(f"{path} and {results[key].path} both hold {key}")
            results[key] = result
    return results


@dataclass(frozen=True)
class RunLayout:
    """What the run holds, from its own files: the trained variants the test-set stages used
    (with their specs), the precisions, the methods whose learning rate a sweep chose."""

    model: str
    dataset: str
    trained: dict[str, VariantSpec]
    precisions: list[str]
    swept: list[str] = field(default_factory=list)

    @property
    def variants(self) -> list[str]:
        return [BASE_VARIANT, *self.trained]


def keyed(results: Mapping[str, ResultFile], prefix: str) -> dict[str, ResultFile]:
    """The per-file results under `prefix`, by what each records, in the index's order."""
    return {key.split("/", 1)[1]: result for key, result in results.items() if key.startswith(f"{prefix}/")}


def layout_of(*, config: Mapping[str, Any], results: Mapping[str, ResultFile]) -> RunLayout:
    """The run's variants from its train.json files (each records its full spec): a swept
    method contributes the seeds of its chosen rate only, as the index lists only those."""
    return RunLayout(
        model=model_name(config["model"]),
        dataset=dataset_name(config["data"]),
        trained={name: VariantSpec.from_dict(r.run["spec"]) for name, r in keyed(results, "train").items()},
        precisions=list(keyed(results, "latency")),
        swept=sorted(keyed(results, "selection")),
    )


# ---------------------------------------------------------------------------------------------
# Config


def resolve_config(*, paths: Sequence[Path]) -> dict[str, Any]:
    """The config the workflow ran with, as rules/common.smk resolves it (whose `Config MD5`
    Snakemake logs): the files stacked in order, validated, defaults filled, each setting spelt
    one way, the settings it ignores dropped, keys sorted. The data files are not read again."""
    for path in paths:
        if not path.is_file():
            raise RecordError(f"config file {path} not found")
    return workflow_config(*paths, read_data=False)


def config_md5(*, config: Mapping[str, Any]) -> str:
    """Snakemake's `Config MD5` of a config (snakemake.workflow.Workflow.info_header)."""
    return hashlib.md5(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Snakemake logs and benchmarks

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)")
_ERROR = re.compile(r"^Error in rule (\S+):")
_ELAPSED = re.compile(r"^Elapsed time: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STEPS = re.compile(r"^(\d+) of (\d+) steps \(")
_HEADER = re.compile(r"^  (Date|Host|Platform|Command|Config file\(s\)|Config MD5|Working directory): (.*)$")
_CORES = re.compile(r"^Provided cores: (\d+)")


@dataclass
class Job:
    rule: str
    jobid: int
    key: str  # the job's outputs (else wildcards): what a later run of the same job replaces
    start: dt.datetime
    end: dt.datetime | None = None
    failed: bool = False
    latest: bool = False  # no later invocation ran this job again
    benchmark: str | None = None  # its benchmark file, relative to the run's folder

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()


@dataclass
class Invocation:
    log: str
    started: dt.datetime
    command: str = ""
    host: str = ""
    platform: str = ""
    config_files: list[str] = field(default_factory=list)
    config_md5: str = ""
    workdir: str = ""
    cores: int | None = None
    elapsed_seconds: float | None = None
    steps_done: int = 0
    steps_total: int = 0
    jobs: list[Job] = field(default_factory=list)
    last_stamp: dt.datetime | None = None

    @property
    def finished_jobs(self) -> list[Job]:
        return [job for job in self.jobs if job.end is not None and not job.failed]

    @property
    def status(self) -> str:
        if any(job.failed for job in self.jobs):
            return "failed"
        if self.elapsed_seconds is None:
            return "did not finish"
        if not self.finished_jobs:
            return "nothing to do"
        if not any(job.latest for job in self.finished_jobs):
            return "superseded: every job rerun later"
        return "complete"

    @property
    def wall_seconds(self) -> float | None:
        if self.elapsed_seconds is not None:
            return self.elapsed_seconds
        return None if self.last_stamp is None else (self.last_stamp - self.started).total_seconds()


_QUOTED = re.compile(r"(PosixPath\()?(?:'([^']*)'|\"([^\"]*)\")")


def logged_config_files(*, text: str) -> list[str]:
    """The config files of a log's `Config file(s):` line, in the order Snakemake merges them
    (later wins). Snakemake lists the command line's --configfile files first, as paths
    (`PosixPath('...')`), then those the Snakefile's `configfile:` loaded, as strings; the
    command line's win, so they go last."""
    cli, directive = [], []
    for match in _QUOTED.finditer(text):
        name = match.group(2) if match.group(2) is not None else match.group(3)
        (cli if match.group(1) else directive).append(name)
    return directive + cli


def parse_snakemake_log(*, path: Path) -> Invocation:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    header: dict[str, str] = {}
    for line in lines:
        match = _HEADER.match(line)
        if match and match.group(1) not in header:
            header[match.group(1)] = match.group(2).strip()
    if "Date" not in header:
        raise RecordError(f"{path}: no 'Date:' line; not a snakemake log")
    invocation = Invocation(
        log=path.name,
        started=dt.datetime.strptime(header["Date"], "%Y-%m-%d %H:%M:%S"),
        command=header.get("Command", ""),
        host=header.get("Host", ""),
        platform=header.get("Platform", ""),
        config_md5=header.get("Config MD5", ""),
    )
    invocation.config_files = logged_config_files(text=header.get("Config file(s)", "[]"))
    invocation.workdir = header.get("Working directory", "")
    stamp: dt.datetime | None = None
    pending: Job | None = None
    open_jobs: dict[int, Job] = {}
    for index, line in enumerate(lines):
        stripped = line.strip()
        if match := _STAMP.match(stripped):
            stamp = dt.datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
            invocation.last_stamp = stamp
        elif (match := _RULE.match(line)) and stamp is not None:
            pending = Job(rule=match.group(1), jobid=-1, key="", start=stamp)
            invocation.jobs.append(pending)
        elif pending is not None and line.startswith("    ") and ":" in stripped:
            name, _, value = stripped.partition(":")
            if name == "jobid":
                pending.jobid = int(value)
                open_jobs[pending.jobid] = pending
            elif name == "output":
                pending.key = f"{pending.rule}: {value.strip()}"
            elif name == "benchmark":
                pending.benchmark = value.strip()
            elif name == "wildcards" and not pending.key:
                pending.key = f"{pending.rule}: {value.strip()}"
        elif match := _FINISHED.match(stripped):
            job = open_jobs.get(int(match.group(1)))
            if job is not None and stamp is not None:
                job.end = stamp
            pending = None
        elif _ERROR.match(stripped):
            pending = None
            for following in lines[index + 1 : index + 10]:  # the failing job's id is on an indented line below
                if following.strip().startswith("jobid:"):
                    job = open_jobs.get(int(following.split(":", 1)[1]))
                    if job is not None:
                        job.failed, job.end = True, stamp
                    break
        elif match := _ELAPSED.match(stripped):
            days, hours, minutes, seconds = match.groups()
            invocation.elapsed_seconds = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        elif match := _STEPS.match(stripped):
            invocation.steps_done, invocation.steps_total = int(match.group(1)), int(match.group(2))
        elif (match := _CORES.match(stripped)) and invocation.cores is None:
            invocation.cores = int(match.group(1))
    for job in invocation.jobs:
        job.key = job.key or f"{job.rule}: job {job.jobid} of {path.name}"
    return invocation


def read_invocations(*, root: Path) -> list[Invocation]:
    """Every snakemake invocation logged under root/.snakemake/log, oldest first; each job
    marked `latest` unless a later invocation ran it again."""
    folder = root / ".snakemake" / "log"
    logs = sorted(folder.glob("*.snakemake.log")) if folder.is_dir() else []
    if not logs:
        raise RecordError(
            f"missing snakemake logs .snakemake/log/*.snakemake.log under {root}: the wall time is read from them"
        )
    invocations = sorted((parse_snakemake_log(path=path) for path in logs), key=lambda inv: inv.started)
    seen: set[str] = set()
    for invocation in reversed(invocations):
        for job in reversed(invocation.jobs):
            if job.end is not None and not job.failed and job.key not in seen:
                job.latest = True
                seen.add(job.key)
    return invocations


def read_benchmark(*, root: Path, path: str) -> dict[str, float] | None:
    """A benchmark file's last row (s, max_rss in MB, cpu_time, mean_load); None if absent."""
    full = root / path
    if not full.is_file():
        return None
    with open(full, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    values: dict[str, float] = {}
    for key in ("s", "max_rss", "cpu_time", "mean_load"):
        try:
            values[key] = float(rows[-1][key])
        except (IndexError, KeyError, TypeError, ValueError):
            continue
    return values


def shared_seconds(*, job: Job, others: Sequence[Job]) -> float:
    """How long `job` ran while at least one of `others` ran too (the union of the overlaps)."""
    if job.end is None:
        return 0.0
    spans = sorted(
        (max(job.start, other.start), min(job.end, other.end))
        for other in others
        if other is not job and other.end is not None and other.start < job.end and other.end > job.start
    )
    total, covered_to = 0.0, job.start
    for start, end in spans:
        start = max(start, covered_to)
        if end > start:
            total += (end - start).total_seconds()
            covered_to = end
    return total


def wall_time(*, root: Path, invocations: Sequence[Invocation]) -> dict[str, Any]:
    """Whole-run and per-rule times: per rule over the kept jobs (those no later invocation
    reran), from the log's stamps and from each kept job's benchmark file (the log names it);
    `shared_seconds`: how long the rule's jobs ran beside another job of their invocation
    (lanes: timing jobs should show none)."""
    per_rule: dict[str, dict[str, Any]] = {}
    for invocation in invocations:
        for job in invocation.jobs:
            if not job.latest:
                continue
            entry = per_rule.setdefault(
                job.rule,
                {
                    "jobs": 0,
                    "seconds": 0.0,
                    "max_job_seconds": 0.0,
                    "benchmark_jobs": 0,
                    "benchmark_seconds": 0.0,
                    "benchmark_max_rss_mb": None,
                    "shared_seconds": 0.0,
                },
            )
            entry["jobs"] += 1
            entry["seconds"] += job.seconds or 0.0
            entry["shared_seconds"] += shared_seconds(job=job, others=invocation.jobs)
            entry["max_job_seconds"] = max(entry["max_job_seconds"], job.seconds or 0.0)
            bench = read_benchmark(root=root, path=job.benchmark) if job.benchmark else None
            if bench:
                entry["benchmark_jobs"] += 1
                entry["benchmark_seconds"] += bench.get("s", 0.0)
                if "max_rss" in bench:
                    entry["benchmark_max_rss_mb"] = max(entry["benchmark_max_rss_mb"] or 0.0, bench["max_rss"])
    counted = [inv for inv in invocations if inv.finished_jobs]
    return {
        "total_seconds": sum(inv.wall_seconds or 0.0 for inv in counted),
        "first_start": min(inv.started for inv in invocations).isoformat(sep=" "),
        "kept_jobs_seconds": sum(entry["seconds"] or 0.0 for entry in per_rule.values()),
        "invocations": [
            {
                "log": inv.log,
                "started": inv.started.isoformat(sep=" "),
                "command": inv.command,
                "config_files": inv.config_files,
                "config_md5": inv.config_md5,
                "cores": inv.cores,
                "host": inv.host,
                "wall_seconds": inv.wall_seconds,
                "jobs_finished": len(inv.finished_jobs),
                "jobs_kept": sum(job.latest for job in inv.jobs),
                "status": inv.status,
            }
            for inv in invocations
        ],
        "per_rule": dict(sorted(per_rule.items(), key=lambda item: -item[1]["seconds"])),
    }


# ---------------------------------------------------------------------------------------------
# Machine


def _proc_field(*, path: str, name: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        return None
    return None


def describe_machine(*, results: Mapping[str, ResultFile], invocations: Sequence[Invocation]) -> dict[str, Any]:
    """This machine's CPU, cores and RAM, and what the jobs recorded (device, threads, GPU)."""
    memory_kb = _proc_field(path="/proc/meminfo", name="MemTotal")
    cpu = cpu_model()
    cores = os.cpu_count()
    # The jobs' own record of their CPU (meta.cpu), where the files have it, over this machine's.
    recorded = Counter(
        (r.meta["cpu"]["model"], r.meta["cpu"]["cores"])
        for r in results.values()
        if isinstance(r.meta.get("cpu"), dict)
    )
    if recorded:
        (cpu, cores), _ = recorded.most_common(1)[0]
    flags = (_proc_field(path="/proc/cpuinfo", name="flags") or "").split()
    devices = Counter(str(r.meta["device"]) for r in results.values() if r.meta.get("device"))
    names = Counter(str(r.meta["device_name"]) for r in results.values() if r.meta.get("device_name"))
    gpus = sorted(
        {str(r.meta.get("device_name")) for r in results.values() if str(r.meta.get("device") or "").startswith("cuda")}
    )
    hosts = sorted({inv.host for inv in invocations if inv.host})
    platforms = sorted({inv.platform for inv in invocations if inv.platform})
    versions = Counter(
        json.dumps(r.meta["versions"], sort_keys=True) for r in results.values() if r.meta.get("versions")
    )
    return {
        "cpu_model": cpu,
        "cpu_from_results": bool(recorded),
        "cpu_flags": [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags],
        "cores": cores,
        "ram_gib": round(int(memory_kb.split()[0]) / 2**20, 1) if memory_kb else None,
        "gpu": gpus,
        "recorded_on": {"host": platform.node(), "platform": platform.platform()},
        "run_hosts": hosts,
        "run_platforms": platforms,
        "same_host": hosts == [platform.node()] and platforms == [platform.platform()],
        "snakemake_cores": sorted({inv.cores for inv in invocations if inv.cores is not None}),
        "job_devices": dict(devices),
        "job_device_names": dict(names),
        "packages": [json.loads(text) for text, _ in versions.most_common()],
    }


# ---------------------------------------------------------------------------------------------
# Headline figures


def _interval(value: Mapping[str, Any]) -> dict[str, float]:
    estimate = value["mean"] if "mean" in value else value["estimate"]
    return {"estimate": estimate, "low": value["low"], "high": value["high"], "confidence": value.get("confidence")}


def _group(*, name: str, trained: Mapping[str, VariantSpec]) -> str:
    spec = trained.get(name)
    return BASE_VARIANT if spec is None else spec.group


def headline_figures(*, results: Mapping[str, ResultFile], layout: RunLayout) -> dict[str, Any]:
    compare = results["comparisons"].metrics
    compare_run = results["comparisons"].run
    task = compare_run.get("task", "summarisation")
    if task != "summarisation":
        # Its tables and the results index's columns are ROUGE's; a wrong column is worse than none.
        raise RecordError(
            f"{results['comparisons'].path}: a {task} run; record_run.py records summarisation runs only "
            "(its tables are ROUGE's): the run's report.html holds the task's tables"
        )
    figures: dict[str, Any] = {"metric": compare_run.get("metric"), "examples": compare_run.get("examples")}

    figures["rouge"] = {}
    for variant in layout.variants:
        record = compare["variants"].get(variant)
        if record is None:
            raise RecordError(f"{results['comparisons'].path}: metrics.variants has no {variant}")
        generation = results[f"generation/{variant}"].metrics
        figures["rouge"][variant] = {
            "group": record.get("group") or _group(name=variant, trained=layout.trained),
            **{
                kind: _interval(record["intervals"][kind])
                for kind in ("rouge1", "rouge2", "rougeL")
                if kind in record["intervals"]
            },
            "failure_rates": record.get("failure_modes", {}).get("rates", {}),
            "generate_seconds": generation.get("generate_seconds"),
            "tokens_per_second": generation.get("tokens_per_second"),
        }
    figures["groups"] = {
        name: {k: group.get(k) for k in ("seeds", "per_seed_means", "mean", "seed_std")}
        for name, group in compare.get("groups", {}).items()
    }

    figures["comparisons"] = []
    for record in [*compare.get("comparisons", []), *compare.get("precisions", [])]:
        entry = {
            "a": record["a"],
            "b": record["b"],
            "why": record.get("why"),
            "family": record.get("family"),
            "family_size": record.get("family_size"),
            "adjustment": record.get("adjustment"),
            **_interval(record["difference"]),
            "p_value": record["p_value"],
            "p_adjusted": record.get("p_adjusted"),
            "supported": record["supported"],
        }
        if record.get("quality_gap"):
            entry["within_gap"] = record["quality_gap"].get("holds")
            entry["max_gap"] = record["quality_gap"].get("max_gap")
        could = record.get("detectable")
        if could:
            entry["detectable"] = {
                key: could.get(key) for key in ("mde", "alpha", "effect", "adequate", "needed_examples", "text")
            }
        figures["comparisons"].append(entry)
    figures["learning_rates"] = learning_rates(results=results, layout=layout)
    figures["verdicts"] = [verdict.get("text", "") for verdict in compare.get("verdicts", [])]

    figures["training"] = {}
    for variant, spec in layout.trained.items():
        metrics = results[f"train/{variant}"].metrics
        figures["training"][variant] = {
            "kind": spec.kind,
            "rank": spec.rank,
            "targets": spec.targets,
            "train_size": spec.train_size,
            "seed": spec.seed,
            **{
                key: metrics.get(key)
                for key in (
                    "train_seconds",
                    "trainable_parameters",
                    "trainable_percent",
                    "lora_scaling",
                    "artefact_bytes",
                    "steps",
                    "tokens",
                    "tokens_per_second",
                    "achieved_gflops",
                    "matmul_peak_gflops",
                    "padding_share",
                    "peak_rss_bytes",
                    "final_loss",
                )
            },
        }

    figures["quantisation"] = {}
    deltas = {record["b"]: record for record in compare.get("precisions", [])}
    for precision in layout.precisions:
        latency = results[f"latency/{precision}"]
        metrics = latency.metrics
        quality = compare.get("precision_variants", {}).get(precision, {}).get("intervals", {}).get("rougeL")
        delta = deltas.get(precision)
        model = latency.meta.get("model", {})
        figures["quantisation"][precision] = {
            "weights": model.get("weights"),
            "compute_dtype": model.get("compute_dtype"),
            "backend": model.get("backend"),
            "cpu_kernel": model.get("cpu_kernel"),
            "device": latency.meta.get("device"),
            "load_seconds": metrics.get("load_seconds"),
            "latency_p50_s": metrics["latency_seconds"]["p50"],
            "latency_p95_s": metrics["latency_seconds"]["p95"],
            "ttft_p50_s": (metrics.get("ttft_seconds") or {}).get("p50"),
            "tokens_per_second": metrics.get("tokens_per_second"),
            "timed_runs": metrics.get("timed_runs"),
            "new_tokens": metrics.get("new_tokens"),
            "batch_size": metrics.get("batch_size"),
            "weight_bytes": metrics.get("weight_bytes"),
            "peak_rss_bytes": metrics.get("peak_rss_bytes"),
            "peak_cuda_bytes": metrics.get("peak_cuda_bytes"),
            "rougeL": _interval(quality) if quality else None,
            "delta_vs_reference": None
            if delta is None
            else {
                "reference": delta["a"],
                **_interval(delta["difference"]),
                "p_value": delta["p_value"],
                "p_adjusted": delta.get("p_adjusted"),
                "supported": delta["supported"],
            },
        }

    figures["drift"] = None
    if "drift_summary" in results:
        summary = results["drift_summary"]
        shuffled = [
            value
            for variant in layout.trained
            for value in results[f"drift/{variant}"]
            .metrics.get("baselines", {})
            .get("shuffled", {})
            .get("cka_debiased", [])
        ]
        groups = {}
        for name, group in summary.metrics["groups"].items():
            largest = max(group["per_layer"], key=lambda row: row["estimate"]) if group.get("per_layer") else None
            groups[name] = {
                "seeds": group.get("seeds"),
                "mean_drift": _interval(group["mean_drift"]),
                "largest": None if largest is None else {"layer": largest["layer"], "estimate": largest["estimate"]},
                "forgetting": {
                    kind: {**_interval(value), "base_mean_nll": value.get("base_mean_nll"), "texts": value.get("texts")}
                    for kind, value in group.get("forgetting", {}).items()
                },
            }
        figures["drift"] = {
            "examples": summary.run.get("examples"),
            "mean_over": summary.run.get("mean_over"),
            "confidence": summary.run.get("confidence"),
            "resamples": summary.run.get("resamples"),
            "criterion": summary.run.get("criterion"),
            "groups": groups,
            "verdicts": [
                {
                    "variant": v["variant"],
                    "fft": v.get("fft"),
                    "ratio": _interval(v["ratio"]),
                    "threshold": v.get("threshold"),
                    "drift": v.get("drift"),
                    "quality": (v.get("quality") or {}).get("outcome"),
                    "holds": v.get("holds"),
                    "text": v.get("text"),
                }
                for v in summary.metrics.get("verdicts", [])
            ],
            "shuffled_cka_debiased": [min(shuffled), max(shuffled)] if shuffled else None,
        }

    figures["weights"] = {}
    lora_kinds = {
        module["kind"]
        for variant, spec in layout.trained.items()
        if spec.kind in LORA_KINDS
        for module in results[f"weights/{variant}"].metrics.get("modules", [])
    }
    for variant in layout.trained:
        weights = results[f"weights/{variant}"]
        summary_w = weights.metrics["summary"]
        on_targets = [m for m in weights.metrics.get("modules", []) if m["kind"] in lora_kinds]
        figures["weights"][variant] = {
            "epsilon": weights.run.get("settings", {}).get("epsilon"),
            "energy": weights.run.get("settings", {}).get("energy"),
            **{
                key: summary_w.get(key)
                for key in (
                    "modules",
                    "median_effective_rank",
                    "max_effective_rank",
                    "intruders",
                    "modules_with_intruders",
                    "mean_relative_update_norm",
                )
            },
            "intruders_any_epsilon": max(summary_w.get("intruders_sweep") or [summary_w.get("intruders") or 0]),
            "lora_target_kinds": sorted(lora_kinds),
            "lora_target_modules": len(on_targets),
            "lora_target_median_effective_rank": (
                statistics.median(m["effective_rank"] for m in on_targets) if on_targets else None
            ),
            "lora_target_intruders": sum(m["intruders"] for m in on_targets),
        }

    figures["mitigation"] = {}
    for variant in layout.trained:
        if f"mitigation/{variant}" in results:
            metrics = results[f"mitigation/{variant}"].metrics
            figures["mitigation"][variant] = {
                "intruders": metrics.get("intruders", {}).get("total"),
                "curve": [
                    {
                        "strength": point["strength"],
                        "rougeL": point["quality"]["values"].get("rougeL"),
                        "general_nll": point["forgetting"]["mean_nll"],
                        "update_remaining": point.get("update_remaining"),
                    }
                    for point in metrics.get("curve", [])
                ],
            }

    figures["parameter_counts"] = [
        {key: row.get(key) for key in ("targets", "rank", "trainable_parameters", "trainable_percent")}
        for row in results["parameter_counts"].metrics.get("rows", [])
    ]
    subsets = results["subsets"]
    figures["data"] = {
        "dataset": subsets.run.get("dataset"),
        "source": subsets.run.get("source"),
        "eval": {k: subsets.metrics.get("eval", {}).get(k) for k in ("split", "seed", "size")},
        "train": {k: subsets.metrics.get("train", {}).get(k) for k in ("split", "seed", "sizes")},
        "files": subsets.metrics.get("files", {}),
    }
    figures["headline"] = headline(figures=figures, layout=layout)
    return figures


def learning_rates(*, results: Mapping[str, ResultFile], layout: RunLayout) -> dict[str, Any]:
    """Each swept method's validation curve and choice, and LoRA's chosen rate over full
    fine-tuning's where both were swept on the same data and shared settings."""
    selections = {method: results[f"selection/{method}"] for method in layout.swept}
    methods = {
        method: {
            "chosen": r.metrics["chosen"]["learning_rate"],
            "grid_edge": edge_text(method=method, edge=grid_edge(r.metrics)),
            "criterion": r.metrics["criterion"],
            "candidates": [
                {
                    "learning_rate": c["learning_rate"],
                    "mean_loss": c["mean_loss"],
                    **_interval(c["interval"] | {"mean": c["mean_loss"]}),
                }
                for c in r.metrics["candidates"]
            ],
        }
        for method, r in selections.items()
    }
    specs = {method: VariantSpec.from_dict(r.run["specs"][0]) for method, r in selections.items()}
    ratios = {}
    for method, spec in specs.items():
        partner = fft_partner(spec, specs)  # the swept FFT on the same data and shared settings
        if partner is not None:
            ratio = rate_ratio(
                numerator=selections[method].metrics, denominator=selections[partner].metrics, confidence=0.95
            )
            ratios[f"{method} / {partner}"] = {key: ratio.get(key) for key in ("ratio", "seeds", "interval")} | {
                "grid_edge": ratio_edge_text(
                    numerator=selections[method].metrics, denominator=selections[partner].metrics
                )
            }
    return {"methods": methods, "lora_over_fft": ratios}


def headline(*, figures: Mapping[str, Any], layout: RunLayout) -> dict[str, Any]:
    """The few figures the results index's table (docs/results/README.md) shows for a run."""
    rouge = figures["rouge"]
    best = max(rouge, key=lambda v: rouge[v]["rougeL"]["estimate"]) if rouge else None
    lora_groups = {spec.group for spec in layout.trained.values() if spec.is_lora}
    fft_groups = {spec.group for spec in layout.trained.values() if spec.kind == "fft"}
    fft_vs_lora = [c for c in figures["comparisons"] if c["a"] in lora_groups and c["b"] in fft_groups]
    int8 = figures["quantisation"].get("int8")
    reference = figures["quantisation"].get("full")
    return {
        "best_rouge_l": None if best is None else {"variant": best, **rouge[best]["rougeL"]},
        "fft_vs_lora": [
            {
                key: c.get(key)
                for key in ("a", "b", "estimate", "low", "high", "p_value", "p_adjusted", "supported", "within_gap")
            }
            for c in fft_vs_lora
        ],
        "int8_latency_p50_s": None if int8 is None else int8["latency_p50_s"],
        "full_latency_p50_s": None if reference is None else reference["latency_p50_s"],
    }


# ---------------------------------------------------------------------------------------------
# Formatting


def num(value: float | None, digits: int = 3, *, sign: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:{'+' if sign else ''}.{digits}f}"


def ci(value: Mapping[str, Any] | None, digits: int = 3, *, sign: bool = False) -> str:
    if not value:
        return "—"
    return (
        f"{num(value['estimate'], digits, sign=sign)} "
        f"[{num(value['low'], digits, sign=sign)}, {num(value['high'], digits, sign=sign)}]"
    )


def pval(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def megabytes(value: float | None) -> str:
    return "—" if value is None else f"{value / MB:,.1f}" if value < 10 * MB else f"{value / MB:,.0f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def verdict_word(supported: bool | None) -> str:
    return "supported" if supported else "not supported"


def machine_line(machine: Mapping[str, Any]) -> str:
    gpu = ", ".join(machine["gpu"]) if machine["gpu"] else "no GPU"
    ram = f", {machine['ram_gib']} GiB RAM" if machine.get("ram_gib") else ""
    return f"{machine['cpu_model']}, {machine['cores']} cores{ram}, {gpu}"


# ---------------------------------------------------------------------------------------------
# The record


@dataclass(frozen=True)
class Record:
    folder_name: str
    summary: dict[str, Any]
    readme: str
    config_files: list[Path]
    resolved_config: dict[str, Any]


def safe_name(text: str) -> str:
    """`text` as a folder-name part: letters, digits and ._+- only."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "unknown"


def code_versions(*, results: Mapping[str, ResultFile]) -> dict[str, list[str]]:
    """code version -> the files it made, versions in order of their first file's creation."""
    by_version: dict[str, list[tuple[str, str]]] = {}
    for result in results.values():
        stamp = str(result.meta.get("created_at", ""))
        by_version.setdefault(str(result.meta["code_version"]), []).append((stamp, result.path))
    ordered = sorted(by_version.items(), key=lambda item: min(stamp for stamp, _ in item[1]))
    return {version: sorted(path for _, path in files) for version, files in ordered}


def run_date(*, results: Mapping[str, ResultFile], invocations: Sequence[Invocation]) -> str:
    stamps = [
        dt.datetime.fromisoformat(str(r.meta["created_at"])) for r in results.values() if r.meta.get("created_at")
    ]
    stamps = [stamp.astimezone(dt.UTC) if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC) for stamp in stamps]
    if stamps:
        return max(stamps).date().isoformat()
    return max(inv.last_stamp or inv.started for inv in invocations).date().isoformat()


def config_paths(*, root: Path, given: Sequence[str] | None, invocations: Sequence[Invocation]) -> list[Path]:
    """--config as given (relative to the current folder), else the config files the newest
    invocation logged (relative to --root, where snakemake ran)."""
    if given:
        return [Path(name) for name in given]
    for invocation in reversed(invocations):
        if invocation.config_files:
            return [_logged_path(root=root, name=name, workdir=invocation.workdir) for name in invocation.config_files]
    raise RecordError("no --config given and the snakemake logs name no config file")


def _logged_path(*, root: Path, name: str, workdir: str) -> Path:
    """A logged config path, found under --root (the run's folder may have moved)."""
    path = Path(name)
    if not path.is_absolute():
        return root / path
    if workdir and path.is_relative_to(workdir) and (root / path.relative_to(workdir)).is_file():
        return root / path.relative_to(workdir)
    return path


def build_record(
    *, root: Path, config: Sequence[str] | None = None, command: str | None = None, quiet: bool, note: str = ""
) -> Record:
    """Read the run in `root` and compose its record (nothing is written)."""
    root = root.resolve()
    invocations = read_invocations(root=root)
    paths = config_paths(root=root, given=config, invocations=invocations)
    resolved = resolve_config(paths=paths)
    md5 = config_md5(config=resolved)
    logged_md5 = sorted({inv.config_md5 for inv in invocations if inv.config_md5 and inv.finished_jobs})
    results = read_results(root=root, index=read_index(root=root))
    layout = layout_of(config=resolved, results=results)
    versions = code_versions(results=results)
    date = run_date(results=results, invocations=invocations)
    config_name = safe_name(paths[-1].stem)
    version_name = "+".join(safe_name(v.split(" ")[0]) for v in versions)
    figures = headline_figures(results=results, layout=layout)
    machine = describe_machine(results=results, invocations=invocations)
    times = wall_time(root=root, invocations=invocations)
    summary = {
        "schema": SUMMARY_SCHEMA,
        "date": date,
        "code_version": version_name,
        "code_versions": {version: len(files) for version, files in versions.items()},
        "dirty": any(version.endswith("-dirty") for version in versions),
        "config": {
            "name": config_name,
            "files": [path.name for path in paths],
            "md5": md5,
            "logged_md5": logged_md5,
            "md5_matches_log": logged_md5 == [md5],
        },
        "command": command,
        "commands_logged": [inv["command"] for inv in times["invocations"] if inv["jobs_finished"]],
        "model": layout.model,
        "dataset": layout.dataset,
        "machine": machine,
        "quiet": quiet,
        "quiet_note": note,
        "wall_time": times,
        **figures,
        "source_files": sorted(result.path for result in results.values()),
    }
    folder_name = f"{date}-{version_name}-{config_name}"
    readme = render_readme(summary=summary, versions=versions, folder_name=folder_name)
    return Record(
        folder_name=folder_name, summary=summary, readme=readme, config_files=list(paths), resolved_config=resolved
    )


def write_record(*, record: Record, out: Path, force: bool = False) -> Path:
    """Write the record's folder under `out` (whole or not at all); an existing one needs `force`."""
    target = out / record.folder_name
    if target.exists() and not force:
        raise RecordError(f"{target} exists; pass --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{record.folder_name}.", dir=out))
    try:
        (staging / "README.md").write_text(record.readme, encoding="utf-8")
        (staging / "summary.json").write_text(
            json.dumps(record.summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (staging / "config").mkdir()
        for index, path in enumerate(record.config_files):
            name = path.name if [p.name for p in record.config_files].count(path.name) == 1 else f"{index}-{path.name}"
            shutil.copyfile(path, staging / "config" / name)
        (staging / "config.resolved.yaml").write_text(
            "# The config the run used: the files in config/ merged in order, schema defaults filled in\n"
            "# (bench/record_run.py; as rules/common.smk resolves it).\n"
            + yaml.safe_dump(record.resolved_config, sort_keys=True, allow_unicode=True),
            encoding="utf-8",
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# ---------------------------------------------------------------------------------------------
# README.md of a record


def render_readme(*, summary: Mapping[str, Any], versions: Mapping[str, list[str]], folder_name: str) -> str:
    """The record's README.md: what ran, then the headline tables, each naming its file."""
    s = summary
    lines: list[str] = [
        f"# Run {folder_name}",
        "",
        (
            "Written by `bench/record_run.py` from the run's own files; every number here is read from the result file "
            "named with its table, the snakemake logs or the `benchmarks/` files. `summary.json` holds the same figures, "
            "unrounded."
        ),
        "",
        "## What ran",
        "",
    ]
    lines += table(["", ""], what_ran_rows(summary=s, versions=versions))
    best, fft, int8 = headline_cells(headline=s["headline"])
    lines += [
        "",
        "Headline (the table over recorded runs in docs/results/README.md shows these):",
        "",
        f"- best ROUGE-L: {best}",
        f"- full fine-tuning against LoRA (ROUGE-L): {fft}",
        f"- int8 latency (p50): {int8}",
    ]
    lines += wall_time_section(times=s["wall_time"])
    lines += quality_sections(summary=s)
    lines += learning_rate_section(summary=s)
    lines += training_section(summary=s)
    lines += quantisation_section(summary=s)
    lines += drift_section(summary=s)
    lines += weights_sections(summary=s)
    lines += data_section(summary=s)
    lines += ["", "## Files read", "", *[f"- `{path}`" for path in s["source_files"]], ""]
    return "\n".join(lines)


def what_ran_rows(*, summary: Mapping[str, Any], versions: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    s = summary
    if len(versions) == 1:
        code = f"`{next(iter(versions))}` (`meta.code_version` of all {len(s['source_files'])} result files read)"
    else:
        code = "mixed: " + "; ".join(
            f"`{version}` made {len(files)} files ({', '.join(sorted({f.split('/')[1] for f in files}))})"
            for version, files in versions.items()
        )
    if any(version.startswith("unknown") for version in versions):
        code += "; **unknown**: a job could not ask git which commit it ran"
    if s["dirty"]:
        code += (
            "; **-dirty**: the tree had uncommitted changes when a job ran, so the commit alone does not reproduce it"
        )
    cfg = s["config"]
    if cfg["md5_matches_log"]:
        md5_text = f"its MD5 {cfg['md5']} equals the `Config MD5` snakemake logged"
    else:
        md5_text = (
            f"**its MD5 {cfg['md5']} differs from the `Config MD5` snakemake logged "
            f"({', '.join(cfg['logged_md5']) or 'none'})**: the files were edited after the run, or other "
            "files or `--config` values were used"
        )
    files = ", ".join(f"`{name}`" for name in cfg["files"])
    machine = s["machine"]
    machine_text = machine_line(machine)
    if machine["cpu_flags"]:
        machine_text += f" (CPU flags: {', '.join(machine['cpu_flags'])})"
    here = machine["recorded_on"]
    if machine["same_host"]:
        origin = (
            f"read where `record_run.py` ran (host {here['host']}; the snakemake logs name the same host and "
            "platform"
            + (
                "; CPU model and cores as the result files' `meta.cpu` records them)"
                if machine.get("cpu_from_results")
                else ", but the result files do not record the CPU model)"
            )
        )
    else:
        origin = (
            f"**read on {here['host']} ({here['platform']}), while the logs name "
            f"{', '.join(machine['run_hosts']) or '?'} ({'; '.join(machine['run_platforms']) or '?'})**: "
            "the CPU, cores and RAM may not be the run's"
        )
    devices = ", ".join(f"{name} ({n} files)" for name, n in machine["job_device_names"].items()) or "—"
    cores = ", ".join(map(str, machine["snakemake_cores"])) or "?"
    quiet = ("yes" if s["quiet"] else "no") + (f": {s['quiet_note']}" if s["quiet_note"] else "")
    packages = "; ".join(", ".join(f"{k} {v}" for k, v in p.items() if v) for p in machine["packages"]) or "—"
    times = s["wall_time"]
    invocations = sum(1 for inv in times["invocations"] if inv["jobs_finished"])
    return [
        ("code version", code),
        (
            "config",
            (f"{files} (copied into `config/`; resolved, defaults filled in: `config.resolved.yaml`; {md5_text})"),
        ),
        ("model, dataset", f"{s['model']}, {s['dataset']}"),
        ("command", f"`{s['command']}`" if s["command"] else "not given (`--command`); the logged commands are below"),
        ("machine", f"{machine_text}; {origin}"),
        ("jobs ran on", f"{devices}; snakemake `--cores` {cores}"),
        ("quiet machine", quiet),
        ("packages", packages),
        (
            "wall time",
            (
                f"{duration(times['total_seconds'])} over {invocations} snakemake invocation(s), first started "
                f"{times['first_start']} (log time)"
            ),
        ),
    ]


def wall_time_section(*, times: Mapping[str, Any]) -> list[str]:
    lines = [
        "",
        "## Wall time",
        "",
        (
            "Each snakemake invocation (`.snakemake/log/`): its elapsed time, the jobs it finished and how many of "
            "those no later invocation reran (kept)."
        ),
        "",
    ]
    lines += table(
        ["started", "command", "elapsed", "jobs", "kept", "status"],
        [
            (
                inv["started"],
                f"`{inv['command']}`",
                duration(inv["wall_seconds"]),
                inv["jobs_finished"],
                inv["jobs_kept"],
                inv["status"],
            )
            for inv in times["invocations"]
        ],
    )
    lines += [
        "",
        (
            f"Per rule, over the kept jobs (log stamps, 1 s resolution; {duration(times['kept_jobs_seconds'])} "
            "in all) and the `benchmarks/` files (seconds and peak memory of each benchmarked job):"
        ),
        "",
    ]
    rows = []
    for rule, e in times["per_rule"].items():
        benchmarked = "—"
        if e["benchmark_jobs"]:
            benchmarked = duration(e["benchmark_seconds"])
            if e["benchmark_jobs"] != e["jobs"]:
                benchmarked += f" ({e['benchmark_jobs']} jobs)"
        rows.append(
            (
                rule,
                e["jobs"],
                duration(e["seconds"]),
                duration(e["max_job_seconds"]),
                _share(e["shared_seconds"] / e["seconds"])
                if e.get("shared_seconds") is not None and e["seconds"]
                else "—",
                benchmarked,
                count(e["benchmark_max_rss_mb"]),
            )
        )
    lines += table(
        ["rule", "jobs", "time (log)", "longest job", "beside other jobs", "time (benchmarks)", "peak RSS MB"], rows
    )
    lines += [
        "",
        (
            "Beside other jobs: the share of the rule's time during which another job of the run ran too "
            "(lanes, docs/PERFORMANCE.md). A time measured then (training, generation) is the run's cost, "
            "not a clean speed; the timing rules (latency, serving) should show none."
        ),
    ]
    return lines


def quality_sections(*, summary: Mapping[str, Any]) -> list[str]:
    s = summary
    source = next(p for p in s["source_files"] if p.startswith("results/compare/"))
    lines = [
        "",
        "## Quality",
        "",
        (
            f"ROUGE F per variant over {s['examples']} examples, with {_confidence(s['rouge'])} intervals "
            f"(`{source}`); generation speed from each `generation.json`; failure-mode rates per example "
            "(continuation of the input, degenerate output, instruction echo)."
        ),
        "",
    ]
    lines += table(
        ["variant", "ROUGE-1", "ROUGE-2", "ROUGE-L", "generation tokens/s", "continuation", "degenerate", "echo"],
        [
            (
                v,
                ci(r.get("rouge1")),
                ci(r.get("rouge2")),
                ci(r.get("rougeL")),
                num(r["tokens_per_second"], 1),
                _share(r["failure_rates"].get("continuation")),
                _share(r["failure_rates"].get("degenerate")),
                _share(r["failure_rates"].get("instruction_echo")),
            )
            for v, r in s["rouge"].items()
        ],
    )
    several = {name: g for name, g in s["groups"].items() if (g.get("seeds") or 1) > 1}
    if several:
        lines += ["", "Variant groups over seeds:", ""]
        lines += table(
            ["group", "seeds", "per-seed means", "mean", "seed std"],
            [
                (
                    name,
                    g["seeds"],
                    ", ".join(num(m) for m in g["per_seed_means"]),
                    num(g["mean"]),
                    num(g["seed_std"], 4),
                )
                for name, g in several.items()
            ],
        )

    lines += [
        "",
        "## Comparisons",
        "",
        (
            f"Paired differences b − a of {s['metric']} F on the same examples (`{source}`): estimate and "
            "interval, the permutation p, the p the decision uses (Holm within its family; the primary question "
            "alone, unadjusted), the verdict (supported: that p below alpha and the interval excludes 0) and, for "
            "LoRA against full fine-tuning, whether LoRA is shown within the quality gap."
        ),
        "",
    ]
    rows = []
    for c in s["comparisons"]:
        gap = "—"
        if "within_gap" in c:
            gap = f"{'shown' if c['within_gap'] else 'not shown'} ({num(c['max_gap'], 2)})"
        rows.append(
            (
                f"{c['b']} − {c['a']}",
                f"{c['family']} ({c['adjustment']}, {c['family_size']})",
                ci(c, 4, sign=True),
                pval(c["p_value"]),
                pval(c["p_adjusted"]),
                verdict_word(c["supported"]),
                gap,
            )
        )
    lines += table(["b − a", "family", "difference", "raw p", "adjusted p", "verdict", "within gap"], rows)
    for text in s["verdicts"]:
        lines += ["", f"Primary question: {text}."]
    detectable = [c for c in s["comparisons"] if c.get("detectable") and not c["supported"]]
    if detectable:
        lines += ["", "What each comparison that is not supported could have detected (80% power):", ""]
        lines += table(
            ["b − a", "detectable difference", "at alpha", "effect that matters", "examples needed", "reading"],
            [
                (
                    f"{c['b']} − {c['a']}",
                    num(c["detectable"]["mde"], 4),
                    num(c["detectable"]["alpha"], 4),
                    num(c["detectable"]["effect"], 3),
                    count(c["detectable"]["needed_examples"]),
                    c["detectable"]["text"],
                )
                for c in detectable
            ],
        )
    return lines


def learning_rate_section(*, summary: Mapping[str, Any]) -> list[str]:
    rates = summary.get("learning_rates") or {}
    if not rates.get("methods"):
        return []
    first = next(iter(rates["methods"].values()))
    lines = ["", "## Learning rates chosen on the validation split", "", f"Choice: {first['criterion']}.", ""]
    lines += table(
        ["method", "learning rate", "validation loss", "interval", ""],
        [
            (
                method,
                rate_label(c["learning_rate"]),
                num(c["mean_loss"], 4),
                f"[{num(c['low'], 4)}, {num(c['high'], 4)}]",
                "chosen" if c["learning_rate"] == m["chosen"] else "",
            )
            for method, m in rates["methods"].items()
            for c in m["candidates"]
        ],
    )
    edges = [f"- {m['grid_edge']}." for m in rates["methods"].values() if m.get("grid_edge")]
    lines += ["", *edges] if edges else []
    for pair, ratio in rates.get("lora_over_fft", {}).items():
        interval = ratio["interval"]
        spread = (
            f", interval [{num(interval['low'])}, {num(interval['high'])}]" if interval else " (one seed: no interval)"
        )
        edge = f"; {ratio['grid_edge']}" if ratio.get("grid_edge") else ""
        lines += ["", f"LoRA's chosen rate over full fine-tuning's, {pair}: {num(ratio['ratio'])}{spread}{edge}."]
    return lines


def training_section(*, summary: Mapping[str, Any]) -> list[str]:
    s = summary
    if not s["training"]:
        return []
    lines = ["", "## Training", "", "Per trained variant (`train.json` of each; ROUGE-L from the quality table):", ""]
    lines += table(
        [
            "variant",
            "trainable params",
            "scaling",
            "artefact MB",
            "train time",
            "tokens/s",
            "GFLOP/s (peak)",
            "peak RSS MB",
            "padding",
            "steps",
            "final loss",
            "ROUGE-L",
        ],
        [
            (
                v,
                f"{count(t['trainable_parameters'])} ({num(t['trainable_percent'], 2)}%)",
                num(t["lora_scaling"], 2),
                megabytes(t["artefact_bytes"]),
                duration(t["train_seconds"]),
                num(t["tokens_per_second"], 0),
                f"{num(t['achieved_gflops'], 0)} ({num(t['matmul_peak_gflops'], 0)})",
                megabytes(t["peak_rss_bytes"]),
                _share(t["padding_share"]),
                count(t["steps"]),
                num(t["final_loss"], 3),
                ci(s["rouge"][v].get("rougeL")),
            )
            for v, t in s["training"].items()
        ],
    )
    per_rule = s["wall_time"]["per_rule"]
    shared = [
        f"{rule} {_share(per_rule[rule]['shared_seconds'] / per_rule[rule]['seconds'])}"
        for rule in ("train_adapter", "train_full")
        if per_rule.get(rule, {}).get("seconds") and per_rule[rule].get("shared_seconds") is not None
    ]
    if shared:
        lines += [
            "",
            f"Share of the training jobs' time with another job running beside them: {', '.join(shared)}; train "
            "time, tokens/s and GFLOP/s taken then are this run's costs, not clean speeds.",
        ]
    return lines


def quantisation_section(*, summary: Mapping[str, Any]) -> list[str]:
    quant = summary["quantisation"]
    if not quant:
        return []
    deltas = [q["delta_vs_reference"] for q in quant.values() if q["delta_vs_reference"]]
    reference = deltas[0]["reference"] if deltas else "full"
    lines = [
        "",
        "## Quantisation",
        "",
        (
            "Per precision (`latency.json`: timed runs of exactly the new-token count; ROUGE-L of the quality run "
            "and its difference from the reference precision from the comparisons file):"
        ),
        "",
    ]
    rows = []
    for p, q in quant.items():
        delta = q["delta_vs_reference"]
        rows.append(
            (
                f"{p} ({q['backend']})" if q.get("backend") else p,
                q["weights"],
                q["compute_dtype"] + (f"; {q['cpu_kernel']}" if q.get("cpu_kernel") else ""),
                duration(q["load_seconds"]),
                f"{num(q['latency_p50_s'], 2)} / {num(q['latency_p95_s'], 2)}",
                num(q["ttft_p50_s"], 2),
                num(q["tokens_per_second"], 1),
                megabytes(q["weight_bytes"]),
                megabytes(q["peak_rss_bytes"]),
                megabytes(q["peak_cuda_bytes"]),
                ci(q["rougeL"]),
                "reference" if delta is None else ci(delta, 3, sign=True),
                "—" if delta is None else pval(delta["p_adjusted"]),
                "—" if delta is None else verdict_word(delta["supported"]),
            )
        )
    lines += table(
        [
            "precision",
            "weights",
            "compute",
            "load",
            "p50 / p95 s per example",
            "TTFT p50 s",
            "tokens/s",
            "weights MB",
            "peak RSS MB",
            "peak GPU MB",
            "ROUGE-L",
            f"Δ ROUGE-L vs {reference}",
            "adjusted p",
            "verdict",
        ],
        rows,
    )
    first = next(iter(quant.values()))
    lines += [
        "",
        (
            f"{first['timed_runs']} timed runs per precision, batch {first['batch_size']}, "
            f"{first['new_tokens']} new tokens each."
        ),
    ]
    return lines


def drift_section(*, summary: Mapping[str, Any]) -> list[str]:
    drift = summary["drift"]
    if not drift:
        return []
    source = next(p for p in summary["source_files"] if p.startswith("results/drift/") and p.endswith("/summary.json"))
    lines = [
        "",
        "## Drift",
        "",
        (
            f"Per variant group (`{source}`): mean drift (1 − debiased CKA, mean over {drift['mean_over']}) over "
            f"{drift['examples']} prompts with {_pct(drift['confidence'])} intervals ({drift['resamples']} "
            "resamples), the layer of largest drift, and forgetting: the tuned model's mean token cross-entropy "
            "minus the base's (nats per token; negative: predicts the text better)."
        ),
        "",
    ]
    rows = []
    for name, g in drift["groups"].items():
        largest = "—" if not g["largest"] else f"{num(g['largest']['estimate'], 4)} ({g['largest']['layer']})"
        rows.append(
            (
                name,
                ci(g["mean_drift"], 4),
                largest,
                ci(g["forgetting"].get("in_domain"), 3, sign=True),
                ci(g["forgetting"].get("general"), 3, sign=True),
            )
        )
    lines += table(["group", "mean drift", "largest (layer)", "in-domain forgetting", "general-text forgetting"], rows)
    if drift["verdicts"]:
        lines += [
            "",
            (
                f"Study 4's criterion (drift ratio LoRA / FFT at most {num(1 - drift['criterion'], 2)}, and "
                "quality within the gap of full fine-tuning):"
            ),
            "",
        ]
        lines += table(
            ["group", "drift ratio", "drift", "quality", "criterion"],
            [
                (
                    v["variant"],
                    f"{ci(v['ratio'])} ({_pct(v['ratio'].get('confidence'))})",
                    v["drift"],
                    v["quality"],
                    "holds" if v["holds"] else "not supported",
                )
                for v in drift["verdicts"]
            ],
        )
    if drift["shuffled_cka_debiased"]:
        low, high = drift["shuffled_cka_debiased"]
        lines += [
            "",
            (
                f"Chance level (base against tuned with prompts shuffled, `drift.json`): debiased CKA "
                f"{num(low, 3)} to {num(high, 3)} across layers and variants."
            ),
        ]
    return lines


def weights_sections(*, summary: Mapping[str, Any]) -> list[str]:
    s = summary
    lines: list[str] = []
    if s["weights"]:
        first = next(iter(s["weights"].values()))
        kinds = "/".join(first["lora_target_kinds"]) or "none"
        lines += [
            "",
            "## Weight space",
            "",
            (
                f"Per variant (`weights.json` of each): effective rank of each module's update (singular values "
                f"holding {_pct(first['energy'])} of its energy), intruder dimensions at epsilon {first['epsilon']} "
                f"and at any epsilon of the sweep, mean relative update norm; on all modules and on those LoRA "
                f"targets ({kinds})."
            ),
            "",
        ]
        rows = []
        for v, w in s["weights"].items():
            update = w["mean_relative_update_norm"]
            rows.append(
                (
                    v,
                    w["modules"],
                    num(w["median_effective_rank"], 1),
                    w["max_effective_rank"],
                    w["intruders"],
                    w["intruders_any_epsilon"],
                    "—" if update is None else f"{update:.2e}",
                    num(w["lora_target_median_effective_rank"], 1),
                    w["lora_target_intruders"],
                )
            )
        lines += table(
            [
                "variant",
                "modules",
                "median effective rank",
                "max",
                "intruders",
                "at any epsilon",
                "mean relative update",
                f"median effective rank on {kinds}",
                f"intruders on {kinds}",
            ],
            rows,
        )
    if s["mitigation"]:
        lines += ["", "## Intruder mitigation", "", "Per LoRA variant and strength (`mitigation.json` of each):", ""]
        lines += table(
            ["variant", "intruders", "strength", "ROUGE-L", "general-text NLL", "update kept"],
            [
                (
                    v,
                    m["intruders"],
                    num(p["strength"], 2),
                    num(p["rougeL"]),
                    num(p["general_nll"], 4),
                    _share(p["update_remaining"]),
                )
                for v, m in s["mitigation"].items()
                for p in m["curve"]
            ],
        )
    if s["parameter_counts"]:
        ranks = sorted({row["rank"] for row in s["parameter_counts"]})
        presets = list(dict.fromkeys(row["targets"] for row in s["parameter_counts"]))
        by = {(row["targets"], row["rank"]): row for row in s["parameter_counts"]}
        source = next(p for p in s["source_files"] if p.endswith("parameter_counts.json"))
        lines += [
            "",
            "## Adapter sizes",
            "",
            f"Trainable parameters of LoRA by target set and rank (`{source}`, no training):",
            "",
        ]

        def cell(preset: str, rank: int) -> str:
            row = by.get((preset, rank))
            if row is None:
                return "—"
            return f"{count(row['trainable_parameters'])} ({num(row['trainable_percent'], 2)}%)"

        lines += table(
            ["targets", *[f"r={r}" for r in ranks]], [(preset, *[cell(preset, r) for r in ranks]) for preset in presets]
        )
    return lines


def data_section(*, summary: Mapping[str, Any]) -> list[str]:
    data = summary["data"]
    hashes = ", ".join(f"`{name}` sha256 {info.get('sha256', '?')[:12]}…" for name, info in data["files"].items())
    return [
        "",
        "## Data",
        "",
        (
            f"{data['dataset']}: evaluation {data['eval']['size']} examples ({data['eval']['split']} split, seed "
            f"{data['eval']['seed']}), training sizes {_sizes(data['train']['sizes'])} ({data['train']['split']} "
            f"split, seed {data['train']['seed']}); {hashes}."
        ),
    ]


def _sizes(sizes: Any) -> str:
    values = sizes.values() if isinstance(sizes, Mapping) else sizes if isinstance(sizes, list) else [sizes]
    return ", ".join(str(value) for value in values)


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%" if value >= 0.1 or value == 0 else f"{100 * value:.1f}%"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:g}%"


def _confidence(rouge: Mapping[str, Any]) -> str:
    levels = {r["rougeL"].get("confidence") for r in rouge.values() if r.get("rougeL")}
    return ", ".join(_pct(level) for level in sorted(level for level in levels if level is not None)) or "—"


# ---------------------------------------------------------------------------------------------
# The results index's table over every recorded run (docs/results/README.md)


def headline_cells(*, headline: Mapping[str, Any]) -> tuple[str, str, str]:
    """Best ROUGE-L, full fine-tuning against each LoRA, int8 latency: as text."""
    best = headline["best_rouge_l"]
    fft = (
        "; ".join(
            f"{c['b']} − {c['a']} {num(c['estimate'], 3, sign=True)} (adjusted p {pval(c['p_adjusted'])}): "
            f"{verdict_word(c['supported'])}"
            for c in headline["fft_vs_lora"]
        )
        or "—"
    )
    int8_p50, full_p50 = headline["int8_latency_p50_s"], headline["full_latency_p50_s"]
    if int8_p50 is None:
        int8 = "—"
    elif full_p50:
        int8 = f"{num(int8_p50, 2)} s per example ({int8_p50 / full_p50:.2f}x full)"
    else:
        int8 = f"{num(int8_p50, 2)} s per example"
    return ("—" if best is None else f"{best['variant']} {ci(best)}"), fft, int8


def readme_table(*, results_dir: Path, link_base: str | None = None) -> str:
    """A Markdown table, one row per recorded run (newest first), linking each folder as
    `link_base`/folder/ (default: `results_dir`; "." or "": the folder's name alone, for a page
    inside `results_dir`)."""
    base = (link_base if link_base is not None else results_dir.as_posix()).rstrip("/")
    base = "" if base in ("", ".") else f"{base}/"
    summaries = []
    for path in sorted(results_dir.glob("*/summary.json")):
        summary = json.loads(path.read_text(encoding="utf-8"))
        if summary.get("schema") != SUMMARY_SCHEMA:
            raise RecordError(f"{path}: summary schema {summary.get('schema')!r}; this script reads {SUMMARY_SCHEMA}")
        summaries.append((path.parent.name, summary))
    if not summaries:
        raise RecordError(f"no recorded run (*/summary.json) under {results_dir}")
    rows = []
    for folder, s in sorted(summaries, key=lambda item: (item[1]["date"], item[0]), reverse=True):
        best, fft, int8 = headline_cells(headline=s["headline"])
        machine = machine_line(s["machine"]) + ("" if s["quiet"] else ", not quiet")
        rows.append(
            (
                s["date"],
                f"`{s['code_version']}`",
                s["config"]["name"],
                machine,
                duration(s["wall_time"]["total_seconds"]),
                best,
                fft,
                int8,
                f"[{folder}]({base}{folder}/)",
            )
        )
    header = [
        "date",
        "commit",
        "config",
        "machine",
        "wall time",
        "best ROUGE-L",
        "FFT vs LoRA (ROUGE-L)",
        "int8 p50 latency",
        "record",
    ]
    return "\n".join(table(header, rows)) + "\n"


# ---------------------------------------------------------------------------------------------


README_START = "<!-- recorded runs: written by bench/record_run.py --update-readme; do not edit by hand -->"
README_END = "<!-- end of recorded runs -->"


def update_readme(*, readme: Path, table: str) -> None:
    """Replace the block between the page's markers with `table` (the results index,
    docs/results/README.md), so its figures come from the records, never typed."""
    text = readme.read_text(encoding="utf-8")
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise RecordError(f"{readme}: needs exactly one line {README_START!r} and one {README_END!r}")
    head, rest = text.split(README_START)
    _, tail = rest.split(README_END)
    readme.write_text(f"{head}{README_START}\n{table.rstrip()}\n{README_END}{tail}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, help="the folder snakemake ran in (results/, .snakemake/log, benchmarks/)")
    parser.add_argument(
        "--config",
        nargs="+",
        metavar="FILE",
        help="the run's config file(s), lowest precedence first (default: those the newest "
        "snakemake log names, under --root)",
    )
    parser.add_argument("--command", help="the exact command that ran the workflow (default: the logged commands)")
    parser.add_argument("--out", type=Path, help="where run folders go (docs/results)")
    quiet = parser.add_mutually_exclusive_group()
    quiet.add_argument(
        "--quiet",
        dest="quiet",
        action="store_true",
        default=None,
        help="nothing else ran on the machine during the run",
    )
    quiet.add_argument(
        "--not-quiet", dest="quiet", action="store_false", help="something else ran beside it (say what: --note)"
    )
    parser.add_argument("--note", default="", help="what else ran, or anything else about the machine's state")
    parser.add_argument("--force", action="store_true", help="replace an existing record folder")
    parser.add_argument(
        "--readme-table",
        type=Path,
        metavar="DIR",
        help="print the results index's table of the runs recorded in DIR",
    )
    parser.add_argument(
        "--link-base",
        help="with --readme-table: link prefix of each run folder (default: DIR, or with --update-readme "
        "the path from that page's folder to DIR)",
    )
    parser.add_argument(
        "--update-readme",
        type=Path,
        metavar="PAGE",
        help="with --readme-table: write the table into PAGE's marked block (the results index, "
        "docs/results/README.md)",
    )
    args = parser.parse_args(argv)
    try:
        if args.readme_table is not None:
            if args.root is not None:
                parser.error("--readme-table reads recorded runs; it takes no --root")
            link_base = args.link_base
            if link_base is None and args.update_readme is not None:
                # Links relative to the page they are written into.
                link_base = Path(os.path.relpath(args.readme_table, args.update_readme.parent)).as_posix()
            table = readme_table(results_dir=args.readme_table, link_base=link_base)
            if args.update_readme is None:
                sys.stdout.write(table)
            else:
                update_readme(readme=args.update_readme, table=table)
            return 0
        if args.root is None or args.out is None:
            parser.error("--root and --out are required (or --readme-table DIR)")
        if args.quiet is None:
            parser.error("say whether the machine was quiet: --quiet or --not-quiet (with --note)")
        record = build_record(
            root=args.root, config=args.config, command=args.command, quiet=args.quiet, note=args.note
        )
        target = write_record(record=record, out=args.out, force=args.force)
    except RecordError as error:
        print(f"record_run: {error}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
