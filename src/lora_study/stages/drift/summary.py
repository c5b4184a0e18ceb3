"""The drift summary: intervals for every variant group's drift and forgetting, and Study 4's
criterion judged on intervals, written to one result file the report only reads.

Per group (variants that differ only by seed): per-layer drift and mean drift with a
bootstrap interval over the drift prompts (and seeds), the change of cross-entropy on
in-domain and general text with an interval over texts (and seeds). Every group is
resampled with the same example draws, so the ratio of a LoRA group's drift to full
fine-tuning's is paired example by example.

Study 4's criterion for a LoRA group: within `max_quality_gap` of full fine-tuning's
quality (the comparison stage judges that on its paired interval) and at least
`criterion` less drift, judged on the interval of the drift ratio LoRA / FFT. The ratio
intervals of all verdicts are simultaneous (Bonferroni), so the chance that any of them
misses is at most 1 - confidence. The other half of the criterion's "or" (at most 30%
serving overhead) belongs to the serving stage.

No torch here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lora_study.core.grid import SpecLike, fft_partner, group_of
from lora_study.stats.drift import (
    TEXT_SETS,
    Interval,
    drift_resamples,
    example_draws,
    forgetting_per_seed,
    forgetting_per_text,
    forgetting_resamples,
    grams,
    per_seed_drift,
    percentile_interval,
    ratio_seed_interval,
    seed_interval,
)
from lora_study.stats.learning import caveat, gain_over_base


def summarise_drift(
    *,
    base_features: Sequence[np.ndarray],
    base_forgetting: Mapping[str, Any],
    variants: Mapping[str, tuple[SpecLike, Mapping[str, Any], Sequence[np.ndarray]]],
    comparisons: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """`variants`: name -> (drift.json's run.spec, its metrics, tuned features). `base_forgetting`: the base
    job's per-text cross-entropies per text set. `settings`: criterion, resamples, seed,
    confidence, include_embeddings, max_quality_gap. `comparisons`: comparisons.json (None:
    quality not measured). Returns summary.json's `run` and `metrics`."""
    resamples, confidence = settings["resamples"], settings["confidence"]
    first_layer = 0 if settings["include_embeddings"] else 1
    base = grams(base_features)
    groups: dict[str, list[str]] = {}
    for name, (spec, _, _) in variants.items():
        groups.setdefault(group_of(spec), []).append(name)
    group_spec = {group: variants[members[0]][0] for group, members in groups.items()}
    fft_partners = {group: fft_partner(spec, group_spec) for group, spec in group_spec.items()}

    rng = np.random.default_rng(settings["seed"])
    draws = example_draws(n=base.shape[1], resamples=resamples, rng=rng)  # shared: groups are paired
    text_draws = {
        name: example_draws(n=len(base_forgetting[name]["per_text_nll"]), resamples=resamples, rng=rng)
        for name in TEXT_SETS
    }
    summary: dict[str, Any] = {}
    mean_samples: dict[str, np.ndarray] = {}
    seed_means: dict[str, np.ndarray] = {}
    for group, members in groups.items():
        tuned = [grams(variants[m][2]) for m in members]
        samples = drift_resamples(base=base, tuned=tuned, draws=draws)
        per_seed = per_seed_drift(base=base, tuned=tuned)  # (seeds, layers)
        with warnings.catch_warnings():
            # A resample can leave a layer undefined (too few distinct prompts): it counts as nan.
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_samples[group] = np.mean(samples[:, first_layer:], axis=1)
        seed_means[group] = per_seed[:, first_layer:].mean(axis=1)
        summary[group] = {
            "variants": members,
            "seeds": len(members),
            # Whether the group learned at all: drift of a group that did not is under-training's.
            "gain_over_base": gain_over_base(comparisons=comparisons, group=group),
            "mean_drift": percentile_interval(
                estimate=float(seed_means[group].mean()),
                samples=mean_samples[group],
                confidence=confidence,
                seeds=seed_interval(values=seed_means[group], confidence=confidence),
            ).to_dict(),
            "per_layer": [
                {
                    "layer": layer,
                    **percentile_interval(
                        estimate=float(per_seed[:, layer].mean()),
                        samples=samples[:, layer],
                        confidence=confidence,
                        seeds=seed_interval(values=per_seed[:, layer], confidence=confidence),
                    ).to_dict(),
                }
                for layer in range(per_seed.shape[1])
            ],
            "forgetting": {
                name: _forgetting(
                    base=base_forgetting[name],
                    tuned=[variants[m][1]["forgetting"][name] for m in members],
                    draws=text_draws[name],
                    confidence=confidence,
                )
                for name in TEXT_SETS
            },
        }
    verdicts = _verdicts(
        mean_samples=mean_samples,
        seed_means=seed_means,
        fft_partners=fft_partners,
        comparisons=comparisons,
        settings=settings,
    )
    return {
        "run": {
            **{
                key: settings[key]
                for key in ("criterion", "resamples", "seed", "confidence", "include_embeddings", "max_quality_gap")
            },
            "examples": int(base.shape[1]),
            "mean_over": f"layers {first_layer}-{base.shape[0] - 1}",
            "interval": "percentile bootstrap over drift prompts (pairs of copies of one prompt left out of the "
            "resampled Grams); with several seeds, the envelope with a t interval over seeds",
        },
        "metrics": {"groups": summary, "verdicts": verdicts},
    }


def _forgetting(
    *, base: Mapping[str, Any], tuned: Sequence[Mapping[str, Any]], draws: np.ndarray, confidence: float
) -> dict[str, Any]:
    """Change of token-weighted cross-entropy (nats per token), tuned minus base, on the same texts."""
    base_nll = np.asarray(base["per_text_nll"], dtype=np.float64)
    tokens = np.asarray(base["per_text_tokens"], dtype=np.float64)
    tuned_nll = [np.asarray(t["per_text_nll"], dtype=np.float64) for t in tuned]
    if any(not np.array_equal(tokens, np.asarray(t["per_text_tokens"], dtype=np.float64)) for t in tuned):
        raise ValueError("base and tuned cross-entropies were measured on different texts")
    per_seed = forgetting_per_seed(base_nll=base_nll, tokens=tokens, tuned_nll=tuned_nll)
    samples = forgetting_resamples(
        difference=forgetting_per_text(base_nll=base_nll, tuned_nll=tuned_nll), tokens=tokens, draws=draws
    )
    interval = percentile_interval(
        estimate=float(per_seed.mean()),
        samples=samples,
        confidence=confidence,
        seeds=seed_interval(values=per_seed, confidence=confidence),
    )
    return {"texts": int(base_nll.size), "base_mean_nll": float(base_nll.sum() / tokens.sum()), **interval.to_dict()}


def _verdicts(
    *,
    mean_samples: Mapping[str, np.ndarray],
    seed_means: Mapping[str, np.ndarray],
    fft_partners: Mapping[str, str | None],
    comparisons: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
) -> list[dict[str, Any]]:
    pairs = [(group, fft_partners[group]) for group in mean_samples if fft_partners[group] in mean_samples]
    if not pairs:
        return []
    # Simultaneous intervals: each at 1 - alpha/m, so all m hold together with probability >= 1 - alpha.
    level = 1.0 - (1.0 - settings["confidence"]) / len(pairs)
    threshold = 1.0 - settings["criterion"]
    verdicts = []
    for group, fft in pairs:
        lora_mean, fft_mean = float(seed_means[group].mean()), float(seed_means[fft].mean())
        with np.errstate(divide="ignore", invalid="ignore"):
            samples = mean_samples[group] / mean_samples[fft]
        if fft_mean > 0:
            seeds = ratio_seed_interval(numerator=seed_means[group], denominator=seed_means[fft], confidence=level)
            ratio = percentile_interval(estimate=lora_mean / fft_mean, samples=samples, confidence=level, seeds=seeds)
        else:
            nan = float("nan")
            ratio = Interval(estimate=nan, low=nan, high=nan, confidence=level)
        drift = drift_outcome(ratio=ratio, threshold=threshold)
        quality = _quality(comparisons=comparisons, group=group, fft=fft)
        gains = {
            side: gain_over_base(comparisons=comparisons, group=name) for side, name in (("lora", group), ("fft", fft))
        }
        beside = caveat(gains.values())
        verdicts.append(
            {
                "variant": group,
                "fft": fft,
                "ratio": ratio.to_dict(),
                "threshold": threshold,
                "drift": drift,
                "quality": quality,
                "holds": drift == "holds" and quality["outcome"] == "holds",
                # Said beside the drift verdict when either side is not shown to have learned.
                "gain_over_base": gains,
                "drift_caveat": beside,
                "text": _text(
                    group=group,
                    fft=fft,
                    ratio=ratio,
                    drift=drift,
                    quality=quality,
                    criterion=settings["criterion"],
                    beside=beside,
                ),
            }
        )
    return verdicts


def drift_outcome(*, ratio: Interval, threshold: float) -> str:
    """holds: the whole interval of LoRA/FFT drift is at or below 1 - criterion; does not hold:
    the whole interval is above it; not supported: it straddles the threshold (or FFT did not move)."""
    if np.isnan(ratio.low) or np.isnan(ratio.high):
        return "not supported"
    if ratio.high <= threshold:
        return "holds"
    if ratio.low > threshold:
        return "does not hold"
    return "not supported"


def _quality(*, comparisons: Mapping[str, Any] | None, group: str, fft: str) -> dict[str, Any]:
    """The comparison stage's judgement of LoRA within max_quality_gap of FFT, on its paired
    interval; the difference is returned as FFT minus LoRA whichever order the record has."""
    if comparisons is None:
        return {"outcome": "not measured", "difference": None}
    records = [c for c in comparisons["metrics"]["comparisons"] if {c["a"], c["b"]} == {group, fft}]
    if not records or "quality_gap" not in records[0]:
        return {"outcome": "not measured", "difference": None}
    record = records[0]
    difference = dict(record["difference"])  # b minus a
    if record["a"] == fft:
        difference.update(mean=-difference["mean"], low=-difference["high"], high=-difference["low"])
    return {
        "outcome": "holds" if record["quality_gap"]["holds"] else "not shown",
        "difference": difference,  # FFT minus LoRA
        "max_gap": record["quality_gap"]["max_gap"],
        "metric": comparisons["run"]["metric"],
    }


def _text(
    *,
    group: str,
    fft: str,
    ratio: Interval,
    drift: str,
    quality: Mapping[str, Any],
    criterion: float,
    beside: str,
) -> str:
    """The verdict in words; `beside`: the caveat of a side not shown to have learned, right after
    the drift outcome it qualifies."""
    if np.isfinite(ratio.estimate):
        drift_text = (
            f"drift ratio {group} / {fft} {ratio.estimate:.3f} [{ratio.low:.3f}, {ratio.high:.3f}] "
            f"({ratio.confidence:.1%} simultaneous interval; at most {1 - criterion:.2f} needed): {drift}"
        )
    else:
        drift_text = f"{fft} did not drift at all: no ratio to judge"
    if beside:
        drift_text += f" (but {beside})"
    if quality["difference"] is None:
        quality_text = "quality within the gap: not measured"
    else:
        d = quality["difference"]
        quality_text = (
            f"{quality['metric']} {fft} minus {group} {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}], "
            f"within {quality['max_gap']:.2f}: {quality['outcome']}"
        )
    overall = "holds" if drift == "holds" and quality["outcome"] == "holds" else "not supported"
    return f"{group}: {drift_text}; {quality_text}; criterion {overall}"
