"""Weight-space drift: effective rank, intruder dimensions, update norms, on constructed
matrices and on adapters and fine-tuned models of the tiny random Llama."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import record_training
from lora_study.core.grid import VariantSpec
from lora_study.core.results import read_result
from lora_study.model.adapters import attach_adapter
from lora_study.model.loading import load_model
from lora_study.stages.weights.weight_drift import (
    effective_rank,
    intruder_cosines,
    left_singular_vectors,
    measure_weight_drift,
    module_drift,
    singular_values,
)

SETTINGS = {
    "top_k": 10,
    "epsilon": 0.5,
    "epsilon_sweep": [0.1, 0.3, 0.5, 0.7, 0.9],
    "energy": 0.9,
    "spectrum_values": 64,
}
LORA_SPEC = VariantSpec(kind="lora", train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")


def orthonormal(rows: int, columns: int, *, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(rows, columns, generator=generator, dtype=torch.float64))
    return q


def random_weight(rows: int, columns: int, *, seed: int) -> torch.Tensor:
    return torch.randn(rows, columns, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("shape", [(48, 32), (32, 48), (40, 40)])
def test_gram_decomposition_matches_torch_svd(shape: tuple[int, int]) -> None:
    weight = random_weight(*shape, seed=1)
    u, s, _ = torch.linalg.svd(weight, full_matrices=False)
    vectors, values = left_singular_vectors(weight=weight)
    assert torch.allclose(values, s, rtol=1e-10)
    assert torch.allclose(singular_values(matrix=weight)[: len(s)], s, rtol=1e-10)
    # The same directions up to sign: |cos| = 1 column by column.
    assert torch.allclose((vectors * u).sum(dim=0).abs(), torch.ones(len(s), dtype=torch.float64), atol=1e-8)


@pytest.mark.parametrize("rank", [1, 4, 8])
def test_effective_rank_of_a_rank_r_update_is_r(rank: int) -> None:
    """Equal singular values: r - 1 of them hold (r - 1)/r < 90% of the energy."""
    update = orthonormal(64, rank, seed=2) @ orthonormal(48, rank, seed=3).T
    assert effective_rank(singular_values=singular_values(matrix=update), energy=0.9) == rank


def test_effective_rank_counts_energy_not_nonzero_values() -> None:
    spectrum = torch.tensor([10.0, 1.0, 0.1])  # the first holds 99% of the squared norm
    assert effective_rank(singular_values=spectrum, energy=0.9) == 1
    assert effective_rank(singular_values=spectrum, energy=0.995) == 2
    assert effective_rank(singular_values=torch.zeros(5), energy=0.9) == 0


def test_a_tiny_perturbation_has_no_intruders() -> None:
    weight = random_weight(64, 64, seed=4)
    tuned = weight + 1e-6 * random_weight(64, 64, seed=5)
    record = module_drift(
        name="model.layers.3.self_attn.q_proj", base_weight=weight, tuned_weight=tuned, settings=SETTINGS
    )
    assert record["intruders"] == 0 and min(record["max_cosine"]) > 0.99
    assert record["layer"] == 3 and record["kind"] == "q_proj"
    assert record["relative_update_norm"] == pytest.approx(
        float(torch.linalg.matrix_norm(tuned - weight) / torch.linalg.matrix_norm(weight)), rel=1e-9
    )


def test_an_orthogonal_direction_with_a_large_singular_value_is_exactly_one_intruder() -> None:
    """W (64 x 64) has rank 50; s u v^T with u outside W's column space and v outside its row
    space is a new top singular direction orthogonal to every pre-trained one, while W's own
    singular vectors stay those of W' (cosine 1)."""
    basis_left, basis_right = orthonormal(64, 51, seed=6), orthonormal(64, 51, seed=7)
    weight = basis_left[:, :50] @ torch.diag(torch.linspace(5.0, 0.5, 50, dtype=torch.float64)) @ basis_right[:, :50].T
    u, v = basis_left[:, 50:], basis_right[:, 50:]
    tuned = weight + 20.0 * u @ v.T
    vectors, values = left_singular_vectors(weight=weight)
    assert vectors.shape[1] == 50  # the null space is not a set of pre-trained directions
    cosines = intruder_cosines(base_vectors=vectors, tuned_weight=tuned, top_k=10)
    assert cosines[0] == pytest.approx(0, abs=1e-8) and min(cosines[1:]) == pytest.approx(1, abs=1e-8)
    record = module_drift(name="w", base_weight=weight, tuned_weight=tuned, settings=SETTINGS)
    assert record["intruders"] == 1 and record["intruders_sweep"] == [1, 1, 1, 1, 1]
    assert record["effective_rank"] == 1 and record["singular_values"][0] == pytest.approx(20.0)
    assert record["base_rank"] == 50 and record["layer"] is None
    # The same direction with a small singular value is not among the top k: no intruder.
    assert (
        module_drift(name="w", base_weight=weight, tuned_weight=weight + 0.1 * u @ v.T, settings=SETTINGS)["intruders"]
        == 0
    )


def save_tiny_adapter(*, model_dir: Path, folder: Path, random_b: bool) -> Path:
    """LoRA r=4 on q_proj, v_proj of the tiny Llama: untrained (B = 0, PEFT's default) or
    with B drawn at random."""
    model = attach_adapter(model=load_model(model_dir=model_dir, device="cpu", dtype=torch.float32), spec=LORA_SPEC)
    if random_b:
        torch.manual_seed(0)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.05)
    model.save_pretrained(folder)
    record_training(folder)
    return folder


TARGETED = {f"model.layers.{layer}.self_attn.{kind}" for layer in (0, 1) for kind in ("q_proj", "v_proj")}


def test_an_untrained_adapter_changes_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = save_tiny_adapter(model_dir=tiny_model_dir, folder=tmp_path / "adapter", random_b=False)
    result = measure_weight_drift(
        spec=LORA_SPEC, model_dir=tiny_model_dir, weights=adapter, settings=SETTINGS, out_path=tmp_path / "weights.json"
    )
    records = result["metrics"]["modules"]
    assert {r["module"] for r in records} == TARGETED
    for record in records:
        assert record["update_norm"] == 0 and record["relative_update_norm"] == 0
        assert record["effective_rank"] == 0 and record["intruders"] == 0 and record["intruders_sweep"] == [0] * 5
    summary = result["metrics"]["summary"]
    assert (
        summary["intruders"] == 0
        and summary["mean_relative_update_norm"] == 0
        and summary["median_effective_rank"] == 0
    )
    assert read_result(tmp_path / "weights.json")["metrics"]["summary"] == summary


def test_a_tiny_adapter_gives_records_for_exactly_its_targets(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = save_tiny_adapter(model_dir=tiny_model_dir, folder=tmp_path / "adapter", random_b=True)
    result = measure_weight_drift(
        spec=LORA_SPEC, model_dir=tiny_model_dir, weights=adapter, settings=SETTINGS, out_path=tmp_path / "weights.json"
    )
    records = {r["module"]: r for r in result["metrics"]["modules"]}
    assert set(records) == TARGETED
    # PEFT's merge, checked against the saved factors: dW = (alpha / r) B A.
    tensors = load_file(adapter / "adapter_model.safetensors")
    base = dict(load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32).named_modules())
    for name, record in records.items():
        prefix = f"base_model.model.{name}"
        update = 2.0 * tensors[f"{prefix}.lora_B.weight"].double() @ tensors[f"{prefix}.lora_A.weight"].double()
        expected = torch.linalg.matrix_norm(update) / torch.linalg.matrix_norm(base[name].weight.detach().double())
        assert record["relative_update_norm"] == pytest.approx(float(expected), rel=1e-5)
        assert 1 <= record["effective_rank"] <= LORA_SPEC.rank
        assert record["singular_values"][LORA_SPEC.rank] < 1e-5 * record["singular_values"][0]  # rank r at most
        assert len(record["max_cosine"]) == SETTINGS["top_k"]


def test_full_fine_tuning_analyses_every_changed_linear(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Only the Linear weights that changed are analysed; a changed norm is listed apart."""
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight.add_(0.01)
        model.model.layers[0].self_attn.k_proj.weight.mul_(1.1)
        model.model.layers[0].input_layernorm.weight.add_(0.5)
    model.save_pretrained(tmp_path / "model")
    record_training(tmp_path / "model")
    spec = VariantSpec(kind="fft", train_size=4, seed=1, learning_rate=1e-5)
    result = measure_weight_drift(
        spec=spec,
        model_dir=tiny_model_dir,
        weights=tmp_path / "model",
        settings=SETTINGS,
        out_path=tmp_path / "weights.json",
    )
    records = {r["module"]: r for r in result["metrics"]["modules"]}
    assert set(records) == {"model.layers.1.mlp.down_proj", "model.layers.0.self_attn.k_proj"}
    assert records["model.layers.1.mlp.down_proj"]["effective_rank"] == 1  # adding a constant is rank 1
    assert records["model.layers.0.self_attn.k_proj"]["relative_update_norm"] == pytest.approx(0.1, rel=1e-5)
    assert records["model.layers.0.self_attn.k_proj"]["intruders"] == 0  # scaling W keeps its directions
    assert [p["parameter"] for p in result["metrics"]["other_changed"]] == ["model.layers.0.input_layernorm.weight"]


def test_a_qlora_adapter_is_merged_into_the_full_precision_base(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The same adapter files read as QLoRA give the same records: merged into float32 weights,
    never into 4-bit ones (whose quantisation error would show up as update)."""
    adapter = save_tiny_adapter(model_dir=tiny_model_dir, folder=tmp_path / "adapter", random_b=True)
    qlora = VariantSpec(kind="qlora", train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")
    records = [
        measure_weight_drift(
            spec=spec,
            model_dir=tiny_model_dir,
            weights=adapter,
            settings=SETTINGS,
            out_path=tmp_path / f"{spec.kind}.json",
        )["metrics"]["modules"]
        for spec in (LORA_SPEC, qlora)
    ]
    assert records[0] == records[1]


def test_the_job_reads_the_prepared_model_once(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base and the merged model are two models in memory, but one read of the prepared
    model: the merge goes into a copy of the loaded base (whose weights stay the base's)."""
    from transformers import AutoModelForCausalLM

    adapter = save_tiny_adapter(model_dir=tiny_model_dir, folder=tmp_path / "adapter", random_b=True)
    reads: list[str] = []
    original = AutoModelForCausalLM.from_pretrained.__func__

    def counted(cls, path, *args, **kwargs):
        reads.append(str(path))
        return original(cls, path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(counted))
    result = measure_weight_drift(
        spec=LORA_SPEC, model_dir=tiny_model_dir, weights=adapter, settings=SETTINGS, out_path=tmp_path / "weights.json"
    )
    assert len(reads) == 1, reads
    assert result["metrics"]["summary"]["mean_relative_update_norm"] > 0
