"""The real workflow end to end on the tiny config: outputs, incrementality, the report in a browser."""

from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import planned_jobs, run_snakemake, tiny_config
from lora_study.core.grid import expand_grid
from lora_study.core.io import read_json, read_jsonl
from lora_study.core.results import check_result, read_result
from lora_study.report.drift import interval_text

pytestmark = pytest.mark.slow
EVAL_DIR = "results/eval/smollm2-135m-instruct/aclsum/base"
# The tiny config's trained variants: LoRA at ranks 2 and 4 on q,v, and full fine-tuning.
TRAINED_SPECS = expand_grid(training=tiny_config()["training"], train_sizes=tiny_config()["data"]["train"]["sizes"])
TRAINED = list(TRAINED_SPECS)
ADAPTER_DIR = "results/adapters/smollm2-135m-instruct/aclsum"
# Weight-space drift: one job per trained variant (and intruder mitigation when the tiny config enables it).
WEIGHT_RULES = ["measure_weight_drift"]
# Serving: log folders (serve_base and serve_variant share logs/serve/).
SERVING_RULE_LOGS = ["merge_adapter", "serve", "serve_multi_adapter", "summarise_serving"]


def dry_run_with(workflow_dir: Path, tmp_path: Path, config: dict) -> str:
    """The dry run's output for `config` in place of the tiny config."""
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    return run_snakemake(workflow_dir, "-n", "report.html", configfile=changed)


def test_report_has_the_rouge_table_from_the_results(workflow_dir: Path) -> None:
    page = (workflow_dir / "report.html").read_text()
    rouge = read_result(workflow_dir / EVAL_DIR / "scores.json")
    assert "<th>ROUGE-L</th>" in page
    for kind in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert f"{rouge['metrics']['mean'][kind]['fmeasure']:.4f}" in page
    assert rouge["run"]["examples"] == 4 and len(rouge["metrics"]["per_example"]) == 4 and rouge["run"]["spec"] is None


def test_predictions_hold_only_generated_text(workflow_dir: Path) -> None:
    config = tiny_config()
    rows = read_jsonl(workflow_dir / EVAL_DIR / "predictions.jsonl")
    eval_rows = {row["id"]: row for row in read_jsonl(workflow_dir / "results/data/aclsum/eval.jsonl")}
    assert [row["id"] for row in rows] == list(eval_rows)
    for row in rows:
        assert row["prediction"], "an empty prediction from a real model on a real abstract"
        assert config["prompt"]["instruction"] not in row["prediction"]
        assert "<|im_start|>" not in row["prediction"] and "assistant\n" not in row["prediction"]
        assert eval_rows[row["id"]]["input"][:80] not in row["prediction"]
        assert row["prompt_tokens"] <= config["prompt"]["max_input_tokens"]
        assert 0 < row["generated_tokens"] <= config["generation"]["max_new_tokens"]
        assert row["reference"] == eval_rows[row["id"]]["reference"]


def test_train_and_eval_subsets_are_disjoint(workflow_dir: Path) -> None:
    eval_rows = read_jsonl(workflow_dir / "results/data/aclsum/eval.jsonl")
    for size in (4,):
        train = read_jsonl(workflow_dir / f"results/data/aclsum/train-n{size}.jsonl")
        assert len(train) == size
        assert not {r["id"] for r in train} & {r["id"] for r in eval_rows}
        assert not {r["input"] for r in train} & {r["input"] for r in eval_rows}


def test_rerun_has_nothing_to_do(workflow_dir: Path) -> None:
    assert planned_jobs(run_snakemake(workflow_dir, "-n", "report.html")) == {}


def test_changed_generation_setting_reruns_only_evaluation_and_report(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["generation"]["max_new_tokens"] += 1
    jobs = planned_jobs(dry_run_with(workflow_dir, tmp_path, config))
    precisions = len(config["quantisation"]["precisions"])  # the quality runs, not the timed ones
    trained = len(TRAINED)  # evaluated again, not retrained
    assert jobs == {
        "generate_predictions": 1,
        "generate_quant_predictions": precisions - 1,  # full takes the base evaluation's predictions
        "reuse_base_predictions": 1,
        "generate_variant_predictions": trained,
        "score_predictions": 1 + precisions + trained,
        "compare_variants": 1,
        "summarise_drift": 1,  # its verdicts read the quality comparisons
        "summarise_serving": 1,  # Study 4 criteria read the drift summary
        "build_tables": 1,
        "build_report": 1,
    }


def test_changed_report_setting_reruns_only_the_report(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["report"]["examples"] = 1
    # The tables too: every row carries the config's hash, so any change of the config rewrites them.
    assert planned_jobs(dry_run_with(workflow_dir, tmp_path, config)) == {"build_tables": 1, "build_report": 1}


def test_every_rule_logged(workflow_dir: Path) -> None:
    logs = {path.parts[len((workflow_dir / "logs").parts)] for path in (workflow_dir / "logs").rglob("*.log")}
    assert logs == {
        "prepare_model",
        "make_eval_subset",
        "make_train_subset",
        "record_subsets",
        "generate_predictions",
        "score_predictions",
        "build_report.log",
        "build_tables.log",
        "measure_latency",
        "generate_quant_predictions",
        "reuse_base_predictions",
        "train_adapter",
        "train_full",
        "count_adapter_parameters",
        "compare_variants",
        "measure_drift",
        "make_heldout_text",
        "make_drift_prompts",
        "make_general_text",
        "measure_base_features",
        "summarise_drift",
        *WEIGHT_RULES,
        *SERVING_RULE_LOGS,
    }


def test_every_result_file_is_in_the_result_format(workflow_dir: Path) -> None:
    results = workflow_dir / "results"
    # adapter/ and model/ hold Hugging Face and PEFT files in their own formats.
    paths = [p for p in results.rglob("*.json") if not {"adapter", "model"} & set(p.relative_to(results).parts[:-1])]
    for path in paths:
        check_result(read_json(path), source=str(path))
    # Every stage's kind of result was among them: the walk checked something.
    assert {p.name for p in paths} >= {
        "subsets.json",
        "parameter_counts.json",
        "train.json",
        "generation.json",
        "scores.json",
        "latency.json",
        "comparisons.json",
        "forgetting.json",
        "drift.json",
        "weights.json",
        "summary.json",
        "merge.json",
        "base.json",
        "merged.json",
        "unmerged.json",
        "multi_adapter.json",
    }


def test_the_report_s_index_lists_its_files_and_the_run_record_reads_it(workflow_dir: Path) -> None:
    """results/index.json (written by build_report) is the run's one list of its result files:
    every path it lists exists, and bench/record_run.py records the run from it alone."""
    import importlib.util
    import sys

    index = read_result(workflow_dir / "results" / "index.json")
    inputs = index["metrics"]["inputs"]
    assert {"scores", "train", "comparisons", "quant_latency", "serving"} <= set(inputs)
    assert all((workflow_dir / path).exists() for paths in inputs.values() for path in paths)
    spec = importlib.util.spec_from_file_location("record_run", Path(__file__).parents[1] / "bench" / "record_run.py")
    record_run = importlib.util.module_from_spec(spec)
    sys.modules["record_run"] = record_run  # dataclasses look their module up here
    spec.loader.exec_module(record_run)
    summary = record_run.build_record(root=workflow_dir, quiet=False, note="the test suite").summary
    assert set(summary["training"]) == set(TRAINED) and set(summary["rouge"]) == {"base", *TRAINED}
    read = [*record_run.PER_FILE_INPUTS, *record_run.REQUIRED_INPUTS, *record_run.OPTIONAL_INPUTS]
    assert summary["source_files"] == sorted(path for name in read for path in inputs.get(name, []))


QUANT_DIR = "results/quant/smollm2-135m-instruct/aclsum"


def test_every_precision_has_latency_and_rouge(workflow_dir: Path) -> None:
    config = tiny_config()
    latency_settings = config["quantisation"]["latency"]
    eval_ids = [row["id"] for row in read_jsonl(workflow_dir / "results/data/aclsum/eval.jsonl")]
    for precision in config["quantisation"]["precisions"]:
        folder = workflow_dir / QUANT_DIR / precision
        latency = read_result(folder / "latency.json")
        runs = latency_settings["repeats"] * latency_settings["examples"]  # batch size 1
        metrics = latency["metrics"]
        assert metrics["timed_runs"] == len(metrics["runs"]) == runs
        # Each warm-up pass covers every timed batch (batch size 1: one run per example).
        assert (
            metrics["warmup_runs"]
            == len(metrics["warmup"])
            == latency_settings["warmup"] * latency_settings["examples"]
        )
        assert all(run["new_tokens"] == latency_settings["new_tokens"] for run in metrics["runs"])
        assert latency["meta"]["model"]["precision"] == precision
        rouge = read_result(folder / "scores.json")
        assert (
            rouge["run"]["variant"] == precision and [row["id"] for row in rouge["metrics"]["per_example"]] == eval_ids
        )
        generation = read_result(folder / "generation.json")
        assert generation["run"]["variant"] == precision
        # What the figures depend on beyond code and config: the machine and kernels (full's
        # quality run is the base evaluation's, reused; its timing has one).
        assert latency["meta"]["model"]["kernel"]["cpu"]["isa"] is not None
        assert precision == "full" or "kernel" in generation["meta"]["model"]
    assert read_result(workflow_dir / QUANT_DIR / "full" / "latency.json")["meta"]["dtype"] == "float32"
    assert read_result(workflow_dir / QUANT_DIR / "int8" / "latency.json")["meta"]["model"]["layer_type"].endswith(
        "Linear8bitLt"
    )
    assert (
        read_result(workflow_dir / QUANT_DIR / "int4" / "latency.json")["meta"]["model"]["compute_dtype"] == "float32"
    )


def test_full_precision_quality_is_the_base_evaluation(workflow_dir: Path) -> None:
    """The full precision's quality run is the base evaluation's (reuse_base_predictions): same
    predictions, same ROUGE, and its record says where they came from."""
    base = read_jsonl(workflow_dir / EVAL_DIR / "predictions.jsonl")
    full = read_jsonl(workflow_dir / QUANT_DIR / "full" / "predictions.jsonl")
    assert full == base
    base_rouge = read_result(workflow_dir / EVAL_DIR / "scores.json")
    full_rouge = read_result(workflow_dir / QUANT_DIR / "full" / "scores.json")
    assert full_rouge["metrics"] == base_rouge["metrics"]
    generation = read_result(workflow_dir / QUANT_DIR / "full" / "generation.json")
    assert generation["run"]["reused_from"]["predictions"].endswith(f"{EVAL_DIR}/predictions.jsonl")
    assert not (
        workflow_dir / "logs" / "generate_quant_predictions" / "smollm2-135m-instruct" / "aclsum" / "full.log"
    ).exists()


def test_report_has_the_quantisation_table_and_plot(workflow_dir: Path) -> None:
    page = (workflow_dir / "report.html").read_text()
    section = page.split('<section id="quantisation">', 1)[1].split("</section>", 1)[0]
    assert "<th>latency p50 s</th>" in section and "<th>ROUGE-L</th>" in section
    assert "<svg" in section and "Latency vs quality" in section
    for precision in tiny_config()["quantisation"]["precisions"]:
        rouge = read_result(workflow_dir / QUANT_DIR / precision / "scores.json")
        latency = read_result(workflow_dir / QUANT_DIR / precision / "latency.json")
        assert f"<td>{precision}</td>" in section
        assert f"{rouge['metrics']['mean']['rougeL']['fmeasure']:.4f}" in section
        assert f"{latency['metrics']['latency_seconds']['p50']:.3f}" in section
        if precision != "full":
            assert f"<li>{precision}: " in section  # its quality run's machine and kernels
    assert "The quality columns hold on this machine's kernels." in section


def test_dropping_a_precision_reruns_only_the_comparisons_and_report(workflow_dir: Path, tmp_path: Path) -> None:
    # The precisions are tested against full in comparisons.json, which the drift summary reads.
    config = tiny_config()
    config["quantisation"]["precisions"].remove("int4")
    assert planned_jobs(dry_run_with(workflow_dir, tmp_path, config)) == {
        "compare_variants": 1,
        "summarise_drift": 1,
        "summarise_serving": 1,  # Study 4 criteria read the drift summary
        "build_tables": 1,
        "build_report": 1,
    }


def test_adding_a_precision_runs_only_its_jobs(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["quantisation"]["precisions"].append("int8-dynamic")
    assert planned_jobs(dry_run_with(workflow_dir, tmp_path, config)) == {
        "measure_latency": 1,
        "generate_quant_predictions": 1,
        "score_predictions": 1,
        "compare_variants": 1,
        "summarise_drift": 1,
        "summarise_serving": 1,  # Study 4 criteria read the drift summary
        "build_tables": 1,
        "build_report": 1,
    }


def test_changed_latency_setting_reruns_only_the_timing(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["quantisation"]["latency"]["new_tokens"] += 1
    precisions = len(config["quantisation"]["precisions"])
    assert planned_jobs(dry_run_with(workflow_dir, tmp_path, config)) == {
        "measure_latency": precisions,
        "build_tables": 1,
        "build_report": 1,
    }


def test_changed_int4_setting_reruns_only_int4(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["quantisation"]["int4"]["double_quant"] = True
    output = dry_run_with(workflow_dir, tmp_path, config)
    # Then the comparisons (int4 is tested against full) and what reads them.
    assert planned_jobs(output) == {
        "measure_latency": 1,
        "generate_quant_predictions": 1,
        "score_predictions": 1,
        "compare_variants": 1,
        "summarise_drift": 1,
        "summarise_serving": 1,  # Study 4 criteria read the drift summary
        "build_tables": 1,
        "build_report": 1,
    }
    assert f"output: {QUANT_DIR}/int4/latency.json" in output and f"output: {QUANT_DIR}/int8/latency.json" not in output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_report_renders_in_a_real_browser(workflow_dir: Path, tmp_path: Path) -> None:
    """Headless Chromium loads the page offline and its DOM holds the tables and examples."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        (workflow_dir / "report.html").as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "<title>lora-study report</title>" in dom
    for section in (
        "configuration",
        "model",
        "data",
        "quality",
        "generation",
        "example-predictions",
        "quantisation",
        "serving",
        "study4",
        "provenance",
    ):
        assert f'id="{section}"' in dom
    rows = read_jsonl(workflow_dir / EVAL_DIR / "predictions.jsonl")
    shown = tiny_config()["report"]["examples"]
    assert dom.count('<table class="example">') == shown
    # The shown examples are a seeded choice: exactly that many eval ids appear.
    assert sum(f"<h3>{row['id']}</h3>" in dom for row in rows) == shown


def test_every_trained_variant_has_artefacts_and_rouge(workflow_dir: Path) -> None:
    from peft import PeftConfig

    for variant in TRAINED:
        folder = workflow_dir / ADAPTER_DIR / variant
        train = read_result(folder / "train.json")
        assert train["run"]["variant"] == train["run"]["spec"]["name"] == variant and train["metrics"]["steps"] == 1
        assert (folder / "loss.csv").read_text().startswith("step,epoch,loss,")
        if variant.startswith("lora"):
            config = PeftConfig.from_pretrained(folder / "adapter")
            assert config.r == int(variant.split("-")[1][1:]) and config.lora_alpha == 2 * config.r
            assert set(config.target_modules) == {"q_proj", "v_proj"}
        else:
            assert (folder / "model" / "model.safetensors").is_file()
        rouge = read_result(workflow_dir / "results/eval/smollm2-135m-instruct/aclsum" / variant / "scores.json")
        assert (
            rouge["run"]["variant"] == rouge["run"]["spec"]["name"] == variant
            and len(rouge["metrics"]["per_example"]) == 4
        )


def test_report_has_adapter_table_parameter_table_and_loss_curves(workflow_dir: Path) -> None:
    page = (workflow_dir / "report.html").read_text()
    adapters = page.split('<section id="adapters">', 1)[1].split("</section>", 1)[0]
    for variant in TRAINED:
        assert f"<td>{variant}</td>" in adapters
    assert "<th>trainable params</th>" in adapters and "<th>GFLOP/s</th>" in adapters
    curves = page.split('<section id="loss-curves">', 1)[1].split("</section>", 1)[0]
    assert "<svg" in curves
    counts = page.split('<section id="parameter-counts">', 1)[1].split("</section>", 1)[0]
    assert '<td>qv</td><td class="num">8</td><td class="num">460,800</td>' in counts  # r=8 on q,v of SmolLM2-135M


def test_adding_a_rank_trains_only_that_rank(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["training"]["lora"]["ranks"].append(8)
    jobs = planned_jobs(dry_run_with(workflow_dir, tmp_path, config))
    assert jobs == {
        "train_adapter": 1,
        "generate_variant_predictions": 1,
        "score_predictions": 1,
        "compare_variants": 1,
        "measure_drift": 1,
        "summarise_drift": 1,
        "summarise_serving": 1,  # Study 4 criteria read the drift summary
        "build_tables": 1,
        "build_report": 1,
        **{rule: 1 for rule in WEIGHT_RULES},
        **{"merge_adapter": 1, "serve_variant": 1, "serve_multi_adapter": 1},  # the new adapter served
    }


def test_changed_training_setting_trains_new_variants_beside_the_old_ones(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["training"]["max_grad_norm"] = 0.5
    output = dry_run_with(workflow_dir, tmp_path, config)
    assert planned_jobs(output) == {
        "train_adapter": 2,
        "train_full": 1,
        "generate_variant_predictions": 3,
        "score_predictions": 3,
        "compare_variants": 1,
        "measure_drift": 3,
        "summarise_drift": 1,
        "summarise_serving": 1,  # Study 4 criteria read the drift summary
        "build_tables": 1,
        "build_report": 1,
        **{rule: 3 for rule in WEIGHT_RULES},
        **{"merge_adapter": 2, "serve_variant": 2, "serve_multi_adapter": 1},
    }
    new = expand_grid(training=config["training"], train_sizes=config["data"]["train"]["sizes"])
    assert not set(new) & set(TRAINED)  # new names: new folders ...
    for name in new:
        assert f"{ADAPTER_DIR}/{name}/train.json" in output
    for name in TRAINED:  # ... and none of the old ones is written again
        assert f"{ADAPTER_DIR}/{name}/" not in output
        assert (workflow_dir / ADAPTER_DIR / name / "train.json").is_file()


def test_changed_learning_rate_trains_only_the_new_lora_variants(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["training"]["lora"]["learning_rate"] = 5.0e-4
    output = dry_run_with(workflow_dir, tmp_path, config)
    jobs = planned_jobs(output)
    assert jobs["train_adapter"] == 2 and "train_full" not in jobs  # full fine-tuning keeps its rate
    assert jobs["generate_variant_predictions"] == 2 and jobs["measure_drift"] == 2
    old_lora = [name for name, spec in TRAINED_SPECS.items() if spec.is_lora]
    for name in old_lora:  # no longer in the config: nothing reads or writes them, and they stay
        assert f"{ADAPTER_DIR}/{name}/" not in output and (workflow_dir / ADAPTER_DIR / name / "train.json").is_file()


DRIFT_DIR = "results/drift/smollm2-135m-instruct/aclsum"


def test_every_trained_variant_has_drift_files(workflow_dir: Path) -> None:
    import numpy as np

    drift_config = tiny_config()["drift"]
    heldout = read_jsonl(workflow_dir / "results/data/aclsum/heldout.jsonl")
    prompts = read_jsonl(workflow_dir / "results/data/aclsum/drift.jsonl")
    general = read_jsonl(workflow_dir / "results/data/aclsum/general.jsonl")
    used = {row["id"] for row in read_jsonl(workflow_dir / "results/data/aclsum/eval.jsonl")}
    trained = {row["input"] for row in read_jsonl(workflow_dir / "results/data/aclsum/train-n4.jsonl")}
    used |= {row["id"] for row in read_jsonl(workflow_dir / "results/data/aclsum/train-n4.jsonl")}
    assert len(heldout) == drift_config["forgetting"]["examples"] and not {row["id"] for row in heldout} & used
    assert len(prompts) == drift_config["examples"] and not {row["text"] for row in prompts} & trained
    assert len(general) == drift_config["forgetting"]["general"]["examples"]
    for variant in TRAINED:
        drift = read_result(workflow_dir / DRIFT_DIR / variant / "drift.json")
        metrics = drift["metrics"]
        layers = 31  # SmolLM2-135M: embeddings + 30 blocks
        assert (
            drift["run"]["variant"] == variant and metrics["layers"] == layers and metrics["examples"] == len(prompts)
        )
        assert metrics["tokens"] == "input" and metrics["mean_over"] == "layers 1-30"
        assert len(metrics["per_layer"]) == layers and len(metrics["drift_per_layer"]) == layers
        assert all(abs(value - 1) < 1e-6 for value in metrics["baselines"]["self"]["cka_debiased"])
        # The embeddings are not trained by LoRA on q,v: layer 0 is identical to the base.
        if variant.startswith("lora"):
            assert abs(metrics["per_layer"][0]["cka_debiased"] - 1) < 1e-6
        assert all("token_cka_debiased" in row for row in metrics["per_layer"])  # token_level: true in tiny
        matrix = np.load(workflow_dir / DRIFT_DIR / variant / "cka_matrix.npz")
        assert matrix["debiased"].shape == matrix["biased"].shape == (layers, layers)
        assert np.allclose(np.diag(matrix["debiased"]), [row["cka_debiased"] for row in metrics["per_layer"]])
        # The tuned model really is the trained one: its last layer moved.
        assert metrics["mean_drift"] > 0 and metrics["drift_per_layer"][-1] > 0
        for name, texts in (("in_domain", heldout), ("general", general)):
            assert metrics["forgetting"][name]["base"]["texts"] == len(texts)
    summary = read_result(workflow_dir / DRIFT_DIR / "summary.json")
    assert set(summary["metrics"]["groups"]) == {spec.group for spec in TRAINED_SPECS.values()}
    for group in summary["metrics"]["groups"].values():
        interval = group["mean_drift"]
        assert interval["low"] <= interval["estimate"] <= interval["high"]
    assert [v["variant"] for v in summary["metrics"]["verdicts"]] == [TRAINED_SPECS[v].group for v in TRAINED[:2]]


def test_report_has_drift_plot_heatmaps_forgetting_and_verdict(workflow_dir: Path) -> None:
    page = (workflow_dir / "report.html").read_text()
    summary = read_result(workflow_dir / DRIFT_DIR / "summary.json")
    drift = page.split('<section id="drift">', 1)[1].split("</section>", 1)[0]
    assert "<svg" in drift and "less drift</h3>" in drift
    # The serving stage ran: the criterion's alternative is judged there, not "not measured".
    assert "not measured by this workflow" not in page and "is judged by the serving stage" in drift
    for group, info in summary["metrics"]["groups"].items():
        assert f"<td>{group}</td>" in drift and interval_text(info["mean_drift"]) in drift
    for verdict in summary["metrics"]["verdicts"]:
        assert html.escape(verdict["text"]) in drift
        assert verdict["drift"] in ("holds", "does not hold", "not supported")
    heatmaps = page.split('<section id="cka-matrices">', 1)[1].split("</section>", 1)[0]
    assert "<svg" in heatmaps
    forgetting = page.split('<section id="forgetting">', 1)[1].split("</section>", 1)[0]
    assert "general text" in forgetting and all(f"<td>{g}</td>" in forgetting for g in summary["metrics"]["groups"])
    learning = page.split('<section id="learning-forgetting">', 1)[1].split("</section>", 1)[0]
    assert "<svg" in learning


def test_changed_drift_criterion_reruns_only_the_report(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["drift"]["criterion"] = 0.3
    assert planned_jobs(dry_run_with(workflow_dir, tmp_path, config)) == {
        "summarise_drift": 1,
        "summarise_serving": 1,
        "build_tables": 1,
        "build_report": 1,
    }


def test_changed_drift_setting_reruns_only_drift_and_report(workflow_dir: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["drift"]["pooling"] = "last"
    assert planned_jobs(dry_run_with(workflow_dir, tmp_path, config)) == {
        "measure_base_features": 1,
        "measure_drift": len(TRAINED),
        "summarise_drift": 1,
        "summarise_serving": 1,  # Study 4 criteria read the drift summary
        "build_tables": 1,
        "build_report": 1,
    }


SERVING_DIR = "results/serving/smollm2-135m-instruct/aclsum"
MERGED_DIR = "results/merged/smollm2-135m-instruct/aclsum"


def test_serving_stage_builds_every_file_and_the_report_shows_it(workflow_dir: Path) -> None:
    lora = [v for v in TRAINED if v.startswith("lora")]
    sizes = tiny_config()["serving"]["batch_sizes"]
    for variant in lora:
        merge = read_result(workflow_dir / MERGED_DIR / variant / "merge.json")
        assert merge["metrics"]["max_abs_logit_difference"] <= merge["metrics"]["tolerance"]
        assert (workflow_dir / MERGED_DIR / variant / "model" / "model.safetensors").is_file()
        tokens = {}
        for mode in ("merged", "unmerged"):
            served = read_result(workflow_dir / SERVING_DIR / variant / f"{mode}.json")
            assert served["run"]["variant"] == variant and served["run"]["mode"] == mode
            assert [b["batch_size"] for b in served["metrics"]["batches"]] == sizes
            tokens[mode] = [run["request_token_ids"] for run in served["metrics"]["batches"][-1]["runs"]]
        # The real model: the merged export serves the adapter's own tokens.
        assert tokens["merged"] == tokens["unmerged"]
    assert read_result(workflow_dir / SERVING_DIR / "base" / "base.json")["run"]["mode"] == "base"
    multi = read_result(workflow_dir / SERVING_DIR / "multi_adapter.json")
    assert multi["run"]["adapters"] == lora and list(multi["metrics"]["modes"]) == ["mixed", "grouped", "merged"]

    summary = read_result(workflow_dir / SERVING_DIR / "summary.json")
    rows = summary["metrics"]["overhead"]
    assert [(r["variant"], r["batch_size"]) for r in rows] == [(v, b) for v in lora for b in sizes]
    page = (workflow_dir / "report.html").read_text()
    serving = page.split('<section id="serving">', 1)[1].split("</section>", 1)[0]
    assert "<svg" in serving
    for row in rows:
        assert row["outcome"] in ("holds", "does not hold", "not supported")
        assert html.escape(f"{row['overhead']['estimate']:+.1%}") in serving
    study4 = page.split('<section id="study4">', 1)[1].split("</section>", 1)[0]
    for row in summary["metrics"]["criteria"]:
        assert f"{row['variant']} vs {row['fft']}" in study4
