"""The summary that opens the page: for each study that ran, its question, the verdict and the
numbers behind it (estimate, interval, the p the decision used); then what ran: the device and
dtype the jobs resolved (their result files' `meta`, not the config's `auto`), model, data,
sizes, seeds and code version. Every number is read from a result file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from lora_study.core import grid
from lora_study.core.conditions import load_mark
from lora_study.core.io import MANIFEST, read_json
from lora_study.core.results import read_result
from lora_study.report.compare import DETECTABLE_HEADER, detectable_cells, gap_cell, metric_note
from lora_study.report.inputs import Files, Stage, by_variant, one
from lora_study.report.page import Section, escape, table

# The jobs whose result files say where they ran: input name -> what the job does.
JOBS = {
    "generation": "evaluation (generation.json)",
    "train": "training (train.json)",
    "quant_generation": "quantised quality runs (generation.json)",
    "quant_latency": "quantised timing (latency.json)",
    "drift": "representational drift (drift.json)",
    "weights": "weight drift (weights.json)",
    "mitigation": "intruder mitigation (mitigation.json)",
}


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    comparisons = read_result(one(files, "comparisons"))
    drift_summaries = [read_result(path) for path in files["drift_summary"]]  # none when nothing is trained
    jobs = {name: by_variant(files[name]) for name in JOBS}
    subsets = read_result(one(files, "subsets"))
    studies = (
        _primary(comparisons)
        + _against_base(comparisons)
        + _lora_against_fft(comparisons, specs=[result["run"]["spec"] for result in jobs["train"].values()])
        + _quantisation(comparisons, latency=jobs["quant_latency"])
        + "".join(_drift(summary, comparisons) for summary in drift_summaries)
    )
    every_result = [subsets, comparisons, *drift_summaries, *(r for results in jobs.values() for r in results.values())]
    if studies:
        studies += metric_note(comparisons["run"])  # rougeLsum: which sentence splitter
    body = (
        (studies or "<p>No study ran: the configuration trains nothing and quantises nothing.</p>")
        + "<h3>What ran</h3>"
        + _what_ran(
            model=one(files, "model").name,
            manifest=read_json(one(files, "model") / MANIFEST),
            subsets=subsets,
            trained=jobs["train"],
            precisions=list(jobs["quant_latency"]),
            results=every_result,
        )
        + _devices(jobs)
    )
    return [Section("summary", "Summary: what the study found and what ran", body)]


STAGE = Stage(
    name="summary",
    inputs=("model", "subsets", "comparisons", "drift_summary", *JOBS),
    sections=sections,
)


def _p(record: Mapping[str, Any]) -> str:
    """The p the verdict used: Holm-adjusted within its family, raw for a lone primary question."""
    if record["adjustment"] == "Holm":
        return f"{record['p_adjusted']:.3g} (Holm over {record['family_size']})"
    return f"{record['p_adjusted']:.3g} (tested alone)"


def _outcome(record: Mapping[str, Any]) -> str:
    """The verdict; a "not supported" says what the run could have detected, so that it is never
    read as "no difference"."""
    if not record["supported"]:
        could = record.get("detectable")
        return f"not supported: {could['text']}" if could else "not supported"
    return f"supported: {record['b']} {'higher' if record['difference']['mean'] > 0 else 'lower'}"


def _numbers(record: Mapping[str, Any]) -> list[str]:
    """Estimate, interval and p of a paired comparison (b minus a), and what it could have detected."""
    d = record["difference"]
    return [f"{d['mean']:+.4f}", f"[{d['low']:+.4f}, {d['high']:+.4f}]", _p(record), *detectable_cells(record)]


def _study(question: str, lead: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return f"<h3>{escape(question)}</h3><p>{escape(lead)}</p>" + table(header, rows, numeric_from=99)


def _count(records: Sequence[Mapping[str, Any]], *, key: str = "supported", word: str = "supported") -> str:
    return f"{sum(bool(r[key]) for r in records)} of {len(records)} {word}."


def _numbers_header(comparisons: Mapping[str, Any]) -> list[str]:
    run = comparisons["run"]
    return [
        f"difference ({run.get('metric_label', run['metric'])}, b − a)",
        f"{run['confidence']:.0%} interval",
        "p (as decided)",
        *DETECTABLE_HEADER,
    ]


def _primary(comparisons: Mapping[str, Any]) -> str:
    verdicts = comparisons["metrics"]["verdicts"]
    if not verdicts:
        return ""
    rows = [[f"{v['b']} vs {v['a']} ({v['why']})", _outcome(v), *_numbers(v)] for v in verdicts]
    return _study(
        f"Primary question: does {comparisons['run'].get('metric_label', comparisons['run']['metric'])} differ between the LoRA ranks (or the configured pair)?",
        _count(verdicts),
        ["comparison (b vs a)", "verdict", *_numbers_header(comparisons)],
        rows,
    )


def _against_base(comparisons: Mapping[str, Any]) -> str:
    records = [c for c in comparisons["metrics"]["comparisons"] if c["a"] == grid.BASE_VARIANT]
    if not records:
        return ""
    rows = [[c["b"], _outcome(c), *_numbers(c)] for c in records]
    return _study(
        f"Does tuning change {comparisons['run'].get('metric_label', comparisons['run']['metric'])} over the base model?",
        _count(records),
        ["variant group (b) vs base", "verdict", *_numbers_header(comparisons)],
        rows,
    )


def _lora_against_fft(comparisons: Mapping[str, Any], *, specs: Sequence[Mapping[str, Any]]) -> str:
    """Each LoRA group against full fine-tuning on the same data, paired by the specs the
    trained variants record (grid.fft_partner), judged on Study 4's quality gap."""
    groups = grid.group_specs(specs)
    partners = {group: grid.fft_partner(spec, groups) for group, spec in groups.items()}
    pairs = {frozenset((group, partner)) for group, partner in partners.items() if partner}
    records = [c for c in comparisons["metrics"]["comparisons"] if frozenset((c["a"], c["b"])) in pairs]
    if not records:
        return ""
    run = comparisons["run"]
    rows = [[f"{c['b']} vs {c['a']}", gap_cell(c), _outcome(c), *_numbers(c)] for c in records]
    header = [
        "comparison (b vs a)",
        f"LoRA within {run['max_quality_gap']:g} of FFT",
        "verdict on the difference",
        *_numbers_header(comparisons),
    ]
    return _study(
        f"Is LoRA within {run['max_quality_gap']:g} {run.get('metric_label', run['metric'])} of full fine-tuning on the same data "
        "(judged at the far end of the interval)?",
        f"{sum(c['quality_gap']['holds'] for c in records)} of {len(records)} within the gap.",
        header,
        rows,
    )


def _quantisation(comparisons: Mapping[str, Any], *, latency: Mapping[str, Mapping[str, Any]]) -> str:
    records = comparisons["metrics"]["precisions"]
    if not records:
        return ""
    reference = comparisons["run"]["precision_reference"]
    rows = [
        [f"{c['b']} vs {c['a']}", _outcome(c), *_numbers(c), latency_against(latency, name=c["b"], reference=reference)]
        for c in records
    ]
    return _study(
        f"Does a quantised precision change {comparisons['run'].get('metric_label', comparisons['run']['metric'])} against {reference}, and at what latency?",
        _count(records, word="with a supported difference in quality")
        + " Each precision's quality is one greedy run on this machine's kernels (named in the quantisation "
        "section): another CPU or GPU can give another figure.",
        ["precision (b vs a)", "verdict", *_numbers_header(comparisons), "latency p50 per example"],
        rows,
    )


def latency_against(latency: Mapping[str, Mapping[str, Any]], *, name: str, reference: str) -> str:
    """A precision's median latency, as a ratio to the reference's only when both ran on the
    same device (int8-dynamic runs on the CPU beside GPU precisions under `auto`). Each timing
    is marked as the serving section marks it (taken under load, load unknown), and a ratio
    involving one says so."""
    p50 = {key: latency[key]["metrics"]["latency_seconds"]["p50"] for key in (name, reference)}
    device = {key: latency[key]["meta"]["device"] for key in (name, reference)}
    load = {key: latency[key]["metrics"].get("under_load") for key in (name, reference)}
    mark = {key: load_mark(flag) for key, flag in load.items()}
    if device[name] != device[reference]:
        return (
            f"{p50[name]:.3f} s{mark[name]} on {device[name]} (not comparable: {reference} ran on {device[reference]})"
        )
    ratio = (
        f"{p50[name]:.3f} s{mark[name]} ({p50[name] / p50[reference]:.2f}x {reference}'s "
        f"{p50[reference]:.3f} s{mark[reference]}"
    )
    if True in load.values():
        return f"{ratio}: a ratio of timings taken under load, not of the precisions alone)"
    if None in load.values():
        return f"{ratio}: the load during these timings is unknown)"
    return f"{ratio})"


def _drift(summary: Mapping[str, Any], comparisons: Mapping[str, Any]) -> str:
    """Study 4's criterion as drift/summary.json judged it, with the p of its quality comparison."""
    verdicts = summary["metrics"]["verdicts"]
    if not verdicts:
        return ""
    run = summary["run"]
    records = {frozenset((c["a"], c["b"])): c for c in comparisons["metrics"]["comparisons"]}
    rows = []
    for v in verdicts:
        ratio, quality = v["ratio"], v["quality"]
        record = records.get(frozenset((v["variant"], v["fft"])))
        d = quality["difference"]
        rows.append(
            [
                f"{v['variant']} vs {v['fft']}",
                "holds" if v["holds"] else "not supported",
                f"{ratio['estimate']:.3f}",
                f"[{ratio['low']:.3f}, {ratio['high']:.3f}] ({ratio['confidence']:.1%})",
                f"at most {v['threshold']:.2f}: {v['drift']}"
                + (f" (but {v['drift_caveat']})" if v.get("drift_caveat") else ""),
                "not measured" if d is None else f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]",
                quality["outcome"] if d is None else f"within {quality['max_gap']:g}: {_quality(quality, record)}",
                _p(record) if record else "n/a",
            ]
        )
    header = [
        "LoRA vs FFT",
        "criterion",
        "drift ratio LoRA / FFT",
        "interval (simultaneous)",
        "drift",
        "quality: FFT − LoRA [interval]",
        "quality",
        "p of the quality comparison",
    ]
    return _study(
        f"Study 4: is LoRA within {run['max_quality_gap']:g} of full fine-tuning's quality with at least "
        f"{run['criterion']:.0%} less drift?",
        _count(verdicts, key="holds", word="hold"),
        header,
        rows,
    )


def _quality(quality: Mapping[str, Any], record: Mapping[str, Any] | None) -> str:
    """The quality half of Study 4 as drift/summary.json judged it; a "not shown" with why, from
    the comparison record it was judged on."""
    gap = (record or {}).get("quality_gap", {})
    if quality["outcome"] == "not shown" and gap.get("not_shown"):
        return f"not shown: {gap['not_shown']}"
    return quality["outcome"]


def _what_ran(
    *,
    model: str,
    manifest: Mapping[str, Any],
    subsets: Mapping[str, Any],
    trained: Mapping[str, Mapping[str, Any]],
    precisions: Sequence[str],
    results: Sequence[Mapping[str, Any]],
) -> str:
    data, split = subsets["run"], subsets["metrics"]
    specs = [result["run"]["spec"] for result in trained.values()]
    kinds = Counter(spec["kind"] for spec in specs)
    parameters = f", {manifest['parameters']:,} parameters" if "parameters" in manifest else ""
    versions = Counter(result["meta"]["code_version"] for result in results)
    rows = [
        ("model", f"{model} (source {manifest.get('source')}, {manifest.get('architecture')}{parameters})"),
        ("dataset", f"{data['name']} ({data['dataset']})"),
        (
            "evaluation examples",
            f"{split['eval']['size']} from split {split['eval']['split']} (seed {split['eval']['seed']})",
        ),
        (
            "training sizes",
            f"{', '.join(map(str, split['train']['sizes'].values()))} from split "
            f"{split['train']['split']} (seed {split['train']['seed']})",
        ),
        ("trained variants", ", ".join(f"{count} {kind}" for kind, count in kinds.items()) or "none"),
        ("training seeds", ", ".join(map(str, sorted({spec["seed"] for spec in specs}))) or "none"),
        ("quantised precisions", ", ".join(precisions) or "none"),
        (
            "code version",
            "; ".join(f"{version} ({count} of {len(results)} result files)" for version, count in versions.items()),
        ),
    ]
    return table(["", ""], rows, numeric_from=99)


def _devices(jobs: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Where each job ran, as its result files record it: one row per job and device, with
    each dtype's variants where they differ (the quantised precisions)."""
    rows = []
    for name, results in jobs.items():
        ran: dict[tuple[Any, Any], dict[Any, list[str]]] = {}
        for variant, result in results.items():
            meta = result["meta"]
            # dtype: the one the job computed in; a job that records none shows "-".
            ran.setdefault((meta["device"], meta["device_name"]), {}).setdefault(meta.get("dtype", "-"), []).append(
                variant
            )
        for (device, device_name), dtypes in ran.items():
            dtype = (
                next(iter(dtypes))
                if len(dtypes) == 1
                else ", ".join(f"{d} ({', '.join(v)})" for d, v in dtypes.items())
            )
            rows.append(
                [JOBS[name], device, device_name, dtype, ", ".join(v for names in dtypes.values() for v in names)]
            )
    return table(["job", "device", "device name", "dtype", "variants"], rows, numeric_from=99) + (
        "<p class=muted>As resolved when each job ran (the configuration may say <code>auto</code>).</p>"
    )
