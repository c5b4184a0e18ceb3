"""Whether a trained variant group is shown to have learned anything: its comparison against
the base model in comparisons.json, supported in its favour.

A drift or weight-space verdict about a group whose gain is not shown must say so beside it:
an adapter that did not move the model from the base also drifts little, keeps the base's
effective rank and grows no intruder dimension, so "drift holds" or "0 intruders" then says the
variant is under-trained, not that its method drifts less. The drift summary, the serving
summary and the report's drift, weight and summary sections all read this one judgement.

No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lora_study.core.grid import BASE_VARIANT


def gain_over_base(*, comparisons: Mapping[str, Any] | None, group: str) -> dict[str, Any]:
    """`shown`: True when the group's comparison against the base is supported with the group
    higher; False when it is not (no difference shown, or the group is worse); None when no
    such comparison exists (no base evaluated, or no comparisons). `note`: what a verdict about
    the group must carry beside it (empty when the gain is shown)."""
    found = comparisons or {}
    records = [c for c in found.get("metrics", {}).get("comparisons", []) if c["a"] == BASE_VARIANT and c["b"] == group]
    if not records:
        return {
            "group": group,
            "shown": None,
            "difference": None,
            "note": f"{group}'s quality gain over the base was not measured, so whether it learned at all is unknown",
        }
    record = records[0]
    difference = record["difference"]
    shown = bool(record["supported"]) and difference["mean"] > 0
    metric = found.get("run", {}).get("metric_label") or found.get("run", {}).get("metric", "quality")
    numbers = (
        f"{metric} {difference['mean']:+.4f} [{difference['low']:+.4f}, {difference['high']:+.4f}] over the base, "
        f"p {record['p_adjusted']:.3g}"
    )
    note = (
        ""
        if shown
        else f"{group} is not shown to beat the base ({numbers}): what its drift and weights show may be "
        "under-training, not its method"
    )
    return {
        "group": group,
        "shown": shown,
        "difference": dict(difference),
        "p_adjusted": record["p_adjusted"],
        "note": note,
    }


def caveat(gains: Iterable[Mapping[str, Any]]) -> str:
    """The notes of the groups whose gain is not shown, joined; empty when every gain is shown."""
    return "; ".join(gain["note"] for gain in gains if gain["note"])


def gain_text(gain: Mapping[str, Any] | None) -> str:
    """A table cell: whether the group is shown to beat the base, with the numbers behind it."""
    if gain is None or gain["shown"] is None:
        return "not measured"
    d = gain["difference"]
    numbers = f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}], p {gain['p_adjusted']:.3g}"
    return f"yes: {numbers}" if gain["shown"] else f"no: {numbers} (may be under-trained)"
