"""Batched generation with left padding, returning only what the model generated.

Greedy decoding of a batch gives each row what it gives alone (left padding with the
attention mask and the position ids derived from it: tests/test_generation.py), so how many
prompts go into one `generate()` call is a speed setting, never a result: on a CPU the
per-step cost of a small model is mostly fixed overhead (Python, kernel launches, reading
the weights), so fewer, larger batches make more tokens per second (bench/generation_speed.py).

Two more speed settings, `evaluation.cache` and `evaluation.compile`:
- `prefilled` (the default): each prompt prefilled on its own without padding, the prompts'
  shared opening once, into a cache allocated once per batch that decoding steps write in
  place (`lora_study.model.prefill`, which says what it saves); a model whose cache has sliding-window
  or other non-growing layers falls back to `dynamic`. Greedy decoding then runs in
  `lora_study.model.greedy`'s loop, which drops each row at its stop token; sampling runs in
  transformers' generate().
- `static`: transformers' StaticCache, preallocated to the batch's prompt width plus
  max_new_tokens, so every decoding step has the same shapes (what compilation and CUDA
  graphs need); `dynamic` grows the cache step by step.
- compile: transformers compiles the forward pass of a static-cache generation
  (`torch.compile`, mode reduce-overhead: CUDA graphs on a GPU). `auto` lets transformers do
  it where it does by default (CUDA and other accelerators, never the CPU, where compiling
  cost more than it saved: `bench/generation_speed.py --compile`; on a GPU it is not measured
  here, no GPU being at hand); `true` asks for it on every device; `false` never.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import CompileConfig, GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from lora_study.core.progress import Progress
from lora_study.model.greedy import greedy_decode
from lora_study.model.prefill import prefilled_cache, supports_prefill
from lora_study.model.prompts import Prompt, generated_token_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    generated_tokens: int
    stopped: bool  # True: the model ended its answer; False: cut at max_new_tokens


def stop_token_ids(*, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Tokens that end an answer: the model's EOS id(s) and the tokenizer's EOS."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def speed_options(*, cache: str = "prefilled", compile_mode: str = "false") -> dict[str, Any]:
    """GenerationConfig fields for `evaluation.cache` and `evaluation.compile` (module docstring)."""
    options: dict[str, Any] = {}
    if cache == "static":
        options["cache_implementation"] = "static"
    if compile_mode == "false":
        options["disable_compile"] = True
    elif compile_mode == "true":
        if cache != "static":
            raise ValueError(
                "evaluation.compile: true needs evaluation.cache: static (transformers compiles only then)"
            )
        config = CompileConfig()
        config._compile_all_devices = True  # transformers' own switch for devices it skips by default (the CPU)
        options["compile_config"] = config
    return options


def generation_config(
    *, settings: Mapping[str, Any], pad_id: int, stop_ids: set[int], speed: Mapping[str, Any] | None = None
) -> GenerationConfig:
    """The study's generation settings as an explicit config (without_model_defaults then keeps
    the model's own out). `speed`: speed_options(), fields that change how fast, never what is
    generated."""
    # top_k 0: no top-k cut (transformers' global default is 50): temperature and top_p are the
    # whole sampling rule, as the config says.
    sampling = (
        {} if settings["greedy"] else {"temperature": settings["temperature"], "top_p": settings["top_p"], "top_k": 0}
    )
    return GenerationConfig(
        max_new_tokens=settings["max_new_tokens"],
        do_sample=not settings["greedy"],
        pad_token_id=pad_id,
        eos_token_id=sorted(stop_ids),
        **sampling,
        **(speed or {}),
    )


# Fields of a model's generation_config.json that do not choose tokens.
NOT_DECODING = frozenset(
    {
        "_from_model_config",
        "bos_token_id",
        "decoder_start_token_id",
        "eos_token_id",
        "max_length",  # max_new_tokens, always set, takes precedence
        "output_attentions",
        "output_hidden_states",
        "pad_token_id",
        "transformers_version",
        "use_cache",
    }
)


def without_model_defaults(*, config: GenerationConfig, model: PreTrainedModel) -> GenerationConfig:
    """`config` with each decoding field that it leaves unset and the model's own
    generation_config sets pinned to transformers' global default.

    generate() fills every unset field from the model's generation_config.json (Qwen2.5-Instruct's
    sets repetition_penalty 1.05 and top_k 20), which would apply settings the study's config
    never named, and only on generate()'s path. A field with no global default to pin is an
    error that names it."""
    inherited = {
        key
        for key, value in model.generation_config.to_diff_dict().items()
        if key not in NOT_DECODING and value is not None and getattr(config, key, None) is None
    }
    # transformers' own table of global defaults (what generate() falls back to).
    defaults = config._get_default_generation_params()
    unpinnable = sorted(key for key in inherited if defaults.get(key) is None)
    if unpinnable:
        raise ValueError(
            f"the model's generation_config.json sets {', '.join(unpinnable)}, which transformers' generate() "
            "would apply on top of the study's generation settings; remove them from that file"
        )
    pinned = copy.deepcopy(config)
    pinned.update(**{key: defaults[key] for key in inherited})
    return pinned


def evaluation_options(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """generate()'s batch_size, cache and compile_mode from the config's `evaluation` block
    (a block written before cache and compile existed means what it meant then)."""
    return {
        "batch_size": evaluation["batch_size"],
        "cache": evaluation.get("cache", "dynamic"),
        # YAML reads true/false as booleans.
        "compile_mode": str(evaluation.get("compile", "auto")).lower(),
    }


def batch_count(batch_size: int | str, examples: int) -> int:
    """Prompts per generate() call for `evaluation.batch_size` (a number, or `all`)."""
    return max(1, examples) if batch_size == "all" else int(batch_size)


def left_pad(*, prompts: Sequence[Prompt], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask with every prompt right-aligned, so all rows'
    generated tokens start at the same position."""
    width = max(len(p.input_ids) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt.input_ids) :] = torch.tensor(prompt.input_ids)
        mask[row, width - len(prompt.input_ids) :] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def generate(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    settings: Mapping[str, Any],
    batch_size: int | str,
    cache: str = "prefilled",
    compile_mode: str = "false",
    transformers_loop: bool = False,
) -> list[Generation]:
    """Generate for every prompt, in batches of similar length (less padding; `all`: one
    batch), and return the results in the prompts' order. `cache`, `compile`: speed_options.
    `transformers_loop`: decode greedily in transformers' generate() even where the greedy loop
    applies (bench/generation_speed.py compares the two)."""
    pad_id = tokenizer.pad_token_id
    stop_ids = stop_token_ids(model=model, tokenizer=tokenizer)
    config = without_model_defaults(
        config=generation_config(
            settings=settings,
            pad_id=pad_id,
            stop_ids=stop_ids,
            speed=speed_options(cache=cache, compile_mode=compile_mode),
        ),
        model=model,
    )
    batch_size = batch_count(batch_size, len(prompts))
    prefill = cache == "prefilled" and supports_prefill(model)
    if cache == "prefilled" and not prefill:
        log.info("%s: a cache layer that is not a plain growing one; generating with the dynamic cache", type(model))
    greedy_loop = prefill and settings["greedy"] and not transformers_loop
    if not settings["greedy"]:
        torch.manual_seed(settings["seed"])
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].input_ids))
    results: dict[int, Generation] = {}
    progress = Progress(total=len(prompts), unit="examples")
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]

        def decoding(token: int, ended: int, *, done: int = start, rows: int = len(batch)) -> None:
            if progress.due():  # within a batch: its decoding step and the rows that have ended
                log.info(
                    "token %d/%d of a batch of %d (%d ended); %s",
                    token,
                    settings["max_new_tokens"],
                    rows,
                    ended,
                    progress.line(done),
                )

        rows = generate_batch(
            model=model,
            prompts=[prompts[i] for i in batch],
            new_tokens=settings["max_new_tokens"],
            config=config,
            stop_ids=stop_ids,
            prefill=prefill,
            greedy_loop=greedy_loop,
            on_token=decoding,
        )
        for index, row in zip(batch, rows, strict=True):
            results[index] = Generation(
                text=tokenizer.decode(row, skip_special_tokens=True).strip(),
                prompt_tokens=len(prompts[index].input_ids),
                generated_tokens=len(row),
                stopped=len(row) < settings["max_new_tokens"],
            )
        log.info("generated %s", progress.line(start + len(batch)))
    return [results[i] for i in range(len(prompts))]


def generate_batch(
    *,
    model: PreTrainedModel,
    prompts: Sequence[Prompt],
    new_tokens: int,
    config: GenerationConfig,
    stop_ids: set[int],
    prefill: bool,
    greedy_loop: bool,
    on_token: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """One batch's generated tokens per prompt, up to and excluding the first stop token.
    `on_token(tokens decoded, rows ended)` after each step of the greedy loop (progress)."""
    device = str(model.device)
    past = (
        prefilled_cache(
            model=model,
            prompts=prompts,
            new_tokens=new_tokens,
            # A CPU computes nothing on padding prompt by prompt; an accelerator's parallelism
            # outweighs the padding of one pass (not measured: no GPU was at hand).
            rows_per_pass=1 if device == "cpu" else len(prompts),
        )
        if prefill
        else None
    )
    if greedy_loop:
        return greedy_decode(
            model=model, prompts=prompts, cache=past, new_tokens=new_tokens, stop_ids=stop_ids, on_token=on_token
        )
    ids, mask = left_pad(prompts=prompts, pad_id=config.pad_token_id, device=device)
    sequences = model.generate(input_ids=ids, attention_mask=mask, past_key_values=past, generation_config=config)
    return generated_token_ids(sequences=sequences, prompt_length=ids.shape[1], stop_ids=stop_ids)
