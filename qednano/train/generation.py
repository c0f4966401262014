"""The model being trained as a reasoning-cache rollout policy: batched transformers `generate`.

Under several processes every rank rolls out its own share of the problems (rc.StatePoolCallback).
The model is entered through TRL's `unwrap_model_for_generation`, as GRPOTrainer's own generation
does: it unwraps DDP, gathers DeepSpeed ZeRO-3's sharded parameters (a collective) and turns
gradient checkpointing off; FSDP v1 parameters are summoned the way TRL does it too.

Sharded models impose lockstep. Entering the unwrap is a collective under ZeRO-3, and transformers
runs `generate` with `synced_gpus` under ZeRO-3 and FSDP: each decoding step all-reduces whether
every rank is done, and (FSDP, or ZeRO-3 without gathering) each forward all-gathers layer shards.
So every rank must call `generate` the same number of times, though its share of the problems,
and how many of them are still live after a failed turn, differ. We pad rather than negotiate:
each rank knows, without any communication, the largest share (ceil(problems / world)) and hence
the number of batches every rank runs per turn; a rank with fewer rows runs its missing batches
on one filler prompt and drops the output. That costs at most those one-row batches (a turn's
length is already set by the slowest rank under synced_gpus) and adds no collective of our own
that could itself be mismatched. rc.roll_out calls the policy once per turn even with no live
problem, so the number of turns matches too.

The unwrap is entered once per refresh, around all its turns: one gather of the weights, kept
while the summarizer is called (the memory TRL's own generation already takes).

What is verified on this CPU machine: one process and DDP over gloo (2 processes, torchrun),
where the same padded path runs (tests/test_train_rc.py), and the batch counts (tests/test_rc.py).
ZeRO-3 and FSDP cannot run here (no GPU for DeepSpeed, accelerate's multi-CPU path needs MPI):
their correctness rests on the construction above, mirroring TRL 1.16's GRPOTrainer.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from qednano.llm.types import Completion, Messages, Sampling, Usage, split_reasoning

# A batch of conversations in, one completion each out (failures recorded on the completion).
Policy = Callable[[list[Messages], Sampling], Awaitable[list[Completion]]]


@dataclass(frozen=True)
class Lockstep:
    """Every call runs exactly `batches` generate batches; a batch with no rows generates `filler` alone."""

    batches: int
    filler: Messages

    @classmethod
    def for_share(cls, problems: int, world: int, batch_size: int, filler: Messages) -> Lockstep:
        """Batches per turn of the largest share when `problems` are split problems[rank::world]."""
        return cls(batches=math.ceil(math.ceil(problems / world) / batch_size), filler=filler)


def transformers_policy(model: Any, tokenizer: Any, batch_size: int = 8, device: Any = None,
                        lockstep: Lockstep | None = None) -> Policy:
    """The model being trained as the policy: batched `generate`, left-padded, in eval mode.

    It generates on the calling thread, as TRL does, not in a worker thread: that thread set the
    process's CUDA device and entered the unwrap, and a new thread would start on device 0. The
    event loop it blocks has nothing else to run meanwhile (roll_out awaits the policy alone).
    """

    async def generate(batch: list[Messages], sampling: Sampling) -> list[Completion]:
        return generate_with_transformers(model, tokenizer, batch, sampling, batch_size, device, lockstep)

    return generate


@contextmanager
def trainer_policy(trainer: Any, tokenizer: Any, lockstep: Lockstep | None, batch_size: int = 8) -> Iterator[Policy]:
    """The trainer's model, unwrapped (and gathered, if sharded) for as long as the block runs.

    A collective under ZeRO-3: every rank enters and leaves it once per refresh, together.
    """
    from trl.distributed import DistributedBackend
    from trl.models.utils import unwrap_model_for_generation

    args = trainer.args
    with (
        unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                    gather_deepspeed3_params=args.ds3_gather_for_generation,
                                    gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs) as model,
        DistributedBackend(trainer.accelerator).summon_full_params(trainer.model_wrapped, recurse=False),
    ):
        yield transformers_policy(model, tokenizer, batch_size, trainer.accelerator.device, lockstep)


def generate_with_transformers(model: Any, tokenizer: Any, batch: list[Messages], sampling: Sampling,
                               batch_size: int = 8, device: Any = None,
                               lockstep: Lockstep | None = None) -> list[Completion]:
    import torch

    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    name = str(getattr(model.config, "_name_or_path", "") or "policy")
    device = device if device is not None else model.device
    options: dict[str, Any] = {"max_new_tokens": sampling.max_tokens or 256, "pad_token_id": pad}
    if sampling.temperature:
        options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p or 1.0,
                       top_k=sampling.top_k or 0)
    else:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    chunks = [batch[start:start + batch_size] for start in range(0, len(batch), batch_size)]
    if lockstep is not None:
        if len(chunks) > lockstep.batches:
            raise ValueError(f"lockstep: {len(batch)} prompts need {len(chunks)} batches of {batch_size}, "
                             f"more than the {lockstep.batches} every process runs")
        chunks += [None] * (lockstep.batches - len(chunks))  # None: a filler batch whose output is dropped
    was_training = model.training
    model.eval()  # also switches gradient checkpointing off, so generate keeps its KV cache
    done: list[Completion] = []
    try:
        with torch.no_grad():
            for chunk in chunks:
                ids = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True)["input_ids"] for m in chunk or [lockstep.filler]]
                width = max(map(len, ids))
                input_ids = torch.tensor([[pad] * (width - len(row)) + list(row) for row in ids])
                mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids])
                out = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device), **options)
                if chunk is None:
                    continue
                for prompt, row in zip(ids, out[:, width:].tolist(), strict=True):
                    done.append(completion_from_tokens(name, tokenizer, row, eos_ids, len(prompt)))
    finally:
        model.train(was_training)
    return done


def completion_from_tokens(name: str, tokenizer: Any, tokens: list[int], eos_ids: set[int],
                           prompt_tokens: int) -> Completion:
    stop = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
    kept = tokens if stop is None else tokens[: stop + 1]
    reasoning, content, closed = split_reasoning(tokenizer.decode(kept, skip_special_tokens=True))
    return Completion(model=name, content=content, reasoning=reasoning, reasoning_closed=closed,
                      finish_reason="length" if stop is None else "stop",
                      usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(kept)))
