"""The report's drift sections (Study 4), built only from drift.json files: per-layer drift
of every trained variant, the layer x layer CKA heatmaps, forgetting, and the verdict of
Study 4's criterion (LoRA at least X% less drift than full fine-tuning).

No torch here: the report environment has none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lora_study.io import read_json
from lora_study.report import Section, escape, figure_svg, table

_SIZE_SEED = re.compile(r"-n(\d+)-s(\d+)$")


@dataclass(frozen=True)
class DriftResult:
    name: str
    drift: Mapping[str, Any]  # drift.json

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.drift["metrics"]

    @property
    def is_fft(self) -> bool:
        return self.name.startswith("fft-")


def load_drift(*, name: str, drift_path: str | Path) -> DriftResult:
    return DriftResult(name=name, drift=read_json(drift_path))


def fft_partner(variant: str) -> str | None:
    """The full fine-tuning run trained on the same data with the same seed as `variant`."""
    match = _SIZE_SEED.search(variant)
    return f"fft-n{match[1]}-s{match[2]}" if match else None


def drift_verdicts(*, mean_drift: Mapping[str, float], criterion: float) -> list[dict[str, Any]]:
    """Study 4's criterion per LoRA-family variant: its drift is at least `criterion` (a share)
    below that of full fine-tuning on the same data and seed. Drift = mean over layers of
    1 - debiased CKA. Variants without an FFT partner get no verdict."""
    verdicts = []
    for name, drift in mean_drift.items():
        partner = fft_partner(name)
        if name.startswith("fft-") or partner not in mean_drift:
            continue
        fft_drift = mean_drift[partner]
        # FFT that did not move at all leaves nothing to be "less" than: no ratio to report.
        reduction = None if fft_drift <= 0 else 1.0 - drift / fft_drift
        verdicts.append(
            {
                "variant": name,
                "fft": partner,
                "drift": drift,
                "fft_drift": fft_drift,
                "reduction": reduction,
                "holds": reduction is not None and reduction >= criterion,
            }
        )
    return verdicts


def drift_sections(*, results: Sequence[DriftResult], criterion: float) -> list[Section]:
    """Nothing when no variant is trained."""
    if not results:
        return []
    mean_drift = {r.name: r.metrics["mean_drift"] for r in results if r.metrics["mean_drift"] is not None}
    verdicts = drift_verdicts(mean_drift=mean_drift, criterion=criterion)
    return [
        Section("drift", "Representational drift by layer", _drift_body(results, verdicts, criterion)),
        Section("cka-matrices", "CKA between base and tuned layers", _heatmaps(results)),
        Section("forgetting", "Forgetting: perplexity on held-out text", _forgetting_table(results)),
    ]


def _defined(values: Sequence[float | None]) -> list[float]:
    """The values where CKA is defined (None: a layer whose features do not vary)."""
    return [value for value in values if value is not None]


def drift_number(value: float) -> str:
    """Four decimals, or three significant digits for drifts too small to show in four
    (a short training run moves representations by 1e-5)."""
    return f"{value:.3e}" if 0 < abs(value) < 5e-4 else f"{value:.4f}"


def _span(values: Sequence[float], digits: int) -> str:
    return f"{min(values):.{digits}f} to {max(values):.{digits}f}" if values else "undefined"


def _mean(values: Sequence[float | None]) -> str:
    defined = _defined(values)
    return drift_number(sum(defined) / len(defined)) if defined else "undefined"


def _drift_body(results: Sequence[DriftResult], verdicts: Sequence[Mapping[str, Any]], criterion: float) -> str:
    first = results[0].metrics
    self_cka = _defined(first["baselines"]["self"]["cka_debiased"])
    chance = _defined(first["baselines"]["shuffled"]["cka_debiased"])
    chance_biased = _defined(first["baselines"]["shuffled"]["cka_biased"])
    rows = []
    for r in results:
        drift = r.metrics["drift_per_layer"]
        largest = max(range(len(drift)), key=lambda i: -1.0 if drift[i] is None else drift[i])
        rows.append(
            [
                r.name,
                _mean(drift),
                f"{drift_number(drift[largest])} (layer {largest})" if drift[largest] is not None else "undefined",
                _mean([row["cka_biased"] for row in r.metrics["per_layer"]]),
                _mean([row["cosine"] for row in r.metrics["per_layer"]]),
            ]
        )
    protocol = (
        f'<p class=muted>{first["examples"]} evaluation prompts, {first["layers"]} hidden states '
        f'(embeddings, then each block\'s output; the last after the final norm), pooled by '
        f'<b>{escape(first["pooling"])}</b> over real tokens (padding masked). Headline: linear CKA with the '
        f"debiased (unbiased HSIC) estimator; drift = 1 - CKA. Baselines on the base model: itself gives "
        f"CKA {_span(self_cka, 4)} (a check of the estimator); a shuffled pairing of examples, none with itself "
        f"(chance at this sample size), gives debiased CKA {_span(chance, 3)} and biased {_span(chance_biased, 3)}, "
        f"so the biased estimator reads high even for unrelated representations.</p>"
    )
    return (
        _drift_plot(results)
        + protocol
        + table(["variant", "mean drift (1 - CKA)", "largest drift", "mean biased CKA", "mean cosine"], rows)
        + _verdict_text(verdicts, criterion)
    )


def _verdict_text(verdicts: Sequence[Mapping[str, Any]], criterion: float) -> str:
    heading = f"<h3>Study 4's criterion: LoRA at least {criterion:.0%} less drift than full fine-tuning</h3>"
    if not verdicts:
        return heading + "<p>No verdict: no LoRA variant has a full fine-tuning run with the same data and seed (training.fft.enabled).</p>"
    items = []
    for v in verdicts:
        if v["reduction"] is None:
            text = f'{escape(v["fft"])} did not drift at all ({v["fft_drift"]:.4f}): no ratio to judge'
        else:
            outcome = "holds" if v["holds"] else "does not hold"
            change = f'{v["reduction"]:.1%} less' if v["reduction"] >= 0 else f'{-v["reduction"]:.1%} more'
            text = (
                f'drift {drift_number(v["drift"])} vs {drift_number(v["fft_drift"])} for {escape(v["fft"])}: '
                f"{change}, criterion {outcome}"
            )
        items.append(f'<li><b>{escape(v["variant"])}</b>: {text}</li>')
    return heading + f"<ul>{''.join(items)}</ul>"


def _drift_plot(results: Sequence[DriftResult]) -> str:
    """1 - debiased CKA by layer, one line per variant (FFT dashed), as inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    with sns.axes_style("whitegrid"):
        figure, axes = plt.subplots(figsize=(7.0, 4.2))
        palette = sns.color_palette("colorblind", len(results))
        for colour, r in zip(palette, results):
            drift = [float("nan") if value is None else value for value in r.metrics["drift_per_layer"]]
            axes.plot(range(len(drift)), drift, label=r.name, color=colour,
                      linestyle="--" if r.is_fft else "-", marker="o", markersize=3)
        axes.set_xlabel("layer (0 = embeddings)")
        axes.set_ylabel("drift: 1 - CKA (debiased)")
        axes.set_title("Drift from the base model by layer (dashed: full fine-tuning)")
        axes.legend(fontsize=8)
    return figure_svg(figure)


def _heatmaps(results: Sequence[DriftResult]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False)
    for axes, r in zip(grid.flat, results):
        matrix = [[float("nan") if value is None else value for value in row] for row in r.metrics["matrix"]["debiased"]]
        sns.heatmap(matrix, vmin=0, vmax=1, cmap="viridis", square=True, ax=axes,
                    cbar_kws={"shrink": 0.7})
        axes.set_title(r.name, fontsize=9)
        axes.set_xlabel("tuned layer")
        axes.set_ylabel("base layer")
    for axes in list(grid.flat)[len(results):]:
        axes.set_visible(False)
    figure.tight_layout()
    return figure_svg(figure) + (
        "<p class=muted>Debiased linear CKA of every base layer (rows) against every tuned layer (columns); "
        "a bright diagonal means each layer still represents the examples as the base's same layer does. "
        "Both estimators' matrices are in each variant's cka_matrix.npz.</p>"
    )


def _forgetting_table(results: Sequence[DriftResult]) -> str:
    base = results[0].metrics["forgetting"]["base"]
    rows = [["base", f'{base["perplexity"]:.3f}', f'{base["mean_nll"]:.4f}', "", base["tokens"]]]
    for r in results:
        tuned = r.metrics["forgetting"]["tuned"]
        change = tuned["perplexity"] / r.metrics["forgetting"]["base"]["perplexity"] - 1
        rows.append([r.name, f'{tuned["perplexity"]:.3f}', f'{tuned["mean_nll"]:.4f}', f"{change:+.1%}", tuned["tokens"]])
    return table(["model", "perplexity", "mean NLL per token", "change vs base", "tokens"], rows) + (
        f'<p class=muted>{base["texts"]} held-out texts (inputs of evaluation-split rows outside every subset), '
        "token-weighted; higher perplexity than the base means the tuning cost general language modelling.</p>"
    )
