"""One-example-per-call generation spread over processes of one CPU thread each.

A model whose predictions depend on their batch-mates (`LoadedModel.batch_dependence`:
LLM.int8, torch's dynamic int8) generates one example per call (evaluate.predict). One
example's forward passes use a second CPU thread poorly: on the default evaluation,
bitsandbytes int8 took 141 s on two threads against 171 s on one (the records of the default
study at --cores 2 and --cores 1). The examples are independent, so a CPU job with T threads
runs T processes of one thread: the job's own process takes the first share of the examples,
and each other process loads the model as the job did (`load` must pickle) and generates its
share. Each example is generated as before, alone in one generate() call; the default study's
int8 and int8-dynamic predictions are the same on one thread as on two. At --cores 2 the int8
quality job took 102 s against 141 s, int8-dynamic 54 s against 62 s (docs/results records
2026-11-27-8d3a4cf-config and 2026-11-27-0b79923-config).

Every process holds its own copy of the model, so the count is also capped by the memory
free for them (the job's resident size after loading, per process).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lora_study.core.io import atomic_write_bytes
from lora_study.model.generation import Generation, generate
from lora_study.model.loading import ModelLoader, load_tokenizer
from lora_study.model.prompts import Prompt

log = logging.getLogger(__name__)

SRC = Path(__file__).resolve().parents[2]  # where a worker imports lora_study from
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def worker_count(*, device: str, examples: int, threads: int, process_bytes: int, free_bytes: int | None) -> int:
    """Processes for `examples` one-example calls: one per thread on a CPU, at most one per
    example, and no more copies of the model than `free_bytes` holds (None: unknown, no cap).
    An accelerator runs them in one process: its work does not divide by CPU threads."""
    if device != "cpu":
        return 1
    count = max(1, min(threads, examples))
    if free_bytes is not None and process_bytes > 0:
        count = min(count, max(1, 1 + free_bytes // process_bytes))  # the job's own process is already loaded
    return count


def generate_in_workers(
    *,
    load: ModelLoader,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    model_dir: str | Path,
    prompts: Sequence[Prompt],
    settings: Mapping[str, Any],
    options: Mapping[str, Any],
    workers: int,
) -> list[Generation]:
    """`generate(..., **options)` over `prompts`, the i-th prompt in share i % workers; share 0
    runs here on `model`, the others in processes that call `load`. Returns the generations
    in the prompts' order; a failed worker raises with the end of its log."""
    shares = [list(range(start, len(prompts), workers)) for start in range(workers)]
    results: dict[int, Generation] = {}
    with tempfile.TemporaryDirectory(prefix="lora-study-workers-") as folder:
        processes = []
        try:
            for number, share in enumerate(shares[1:], start=1):
                job = Path(folder) / f"worker{number}"
                job.with_suffix(".in").write_bytes(
                    pickle.dumps(
                        {
                            "load": load,
                            "model_dir": str(model_dir),
                            "prompts": [prompts[i] for i in share],
                            "settings": dict(settings),
                            "options": dict(options),
                        }
                    )
                )
                processes.append((job, share, _start(job)))
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                own = generate(
                    model=model,
                    tokenizer=tokenizer,
                    prompts=[prompts[i] for i in shares[0]],
                    settings=settings,
                    **options,
                )
            finally:
                torch.set_num_threads(threads)
            results.update(zip(shares[0], own, strict=True))
            for job, share, process in processes:
                results.update(zip(share, _collect(job=job, process=process), strict=True))
        finally:
            for _, _, process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return [results[i] for i in range(len(prompts))]


def _start(job: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, **ONE_THREAD}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), environment.get("PYTHONPATH")]))
    with job.with_suffix(".log").open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "lora_study.model.workers", str(job)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=environment,
        )


def _collect(*, job: Path, process: subprocess.Popen[bytes]) -> list[Generation]:
    code = process.wait()
    if code != 0:
        tail = job.with_suffix(".log").read_text(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"example worker {job.name} exited with {code}:\n" + "\n".join(tail))
    log.info("%s: %s", job.name, job.with_suffix(".log").read_text(errors="replace").strip().splitlines()[-1])
    return pickle.loads(job.with_suffix(".out").read_bytes())


def main(job: Path) -> None:
    """A worker: load the model, generate its share one example per call, write the results."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    started = time.perf_counter()
    task = pickle.loads(job.with_suffix(".in").read_bytes())
    loaded = task["load"]()
    generations = generate(
        model=loaded.model,
        tokenizer=load_tokenizer(task["model_dir"]),
        prompts=task["prompts"],
        settings=task["settings"],
        **task["options"],
    )
    atomic_write_bytes(job.with_suffix(".out"), pickle.dumps(generations))
    log.info("%d examples in %.1f s", len(generations), time.perf_counter() - started)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
