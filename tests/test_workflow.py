"""The real workflow end to end on the tiny config: outputs, incrementality, the report in a browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake
from lora_study.io import read_json, read_jsonl

pytestmark = pytest.mark.slow
EVAL_DIR = "results/eval/smollm2-135m-instruct/aclsum/base"


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> count from the dry run's 'Job stats' table."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.MULTILINE)}


def test_report_has_the_rouge_table_from_the_results(workflow_dir: Path) -> None:
    page = (workflow_dir / "report.html").read_text()
    rouge = read_json(workflow_dir / EVAL_DIR / "rouge.json")
    assert "<th>ROUGE-L</th>" in page
    for kind in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert f'{rouge["metrics"]["mean"][kind]["fmeasure"]:.4f}' in page
    assert rouge["run"]["examples"] == 4 and len(rouge["per_example"]) == 4


def test_predictions_hold_only_generated_text(workflow_dir: Path) -> None:
    config = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
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
    for size in (4, 8):
        train = read_jsonl(workflow_dir / f"results/data/aclsum/train-n{size}.jsonl")
        assert len(train) == size
        assert not {r["id"] for r in train} & {r["id"] for r in eval_rows}
        assert not {r["input"] for r in train} & {r["input"] for r in eval_rows}


def test_rerun_has_nothing_to_do(workflow_dir: Path) -> None:
    assert planned_jobs(run_snakemake(workflow_dir, "-n", "report.html")) == {}


def test_changed_generation_setting_reruns_only_evaluation_and_report(workflow_dir: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    config["generation"]["max_new_tokens"] += 1
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(run_snakemake(workflow_dir, "-n", "report.html", configfile=changed))
    assert jobs == {"generate_predictions": 1, "score_rouge": 1, "build_report": 1}


def test_changed_report_setting_reruns_only_the_report(workflow_dir: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    config["report"]["examples"] = 1
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    assert planned_jobs(run_snakemake(workflow_dir, "-n", "report.html", configfile=changed)) == {"build_report": 1}


def test_every_rule_logged(workflow_dir: Path) -> None:
    logs = {path.parts[len((workflow_dir / "logs").parts)] for path in (workflow_dir / "logs").rglob("*.log")}
    assert logs == {"prepare_model", "make_subsets", "generate_predictions", "score_rouge", "build_report.log"}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_report_renders_in_a_real_browser(workflow_dir: Path, tmp_path: Path) -> None:
    """Headless Chromium loads the page offline and its DOM holds the tables and examples."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (workflow_dir / "report.html").as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "<title>lora-study report</title>" in dom
    for section in ("configuration", "model", "data", "quality", "generation", "example-predictions", "provenance"):
        assert f'id="{section}"' in dom
    rows = read_jsonl(workflow_dir / EVAL_DIR / "predictions.jsonl")
    assert dom.count('<table class="example">') == 2
    assert rows[0]["id"] in dom
