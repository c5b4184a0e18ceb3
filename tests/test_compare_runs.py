"""python -m lora_study.stages.tables.compare_runs on two small studies: a changed setting and the figure it
moved are found, an unmoved figure is not, and a folder without results is named."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_tables import PLACE, lora, study_config, tabulate, write_scores, write_study

from conftest import REPO
from lora_study.stages.tables.compare_runs import main


def moved_lines(output: str) -> list[str]:
    section = output.split("Figures that moved beyond their intervals", 1)[1].split("\nWithin each other's", 1)[0]
    return [line.strip() for line in section.splitlines()[1:]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A: LoRA at 1e-3 answering with a few words; B: LoRA at 2e-3 answering with the references."""
    root = tmp_path_factory.mktemp("runs")
    for name, rate, perfect in (("a", 1e-3, False), ("b", 2e-3, True)):
        tabulate(root / name, write_study(root / name, learning_rate=rate, perfect_lora=perfect), study_config(rate))
    return root / "a", root / "b"


def test_finds_the_changed_setting_and_the_figure_it_moved(runs, capsys) -> None:
    a, b = runs
    assert main([str(a), str(b)]) == 0
    output = capsys.readouterr().out
    assert "Settings that differ (1):\n  training.lora.learning_rate: 0.001 -> 0.002" in output
    # A changed rate is a new variant (a new name), matched with its earlier self by grid position.
    both = f"{lora(1e-3).name} (B: {lora(2e-3).name})"
    assert f"{both}: learning_rate 0.001 -> 0.002" in output
    moved = moved_lines(output)
    assert f"scores: {both} eval rougeL: " in "\n".join(moved)
    assert not any(line.startswith("scores: base ") or line.startswith("scores: full ") for line in moved), moved
    assert not any(line.startswith("drift:") or line.startswith("serving_overhead:") for line in moved), moved
    assert "Only in" not in output  # every figure of one study matched one of the other


def test_a_study_against_itself_moves_nothing(runs, capsys) -> None:
    a, _ = runs
    assert main([str(a), str(a)]) == 0
    output = capsys.readouterr().out
    assert "Settings: the same." in output and moved_lines(output) == ["none"]
    assert "Variants whose spec differs" not in output


def test_a_folder_without_tables_is_read_from_its_result_files(runs, tmp_path: Path, capsys) -> None:
    a, b = runs
    shutil.copytree(b / "results", tmp_path / "results", ignore=shutil.ignore_patterns("tables"))
    assert main([str(a / "results" / "tables"), str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert f"scores: {lora(1e-3).name} (B: {lora(2e-3).name}) eval rougeL: " in "\n".join(moved_lines(output))
    assert "training.lora.learning_rate: only in A (0.001)" in output  # B's config is not known


def test_all_adds_the_variants_the_config_no_longer_asks_for(tmp_path: Path, capsys) -> None:
    current = write_study(tmp_path / "y")
    folder = "lora-r2-qv-n4-s1-older"  # an earlier learning rate's variant, beside today's
    write_scores(
        tmp_path / "y", f"results/eval/{PLACE}/{folder}/scores.json", name=folder, spec=lora(5e-4), perfect=True
    )
    tabulate(tmp_path / "y", current, study_config(1e-3))
    tabulate(tmp_path / "x", write_study(tmp_path / "x"), study_config(1e-3))
    assert main([str(tmp_path / "x"), str(tmp_path / "y")]) == 0
    output = capsys.readouterr().out
    assert moved_lines(output) == ["none"] and "Only in" not in output
    assert main([str(tmp_path / "x"), str(tmp_path / "y"), "--all"]) == 0
    output = capsys.readouterr().out
    assert moved_lines(output) == ["none"]  # today's variants matched by their full specs
    assert f"Only in B (4): scores: {folder} eval rouge1" in output


@pytest.mark.parametrize("empty_results", [False, True])
def test_a_folder_without_results_is_an_error_naming_it(runs, tmp_path: Path, capsys, empty_results: bool) -> None:
    if empty_results:
        (tmp_path / "results").mkdir()
    assert main([str(runs[0]), str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path) in error and error.startswith("compare_runs: error:")


def test_runs_as_a_module(runs) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lora_study.stages.tables.compare_runs", str(runs[0]), str(runs[1])],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Figures that moved beyond their intervals" in done.stdout


def test_a_grid_position_held_twice_is_matched_by_full_spec(tmp_path: Path, capsys) -> None:
    """Read without its config, a study folder can hold two learning rates of one variant: each
    is matched with the study that has its spec, not with whichever came first."""
    tabulate(tmp_path / "x", write_study(tmp_path / "x"), study_config(1e-3))
    write_study(tmp_path / "y")
    folder = "lora-r2-qv-n4-s1-other-rate"
    write_scores(
        tmp_path / "y", f"results/eval/{PLACE}/{folder}/scores.json", name=folder, spec=lora(5e-4), perfect=True
    )
    assert main([str(tmp_path / "x"), str(tmp_path / "y")]) == 0
    output = capsys.readouterr().out
    assert moved_lines(output) == ["none"]
    assert f"Only in B (4): scores: {folder} eval rouge1" in output and "Only in A" not in output
