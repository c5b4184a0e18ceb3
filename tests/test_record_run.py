"""Tests for bench/record_run.py: a synthetic finished run (result files in the run/metrics/meta
layout, a snakemake log of two jobs, a benchmark file) is recorded, and the record's README.md
and summary.json hold the numbers of those files. No torch, no model: well under a second."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lora_study.core.config import overlay
from lora_study.core.grid import expand_grid

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("record_run", REPO / "bench" / "record_run.py")
assert _spec is not None and _spec.loader is not None
record_run = importlib.util.module_from_spec(_spec)
sys.modules["record_run"] = record_run  # dataclasses look their module up here
_spec.loader.exec_module(record_run)

CODE = "abc1234"
MODEL, DATASET = "smollm2-135m-instruct", "aclsum"
# An overlay on the repository's config.yaml, as configs/tiny.yaml is: one LoRA rank, FFT, two precisions.
OVERLAY = """\
data: {train: {sizes: [4]}}
training: {seeds: [1], lora: {variants: [lora], ranks: [2], targets: [qv]}, fft: {enabled: true}}
quantisation: {precisions: [full, int8]}
drift: {mitigation: {enabled: false}}
"""
# The overlay's two trained variants, named as the workflow names them.
SPECS = expand_grid(
    training=overlay(yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load(OVERLAY))["training"],
    train_sizes=[4],
)
LORA, FFT = SPECS


def _meta(created_at: str = "2026-11-20T10:05:00+00:00", device: str | None = "cpu") -> dict[str, Any]:
    return {
        "created_at": created_at,
        "code_version": CODE,
        "device": device,
        "device_name": "x86_64 (1 threads)" if device else None,
        "platform": "Linux-test",
        "versions": {"python": "3.11.7", "torch": "2.13.0+cpu"},
    }


def _write(
    root: Path,
    path: str,
    *,
    run: dict | None = None,
    metrics: dict | None = None,
    meta: dict | None = None,
    listed: str | None = None,
) -> None:
    """One result file; `listed`: the report input results/index.json lists it under, as rule
    build_report writes the index."""
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"run": run or {}, "metrics": metrics or {}, "meta": meta or _meta()}))
    if listed is not None:
        index_path = root / record_run.INDEX
        index = json.loads(index_path.read_text()) if index_path.is_file() else _index()
        index["metrics"]["inputs"].setdefault(listed, []).append(path)
        index_path.write_text(json.dumps(index))


def _index() -> dict[str, Any]:
    """An empty results/index.json, as lora_study.report.inputs.write_index writes one."""
    return {
        "run": {"rule": "build_report", "schema": record_run.INDEX_SCHEMA},
        "metrics": {"inputs": {}},
        "meta": _meta(),
    }


def _ci(mean: float, low: float, high: float) -> dict[str, float]:
    return {"mean": mean, "low": low, "high": high, "confidence": 0.95}


def _rouge(l_mean: float) -> dict[str, Any]:
    return {
        "rouge1": _ci(0.5, 0.45, 0.55),
        "rouge2": _ci(0.2, 0.15, 0.25),
        "rougeL": _ci(l_mean, l_mean - 0.03, l_mean + 0.03),
    }


def _comparison(a: str, b: str, mean: float, p: float, p_adjusted: float, supported: bool, **extra: Any) -> dict:
    return {
        "a": a,
        "b": b,
        "why": "test",
        "family": "secondary",
        "family_size": 3,
        "adjustment": "Holm",
        "difference": _ci(mean, mean - 0.04, mean + 0.04),
        "p_value": p,
        "p_adjusted": p_adjusted,
        "supported": supported,
        **extra,
    }


def _log(config_md5: str) -> str:
    return f"""Assuming unrestricted shared filesystem usage.

SNAKEMAKE
=========
  Date: 2026-11-20 10:00:00
  Host: testhost
  Platform: Linux-test
  Command: snakemake --cores 1 report.html --configfile configs/small.yaml
  Working directory: /somewhere/run
  Config file(s): [PosixPath('configs/small.yaml'), 'config.yaml']
  Config MD5: {config_md5}

Building DAG of jobs...
Provided cores: 1 (use --cores to define parallelism)
Select jobs to execute...
Execute 1 jobs...
[Fri Nov 20 10:00:01 2026]
localrule train_adapter:
    output: results/adapters/{MODEL}/{DATASET}/{LORA}/train.json
    jobid: 3
    benchmark: benchmarks/train_adapter/{LORA}.tsv
    wildcards: variant={LORA}
[Fri Nov 20 10:01:41 2026]
Finished jobid: 3 (Rule: train_adapter)
1 of 2 steps (50%) done
Execute 1 jobs...
[Fri Nov 20 10:01:41 2026]
localrule score_predictions:
    output: results/eval/{MODEL}/{DATASET}/base/scores.json
    jobid: 5
[Fri Nov 20 10:01:44 2026]
Finished jobid: 5 (Rule: score_predictions)
2 of 2 steps (100%) done
Complete log(s): /somewhere/run/.snakemake/log/2026-11-20T100000.000000.snakemake.log
Elapsed time: 0:01:45.500000
"""


def make_run(root: Path, *, config_md5: str | None = None) -> Path:
    """A finished run of config.yaml + configs/small.yaml with every file the record reads."""
    root.mkdir(parents=True)
    shutil.copyfile(REPO / "config.yaml", root / "config.yaml")
    (root / "configs").mkdir()
    (root / "configs" / "small.yaml").write_text(OVERLAY)
    ev, ad, dr, qu = (f"results/{stage}/{MODEL}/{DATASET}" for stage in ("eval", "adapters", "drift", "quant"))

    _write(
        root,
        f"results/data/{DATASET}/subsets.json",
        listed="subsets",
        run={"dataset": DATASET, "name": DATASET, "source": {}, "shuffle": "seeded"},
        metrics={
            "eval": {"split": "test", "seed": 42, "size": 20},
            "train": {"split": "train", "seed": 123, "sizes": {"4": 4}},
            "files": {"eval.jsonl": {"examples": 20, "sha256": "f" * 64}},
        },
        meta=_meta(device=None),
    )
    _write(
        root,
        f"results/adapters/{MODEL}/parameter_counts.json",
        listed="parameter_counts",
        metrics={"rows": [{"targets": "qv", "rank": 2, "trainable_parameters": 115200, "trainable_percent": 0.0855}]},
        meta=_meta(device=None),
    )
    _write(
        root,
        f"results/compare/{MODEL}/{DATASET}/comparisons.json",
        listed="comparisons",
        run={"metric": "rougeL", "examples": 20},
        metrics={
            "variants": {
                variant: {
                    "group": group,
                    "intervals": _rouge(rouge_l),
                    "failure_modes": {"rates": {"continuation": rate}},
                }
                for variant, group, rouge_l, rate in (
                    ("base", "base", 0.2468, 0.25),
                    (LORA, "lora-r2-qv-n4", 0.3579, 0.1),
                    (FFT, "fft-n4", 0.4321, 0.0),
                )
            },
            "groups": {"base": {"seeds": 1}, "lora-r2-qv-n4": {"seeds": 1}, "fft-n4": {"seeds": 1}},
            "comparisons": [
                _comparison("base", "lora-r2-qv-n4", 0.1111, 0.0123, 0.0369, True),
                _comparison(
                    "lora-r2-qv-n4",
                    "fft-n4",
                    0.0742,
                    0.0456,
                    0.0912,
                    False,
                    quality_gap={"max_gap": 0.03, "holds": False},
                ),
            ],
            "verdicts": [{"text": "fft-n4 vs lora-r2-qv-n4: the primary verdict sentence"}],
            "precisions": [_comparison("full", "int8", -0.0135, 0.7777, 1.0, False)],
            "precision_variants": {"full": {"intervals": _rouge(0.2468)}, "int8": {"intervals": _rouge(0.2333)}},
        },
        meta=_meta("2026-11-20T10:09:00+00:00"),
    )
    for variant, tokens_per_second in (("base", 31.5), (LORA, 27.25), (FFT, 22.75)):
        _write(
            root,
            f"{ev}/{variant}/generation.json",
            listed="generation",
            run={"variant": variant},
            metrics={"generate_seconds": 60.0, "tokens_per_second": tokens_per_second},
        )
        _write(
            root,
            f"{ev}/{variant}/scores.json",
            listed="scores",
            run={"variant": variant},
            metrics={"mean": {}, "per_example": []},
        )
    for variant, params, loss, seconds in ((LORA, 7777, 1.2345, 98.7), (FFT, 134515008, 0.9876, 321.0)):
        _write(
            root,
            f"{ad}/{variant}/train.json",
            listed="train",
            run={"variant": variant, "spec": SPECS[variant].to_dict()},
            metrics={
                "trainable_parameters": params,
                "trainable_percent": 0.0058 if variant == LORA else 100.0,
                "lora_scaling": 2.0 if variant == LORA else None,
                "artefact_bytes": 31_000,
                "train_seconds": seconds,
                "tokens_per_second": 140.0,
                "achieved_gflops": 70.0,
                "matmul_peak_gflops": 150.0,
                "padding_share": 0.05,
                "peak_rss_bytes": 5_500_000_000,
                "steps": 1,
                "final_loss": loss,
            },
        )
        modules = [
            {"kind": kind, "effective_rank": rank, "intruders": 0} for kind, rank in (("q_proj", 2), ("v_proj", 2))
        ] + ([{"kind": "o_proj", "effective_rank": 40, "intruders": 1}] if variant == FFT else [])
        _write(
            root,
            f"{dr}/{variant}/weights.json",
            listed="weights",
            run={"variant": variant, "settings": {"epsilon": 0.5, "energy": 0.9}},
            metrics={
                "summary": {
                    "modules": len(modules),
                    "median_effective_rank": 2.0,
                    "max_effective_rank": 2 if variant == LORA else 40,
                    "intruders": 0 if variant == LORA else 1,
                    "modules_with_intruders": 0,
                    "mean_relative_update_norm": 0.0021,
                    "intruders_sweep": [0, 3],
                },
                "modules": modules,
            },
        )
        _write(
            root,
            f"{dr}/{variant}/drift.json",
            listed="drift",
            run={"variant": variant},
            metrics={"baselines": {"shuffled": {"cka_debiased": [-0.0111, 0.0222]}}},
        )
    _write(
        root,
        f"{dr}/summary.json",
        listed="drift_summary",
        run={"examples": 6, "mean_over": "layers 1-30", "confidence": 0.95, "resamples": 200, "criterion": 0.2},
        metrics={
            "groups": {
                group: {
                    "seeds": 1,
                    "mean_drift": {"estimate": value, "low": value - 0.0023, "high": value + 0.0027},
                    "per_layer": [{"layer": 7, "estimate": value * 3}],
                    "forgetting": {
                        "in_domain": {"estimate": -0.0456, "low": -0.05, "high": -0.04},
                        "general": {"estimate": 0.0345, "low": 0.03, "high": 0.04},
                    },
                }
                for group, value in (("lora-r2-qv-n4", 0.0123), ("fft-n4", 0.0456))
            },
            "verdicts": [
                {
                    "variant": "lora-r2-qv-n4",
                    "fft": "fft-n4",
                    "ratio": {"estimate": 0.2697, "low": 0.2, "high": 0.3, "confidence": 0.975},
                    "drift": "holds",
                    "quality": {"outcome": "not shown"},
                    "holds": False,
                    "text": "drift verdict",
                }
            ],
        },
    )
    for precision, p50, p95 in (("full", 2.34, 2.99), ("int8", 1.23, 1.87)):
        _write(
            root,
            f"{qu}/{precision}/latency.json",
            listed="quant_latency",
            run={"precision": precision},
            metrics={
                "load_seconds": 0.5,
                "latency_seconds": {"p50": p50, "p95": p95},
                "ttft_seconds": {"p50": 0.4},
                "tokens_per_second": 16.5,
                "timed_runs": 4,
                "new_tokens": 8,
                "batch_size": 1,
                "weight_bytes": 220_000_000,
                "peak_rss_bytes": 1_200_000_000,
                "peak_cuda_bytes": None,
            },
            meta={**_meta(), "model": {"weights": precision, "compute_dtype": "float32"}},
        )
        _write(root, f"{qu}/{precision}/generation.json", listed="quant_generation", run={"variant": precision})
        _write(root, f"{qu}/{precision}/scores.json", listed="quant_scores", run={"variant": precision})

    (root / "benchmarks" / "train_adapter").mkdir(parents=True)
    (root / "benchmarks" / "train_adapter" / f"{LORA}.tsv").write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        "99.5\t0:01:39\t4321.5\t1\t1\t1\t0\t0\t90\t95\n"
    )
    if config_md5 is None:
        config = record_run.resolve_config(paths=[root / "config.yaml", root / "configs" / "small.yaml"])
        config_md5 = record_run.config_md5(config=config)
    (root / ".snakemake" / "log").mkdir(parents=True)
    (root / ".snakemake" / "log" / "2026-11-20T100000.000000.snakemake.log").write_text(_log(config_md5))
    return root


def test_record_holds_the_numbers_of_the_run_files(tmp_path: Path) -> None:
    root = make_run(tmp_path / "run")
    command = "snakemake --cores 1 report.html --configfile configs/small.yaml"
    record = record_run.build_record(root=root, command=command, quiet=False, note="tests ran beside it")
    assert record.folder_name == f"2026-11-20-{CODE}-small"
    target = record_run.write_record(record=record, out=tmp_path / "docs" / "results")
    readme = (target / "README.md").read_text()
    summary = json.loads((target / "summary.json").read_text())

    # what ran: commit, config (merged in Snakemake's order: the command line's overlay wins), command, machine, quiet
    assert f"`{CODE}`" in readme and summary["code_version"] == CODE
    assert summary["config"]["files"] == ["config.yaml", "small.yaml"] and summary["config"]["md5_matches_log"]
    assert (target / "config" / "small.yaml").read_text() == OVERLAY
    resolved = (target / "config.resolved.yaml").read_text()
    assert "- int8" in resolved and "int8-dynamic" not in resolved
    assert f"`{command}`" in readme
    assert "no: tests ran beside it" in readme and summary["quiet"] is False
    assert summary["machine"]["cores"] and summary["machine"]["run_hosts"] == ["testhost"]

    # wall time: the log's elapsed time and its two jobs, the benchmark file of one
    assert summary["wall_time"]["total_seconds"] == 105.5
    rules = summary["wall_time"]["per_rule"]
    assert rules["train_adapter"]["seconds"] == 100 and rules["score_predictions"]["seconds"] == 3
    assert rules["train_adapter"]["benchmark_seconds"] == 99.5
    assert rules["train_adapter"]["benchmark_max_rss_mb"] == 4321.5
    assert "| train_adapter | 1 | 100 s | 100 s | 0% | 100 s | 4,322 |" in readme
    assert rules["train_adapter"]["shared_seconds"] == 0

    # quality, comparisons, training, quantisation, drift, weight space
    assert "0.432 [0.402, 0.462]" in readme and summary["rouge"][FFT]["rougeL"]["estimate"] == 0.4321
    assert (
        "| lora-r2-qv-n4 − base | secondary (Holm, 3) | +0.1111 [+0.0711, +0.1511] | 0.0123 | 0.0369 | supported |"
    ) in readme
    assert "not shown (0.03)" in readme and "the primary verdict sentence" in readme
    assert "7,777 (0.01%)" in readme and "| 1.234 |" in readme and summary["training"][LORA]["final_loss"] == 1.2345
    assert "1.23 / 1.87" in readme and "-0.013 [-0.053, +0.027]" in readme
    assert summary["quantisation"]["int8"]["latency_p50_s"] == 1.23
    assert "0.0123 [0.0100, 0.0150]" in readme and "0.0369 (7)" in readme and "+0.035 [+0.030, +0.040]" in readme
    assert "0.270 [0.200, 0.300] (97.5%)" in readme and "-0.011 to 0.022" in readme
    fft_weights = summary["weights"][FFT]
    assert fft_weights["lora_target_median_effective_rank"] == 2 and fft_weights["lora_target_intruders"] == 0
    assert fft_weights["intruders"] == 1 and fft_weights["intruders_any_epsilon"] == 3

    # headline and the results index's table across runs
    headline = summary["headline"]
    assert headline["best_rouge_l"]["variant"] == FFT and headline["int8_latency_p50_s"] == 1.23
    assert [(c["a"], c["b"], c["supported"]) for c in headline["fft_vs_lora"]] == [("lora-r2-qv-n4", "fft-n4", False)]
    table = record_run.readme_table(results_dir=tmp_path / "docs" / "results", link_base="docs/results")
    assert f"[{record.folder_name}](docs/results/{record.folder_name}/)" in table
    assert f"{FFT} 0.432 [0.402, 0.462]" in table and "1.23 s per example (0.53x full)" in table


def test_a_missing_or_old_layout_file_is_named(tmp_path: Path) -> None:
    root = make_run(tmp_path / "run")
    latency = root / f"results/quant/{MODEL}/{DATASET}/int8/latency.json"
    latency.unlink()
    with pytest.raises(
        record_run.RecordError,
        match=rf"missing result file results/quant/{MODEL}/{DATASET}/int8/"
        r"latency\.json \(listed under quant_latency in results/index\.json\)",
    ):
        record_run.build_record(root=root, quiet=True)
    # the layout before run/metrics/meta: a top-level key beside them
    latency.write_text(json.dumps({"run": {}, "metrics": {}, "meta": _meta(), "runs": []}))
    with pytest.raises(record_run.RecordError, match=rf"results/quant/{MODEL}/{DATASET}/int8/latency\.json"):
        record_run.build_record(root=root, quiet=True)


def test_cli_and_a_config_that_is_not_the_run_s(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_run(tmp_path / "run", config_md5="0" * 32)
    out = tmp_path / "results"
    with pytest.raises(SystemExit):  # quiet or not must be said
        record_run.main(["--root", str(root), "--out", str(out)])
    assert record_run.main(["--root", str(root), "--out", str(out), "--quiet"]) == 0
    folder = out / f"2026-11-20-{CODE}-small"
    assert "differs from the `Config MD5` snakemake logged" in (folder / "README.md").read_text()
    assert record_run.main(["--root", str(root), "--out", str(out), "--quiet"]) == 1  # exists: --force replaces it
    assert record_run.main(["--root", str(root), "--out", str(out), "--quiet", "--force"]) == 0
    capsys.readouterr()
    assert record_run.main(["--readme-table", str(out)]) == 0
    assert f"({out.as_posix()}/{folder.name}/)" in capsys.readouterr().out
    # The results index (docs/results/README.md) lives beside the run folders: its links are
    # relative to it.
    index = out / "README.md"
    index.write_text(f"# Results\n\n{record_run.README_START}\nold table\n{record_run.README_END}\n\nMore text.\n")
    assert record_run.main(["--readme-table", str(out), "--update-readme", str(index)]) == 0
    text = index.read_text()
    assert "old table" not in text and f"[{folder.name}]({folder.name}/)" in text
    assert text.startswith("# Results\n\n") and text.endswith(f"{record_run.README_END}\n\nMore text.\n")
    # A page elsewhere links through the path from its folder; --link-base overrides it.
    page = tmp_path / "docs" / "RESULTS.md"
    page.parent.mkdir()
    page.write_text(f"{record_run.README_START}\n{record_run.README_END}\n")
    assert record_run.main(["--readme-table", str(out), "--update-readme", str(page)]) == 0
    assert f"(../results/{folder.name}/)" in page.read_text()
    args = ["--readme-table", str(out), "--update-readme", str(page), "--link-base", "https://example.org/r"]
    assert record_run.main(args) == 0
    assert f"(https://example.org/r/{folder.name}/)" in page.read_text()
    page.write_text("no markers\n")
    assert record_run.main(["--readme-table", str(out), "--update-readme", str(page)]) == 1


def test_a_benchmark_record_holds_its_output_and_what_produced_it(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("record_bench", REPO / "bench" / "record_bench.py")
    record_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record_bench)
    command = [sys.executable, "-c", "print('padding 5.9%')"]
    assert record_bench.main(["--out", str(tmp_path), "--not-quiet", "--note", "tests ran", "--", *command]) == 0
    (folder,) = tmp_path.iterdir()
    readme = (folder / "README.md").read_text()
    version = record_bench.code_version()
    assert folder.name.endswith(f"-{version}-bench-{Path(sys.executable).name}") and f"`{version}`" in readme
    assert "padding 5.9%" in readme and "| quiet machine | no: tests ran |" in readme and "print(" in readme
    # A failing benchmark records nothing.
    assert (
        record_bench.main(
            ["--out", str(tmp_path / "failed"), "--quiet", "--", sys.executable, "-c", "raise SystemExit(3)"]
        )
        == 1
    )
    assert not (tmp_path / "failed").exists()


def test_the_resolved_config_is_the_one_snakemake_logs(tmp_path: Path) -> None:
    """rules/common.smk drops the settings a config ignores (model.revision of a model that is
    not a hub id, sampling under greedy decoding) before Snakemake logs the config's MD5, so the
    record resolves a config the same way: a run whose config sets an ignored key is still the
    config snakemake logged, and its MD5 is that of the config without the key."""
    import yaml

    base = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    with_ignored = {**base, "model": {**base["model"], "revision": "some-branch"}}
    plain, edited = tmp_path / "plain.yaml", tmp_path / "edited.yaml"
    plain.write_text(yaml.safe_dump(base), encoding="utf-8")
    edited.write_text(yaml.safe_dump(with_ignored), encoding="utf-8")
    resolved = record_run.resolve_config(paths=[edited])
    assert "revision" not in resolved["model"] and "temperature" not in resolved["generation"]
    assert record_run.config_md5(config=resolved) == record_run.config_md5(
        config=record_run.resolve_config(paths=[plain])
    )


def test_the_record_reads_the_files_the_index_lists_and_matches_them_by_what_they_record(tmp_path: Path) -> None:
    """The layout comes from results/index.json (rule build_report's list of its inputs) and the
    files themselves: a run without the index is refused by name, a swept method contributes the
    variants the index lists with their specs, and a file listed in another file's place is
    matched by the variant it records, not by its position."""
    root = make_run(tmp_path / "run")
    index_path = root / record_run.INDEX
    index = json.loads(index_path.read_text())
    index_path.unlink()
    with pytest.raises(record_run.RecordError, match=r"results/index\.json not found .*rule build_report"):
        record_run.build_record(root=root, quiet=True)

    rows = [
        {"learning_rate": rate, "mean_loss": loss, "interval": _ci(loss, loss - 0.1, loss + 0.1)}
        for rate, loss in ((1e-4, 2.5), (2e-4, 2.0))
    ]
    index["metrics"]["inputs"]["selection"] = [f"results/selection/{MODEL}/{DATASET}/lora-r2-qv-n4/selection.json"]
    _write(
        root,
        index["metrics"]["inputs"]["selection"][0],
        run={"method": "lora-r2-qv-n4", "specs": [SPECS[LORA].to_dict()]},
        metrics={
            "criterion": "lowest validation loss",
            "candidates": rows,
            "chosen": {"learning_rate": 2e-4, "variants": [LORA]},
        },
    )
    index["metrics"]["inputs"]["train"].reverse()  # listed in another order: matched by run.variant
    index_path.write_text(json.dumps(index))
    results = record_run.read_results(root=root, index=record_run.read_index(root=root))
    layout = record_run.layout_of(config={"model": {"name": MODEL}, "data": {"name": DATASET}}, results=results)
    assert layout.trained == {FFT: SPECS[FFT], LORA: SPECS[LORA]} and layout.swept == ["lora-r2-qv-n4"]
    assert layout.precisions == ["full", "int8"] and results[f"train/{LORA}"].metrics["final_loss"] == 1.2345
    summary = record_run.build_record(root=root, quiet=True).summary
    assert summary["learning_rates"]["methods"]["lora-r2-qv-n4"]["chosen"] == 2e-4

    # two files recording one variant cannot both stand
    index["metrics"]["inputs"]["scores"].append(index["metrics"]["inputs"]["scores"][0])
    index_path.write_text(json.dumps(index))
    with pytest.raises(record_run.RecordError, match="both hold rouge/base"):
        record_run.build_record(root=root, quiet=True)


def test_time_beside_other_jobs_is_the_union_of_the_overlaps() -> None:
    """A job that ran 0-100 s beside jobs at 10-30, 20-40 and 90-120 s shared 30 + 10 s of its time."""
    start = record_run.dt.datetime(2026, 11, 20, 10, 0, 0)

    def job(begin: int, end: int | None) -> Any:
        seconds = record_run.dt.timedelta(seconds=1)
        return record_run.Job(
            rule="r",
            jobid=begin,
            key=str(begin),
            start=start + begin * seconds,
            end=None if end is None else start + end * seconds,
        )

    main = job(0, 100)
    others = [main, job(10, 30), job(20, 40), job(90, 120), job(150, 160), job(50, None)]
    assert record_run.shared_seconds(job=main, others=others) == 40.0
    assert record_run.shared_seconds(job=main, others=[main]) == 0.0
    assert record_run.shared_seconds(job=job(0, None), others=others) == 0.0
