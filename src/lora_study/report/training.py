"""The training stage's sections: the trained-variant table, loss curves, parameter counts."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lora_study.core.results import read_result
from lora_study.report.inputs import Files, ReportInputError, Stage, by_variant, one, paired, variant_of
from lora_study.report.page import LANE_TIMES, Section, escape, table
from lora_study.report.plotting import palette, plot_svg
from lora_study.tasks import Task, task_named


@dataclass(frozen=True)
class TrainedResult:
    name: str
    train: Mapping[str, Any]  # train.json
    loss: Sequence[Mapping[str, float]]  # loss.csv rows


def read_loss_csv(path: str | Path) -> list[dict[str, float]]:
    """loss.csv rows (written by training.write_loss_csv) as numbers."""
    with open(path, encoding="utf-8") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def load_trained(files: Files) -> list[TrainedResult]:
    """Each train.json with the loss.csv the same job wrote beside it (loss.csv records no
    variant): paired strictly, so a missing file raises instead of shifting the rest, and
    checked to share a folder; the name is the one train.json records."""
    trained = []
    for train_path, loss_path in paired(files, "train", "loss"):
        if train_path.parent != loss_path.parent:
            raise ReportInputError(
                f"{loss_path} is not beside {train_path}: inputs train and loss are in different orders"
            )
        train = read_result(train_path)
        trained.append(TrainedResult(name=variant_of(train), train=train, loss=read_loss_csv(loss_path)))
    return trained


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    scores = by_variant(files["scores"])
    quality = {name: result["metrics"]["mean_values"] for name, result in scores.items()}
    task = task_named(next(iter(scores.values()))["run"].get("task", "summarisation")) if scores else None
    return training_sections(
        trained=load_trained(files),
        quality=quality,
        task=task,
        parameter_counts=read_result(one(files, "parameter_counts")),
    )


STAGE = Stage(name="training", inputs=("train", "loss", "scores", "parameter_counts"), sections=sections)


def training_sections(
    *,
    trained: Sequence[TrainedResult],
    quality: Mapping[str, Mapping[str, float]],
    task: Task | None,
    parameter_counts: Mapping[str, Any],
) -> list[Section]:
    """`quality`: variant -> scores.json's `metrics.mean_values` (the task's metrics)."""
    sections = []
    if trained:
        sections.append(Section("adapters", "Trained variants", _variant_table(trained, quality, task)))
        sections.append(Section("loss-curves", "Training loss", _loss_curves(trained)))
    sections.append(
        Section("parameter-counts", "Trainable parameters by rank and targets", _parameter_table(parameter_counts))
    )
    return sections


def _variant_table(
    trained: Sequence[TrainedResult], quality: Mapping[str, Mapping[str, float]], task: Task | None
) -> str:
    metrics = list(task.metrics[:3]) if task else []
    header = [
        "variant",
        *(task.metric_labels[kind] for kind in metrics),
        "trainable params",
        "% of total",
        "LoRA scaling",
        "artefact MB",
        "train s",
        "tokens/s",
        "GFLOP/s",
        "padding %",
        "peak RSS GB",
        "steps",
        "final loss",
    ]
    rows = []
    for result in trained:
        metrics = result.train["metrics"]
        scores = quality.get(result.name, {})
        rows.append(
            [
                result.name,
                *(f"{scores[k]:.4f}" if k in scores else "-" for k in metrics),
                f"{metrics['trainable_parameters']:,}",
                f"{metrics['trainable_percent']:.3f}",
                _optional(metrics.get("lora_scaling"), "{:.3g}"),
                f"{metrics['artefact_bytes'] / 1e6:.1f}",
                f"{metrics['train_seconds']:.0f}",
                f"{metrics['tokens_per_second']:.0f}",
                f"{metrics['achieved_gflops']:.1f}",
                _optional(metrics.get("padding_share"), "{:.1%}"),
                f"{metrics['peak_rss_bytes'] / 1e9:.2f}",
                metrics["steps"],
                f"{metrics['final_loss']:.3f}" if metrics["final_loss"] is not None else "-",
            ]
        )
    note = (
        "<p class=muted>Quality: the task's metrics (ROUGE: F-measure), mean over the evaluation examples. Loss: mean cross-entropy per "
        "reference token of the last optimizer step (prompt and padding masked). GFLOP/s: model "
        "FLOPs per second, forward + backward matrix products on the real tokens (padding positions are "
        "computed too but not counted; see src/lora_study/model/flops.py). LoRA scaling: "
        "the factor on the adapter's output as PEFT applied it, alpha/r (alpha/sqrt(r) for rsLoRA); "
        "padding: padded positions among all positions of the training batches. "
        f"{escape(LANE_TIMES)}</p>"
    )
    return table(header, rows) + note


def _optional(value: float | None, form: str) -> str:
    """A train.json figure that full fine-tuning (or a train.json from before it existed) lacks."""
    return "-" if value is None else form.format(value)


def _loss_curves(trained: Sequence[TrainedResult]) -> str:
    def draw(figure: Figure, axes: Axes) -> None:
        for result, colour in zip(trained, palette(len(trained)), strict=True):
            steps = [row["step"] for row in result.loss]
            axes.plot(steps, [row["loss"] for row in result.loss], marker="o", color=colour, label=result.name)
        axes.legend(title="variant")
        axes.set_xlabel("optimizer step")
        axes.set_ylabel("loss per reference token")
        axes.set_title("Training loss")

    return plot_svg(draw, figsize=(8, 4))


def _parameter_table(parameter_counts: Mapping[str, Any]) -> str:
    header = ["targets", "rank", "trainable params", "% of total", "adapter MB (fp32)"]
    rows = [
        [
            row["targets"],
            row["rank"],
            f"{row['trainable_parameters']:,}",
            f"{row['trainable_percent']:.3f}",
            f"{row['adapter_megabytes_fp32']:.2f}",
        ]
        for row in parameter_counts["metrics"]["rows"]
    ]
    return table(header, rows) + (
        "<p class=muted>LoRA adds r x (d_in + d_out) parameters per targeted linear layer; "
        "counted on the model's own shapes, without training.</p>"
    )
