"""The real workflow end to end on a task other than summarisation: the tiny study turned
into classification of House of Commons speeches (configs/tiny-classification.yaml, offline),
every stage included: training targets from the task, label scoring, accuracy and F1 with
McNemar, drift, serving, and the report's classification sections."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake, tiny_config
from lora_study.core.config import overlay
from lora_study.core.io import read_jsonl
from lora_study.core.results import read_result

pytestmark = pytest.mark.slow

MODEL, DATASET = "smollm2-135m-instruct", "commons"
EVAL = Path("results/eval") / MODEL / DATASET
LABELS = {"Con", "Lab"}


@pytest.fixture(scope="module")
def classification_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study as a classification study, run once."""
    workdir = tmp_path_factory.mktemp("classification")
    config = overlay(tiny_config(), yaml.safe_load((REPO / "configs" / "tiny-classification.yaml").read_text()))
    configfile = workdir / "classification.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(workdir, "--cores", "2", "report.html", configfile=configfile, timeout=2400)
    return workdir


def test_every_variant_is_scored_as_classification(classification_dir: Path) -> None:
    variants = sorted(p.name for p in (classification_dir / EVAL).iterdir())
    assert (
        "base" in variants
        and any(v.startswith("fft") for v in variants)
        and any(v.startswith("lora") for v in variants)
    )
    eval_rows = read_jsonl(classification_dir / "results/data" / DATASET / "eval.jsonl")
    for variant in variants:
        rows = read_jsonl(classification_dir / EVAL / variant / "predictions.jsonl")
        scores = read_result(classification_dir / EVAL / variant / "scores.json")
        assert scores["run"]["task"] == "classification"
        assert [r["id"] for r in rows] == [e["id"] for e in eval_rows]
        for row in rows:
            # Every label scored, the prediction the best-scoring one, the gold label from the data.
            assert set(row["label_scores"]) == LABELS
            assert row["label"] == max(row["label_scores"], key=row["label_scores"].get)
        gold = [e["reference"] for e in eval_rows]
        right = sum(r["label"] == g for r, g in zip(rows, gold, strict=True))
        assert scores["metrics"]["mean_values"]["accuracy"] == pytest.approx(right / len(rows))
        matrix = scores["metrics"]["confusion"]["matrix"]
        assert sum(map(sum, matrix)) == len(rows) and sum(matrix[i][i] for i in range(2)) == right


def test_prompts_keep_the_agenda_whole(classification_dir: Path) -> None:
    eval_rows = read_jsonl(classification_dir / "results/data" / DATASET / "eval.jsonl")
    assert all(row["fields"]["agenda"] for row in eval_rows)
    base = read_jsonl(classification_dir / EVAL / "base" / "predictions.jsonl")
    # max_input_tokens 128 cuts some speeches: the prompt stays within it all the same.
    assert any(r["input_truncated"] for r in base) and all(r["prompt_tokens"] <= 128 for r in base)


def test_comparisons_carry_mcnemar_and_the_quality_gap(classification_dir: Path) -> None:
    comparisons = read_result(classification_dir / "results/compare" / MODEL / DATASET / "comparisons.json")
    assert comparisons["run"]["task"] == "classification" and comparisons["run"]["metric"] == "accuracy"
    for variant in comparisons["metrics"]["variants"].values():
        accuracy = variant["intervals"]["accuracy"]
        assert (
            accuracy["method"] == "Wilson score" and 0 <= accuracy["low"] <= accuracy["mean"] <= accuracy["high"] <= 1
        )
    records = comparisons["metrics"]["comparisons"]
    assert all("mcnemar" in r["task_statistics"] for r in records)
    gaps = [r for r in records if "quality_gap" in r]
    assert gaps and all(isinstance(r["quality_gap"]["holds"], bool) for r in gaps)


def test_drift_and_serving_run_on_the_classification_prompts(classification_dir: Path) -> None:
    drift = sorted((classification_dir / "results/drift" / MODEL / DATASET).glob("*/drift.json"))
    assert drift
    prompts = read_jsonl(classification_dir / "results/data" / DATASET / "drift.jsonl")
    assert all("agenda" in row["fields"] for row in prompts)
    served = sorted((classification_dir / "results/serving" / MODEL / DATASET).glob("*/unmerged.json"))
    assert served


def test_report_shows_accuracy_confusion_and_the_verdict(classification_dir: Path) -> None:
    page = (classification_dir / "report.html").read_text()
    scores = read_result(classification_dir / EVAL / "base" / "scores.json")
    confusion = page.split('<section id="confusion">', 1)[1].split("</section>", 1)[0]
    for count in (n for row in scores["metrics"]["confusion"]["matrix"] for n in row):
        assert f'<td class="num">{count}</td>' in confusion
    quality = page.split('<section id="quality">', 1)[1].split("</section>", 1)[0]
    assert "accuracy" in quality and f"{scores['metrics']['mean_values']['accuracy']:.4f}" in quality
    assert '<section id="paired-labels">' in page and "McNemar" in page
    summary = page.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    assert html.escape("within") in summary and "full fine-tuning" in summary
