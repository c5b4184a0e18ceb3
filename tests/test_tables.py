"""The tidy tables (lora_study.stages.tables.tables) on small studies written with the project's own writers
in the workflow's layout: rows and columns, intervals equal to comparisons.json's, fields a
later comparison adds, older variants on disk, and two studies in one pandas frame."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_report_drift import drift_metrics
from test_report_stages import STATISTICS, examples, latency_result, meta, serving_batches

from conftest import REPO, run_snakemake
from lora_study.core.config import read_yaml
from lora_study.core.grid import VariantSpec
from lora_study.core.io import write_json
from lora_study.core.results import read_result, write_result
from lora_study.stages.compare.compare import VariantScores, compare_variants
from lora_study.stages.drift.summary import summarise_drift
from lora_study.stages.serving.summary import summarise_serving
from lora_study.stages.tables.tables import (
    SOURCES,
    TABLES,
    build_tables,
    collect,
    config_hash,
    metric_interval,
    write_tables,
)
from lora_study.tasks.scores import predictions_result

PLACE = "m/d"  # results/<stage>/<model>/<dataset>/
PRECISIONS = ("full", "int8")
DRIFT_SETTINGS = {
    "criterion": 0.2,
    "resamples": 100,
    "seed": 0,
    "confidence": 0.95,
    "include_embeddings": False,
    "max_quality_gap": 0.03,
}
SERVING_SETTINGS = {"max_overhead": 0.3, "resamples": 200, "seed": 0, "confidence": 0.95}


def lora(learning_rate: float) -> VariantSpec:
    return VariantSpec(kind="lora", train_size=4, seed=1, learning_rate=learning_rate, rank=2, alpha=4.0, targets="qv")


FFT = VariantSpec(kind="fft", train_size=4, seed=1, learning_rate=1e-5)


def study_config(learning_rate: float) -> dict[str, Any]:
    """The part of a config the tables read (its hash, statistics, settings)."""
    return {"training": {"lora": {"learning_rate": learning_rate}, "epochs": 1}, "statistics": STATISTICS}


def answers(name: str, *, perfect: bool) -> list[dict[str, Any]]:
    """Predictions: the reference itself (`perfect`), else a few words of it that depend on `name`."""
    rng = np.random.default_rng(sum(map(ord, name)))
    words = ["The", "reference", "adapters", "summary", "model", "text", "of", "it"]
    return [
        {
            "id": e["id"],
            "prediction": e["reference"] if perfect else " ".join(rng.choice(words, size=5)),
            "reference": e["reference"],
        }
        for e in examples()
    ]


def write_scores(root: Path, path: str, *, name: str, spec: VariantSpec | None, perfect: bool) -> VariantScores:
    rows = answers(name, perfect=perfect)
    result = predictions_result(rows=rows, task=None, variant=name, spec=spec and spec.to_dict(), predictions_file="p")
    write_result(root / path, **result, meta=meta())
    return VariantScores(name=name, spec=spec, per_example=result["metrics"]["per_example"], predictions=rows)


def write_trained(root: Path, spec: VariantSpec, *, folder: str, drift: list[float]) -> dict[str, str]:
    """train.json and drift.json of one trained variant in `folder`."""
    run = {"variant": folder, "spec": spec.to_dict()}
    train = f"results/adapters/{PLACE}/{folder}/train.json"
    metrics = {"steps": 2, "final_loss": 2.0 + spec.learning_rate, "artefact_sha256": {"a.safetensors": "ab"}}
    write_result(root / train, run={**run, "examples": 4}, metrics=metrics, meta=meta(dtype="float32"))
    drift_path = f"results/drift/{PLACE}/{folder}/drift.json"
    write_result(root / drift_path, run=run, metrics=drift_metrics(drift), meta=meta(dtype="float32"))
    return {"train": train, "drift": drift_path}


def write_study(root: Path, *, learning_rate: float = 1e-3, perfect_lora: bool = False) -> dict[str, list[str]]:
    """A whole small study (base, LoRA r=2, full fine-tuning, two precisions, drift, serving)
    under `root`; returns the current results by the build_tables rule's input names."""
    specs = {"base": None, lora(learning_rate).name: lora(learning_rate), FFT.name: FFT}
    current: dict[str, list[str]] = {name: [] for name in SOURCES}
    scored = []
    for name, spec in specs.items():
        current["scores"].append(f"results/eval/{PLACE}/{name}/scores.json")
        perfect = perfect_lora and spec is not None and spec.kind == "lora"
        scored.append(write_scores(root, current["scores"][-1], name=name, spec=spec, perfect=perfect))
    precisions = []
    for precision in PRECISIONS:
        folder = f"results/quant/{PLACE}/{precision}"
        precisions.append(write_scores(root, f"{folder}/scores.json", name=precision, spec=None, perfect=False))
        write_result(root / f"{folder}/latency.json", **latency_result(precision, 2.0 if precision == "full" else 1.5))
        current["quant_scores"].append(f"{folder}/scores.json")
        current["quant_latency"].append(f"{folder}/latency.json")
    comparisons = compare_variants(
        variants=scored,
        precisions=precisions,
        eval_inputs={e["id"]: e["input"] for e in examples()},
        instruction="Summarize.",
        statistics=STATISTICS,
    )
    current["comparisons"] = [f"results/compare/{PLACE}/comparisons.json"]
    write_result(root / current["comparisons"][0], **comparisons, meta=meta())

    rng = np.random.default_rng(0)
    base = [rng.normal(size=(12, 4)) for _ in range(3)]
    features = {}
    for spec, drift in ((lora(learning_rate), [0.0, 0.1, 0.2]), (FFT, [0.0, 0.2, 0.4])):
        files = write_trained(root, spec, folder=spec.name, drift=drift)
        current["train"].append(files["train"])
        current["drift"].append(files["drift"])
        features[spec.name] = (
            spec.to_dict(),
            drift_metrics(drift),
            [b + drift[-1] * rng.normal(size=b.shape) for b in base],
        )
    texts = {"per_text_nll": [10.0, 12.0, 9.0], "per_text_tokens": [5, 6, 4]}
    summary = summarise_drift(
        base_features=base,
        base_forgetting={"in_domain": texts, "general": texts},
        variants=features,
        comparisons=comparisons,
        settings=DRIFT_SETTINGS,
    )
    current["drift_summary"] = [f"results/drift/{PLACE}/summary.json"]
    write_result(root / current["drift_summary"][0], **summary, meta=meta())

    for name, spec, mode, scale in (
        ("base", None, "base", 1.0),
        (lora(learning_rate).name, lora(learning_rate), "merged", 1.0),
        (lora(learning_rate).name, lora(learning_rate), "unmerged", 1.1),
    ):
        path = f"results/serving/{PLACE}/{name}/{mode}.json"
        run = {"variant": name, "mode": mode, "spec": spec and spec.to_dict(), "interleaved_with": []}
        metrics = {"load_seconds": 0.5, "weight_bytes": 5_000, "under_load": False, "batches": serving_batches(scale)}
        write_result(root / path, run=run, metrics=metrics, meta=meta(dtype="float32", torch_threads=2))
        current["serving"].append(path)
    serving = summarise_serving(
        serving_files=[str(root / p) for p in current["serving"]],
        multi_adapter_file=None,
        merge_files=[],
        drift_summary_file=None,
        comparisons_file="c",
        settings=SERVING_SETTINGS,
    )
    current["serving_summary"] = [f"results/serving/{PLACE}/summary.json"]
    write_result(root / current["serving_summary"][0], **serving, meta=meta())
    return current


def tabulate(
    root: Path, current: dict[str, list[str]] | None, config: dict[str, Any] | None
) -> dict[str, pd.DataFrame]:
    """build_tables' CSV files for the study at `root`, as pandas reads them."""
    out = {name: root / "results" / "tables" / f"{name}.csv" for name in TABLES}
    write_tables(
        tables=build_tables(found=collect(root=root, current=current), config=config, code_version="v1"), out=out
    )
    return {name: pd.read_csv(path) for name, path in out.items()}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("study")
    current = write_study(root)
    return root, tabulate(root, current, study_config(1e-3))


def test_scores_one_row_per_variant_and_metric_with_comparisons_intervals(study) -> None:
    root, tables = study
    scores = tables["scores"]
    metrics = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    assert len(scores) == (3 + len(PRECISIONS)) * len(metrics)
    assert set(scores.groupby(["stage", "variant"]).size()) == {len(metrics)}
    comparisons = read_result(root / f"results/compare/{PLACE}/comparisons.json")["metrics"]
    for row in scores.itertuples():
        held = comparisons["variants" if row.stage == "eval" else "precision_variants"][row.variant]["intervals"]
        assert (row.low, row.high) == (held[row.metric]["low"], held[row.metric]["high"])
        assert row.low <= row.value <= row.high and row.interval_source == "comparisons.json"
    lora_rows = scores[scores.variant == lora(1e-3).name]
    assert set(lora_rows["spec.learning_rate"]) == {1e-3} and set(lora_rows["spec.rank"]) == {2}
    assert scores[scores.variant.isin(["base", *PRECISIONS])]["spec.learning_rate"].isna().all()
    assert scores["in_config"].all() and set(scores["config_hash"]) == {config_hash(study_config(1e-3))}
    assert set(scores["code_version"]) == {"v1.2-3-gabcdef0"}  # the result files', not the tables job's
    assert scores["run"].nunique() == 1 and scores["run"].iloc[0].endswith("-v1")
    assert list(scores.columns[:3]) == ["run", "config_hash", "in_config"]


def test_recomputed_interval_is_the_comparisons_one(tmp_path: Path) -> None:
    """What an older variant's row gets is what compare_variants would have recorded."""
    variant = write_scores(tmp_path, "scores.json", name="x", spec=None, perfect=False)
    recorded = compare_variants(
        variants=[variant],
        eval_inputs={e["id"]: e["input"] for e in examples()},
        instruction="S.",
        statistics=STATISTICS,
    )["metrics"]["variants"]["x"]["intervals"]
    for metric, interval in recorded.items():
        values = [row["values"][metric] for row in variant.per_example]
        assert metric_interval(values, metric=metric, task="summarisation", settings=STATISTICS) == interval


def test_comparisons_keep_p_values_group_specs_and_any_added_field(tmp_path: Path) -> None:
    current = write_study(tmp_path)
    path = tmp_path / current["comparisons"][0]
    result = read_result(path)
    # Fields another stage adds to each comparison (a detectable effect, the examples it needs).
    for record in result["metrics"]["comparisons"]:
        record.update(minimum_detectable_effect=0.07, needed_examples={"at_3_points": 412})
    write_json(path, result)
    comparisons = tabulate(tmp_path, current, study_config(1e-3))["comparisons"]
    variants = comparisons[comparisons.kind == "variants"]
    asked = read_result(path)["metrics"]["comparisons"]
    assert len(variants) == len(asked) and len(comparisons[comparisons.kind == "precisions"]) == 1
    assert list(variants["p_value"]) == [c["p_value"] for c in asked]
    assert list(variants["p_adjusted"]) == [c["p_adjusted"] for c in asked]
    assert set(variants["minimum_detectable_effect"]) == {0.07} and set(variants["needed_examples.at_3_points"]) == {
        412
    }
    lora_fft = variants[(variants.a == "lora-r2-qv-n4") & (variants.b == "fft-n4")].iloc[0]
    assert lora_fft["a.spec.learning_rate"] == 1e-3 and lora_fft["b.spec.kind"] == "fft"
    assert "a.spec.seed" not in variants.columns  # a group's spec: what its seeds share
    assert {"difference.mean", "difference.low", "difference.high", "supported"} <= set(variants.columns)


def test_each_stage_has_its_rows(study) -> None:
    _, tables = study
    quant = tables["quantisation"].set_index("precision")
    assert list(quant.index) == list(PRECISIONS) and quant.loc["int8", "latency_seconds.p50"] == 1.5
    assert quant["score.rougeL"].notna().all() and "runs" not in quant.columns
    training = tables["training"]
    assert set(training["variant"]) == {lora(1e-3).name, FFT.name}
    assert not any("sha256" in c for c in training.columns) and training["final_loss"].notna().all()
    drift = tables["drift"]
    variant_rows = drift[drift.level == "variant"]
    assert len(variant_rows) == 2 * (1 + 3 + 2)  # mean, 3 layers, 2 text sets per variant
    groups = drift[(drift.level == "group") & (drift.measure == "mean_drift")]
    assert set(groups["group"]) == {"lora-r2-qv-n4", "fft-n4"} and (groups.low <= groups.high).all()
    assert drift[drift.measure == "ratio_to_fft"]["value"].notna().all()
    serving = tables["serving"]
    assert len(serving) == 3 * 2 and set(serving["batch_size"]) == {1, 4}  # 3 files x 2 batch sizes
    assert serving[serving["mode"] == "base"]["spec.rank"].isna().all()
    overhead = tables["serving_overhead"]
    assert len(overhead) == 2 and (overhead.low < overhead.value).all() and set(overhead["spec.rank"]) == {2}
    config = tables["config"].set_index("setting")
    assert config.loc["training.lora.learning_rate", "value"] == "0.001"


def test_old_variant_on_disk_is_in_the_tables_marked_not_in_config(tmp_path: Path) -> None:
    """A changed learning rate makes a new variant folder beside the old one; the old one's
    files are no declared input any more, and still in every table, with in_config false."""
    current = write_study(tmp_path, learning_rate=2e-3)
    old = lora(1e-3)
    folder = f"{old.name}-lr1e-3"  # the old variant's folder beside the new one
    write_scores(tmp_path, f"results/eval/{PLACE}/{folder}/scores.json", name=folder, spec=old, perfect=False)
    write_trained(tmp_path, old, folder=folder, drift=[0.0, 0.3, 0.3])
    (tmp_path / f"results/eval/{PLACE}/broken").mkdir()
    (tmp_path / f"results/eval/{PLACE}/broken/scores.json").write_text('{"run": {')  # a killed job's leftover
    # An older version's scores in another shape (no per-example values): left out, not a failure.
    write_result(tmp_path / f"results/eval/{PLACE}/older/scores.json", run={}, metrics={"mean": {}}, meta=meta())
    tables = tabulate(tmp_path, current, study_config(2e-3))
    for name in ("scores", "training", "drift"):
        table = tables[name]
        rows = table[table.variant == folder]
        assert len(rows) and not rows["in_config"].any() and set(rows["spec.learning_rate"]) == {1e-3}, name
        assert table[table.variant != folder]["in_config"].all(), name
    scores = tables["scores"]
    old_rows = scores[scores.variant == folder]
    assert (old_rows.low <= old_rows.value).all() and (old_rows.value <= old_rows.high).all()
    assert set(old_rows["interval_source"]) == {"computed as comparisons.json computes it"}
    assert not {"broken", "older"} & set(scores["variant"])


def test_a_broken_current_result_fails_naming_it(tmp_path: Path) -> None:
    current = write_study(tmp_path)
    (tmp_path / current["train"][0]).write_text("{}")
    with pytest.raises(ValueError, match="train.json"):
        collect(root=tmp_path, current=current)
    write_result(tmp_path / current["train"][0], run={}, metrics={}, meta=meta())
    drift = tmp_path / current["drift"][0]
    write_result(drift, run={}, metrics={"drift_per_layer": 0.1}, meta=meta())  # a number, not a list
    with pytest.raises(ValueError, match=f"{current['drift'][0]}: cannot tabulate it"):
        build_tables(found=collect(root=tmp_path, current=current), config=None, code_version="v1")


def test_two_studies_concatenate_and_stay_apart(tmp_path: Path) -> None:
    for name, rate in (("a", 1e-3), ("b", 2e-3)):
        tabulate(tmp_path / name, write_study(tmp_path / name, learning_rate=rate), study_config(rate))
    both = pd.concat(pd.read_csv(f) for f in sorted(glob.glob(str(tmp_path / "*/results/tables/*.csv"))))
    assert both["run"].nunique() == 2
    lora_rows = both[both["spec.kind"] == "lora"]
    per_run = lora_rows.groupby("run")["spec.learning_rate"].agg(set)
    assert sorted(map(sorted, per_run)) == [[1e-3], [2e-3]]
    scores = pd.concat(pd.read_csv(tmp_path / name / "results/tables/scores.csv") for name in ("a", "b"))
    assert scores.groupby("run").size().tolist() == [20, 20]


def test_empty_tables_still_have_a_header(tmp_path: Path) -> None:
    tables = tabulate(tmp_path, {name: [] for name in SOURCES}, study_config(1e-3))
    assert tables["serving"].empty and "run" in tables["serving"].columns and len(tables["config"]) > 0


@pytest.mark.slow
def test_the_tiny_run_has_every_table(workflow_dir: Path) -> None:
    tables = {path.stem: pd.read_csv(path) for path in (workflow_dir / "results/tables").glob("*.csv")}
    assert set(tables) == set(TABLES)
    config = read_yaml(REPO / "configs/tiny.yaml")
    trained = set(pd.read_csv(workflow_dir / "results/tables/training.csv")["variant"])
    scores = tables["scores"]
    assert set(scores["variant"]) == {"base", *trained, *config["quantisation"]["precisions"]} and len(trained) == 3
    assert scores["in_config"].all() and scores["low"].notna().all()
    assert set(scores["interval_source"]) == {"comparisons.json"}
    [comparisons] = glob.glob(str(workflow_dir / "results/compare/*/*/comparisons.json"))
    assert len(tables["comparisons"]) == sum(
        len(read_result(comparisons)["metrics"][k]) for k in ("comparisons", "precisions")
    )
    # Every table has rows but validation.csv, which only a learning-rate sweep fills (tests/test_sweep.py).
    assert all(not table.empty for name, table in tables.items() if name != "validation")
    assert tables["validation"].empty


@pytest.mark.slow
def test_an_old_variant_folder_of_the_tiny_run_is_tabulated_as_not_in_config(
    workflow_dir: Path, tmp_path: Path
) -> None:
    """A variant folder the config no longer names (as a changed setting leaves one) is read
    from disk by the real job, beside the current ones."""
    workdir = tmp_path / "work"
    shutil.copytree(workflow_dir, workdir, copy_function=os.link, symlinks=True)
    [scores] = glob.glob(str(workdir / "results/eval/*/*/lora-r2-qv-n4-lr*-s1/scores.json"))
    old = Path(scores).parent.with_name("lora-r2-qv-n4-s1-earlier")
    old.mkdir()
    shutil.copy(scores, old / "scores.json")
    run_snakemake(workdir, "--cores", "1", "--forcerun", "build_tables", "--", "results/tables/scores.csv")
    table = pd.read_csv(workdir / "results/tables/scores.csv")
    rows = table[table["source"].str.contains("lora-r2-qv-n4-s1-earlier")]
    assert len(rows) == 4 and not rows["in_config"].any()  # 4 ROUGE metrics
    assert table[~table.index.isin(rows.index)]["in_config"].all()
