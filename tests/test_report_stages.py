"""The report's stage registry on a small complete results tree written in the result format:
every stage builds from the named inputs it declares, per-variant files are matched by the
variant each records, the rule and the stages cannot disagree silently, and the summary's
numbers are the files'."""

from __future__ import annotations

import csv
import html
import importlib.util
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_report_drift import drift_metrics
from test_report_weights import mitigation_metrics, module, weights_metrics

from lora_study.core.grid import VariantSpec
from lora_study.core.io import MANIFEST, write_json, write_jsonl
from lora_study.core.results import read_result, write_result
from lora_study.report.inputs import ReportInputError, Stage, check_inputs, named_inputs
from lora_study.report.page import write_page
from lora_study.report.stages import STAGES
from lora_study.stages.compare.compare import VariantScores, compare_variants
from lora_study.stages.drift.summary import summarise_drift
from lora_study.stages.selection.selection import choose_rate
from lora_study.stages.serving.summary import summarise_serving
from lora_study.stages.tables.tables import SOURCES, TABLES, build_tables, collect, write_tables
from lora_study.tasks.rouge import ROUGE_LSUM_NOTE
from lora_study.tasks.scores import predictions_result

LORA2 = VariantSpec(kind="lora", train_size=4, seed=1, learning_rate=1e-3, rank=2, alpha=4.0, targets="qv")
LORA4 = VariantSpec(kind="lora", train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")
FFT = VariantSpec(kind="fft", train_size=4, seed=1, learning_rate=1e-5)
TRAINED = [LORA2, LORA4, FFT]
PRECISIONS = ["full", "int8"]
EVIL = '<script>alert("x")</script> & more'
LONG_INPUT = "A long abstract about adapters. " * 40  # over the folding threshold
STATISTICS = {
    "metric": "rougeL",
    "resamples": 300,
    "seed": 0,
    "confidence": 0.95,
    "pairs": [],
    "primary": None,
    "max_quality_gap": 0.03,
}
CONFIG: dict[str, Any] = {
    "model": {"source": "embedded", "device": "auto", "dtype": "auto"},
    "data": {"dataset": "aclsum", "train": {"sizes": [4], "seed": 123}, "eval": {"size": 6, "seed": 42}},
    "prompt": {"instruction": "Summarize.", "chat_template": True, "max_input_tokens": 512},
    "generation": {"greedy": True, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 32},
    "report": {"examples": 6, "seed": 0},  # every example: the long one is among them
}


def meta(**extra: Any) -> dict[str, Any]:
    return {
        "created_at": "2026-01-01T00:00:00+00:00",
        "code_version": "v1.2-3-gabcdef0",
        "device": "cuda",
        "device_name": "NVIDIA H100 80GB HBM3",
        "platform": "linux",
        "versions": {"torch": "2.13.0"},
        **extra,
    }


def examples() -> list[dict[str, str]]:
    inputs = ["An <b>abstract</b>.", LONG_INPUT, "Short input three.", "Four.", "Five.", "Six."]
    return [{"id": f"ex<{i}>", "input": text, "reference": f"The reference {i}."} for i, text in enumerate(inputs)]


def prediction(name: str, index: int, rng: np.random.Generator) -> str:
    words = ["The", "reference", str(index), "adapters", "summary", "model", "text"]
    text = " ".join(rng.choice(words, size=6))
    return EVIL if (name, index) == ("base", 0) else text


def write_variant(
    root: Path, folder: str, *, name: str, spec: VariantSpec | None, rng: np.random.Generator, dtype: str
) -> list[dict[str, Any]]:
    """predictions.jsonl, scores.json and generation.json of one evaluated variant or precision."""
    rows = [
        {"id": e["id"], "prediction": prediction(name, i, rng), "reference": e["reference"]}
        for i, e in enumerate(examples())
    ]
    predictions = f"{folder}/predictions.jsonl"
    write_jsonl(root / predictions, rows)
    spec_dict = None if spec is None else spec.to_dict()
    write_result(
        root / folder / "scores.json",
        **predictions_result(rows=rows, task=None, variant=name, spec=spec_dict, predictions_file=predictions),
        meta=meta(),
    )
    write_result(
        root / folder / "generation.json",
        run={"variant": name, "spec": spec_dict, "examples": len(rows)},
        metrics={
            "load_seconds": 1.0,
            "generate_seconds": 2.0,
            "generated_tokens": 60,
            "tokens_per_second": 30.0,
            "truncated_inputs": 0,
            "stopped_naturally": 5,
        },
        meta=meta(dtype=dtype),
    )
    return rows


def latency_result(name: str, p50: float) -> dict[str, Any]:
    summary = {"n": 4, "mean": p50, "std": 0.0, "min": p50, "p50": p50, "p95": p50 * 1.2, "max": p50 * 1.2}
    return {
        "run": {"precision": name, "example_ids": ["a", "b"], "config": {"latency": {"repeats": 2}}},
        "metrics": {
            "load_seconds": 1.25,
            "weight_bytes": 220_000_000,
            "peak_rss_bytes": 1_200_000_000,
            "peak_cuda_bytes": 300_000_000,
            "latency_seconds": summary,
            "ttft_seconds": summary,
            "decode_tokens_per_second": {**summary, "p50": 7.0},
            "tokens_per_second": 32 / p50,
            "batch_size": 1,
            "new_tokens": 32,
            "warmup_runs": 1,
            "timed_runs": 4,
            "under_load": False,
            "runs": [],
            "warmup": [],
        },
        "meta": meta(
            dtype="float16" if name == "full" else "int8",
            torch_threads=2,
            model={"weights": name, "compute_dtype": "float16", "backend": "torch"},
        ),
    }


SERVING_SETTINGS = {"batch_sizes": [1, 4], "max_prompt_tokens": 128, "new_tokens": 8, "warmup": 1, "repeats": 3}


def serving_batches(scale: float) -> list[dict[str, Any]]:
    """A serving file's `batches`: per batch size, three timed passes of mean latency `scale` x b^0.5."""
    batches = []
    for size in SERVING_SETTINGS["batch_sizes"]:
        passes = [scale * size**0.5 * factor for factor in (0.98, 1.0, 1.02)]
        summary = {"n": 3 * size, "mean": passes[1], "std": 0.01, "min": passes[0], "p50": passes[1], "p95": passes[2]}
        batches.append(
            {
                "batch_size": size,
                "calls_per_batch": 1,
                "runs": [{"request_latency_seconds": [value] * size} for value in passes],
                "metrics": {
                    "request_latency_seconds": summary,
                    "throughput_tokens_per_second": {**summary, "p50": size * 8 / passes[1]},
                    "peak_rss_bytes": 900_000_000 + size,
                    "peak_cuda_bytes": None,
                    "under_load": False,
                },
            }
        )
    return batches


def write_serving(root: Path) -> dict[str, Any]:
    """The serving stage's files: base, merged and unmerged per LoRA variant (unmerged 10%
    slower), merge.json per variant, multi_adapter.json, and the real summary of them all."""
    served = []
    for name, spec, mode, scale in [
        ("base", None, "base", 1.0),
        *(
            (s.name, s, mode, 1.1 if mode == "unmerged" else 1.0)
            for s in (LORA2, LORA4)
            for mode in ("merged", "unmerged")
        ),
    ]:
        path = f"results/serving/{name}/{mode}.json"
        write_result(
            root / path,
            run={
                "variant": name,
                "mode": mode,
                "spec": spec.to_dict() if spec else None,
                "config": {"serving": SERVING_SETTINGS},
            },
            metrics={
                "load_seconds": 0.5,
                "weight_bytes": 540_000_000,
                "under_load": False,
                "batches": serving_batches(scale),
            },
            meta=meta(dtype="float32", torch_threads=2),
        )
        served.append(path)
    merges = []
    # LORA4's adapter moves the logits less than the tolerance: a check that could not fail.
    for spec, effect in ((LORA2, 0.19), (LORA4, 5e-4)):
        path = f"results/merged/{spec.name}/merge.json"
        write_result(
            root / path,
            run={"variant": spec.name, "spec": spec.to_dict()},
            metrics={
                "max_abs_logit_difference": 2.5e-5,
                "mean_abs_logit_difference": 1e-6,
                "top_token_agreement": 1.0,
                "tolerance": 1e-3,
                "merged_bytes": 540_000_100,
                "adapter_max_abs_logit_effect": effect,
                "tolerance_below_adapter_effect": effect > 1e-3,
            },
            meta=meta(dtype="float32"),
        )
        merges.append(path)
    modes = {
        mode: {"weight_bytes": 545_000_000 * (2 if mode == "merged" else 1), "batches": serving_batches(1.0)}
        for mode in ("mixed", "grouped", "merged")
    }
    write_result(
        root / "results/serving/multi_adapter.json",
        run={"adapters": [LORA2.name, LORA4.name], "excluded": {"dora-r2-qv-n4-s1": "PEFT cannot mix DoRA"}},
        metrics={"modes": modes, "under_load": False},
        meta=meta(dtype="float32", torch_threads=2),
    )
    with_root = [str(root / path) for path in served]
    summary = summarise_serving(
        serving_files=with_root,
        multi_adapter_file=str(root / "results/serving/multi_adapter.json"),
        merge_files=[str(root / path) for path in merges],
        drift_summary_file=str(root / "results/drift/summary.json"),
        comparisons_file="results/compare/comparisons.json",
        settings={"max_overhead": 0.3, "resamples": 500, "seed": 0, "confidence": 0.95},
    )
    write_result(root / "results/serving/summary.json", **summary, meta=meta())
    return {
        "serving": served,
        "multi_adapter": ["results/serving/multi_adapter.json"],
        "serving_summary": ["results/serving/summary.json"],
    }


def write_tree(root: Path) -> dict[str, Any]:
    """Every file rule build_report reads, for base + two LoRA ranks + FFT and two precisions;
    returns the rule's named inputs (relative paths, as Snakemake gives them)."""
    rng = np.random.default_rng(0)
    write_json(
        root / "resources/models/m" / MANIFEST,
        {"source": "embedded", "architecture": "LlamaForCausalLM", "parameters": 1000, "checks": {"rope_theta": 1e5}},
    )
    write_result(
        root / "results/data/subsets.json",
        run={"dataset": "aclsum", "name": "aclsum", "source": {"train": "t", "eval": "e"}, "shuffle": "seeded"},
        metrics={
            "eval": {"split": "test", "seed": 42, "size": 6},
            "train": {"split": "train", "seed": 123, "sizes": {"4": 4}},
            "files": {},
        },
        meta=meta(device=None, device_name=None),
    )
    write_jsonl(root / "results/data/eval.jsonl", examples())
    variants = [("base", None), *((spec.name, spec) for spec in TRAINED)]
    scores = []
    for name, spec in variants:
        rows = write_variant(root, f"results/eval/{name}", name=name, spec=spec, rng=rng, dtype="bfloat16")
        rouge = read_result(root / f"results/eval/{name}/scores.json")
        scores.append(
            VariantScores(name=name, spec=spec, per_example=rouge["metrics"]["per_example"], predictions=rows)
        )
    precisions = []
    for name in PRECISIONS:
        rows = write_variant(root, f"results/quant/{name}", name=name, spec=None, rng=rng, dtype="float16")
        rouge = read_result(root / f"results/quant/{name}/scores.json")
        precisions.append(
            VariantScores(name=name, spec=None, per_example=rouge["metrics"]["per_example"], predictions=rows)
        )
        write_result(
            root / f"results/quant/{name}/latency.json", **latency_result(name, 2.0 if name == "full" else 1.5)
        )
    comparisons = compare_variants(
        variants=scores,
        eval_inputs={e["id"]: e["input"] for e in examples()},
        instruction="Summarize.",
        statistics=STATISTICS,
        precisions=precisions,
    )
    write_result(root / "results/compare/comparisons.json", **comparisons, meta=meta())
    for index, spec in enumerate(TRAINED):
        folder = root / f"results/adapters/{spec.name}"
        write_result(
            folder / "train.json",
            run={"variant": spec.name, "spec": spec.to_dict()},
            metrics={
                "trainable_parameters": 1000 * (index + 1),
                "trainable_percent": 0.1,
                "lora_scaling": 2.0,
                "artefact_bytes": 2e6,
                "train_seconds": 10.0,
                "tokens_per_second": 100.0,
                "achieved_gflops": 5.0,
                "padding_share": 0.05,
                "peak_rss_bytes": 2e9,
                "steps": 2,
                "final_loss": 2.5 - index,
            },
            meta=meta(dtype="bfloat16"),
        )
        with open(folder / "loss.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerows([["step", "epoch", "loss"], [1, 0.5, 3.0 - index], [2, 1.0, 2.5 - index]])
    write_result(
        root / "results/adapters/parameter_counts.json",
        run={"ranks": [2, 4]},
        metrics={
            "rows": [
                {
                    "targets": "qv",
                    "rank": 2,
                    "trainable_parameters": 1000,
                    "trainable_percent": 0.1,
                    "adapter_megabytes_fp32": 0.004,
                }
            ]
        },
        meta=meta(device=None, device_name=None),
    )
    features = {}
    base = [rng.normal(size=(40, 6)) for _ in range(3)]
    for spec, drift in zip(TRAINED, ([0.0, 0.05, 0.1], [0.0, 0.1, 0.2], [0.0, 0.2, 0.4]), strict=True):
        metrics = drift_metrics(drift)
        folder = root / f"results/drift/{spec.name}"
        write_result(
            folder / "drift.json",
            run={"variant": spec.name, "spec": spec.to_dict()},
            metrics=metrics,
            meta=meta(dtype="float32"),
        )
        amount = 2.0 if spec.kind == "fft" else 0.2
        features[spec.name] = (
            spec.to_dict(),
            metrics,
            [b + amount * k * rng.normal(size=b.shape) for k, b in enumerate(base)],
        )
        kinds = ("q_proj", "v_proj", "k_proj") if spec.kind == "fft" else ("q_proj", "v_proj")
        modules = [
            module(layer, kind, rank=2 + layer, intruders=layer, sweep=[0, layer, 2 * layer])
            for layer in (0, 1)
            for kind in kinds
        ]
        write_result(
            folder / "weights.json",
            run={"variant": spec.name, "spec": spec.to_dict(), **weights_metrics(modules)["run"]},
            metrics=weights_metrics(modules)["metrics"],
            meta=meta(dtype="float64"),
        )
    write_result(
        root / f"results/drift/{LORA2.name}/mitigation.json",
        run={"variant": LORA2.name, "spec": LORA2.to_dict(), **mitigation_metrics()["run"]},
        metrics=mitigation_metrics()["metrics"],
        meta=meta(dtype="float32"),
    )
    texts = {"per_text_nll": [10.0, 12.0, 9.0], "per_text_tokens": [5, 6, 4]}
    summary = summarise_drift(
        base_features=base,
        base_forgetting={"in_domain": texts, "general": texts},
        variants=features,
        comparisons=read_result(root / "results/compare/comparisons.json"),
        settings={
            "criterion": 0.2,
            "resamples": 200,
            "seed": 0,
            "confidence": 0.95,
            "include_embeddings": False,
            "max_quality_gap": 0.03,
        },
    )
    write_result(root / "results/drift/summary.json", **summary, meta=meta())
    serving = write_serving(root)
    names = [name for name, _ in variants]
    named = {
        "model": "resources/models/m",
        "subsets": "results/data/subsets.json",
        "eval": "results/data/eval.jsonl",
        "scores": [f"results/eval/{v}/scores.json" for v in names],
        "predictions": [f"results/eval/{v}/predictions.jsonl" for v in names],
        "generation": [f"results/eval/{v}/generation.json" for v in names],
        "train": [f"results/adapters/{s.name}/train.json" for s in TRAINED],
        "loss": [f"results/adapters/{s.name}/loss.csv" for s in TRAINED],
        "parameter_counts": "results/adapters/parameter_counts.json",
        "comparisons": "results/compare/comparisons.json",
        "quant_latency": [f"results/quant/{p}/latency.json" for p in PRECISIONS],
        "quant_scores": [f"results/quant/{p}/scores.json" for p in PRECISIONS],
        "quant_generation": [f"results/quant/{p}/generation.json" for p in PRECISIONS],
        "drift": [f"results/drift/{s.name}/drift.json" for s in TRAINED],
        "weights": [f"results/drift/{s.name}/weights.json" for s in TRAINED],
        "mitigation": [f"results/drift/{LORA2.name}/mitigation.json"],
        "drift_summary": ["results/drift/summary.json"],
        "selection": write_selections(root),
        **serving,
        **stage_files(root),
    }
    return {**named, "tables": write_tables_of(root, named)}


def stage_files(root: Path) -> dict[str, Any]:
    """The files of stages that bring their own example tree: tests/report_files/<stage>.py,
    each with `write(root)` returning the named inputs it wrote (a new stage adds its file
    there instead of editing write_tree)."""
    named: dict[str, Any] = {}
    for path in sorted((Path(__file__).parent / "report_files").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"report_files_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        named |= module.write(root)
    return named


def write_tables_of(root: Path, named: dict[str, Any]) -> list[str]:
    """results/tables/*.csv of the tree, as rule build_tables writes them from the same files."""
    current = {name: [files] if isinstance(files, str) else files for name, files in named.items() if name in SOURCES}
    out = {name: f"results/tables/{name}.csv" for name in TABLES}
    tables = build_tables(found=collect(root=root, current=current), config=CONFIG, code_version="test")
    write_tables(tables=tables, out={name: root / path for name, path in out.items()})
    return list(out.values())


def write_selections(root: Path) -> list[str]:
    """selection.json of a sweep of LoRA r2 (3 rates) and FFT (2 rates), one seed each, as
    rule select_learning_rate writes it from validation losses."""
    paths = []
    for spec, losses in ((LORA2, {1e-4: 2.1, 1e-3: 1.8, 1e-2: 2.6}), (FFT, {1e-5: 1.9, 1e-4: 2.0})):
        candidates = {
            rate: [
                {
                    "run": {"variant": replace(spec, learning_rate=rate).name, "spec": {"seed": 1}},
                    "metrics": {"per_example": [{"loss": loss + 0.01 * (i % 3)} for i in range(8)]},
                }
            ]
            for rate, loss in losses.items()
        }
        path = f"results/selection/{spec.method}/selection.json"
        write_result(
            root / path,
            run={"method": spec.method, "specs": [replace(spec, learning_rate=rate).to_dict() for rate in losses]},
            metrics=choose_rate(candidates=candidates, resamples=200, seed=0, confidence=0.95),
            meta=meta(),
        )
        paths.append(path)
    return paths


class RuleInput(list):
    """What Snakemake gives a script as `snakemake.input`: the files, and their names."""

    def __init__(self, named: dict[str, Any]) -> None:
        super().__init__(path for value in named.values() for path in ([value] if isinstance(value, str) else value))
        self.named = named

    def items(self):
        return self.named.items()


def build(named: dict[str, Any], out: Path) -> str:
    """As scripts/build_report.py does, in the directory the relative paths are relative to."""
    files = named_inputs(RuleInput(named))
    check_inputs(rule_inputs=files, stages=STAGES)
    write_page(sections=[s for stage in STAGES for s in stage.build(files=files, config=CONFIG)], out_path=out)
    return out.read_text()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("results-tree")
    return root, write_tree(root)


@pytest.fixture()
def in_tree(tree: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Any]]:
    monkeypatch.chdir(tree[0])  # Snakemake runs a script in the working directory its paths are relative to
    return tree


def section(page: str, anchor: str) -> str:
    return page.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]


def test_every_stage_builds_from_the_files_and_the_summary_opens_the_page(in_tree, tmp_path: Path) -> None:
    root, named = in_tree
    page = build(named, tmp_path / "report.html")
    anchors = [part.split('"', 1)[0] for part in page.split('<section id="')[1:]]
    assert anchors[0] == "summary" and anchors[-1] == "provenance"
    assert {
        "quality",
        "example-predictions",
        "verdicts",
        "adapters",
        "quantisation",
        "drift",
        "weight-drift",
        "intruder-mitigation",
        "serving",
        "study4",
        "tables",
    } <= set(anchors)
    assert "<script>" not in page and html.escape(EVIL) in page


def test_learning_rate_section_shows_each_curve_the_choice_and_the_lora_to_fft_ratio(in_tree, tmp_path: Path) -> None:
    root, named = in_tree
    rates = section(build(named, tmp_path / "report.html"), "learning-rates")
    lora = read_result(root / named["selection"][0])["metrics"]
    chosen = {row["learning_rate"]: row for row in lora["candidates"]}[lora["chosen"]["learning_rate"]]
    assert lora["chosen"]["learning_rate"] == 1e-3  # the lowest validation loss of the three
    row = f'<td>{LORA2.method}</td><td class="num">1e-3</td><td class="num">{chosen["mean_loss"]:.4f}</td>'
    assert row in rates and "<svg" in rates
    # 1e-3 (losses 1.80-1.82) and 1e-4 (2.10-2.12) are apart; the report says which are not.
    assert f"<li>{LORA2.method}: 1e-3 chosen; its interval overlaps no other candidate" in rates
    # LoRA's chosen 1e-3 over full fine-tuning's chosen 1e-5; one seed, so no interval.
    assert f'<td>{LORA2.method} / {FFT.method}</td><td class="num">100</td>' in rates and "one seed" in rates
    # Full fine-tuning's 1e-5 is its grid's smallest: a smaller rate was not tried, so the ratio of
    # the best rates may be larger; LoRA's 1e-3 lies inside its grid and gets no such sentence.
    assert f"{FFT.method}&#x27;s chosen rate is its grid&#x27;s smallest: a smaller rate was not tried" in rates
    assert f"{LORA2.method}&#x27;s chosen rate" not in rates
    assert "the ratio of the best rates may be larger than this" in rates


def test_summary_has_each_study_with_the_files_numbers(in_tree, tmp_path: Path) -> None:
    root, named = in_tree
    summary = section(build(named, tmp_path / "report.html"), "summary")
    comparisons = read_result(root / named["comparisons"])
    [primary] = comparisons["metrics"]["verdicts"]
    assert "Primary question" in summary and f"{primary['difference']['mean']:+.4f}" in summary
    assert f"[{primary['difference']['low']:+.4f}, {primary['difference']['high']:+.4f}]" in summary
    assert f"{primary['p_adjusted']:.3g} (tested alone)" in summary
    records = {(c["a"], c["b"]): c for c in comparisons["metrics"]["comparisons"]}
    lora_fft = records[("lora-r2-qv-n4", "fft-n4")]  # paired by the specs' grid.fft_partner
    assert "full fine-tuning on the same data" in summary
    assert f"{lora_fft['p_adjusted']:.3g} (Holm over {lora_fft['family_size']})" in summary
    [int8] = comparisons["metrics"]["precisions"]
    assert f"{int8['difference']['mean']:+.4f}" in summary and "1.500 s (0.75x full&#x27;s 2.000 s)" in summary
    assert "quality is one greedy run on this machine&#x27;s kernels" in summary  # not a figure for every machine
    drift = read_result(root / named["drift_summary"][0])
    for verdict in drift["metrics"]["verdicts"]:
        ratio = verdict["ratio"]
        assert f"[{ratio['low']:.3f}, {ratio['high']:.3f}] ({ratio['confidence']:.1%})" in summary
    # What ran: the resolved device and dtype from the files, not the config's `auto`.
    assert "NVIDIA H100 80GB HBM3" in summary and "bfloat16" in summary and "auto</td>" not in summary
    assert "float16 (full), int8 (int8)" in summary  # the precisions' own dtypes
    assert "v1.2-3-gabcdef0 (" in summary and "2 lora, 1 fft" in summary


def test_examples_are_blocks_with_a_folded_long_input(in_tree, tmp_path: Path) -> None:
    root, named = in_tree
    examples_html = section(build(named, tmp_path / "report.html"), "example-predictions")
    shown = CONFIG["report"]["examples"]
    assert examples_html.count('<table class="example">') == shown == examples_html.count('<div class="example-block">')
    assert examples_html.count("<tr><th>base</th>") == shown  # one row per variant: variant | prediction
    assert "<th>variant</th><th>prediction</th>" in examples_html
    assert examples_html.count("<details>") == 1 and "<details><summary><b>input</b> (1,280 characters" in examples_html
    assert '<p class="text">An &lt;b&gt;abstract&lt;/b&gt;.</p>' in examples_html  # a short input in full


def test_an_input_no_stage_reads_or_a_stage_input_the_rule_lacks_raises(in_tree) -> None:
    _, named = in_tree
    with pytest.raises(ReportInputError, match="no report stage reads: extra"):
        check_inputs(rule_inputs=[*named, "extra"], stages=STAGES)
    with pytest.raises(ReportInputError, match="quantisation reads quant_scores"):
        check_inputs(rule_inputs=[name for name in named if name != "quant_scores"], stages=STAGES)
    check_inputs(rule_inputs=named, stages=STAGES)


def test_an_unnamed_input_raises() -> None:
    rule_input = RuleInput({"model": "m"})
    rule_input.append("results/unnamed.json")
    with pytest.raises(ReportInputError, match="1 unnamed input"):
        named_inputs(rule_input)


def test_a_stage_gets_only_the_inputs_it_declares() -> None:
    seen = {}

    def sections(*, files, config):
        seen.update(files)
        return []

    Stage(name="probe", inputs=("comparisons",), sections=sections).build(
        files={"comparisons": (Path("c.json"),), "scores": (Path("r.json"),)}, config={}
    )
    assert seen == {"comparisons": (Path("c.json"),)}


def test_per_variant_files_are_matched_by_the_variant_they_record(in_tree, tmp_path: Path) -> None:
    _, named = in_tree
    shuffled = {
        **named,
        **{key: list(reversed(named[key])) for key in ("scores", "generation", "quant_latency", "drift")},
    }
    for anchor in ("quality", "generation", "quantisation"):  # the same rows, in the order of the inputs
        rows = [
            sorted(re.findall(r"<tr>.*?</tr>", section(build(inputs, tmp_path / "a.html"), anchor)))
            for inputs in (shuffled, named)
        ]
        assert rows[0] == rows[1]
    missing = {**named, "generation": named["generation"][:-1]}
    with pytest.raises(ReportInputError, match=f"only in scores: {FFT.name}"):
        build(missing, tmp_path / "c.html")
    twice = {**named, "quant_latency": [*named["quant_latency"], named["quant_latency"][0]]}
    with pytest.raises(ReportInputError, match="both hold results of full"):
        build(twice, tmp_path / "d.html")
    with pytest.raises(ReportInputError, match="inputs train and loss differ in length"):
        build({**named, "loss": named["loss"][:-1]}, tmp_path / "e.html")
    with pytest.raises(ReportInputError, match="not beside"):
        build({**named, "loss": list(reversed(named["loss"]))}, tmp_path / "f.html")
    with pytest.raises(ReportInputError, match="an input no result records: results/quant/full/predictions.jsonl"):
        build(
            {**named, "predictions": [*named["predictions"], "results/quant/full/predictions.jsonl"]},
            tmp_path / "g.html",
        )


def test_serving_and_study4_sections_show_the_summarys_numbers(in_tree, tmp_path: Path) -> None:
    root, named = in_tree
    page = build(named, tmp_path / "report.html")
    summary = read_result(root / named["serving_summary"][0])
    serving = section(page, "serving")
    rows = summary["metrics"]["overhead"]
    assert [(r["variant"], r["batch_size"]) for r in rows] == [(s.name, b) for s in (LORA2, LORA4) for b in (1, 4)]
    for row in rows:
        assert row["overhead"]["estimate"] == pytest.approx(0.1)  # unmerged written 10% slower
        assert f"{row['overhead']['estimate']:+.1%}" in serving
        assert f"[{row['overhead']['low']:+.1%}, {row['overhead']['high']:+.1%}]" in serving
    assert serving.count("<svg") == 1 and "Left out: dora-r2-qv-n4-s1" in serving
    assert "2.50e-05" in serving  # the merge check
    # ... and where it could not fail, so flagged: LORA4's tolerance is above its adapter's own effect.
    (flag,) = re.findall(r"<p><strong>The merge check could not fail</strong>.*?</p>", serving)
    assert LORA4.name in flag and "0.0005" in flag and LORA2.name not in flag
    study4 = section(page, "study4")
    for row in summary["metrics"]["criteria"]:
        assert f"{row['variant']} vs {row['fft']}" in study4 and f"<td>{row['criterion']}</td>" in study4
    assert len(summary["metrics"]["criteria"]) == 2


def test_tables_section_lists_each_table_with_its_rows(in_tree, tmp_path: Path) -> None:
    root, named = in_tree
    tables = section(build(named, tmp_path / "report.html"), "tables")
    scores = (root / "results/tables/scores.csv").read_text().splitlines()
    assert "<td>results/tables/scores.csv</td>" in tables and f'<td class="num">{len(scores) - 1}</td>' in tables
    assert len(scores) - 1 == (len(TRAINED) + 1 + len(PRECISIONS)) * 4  # each variant and precision x 4 ROUGE
    assert all(f"results/tables/{name}.csv" in tables for name in TABLES)


def test_every_section_that_shows_rouge_lsum_names_its_sentence_splitter(in_tree, tmp_path: Path) -> None:
    """rougeLsum moves with the sentence splitter, and ours is not Hugging Face's (nltk punkt):
    wherever the page shows a ROUGE-Lsum number, the note says so."""
    page = build(in_tree[1], tmp_path / "report.html")
    anchors = [part.split('"', 1)[0] for part in page.split('<section id="')[1:]]
    showing = [anchor for anchor in anchors if "ROUGE-Lsum" in section(page, anchor)]
    assert {"quality", "quantisation"} <= set(showing)
    for anchor in showing:
        assert html.escape(ROUGE_LSUM_NOTE) in section(page, anchor), anchor
    assert "nltk" in ROUGE_LSUM_NOTE and "split_sentences" in ROUGE_LSUM_NOTE
