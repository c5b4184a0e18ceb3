"""A variant is every setting that changes its weights: names, hashes, sweeps (lora_study.core.grid)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from conftest import REPO
from lora_study.core.grid import (
    FFT_VARIANT_PATTERN,
    LORA_VARIANT_PATTERN,
    VariantSpec,
    candidate_rates,
    expand_grid,
    methods,
    rate_label,
    swept_methods,
)

TRAINING: dict[str, Any] = yaml.safe_load((REPO / "config.yaml").read_text())["training"]


def names(training: dict[str, Any]) -> set[str]:
    return set(expand_grid(training=training, train_sizes=[100]))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("lora", "learning_rate"), 1e-3),
        (("lora", "alpha_ratio"), 4),
        (("lora", "dropout"), 0.1),
        (("epochs",), 3),
        (("batch_size",), 2),
        (("grad_accumulation",), 2),
        (("schedule",), "cosine"),
        (("warmup_ratio",), 0.2),
        (("weight_decay",), 0.01),
        (("max_grad_norm",), 0.5),
        (("megabatch",), 4),
        (("max_target_tokens",), 96),
    ],
)
def test_every_weight_changing_setting_changes_every_lora_name(path: tuple[str, ...], value: Any) -> None:
    changed = copy.deepcopy(TRAINING)
    block = changed
    for key in path[:-1]:
        block = block[key]
    block[path[-1]] = value
    before = {n for n in names(TRAINING) if n.startswith("lora")}
    after = {n for n in names(changed) if n.startswith("lora")}
    assert before and not before & after  # new names: new folders beside the old ones


def test_fft_name_changes_with_its_rate_and_shared_settings_but_not_with_lora_settings() -> None:
    def fft(training: dict[str, Any]) -> set[str]:
        return {n for n in names(training) if n.startswith("fft")}

    lora_only = copy.deepcopy(TRAINING)
    lora_only["lora"]["dropout"] = 0.2
    rate = copy.deepcopy(TRAINING)
    rate["fft"]["learning_rate"] = 1e-4
    epochs = copy.deepcopy(TRAINING)
    epochs["epochs"] = 5
    assert fft(lora_only) == fft(TRAINING)
    assert not fft(rate) & fft(TRAINING) and not fft(epochs) & fft(TRAINING)


def test_names_are_readable_and_match_the_rules_patterns() -> None:
    grid = expand_grid(training=TRAINING, train_sizes=[100])
    for name, spec in grid.items():
        assert name.startswith(f"{spec.method}-lr{rate_label(spec.learning_rate)}-") and name.endswith(f"-s{spec.seed}")
        pattern = FFT_VARIANT_PATTERN if spec.kind == "fft" else LORA_VARIANT_PATTERN
        assert re.fullmatch(pattern, name), name
        assert spec.group == spec.method  # one rate and one setting of the rest per method in a study
    assert {spec.method for spec in grid.values()} == {"lora-r8-qv-n100", "lora-r32-qv-n100", "fft-n100"}


def test_equal_settings_written_differently_give_the_same_name() -> None:
    floats = copy.deepcopy(TRAINING)
    floats["epochs"] = float(floats["epochs"])
    floats["batch_size"] = float(floats["batch_size"])
    reordered = dict(reversed(list(TRAINING.items())))
    assert names(floats) == names(TRAINING) == names(reordered)


def test_the_spec_round_trips_through_its_record() -> None:
    for spec in expand_grid(training=TRAINING, train_sizes=[100]).values():
        recorded = spec.to_dict()
        assert recorded["training"]["epochs"] == TRAINING["epochs"] and recorded["name"] == spec.name
        assert VariantSpec.from_dict(recorded) == spec


@pytest.mark.parametrize(
    ("setting", "rates"),
    [
        (2e-4, [2e-4]),
        ([1e-3, 1e-4, 1e-4], [1e-4, 1e-3]),
        ({"low": 1e-5, "high": 1e-3, "count": 3}, [1e-5, 1e-4, 1e-3]),
        ({"low": 1e-5, "high": 1e-3, "count": 5}, [1e-5, 3.16e-5, 1e-4, 3.16e-4, 1e-3]),
    ],
)
def test_candidate_rates(setting: Any, rates: list[float]) -> None:
    assert candidate_rates(setting) == pytest.approx(rates, rel=1e-12)


def test_rate_labels() -> None:
    assert [rate_label(x) for x in (2e-4, 2e-5, 1.5e-4, 3.16e-5, 1e-3)] == ["2e-4", "2e-5", "1.5e-4", "3.16e-5", "1e-3"]


def test_a_sweep_trains_every_candidate_and_adding_one_keeps_the_others() -> None:
    three = copy.deepcopy(TRAINING)
    three["lora"]["learning_rate"] = [1e-4, 2e-4, 4e-4]
    four = copy.deepcopy(three)
    four["lora"]["learning_rate"].append(8e-4)
    grid = expand_grid(training=three, train_sizes=[100])
    assert set(swept_methods(grid.values())) == {"lora-r8-qv-n100", "lora-r32-qv-n100"}  # fft: one rate
    assert sorted(methods(grid.values())["lora-r8-qv-n100"]) == [1e-4, 2e-4, 4e-4]
    added = names(four) - names(three)
    assert names(three) <= names(four) and len(added) == 2 and all("-lr8e-4-" in n for n in added)
