"""One-example-per-call generation over worker processes: how many, the same predictions as
one process, and a failed worker stops the job with its own error."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lora_study.core.conditions import free_memory_bytes
from lora_study.core.io import read_jsonl, write_jsonl
from lora_study.core.results import read_result
from lora_study.model.loading import load_tokenizer
from lora_study.model.prompts import PromptBuilder
from lora_study.model.workers import generate_in_workers, worker_count
from lora_study.stages.quantise.quantise import load_at_precision, predict_at_precision

CPU = {"device": "cpu", "dtype": "auto"}
PROMPT = {"instruction": "Summarize the text.", "chat_template": True, "max_input_tokens": 96}
GENERATION = {"max_new_tokens": 6, "greedy": True, "temperature": 1.0, "top_p": 1.0, "seed": 0}
GIB = 2**30


@pytest.fixture()
def eval_file(tmp_path: Path) -> Path:
    texts = ["The cat sat on the mat.", "Language models " * 12, "A third abstract, briefly.", "Four.", "Fifth one."]
    path = tmp_path / "eval.jsonl"
    write_jsonl(path, [{"id": f"ex{i}", "input": text, "reference": "A summary."} for i, text in enumerate(texts)])
    return path


@pytest.fixture()
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_one_process_per_thread_on_a_cpu_capped_by_examples_and_memory() -> None:
    assert worker_count(device="cpu", examples=20, threads=4, process_bytes=GIB, free_bytes=None) == 4
    assert worker_count(device="cpu", examples=3, threads=8, process_bytes=GIB, free_bytes=None) == 3
    # The job's own process is loaded already: 2.5 GiB free holds two more copies of 1 GiB.
    assert worker_count(device="cpu", examples=20, threads=8, process_bytes=GIB, free_bytes=5 * GIB // 2) == 3
    assert worker_count(device="cpu", examples=20, threads=8, process_bytes=GIB, free_bytes=0) == 1
    assert worker_count(device="cpu", examples=20, threads=1, process_bytes=GIB, free_bytes=None) == 1
    assert worker_count(device="cuda", examples=20, threads=8, process_bytes=GIB, free_bytes=None) == 1


@pytest.mark.usefixtures("threads")
def test_workers_give_the_one_process_predictions(tiny_model_dir: Path, eval_file: Path, tmp_path: Path) -> None:
    """int8-dynamic generates one example per call; with two threads its examples are split
    over two processes, and every prediction is the one a single process makes."""
    runs = {}
    for count in (1, 2):
        torch.set_num_threads(count)
        out = tmp_path / f"threads{count}"
        predict_at_precision(
            model_dir=tiny_model_dir,
            eval_path=eval_file,
            config={"model": CPU, "prompt": PROMPT, "generation": GENERATION, "evaluation": {"batch_size": 4}},
            precision="int8-dynamic",
            options={},
            predictions_path=out / "predictions.jsonl",
            info_path=out / "generation.json",
        )
        runs[count] = (read_jsonl(out / "predictions.jsonl"), read_result(out / "generation.json")["run"])
    (alone, alone_run), (split, split_run) = runs[1], runs[2]
    assert alone_run["workers"] == 1 and split_run["workers"] == 2
    assert alone_run["batch_size"] == split_run["batch_size"] == 1
    assert [row["id"] for row in split] == [f"ex{i}" for i in range(5)]  # the eval file's order
    assert split == alone
    assert any(row["generated_tokens"] > 0 for row in split)


@pytest.mark.usefixtures("threads")
def test_a_failed_worker_stops_the_job_with_its_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    loaded = load_at_precision(model_dir=tiny_model_dir, precision="int8-dynamic", model=CPU, options={})
    tokenizer = load_tokenizer(tiny_model_dir)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=PROMPT)
    missing = tmp_path / "no-such-model"
    # Picklable and loads nothing: the worker process fails where the job's own share succeeds.
    load = functools.partial(load_at_precision, model_dir=str(missing), precision="int8-dynamic", model=CPU, options={})
    with pytest.raises(RuntimeError, match=r"example worker worker1 exited with 1:(.|\n)*no-such-model"):
        generate_in_workers(
            load=load,
            model=loaded.model,
            tokenizer=tokenizer,
            model_dir=tiny_model_dir,
            prompts=[builder.build(text) for text in ("One.", "Two.", "Three.")],
            settings=GENERATION,
            options={"batch_size": 1, "cache": "dynamic"},
            workers=2,
        )


def test_free_memory_is_the_least_of_meminfo_and_every_cgroup_limit_above_the_job(tmp_path: Path) -> None:
    proc, cgroups = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal: 100000000 kB\nMemAvailable: 50000000 kB\n")
    assert free_memory_bytes(proc=proc, cgroups=cgroups) == 50_000_000 * 1024  # no cgroup file: meminfo alone
    (proc / "self" / "cgroup").write_text("0::/slurm/job_7/step_0\n")
    step = cgroups / "slurm" / "job_7" / "step_0"
    step.mkdir(parents=True)
    (step / "memory.max").write_text("max\n")  # the step has no limit of its own...
    (step.parent / "memory.max").write_text(f"{8 * GIB}\n")  # ...but its job has
    (step.parent / "memory.current").write_text(f"{3 * GIB}\n")
    assert free_memory_bytes(proc=proc, cgroups=cgroups) == 5 * GIB
    (cgroups / "memory.max").write_text(f"{4 * GIB}\n")  # a tighter limit at the root
    (cgroups / "memory.current").write_text(f"{2 * GIB}\n")
    assert free_memory_bytes(proc=proc, cgroups=cgroups) == 2 * GIB


def test_free_memory_reads_a_cgroup_v1_memory_limit(tmp_path: Path) -> None:
    proc, cgroups = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemAvailable: 50000000 kB\n")
    (proc / "self" / "cgroup").write_text("5:devices:/\n4:memory:/slurm/uid_1/job_7\n0::/\n")
    job = cgroups / "memory" / "slurm" / "uid_1" / "job_7"
    job.mkdir(parents=True)
    (job / "memory.limit_in_bytes").write_text(f"{6 * GIB}\n")
    (job / "memory.usage_in_bytes").write_text(f"{GIB}\n")
    (cgroups / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert free_memory_bytes(proc=proc, cgroups=cgroups) == 5 * GIB
