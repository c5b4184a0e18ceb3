"""The serving benchmark on the tiny model: request streams, served batches, mixed adapters,
and the fields of the serving files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from peft import PeftModel
from test_merge import merge_into, merge_settings, random_adapter, spec_of

from conftest import REPO
from lora_study.core.config import load_config
from lora_study.core.data import Example
from lora_study.core.io import write_jsonl
from lora_study.core.results import read_result
from lora_study.model.loading import load_model, load_tokenizer
from lora_study.stages.serving import engine
from lora_study.stages.serving.engine import Call, batch_metrics, request_stream, serve_once
from lora_study.stages.serving.modes import serve_modes
from lora_study.stages.serving.multi_adapter import groups, serve_multi_adapter

SUMMARY = {"n", "mean", "std", "min", "p50", "p95", "max"}
BATCH_METRICS = {
    "timed_passes",
    "request_latency_seconds",
    "ttft_seconds",
    "request_decode_tokens_per_second",
    "batch_seconds",
    "throughput_tokens_per_second",
    "under_load",
    "runs_under_load",
    "max_other_cores",
    "max_load_average_1m",
    "under_load_definition",
    "other_cores_limit",
    "peak_rss_bytes",
    "peak_rss_since_reset",
    "peak_cuda_bytes",
}
CALL_FIELDS = {
    "label",
    "rows",
    "start_seconds",
    "seconds",
    "ttft_seconds",
    "new_tokens",
    "load_average_1m",
    "cpu_seconds",
    "other_cpu_seconds",
    "other_cores",
}


@pytest.fixture()
def config() -> dict:
    full = load_config(REPO / "config.yaml", REPO / "configs" / "tiny.yaml")
    full["serving"] = {**full["serving"], "batch_sizes": [1, 3], "new_tokens": 3, "warmup": 1, "repeats": 2}
    return full


@pytest.fixture()
def eval_file(tmp_path: Path) -> Path:
    rows = [Example(id=f"e{i}", input=f"Abstract {i}." + " Adapters and ranks." * i, reference="x") for i in range(2)]
    write_jsonl(tmp_path / "eval.jsonl", [vars(row) for row in rows])
    return tmp_path / "eval.jsonl"


def test_request_stream_cycles_and_cuts_inputs(tiny_model_dir: Path, eval_file: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    prompt = {"instruction": "Summarize.", "chat_template": True, "max_input_tokens": 512}
    requests = request_stream(eval_path=eval_file, tokenizer=tokenizer, prompt=prompt, max_prompt_tokens=40, count=5)
    assert [r.id for r in requests] == ["e0", "e1", "e0#1", "e1#1", "e0#2"]
    assert requests[2].prompt == requests[0].prompt
    assert max(len(r.prompt.input_ids) for r in requests) <= 40
    assert requests[1].prompt.truncated  # the longer abstract was cut to fit


def test_groups_assign_adapters_round_robin() -> None:
    assert groups(5, ["a", "b"]) == [("a", [0, 2, 4]), ("b", [1, 3])]
    assert groups(1, ["a", "b", "c"]) == [("a", [0])]


def test_each_row_of_a_mixed_batch_gets_its_adapters_own_tokens(tiny_model_dir: Path, tmp_path: Path) -> None:
    names = ["one", "two"]
    adapters = [
        random_adapter(spec=spec_of("lora"), model_dir=tiny_model_dir, out=tmp_path / n / "adapter", seed=i)
        for i, n in enumerate(names)
    ]
    tokenizer = load_tokenizer(tiny_model_dir)
    model = PeftModel.from_pretrained(
        load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32), adapters[0], adapter_name="one"
    )
    model.load_adapter(adapters[1], adapter_name="two")
    model.eval()
    prompt = {"instruction": "Summarize.", "chat_template": True, "max_input_tokens": 64}
    rows = [Example(id=str(i), input="Words " * (2 + 3 * i), reference="x") for i in range(4)]
    write_jsonl(tmp_path / "eval.jsonl", [vars(row) for row in rows])
    requests = request_stream(
        eval_path=tmp_path / "eval.jsonl", tokenizer=tokenizer, prompt=prompt, max_prompt_tokens=64, count=4
    )
    row_adapters = ["one", "two", "two", "one"]
    mixed = serve_once(
        calls=[Call(model=model, rows=range(4), label="mixed", generate_kwargs={"adapter_names": row_adapters})],
        requests=requests,
        tokenizer=tokenizer,
        new_tokens=6,
        device="cpu",
    )
    for row, name in enumerate(row_adapters):
        model.set_adapter(name)
        alone = serve_once(
            calls=[Call(model=model, rows=[0], label=name)],
            requests=[requests[row]],
            tokenizer=tokenizer,
            new_tokens=6,
            device="cpu",
        )
        assert mixed["request_token_ids"][row] == alone["request_token_ids"][0]
    # The adapters differ, so the check above can tell them apart.
    model.set_adapter("two")
    other = serve_once(
        calls=[Call(model=model, rows=[0], label="two")],
        requests=[requests[0]],
        tokenizer=tokenizer,
        new_tokens=6,
        device="cpu",
    )
    assert other["request_token_ids"][0] != mixed["request_token_ids"][0]


def test_grouped_requests_wait_for_the_groups_before_them(tiny_model_dir: Path, eval_file: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    prompt = {"instruction": "Summarize.", "chat_template": True, "max_input_tokens": 64}
    requests = request_stream(eval_path=eval_file, tokenizer=tokenizer, prompt=prompt, max_prompt_tokens=64, count=3)
    served = serve_once(
        calls=[Call(model=model, rows=[0, 2], label="a"), Call(model=model, rows=[1], label="b")],
        requests=requests,
        tokenizer=tokenizer,
        new_tokens=3,
        device="cpu",
    )
    first, second = served["calls"]
    latency, ttft = served["request_latency_seconds"], served["request_ttft_seconds"]
    # Rows of the first call finish with it; the second call's row waited for the first call.
    assert latency[0] == latency[2] == pytest.approx(first["start_seconds"] + first["seconds"], abs=0.05)
    assert latency[1] >= second["start_seconds"] + second["seconds"] - 1e-9
    assert second["start_seconds"] >= first["seconds"]
    assert ttft[1] == pytest.approx(latency[1] - second["seconds"] + second["ttft_seconds"])
    assert ttft[1] > first["seconds"] and served["seconds"] >= latency[1]
    metrics = batch_metrics([served, served], batch_size=3, new_tokens=3)
    assert metrics["request_latency_seconds"]["n"] == 6 and metrics["request_latency_seconds"]["max"] == max(latency)
    assert metrics["throughput_tokens_per_second"]["mean"] == pytest.approx(3 * 3 / served["seconds"])


def _check_batches(batches: list[dict], *, batch_sizes: list[int], calls: list[int]) -> None:
    assert [b["batch_size"] for b in batches] == batch_sizes
    for batch, expected_calls in zip(batches, calls, strict=True):
        assert set(batch["metrics"]) == BATCH_METRICS
        for key in ("request_latency_seconds", "ttft_seconds", "batch_seconds", "throughput_tokens_per_second"):
            assert set(batch["metrics"][key]) == SUMMARY
        assert batch["metrics"]["request_latency_seconds"]["n"] == 2 * batch["batch_size"]  # 2 timed passes
        assert batch["metrics"]["peak_rss_bytes"] > 0
        assert len(batch["warmup"]) == 1 and len(batch["runs"]) == 2
        assert batch["calls_per_batch"] == expected_calls
        for served in batch["runs"]:
            assert len(served["calls"]) == expected_calls
            assert all(set(call) == CALL_FIELDS for call in served["calls"])
            assert all(len(tokens) == 3 for tokens in served["request_token_ids"])  # exactly new_tokens


def test_serving_files_have_every_field(tiny_model_dir: Path, tmp_path: Path, config: dict, eval_file: Path) -> None:
    spec = spec_of("lora")
    adapter = random_adapter(spec=spec, model_dir=tiny_model_dir, out=tmp_path / "v" / "adapter")
    merge_config = merge_settings(config)
    merge_into(
        tmp_path / "m",
        spec=spec,
        adapter=adapter,
        model_dir=tiny_model_dir,
        eval_path=eval_file,
        config=merge_config,
    )
    settings = {k: config[k] for k in ("model", "prompt", "serving")}
    out = {mode: tmp_path / "serving" / f"{mode}.json" for mode in ("base", "merged", "unmerged")}
    serve_modes(
        modes={"base": None}, out_paths=out, model_dir=tiny_model_dir, eval_path=eval_file, config=settings, spec=None
    )
    serve_modes(
        modes={"merged": tmp_path / "m" / "model", "unmerged": adapter},
        out_paths=out,
        model_dir=tiny_model_dir,
        eval_path=eval_file,
        config=settings,
        spec=spec,
    )
    tokens = {}
    for mode in ("base", "merged", "unmerged"):
        result = read_result(out[mode])
        assert result["run"]["mode"] == mode
        assert result["run"]["variant"] == ("base" if mode == "base" else spec.name)
        assert result["run"]["interleaved_with"] == {"base": [], "merged": ["unmerged"], "unmerged": ["merged"]}[mode]
        metrics = result["metrics"]
        assert {"load_seconds", "weight_bytes", "rss_after_load_bytes", "cuda_allocated_bytes", "under_load"} <= set(
            metrics
        )
        assert metrics["weight_bytes"] > 0 and metrics["cuda_allocated_bytes"] is None
        assert result["meta"]["torch_threads"] >= 1 and result["meta"]["dtype"] == "float32"
        _check_batches(metrics["batches"], batch_sizes=[1, 3], calls=[1, 1])
        tokens[mode] = metrics["batches"][1]["runs"][0]["request_token_ids"]
    # The merged export and the unmerged adapter serve the same tokens; the base others.
    assert tokens["merged"] == tokens["unmerged"] != tokens["base"]
    # Interleaved: pass k of merged ran just before pass k of unmerged.
    merged_calls = [run["calls"][0] for run in read_result(out["merged"])["metrics"]["batches"][1]["runs"]]
    unmerged_calls = [run["calls"][0] for run in read_result(out["unmerged"])["metrics"]["batches"][1]["runs"]]
    assert len(merged_calls) == len(unmerged_calls) == 2


def test_multi_adapter_serves_three_ways_and_excludes_dora(
    tiny_model_dir: Path, tmp_path: Path, config: dict, eval_file: Path
) -> None:
    specs, adapters, merged = [], [], []
    merge_config = merge_settings(config)
    for index, kind in enumerate(["lora", "rslora", "dora"]):
        spec = spec_of(kind)
        adapter = random_adapter(spec=spec, model_dir=tiny_model_dir, out=tmp_path / kind / "adapter", seed=index)
        merge_into(
            tmp_path / kind / "merged",
            spec=spec,
            adapter=adapter,
            model_dir=tiny_model_dir,
            eval_path=eval_file,
            config=merge_config,
        )
        specs.append(spec)
        adapters.append(adapter)
        merged.append(tmp_path / kind / "merged" / "model")
    out = tmp_path / "multi_adapter.json"
    serve_multi_adapter(
        specs=specs,
        adapters={spec.name: path for spec, path in zip(specs[:2], adapters[:2], strict=True)},
        merged={spec.name: path for spec, path in zip(specs[:2], merged[:2], strict=True)},
        model_dir=tiny_model_dir,
        eval_path=eval_file,
        config={k: config[k] for k in ("model", "prompt", "serving")},
        out_path=out,
    )
    result = read_result(out)
    assert result["run"]["adapters"] == [specs[0].name, specs[1].name]
    assert set(result["run"]["excluded"]) == {specs[2].name}
    assert "DoRA" in result["run"]["excluded"][specs[2].name]
    modes = result["metrics"]["modes"]
    assert list(modes) == ["mixed", "grouped", "merged"]
    _check_batches(modes["mixed"]["batches"], batch_sizes=[1, 3], calls=[1, 1])
    _check_batches(modes["grouped"]["batches"], batch_sizes=[1, 3], calls=[1, 2])
    _check_batches(modes["merged"]["batches"], batch_sizes=[1, 3], calls=[1, 2])
    # Two merged models hold twice the base's weights; one base with two adapters far less.
    assert modes["merged"]["weight_bytes"] > 1.8 * modes["mixed"]["weight_bytes"]
    # Every way gives each request the tokens of its own adapter.
    tokens = {mode: modes[mode]["batches"][1]["runs"][0]["request_token_ids"] for mode in modes}
    assert tokens["mixed"] == tokens["grouped"] == tokens["merged"]
    assert tokens["mixed"][0] == tokens["mixed"][2]  # e0 and e0#1: the same prompt and adapter


def test_modes_take_turns_running_first_abba(monkeypatch: pytest.MonkeyPatch) -> None:
    # Which mode served when: the sweep's own loop, with serving itself replaced by a record.
    served: list[tuple[str, int]] = []

    def fake_serve(*, calls, requests, tokenizer, new_tokens, device):
        served.append((calls[0], len(requests)))
        return {"calls": [], "batch_seconds": 1.0, "request_latency_seconds": [1.0] * len(requests)}

    monkeypatch.setattr(engine, "serve_once", fake_serve)
    summary = {"request_latency_seconds": {"p50": 1.0, "p95": 1.0}, "throughput_tokens_per_second": {"p50": 1.0}}
    monkeypatch.setattr(engine, "batch_metrics", lambda runs, **_: summary)
    requests = [engine.Request(id=str(i), prompt=SimpleNamespace(input_ids=[1, 2])) for i in range(2)]
    results = engine.sweep(
        plans={"merged": lambda batch: ["merged"], "unmerged": lambda batch: ["unmerged"]},
        requests=requests,
        tokenizer=None,
        batch_sizes=[1, 2],
        new_tokens=1,
        warmup=2,
        repeats=4,
        device="cpu",
    )
    order = [mode for mode, _ in served]
    per_batch = ["merged", "unmerged", "unmerged", "merged"] * 3  # 2 warm-up then 4 timed passes
    assert order == per_batch * 2
    for mode in ("merged", "unmerged"):
        for batch in results[mode]:
            # Each mode ran first in half of the timed passes, and each pass says where it ran.
            assert sorted(run["position"] for run in batch["runs"]) == [0, 0, 1, 1]
            assert [run["repeat"] for run in batch["runs"]] == [0, 1, 2, 3]
    assert engine.pass_order(["a", "b", "c"], index=1) == ["c", "b", "a"]
