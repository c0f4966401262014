"""Reasoning-cache RL states (stage 3): training prompts that start part-way through a rollout.

At test time the reasoning cache (`scaffolds/reasoning_cache.py`) solves a problem in turns: a
turn reasons for at most H_R tokens, a frozen summarizer condenses that reasoning into at most
H_S tokens, and the next turn sees only the problem and the summary. To train a policy for turns
after the first, RC-RL rolls the *current* policy out on each training problem and keeps the
states it passes through: s_0 is the problem alone, s_t the problem plus the summary written
after turn t (the previous summary when that one came back empty, as the scaffold carries on).
Of the T + 1 states of a problem, `states_per_problem` are drawn without replacement; each
becomes a GRPO prompt built by the scaffold's own `turn_messages`, so a trained turn sees exactly
what `qednano solve --scaffold rc` will show it. Rows keep the problem's `problem_id` (rewards
grade against the original problem) and add `state` (t).

The pool is refreshed every `refresh_steps` optimizer steps by `StatePoolCallback`, with the
model being trained (generation.py): under several processes each rolls out and summarizes its
own share of the problems, and the shares are gathered so every rank holds the same pool. The
training dataset is a fixed list of slots (problem, draw) whose prompts are read from the pool
when the data loader fetches them (`datasets.Dataset.with_transform`), so the trainer's sampler,
grouping and resumption stay TRL's own. Accelerate's loader fetches one batch ahead, so a refresh
is seen from the second batch after it.

TRL's `rollout_func` would allow a refresh per generation, but it receives only the prompts of a
batch, and a group of G rollouts must share one state for its advantage baseline to mean
anything; refreshing between steps keeps that invariant without rewriting TRL's generation.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback

from qednano.llm.model import Model
from qednano.llm.types import Completion, Messages, Sampling
from qednano.problems.record import Problem
from qednano.scaffolds.reasoning_cache import carry_summary, reasoning_of, summary_messages, turn_messages
from qednano.train.generation import Lockstep, Policy, trainer_policy

log = logging.getLogger(__name__)

GENERATE_BATCH = 8  # prompts per `generate` call when the trainer's model rolls out


@dataclass
class ReasoningCacheConfig:
    """The `rc:` section of an RL recipe; absent means plain GRPO on the problems."""

    turns: int = field(default=3, metadata={"help": "Reasoning turns T per rollout; the states are s_0 … s_T."})
    states_per_problem: int = field(
        default=2, metadata={"help": "States drawn per problem, without replacement, from s_0 … s_T."}
    )
    summarizer: str = field(
        default="smollm2", metadata={"help": "The frozen summarizer: any registered model, YAML path or spec."}
    )
    reasoning_tokens: int = field(default=256, metadata={"help": "H_R: tokens the policy may reason per turn."})
    summary_tokens: int = field(default=128, metadata={"help": "H_S: tokens the summarizer may write."})
    refresh_steps: int = field(
        default=10, metadata={"help": "K: rebuild the state pool with the current policy every K optimizer steps."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the state draws (refresh r uses seed + r)."})
    first_turn: str = field(default="solve", metadata={
        "help": "Prompt of s_0: solve, or continue from the no-summary note (as the rc-qed-nano scaffold evaluates)."})
    summary_thinking: bool | None = field(default=None, metadata={
        "help": "false: ask the summarizer's server to skip thinking (the scaffold's summary_thinking)."})

    def __post_init__(self) -> None:
        if self.turns < 1:
            raise ValueError(f"rc.turns must be at least 1, got {self.turns}")
        if not 1 <= self.states_per_problem <= self.turns + 1:
            raise ValueError(f"rc.states_per_problem must be between 1 and turns + 1 = {self.turns + 1} "
                             f"(the states s_0 … s_T), got {self.states_per_problem}")
        if self.first_turn not in ("solve", "continue"):
            raise ValueError(f"rc.first_turn must be solve or continue, got {self.first_turn!r}")
        for name in ("reasoning_tokens", "summary_tokens", "refresh_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"rc.{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class ProblemStates:
    """The states one rollout reached: summaries[t] is s_t's summary (None for s_0)."""

    summaries: list[str | None] = field(default_factory=lambda: [None])
    failure: str | None = None  # why the rollout stopped before turn T, if it did
    empty_summaries: list[str] = field(default_factory=list)  # notes of summaries that came back empty


async def roll_out(problems: Sequence[Problem], policy: Policy, summarizer: Model,
                   config: ReasoningCacheConfig, sampling: Sampling | None = None) -> list[ProblemStates]:
    """RC rollouts of every problem, turn by turn: each turn is one policy batch over all problems.

    A failed turn or summarizer call ends that problem's rollout; the states it reached stay
    usable. An empty summary does not: as in the scaffold (`carry_summary`), the next state keeps
    the previous summary, and the note is kept on the problem's states (`rc/empty_summaries`).
    The policy is called for every turn, even with no problem left: a sharded model's ranks must
    all generate as often as each other (generation.py).
    """
    reason = (sampling or Sampling()).model_copy(update={"max_tokens": config.reasoning_tokens})
    summarize = Sampling(max_tokens=config.summary_tokens, thinking=config.summary_thinking)
    states = [ProblemStates() for _ in problems]
    for t in range(1, config.turns + 1):
        live = [i for i, s in enumerate(states) if s.failure is None]
        prompts = [turn_messages(problems[i], states[i].summaries[-1], first_turn=config.first_turn) for i in live]
        turns = await policy(prompts, reason)
        notes = await asyncio.gather(*[
            summarizer.complete(summary_messages(problems[i], states[i].summaries[-1], reasoning_of(turn)), summarize)
            for i, turn in zip(live, turns, strict=True) if turn.ok
        ])
        written = iter(notes)
        for i, turn in zip(live, turns, strict=True):
            note = next(written) if turn.ok else None
            if note is None:
                states[i].failure = f"turn {t} reasoning failed: {turn.error}"
            elif not note.ok:
                states[i].failure = f"turn {t} summary failed: {note.error}"
            else:
                summary, empty = carry_summary(states[i].summaries[-1], note, t)
                states[i].summaries.append(summary)
                states[i].empty_summaries += [empty] if empty else []
    return states


def draw_states(available: int, wanted: int, rng: random.Random) -> list[int]:
    """`wanted` state indices out of `available`, without replacement while any are left.

    A rollout that stopped early offers fewer states; its draws then repeat (counted as short).
    """
    picked = rng.sample(range(available), min(available, wanted))
    while len(picked) < wanted:
        picked.append(picked[len(picked) % available])
    return sorted(picked)


def model_policy(model: Model) -> Policy:
    """Any registered model as the policy (tests, or a served copy of the weights being trained).

    Give it a Model without a call cache: a cached answer would replay an older policy's turn.
    """

    async def generate(batch: list[Messages], sampling: Sampling) -> list[Completion]:
        return list(await asyncio.gather(*[model.complete(messages, sampling) for messages in batch]))

    return generate


class StatePool:
    """The training prompts of RC-RL: `states_per_problem` slots per problem, filled from rollouts.

    `rows[i]` is problem i's row of the plain GRPO dataset (its `problem_id` and whatever columns
    the rewards read); a slot's row is that row with `prompt` replaced by the state's turn prompt
    and `state` added. Before the first refresh every slot holds s_0.
    """

    def __init__(self, problems: Sequence[Problem], rows: Sequence[dict[str, Any]], config: ReasoningCacheConfig):
        if len(problems) != len(rows):
            raise ValueError(f"StatePool: {len(problems)} problems but {len(rows)} dataset rows")
        self.problems = list(problems)
        self.rows = [dict(row) for row in rows]
        self.config = config
        self.states = [ProblemStates() for _ in self.problems]
        self.chosen = [[0] * config.states_per_problem for _ in self.problems]
        self.refreshes = 0

    def dataset(self) -> Any:
        """A map-style `datasets.Dataset` of slots whose rows are read from the pool when fetched."""
        from datasets import Dataset

        slots = Dataset.from_dict({"slot": list(range(len(self.problems) * self.config.states_per_problem))})
        return slots.with_transform(self.format_slots)

    def format_slots(self, batch: dict[str, list]) -> dict[str, list]:
        rows = [self.slot_row(slot) for slot in batch["slot"]]
        return {key: [row[key] for row in rows] for key in rows[0]} if rows else {}

    def slot_row(self, slot: int) -> dict[str, Any]:
        problem, draw = divmod(slot, self.config.states_per_problem)
        state = self.chosen[problem][draw]
        prompt = turn_messages(self.problems[problem], self.states[problem].summaries[state],
                               first_turn=self.config.first_turn)
        return {**self.rows[problem], "prompt": prompt, "state": state}

    def install(self, states: list[ProblemStates], chosen: list[list[int]]) -> None:
        self.states, self.chosen = states, chosen
        self.refreshes += 1

    async def roll_out_share(self, policy: Policy, summarizer: Model, sampling: Sampling | None = None,
                             rank: int = 0, world: int = 1) -> list[ProblemStates]:
        """Rollouts of one process's share of the problems, problems[rank::world]."""
        return await roll_out(self.problems[rank::world], policy, summarizer, self.config, sampling)

    def draw(self, shares: list[list[ProblemStates]]) -> tuple[list[ProblemStates], list[list[int]]]:
        """Every process's share (in rank order) back in problem order, and this refresh's seeded draws.

        Given the same shares, every process computes the same states and draws.
        """
        states: list[Any] = [None] * len(self.problems)
        for rank, share in enumerate(shares):
            states[rank::len(shares)] = share
        rng = random.Random(self.config.seed + self.refreshes)
        chosen = [draw_states(len(s.summaries), self.config.states_per_problem, rng) for s in states]
        return states, chosen

    async def rebuild(self, policy: Policy, summarizer: Model,
                      sampling: Sampling | None = None) -> tuple[list[ProblemStates], list[list[int]]]:
        """New rollouts of every problem in this process, and their draws (not yet installed)."""
        return self.draw([await self.roll_out_share(policy, summarizer, sampling)])

    def stats(self) -> dict[str, float]:
        reached = [len(s.summaries) - 1 for s in self.states]
        return {
            "rc/turns_reached": sum(reached) / max(len(reached), 1),
            "rc/failed_rollouts": sum(s.failure is not None for s in self.states) / max(len(self.states), 1),
            "rc/short_problems": sum(len(s.summaries) < self.config.states_per_problem for s in self.states),
            "rc/empty_summaries": sum(len(s.empty_summaries) for s in self.states),
        }


class StatePoolCallback(TrainerCallback):
    """Refreshes a StatePool with the model being trained: at the start, then every K steps.

    Under several processes each rank rolls out and summarizes its own share of the problems,
    problems[rank::world], with the trainer's model entered through TRL's unwrap for generation
    (generation.py: it gathers sharded ZeRO-3/FSDP parameters, and the ranks generate in
    lockstep); the shares are then gathered, so every rank installs the same states and draws and
    reads the same prompt for a slot (a group of G rollouts may span ranks). The default policy
    needs the trainer: set `callback.trainer` once the trainer is built (grpo.build_trainer does);
    an injected `policy` (a served model) needs none. Each rank's summarizer meter counts its
    own calls, summed over ranks for the manifest (runfiles.sum_meters_over_processes).

    Every refresh of a process runs on one event loop kept for the whole run: an HTTP
    summarizer's connections belong to the loop that opened them (backends open them at their
    first call, so the Model may be made earlier), and the callback closes them on that loop when
    training ends. The Model stays readable after that, for the manifest.
    """

    def __init__(self, pool: StatePool, summarizer: Model, sampling: Sampling | None = None,
                 policy: Policy | None = None, trainer: Any = None):
        self.pool = pool
        self.summarizer = summarizer
        self.sampling = sampling
        self.policy = policy  # default: the trainer's model, through transformers
        self.trainer = trainer
        self.pending_logs: dict[str, float] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def on_train_begin(self, args, state, control, processing_class=None, **kwargs):
        self.sampling = self.sampling or training_sampling(args)
        self.refresh(state, processing_class)

    def on_step_end(self, args, state, control, processing_class=None, **kwargs):
        if state.global_step % self.pool.config.refresh_steps == 0 and state.global_step < state.max_steps:
            self.refresh(state, processing_class)

    def on_train_end(self, args, state, control, **kwargs):
        if self.loop is not None:
            self.loop.run_until_complete(self.summarizer.aclose())
            self.loop.close()
        self.loop = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Trainer.log appends this step's entry to the history just before calling back: both get
        # the pool's numbers (callbacks that write logs must come after this one to see them).
        if logs is not None and self.pending_logs:
            logs.update(self.pending_logs)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(self.pending_logs)
            self.pending_logs = {}

    def refresh(self, state, tokenizer) -> None:
        """A collective: every process calls it at the same steps (on_train_begin, on_step_end)."""
        from accelerate import PartialState
        from accelerate.utils import gather_object

        started = time.monotonic()
        rank, world = PartialState().process_index, PartialState().num_processes
        self.loop = self.loop or asyncio.new_event_loop()
        with self.policy_for_refresh(tokenizer, world) as policy:
            share = self.loop.run_until_complete(
                self.pool.roll_out_share(policy, self.summarizer, self.sampling, rank, world))
        shares = gather_object([share])  # one share per process, in rank order ([share] in one process)
        self.pool.install(*self.pool.draw(shares))
        self.pending_logs = {**self.pool.stats(), "rc/refresh_s": time.monotonic() - started}
        log.info("reasoning-cache pool refreshed at step %d: %s", state.global_step, self.pending_logs)

    @contextmanager
    def policy_for_refresh(self, tokenizer: Any, world: int) -> Iterator[Policy]:
        if self.policy is not None:
            yield self.policy
            return
        if self.trainer is None:
            raise ValueError("StatePoolCallback has no policy and no trainer: set callback.trainer to the "
                             "trainer once it is built, so the refresh generates with its (sharded) model")
        # Lockstep only matters with several processes; one process generates just its live rows.
        filler = turn_messages(self.pool.problems[0], None, first_turn=self.pool.config.first_turn)
        lockstep = Lockstep.for_share(len(self.pool.problems), world, GENERATE_BATCH, filler) if world > 1 else None
        with trainer_policy(self.trainer, tokenizer, lockstep, GENERATE_BATCH) as policy:
            yield policy


def training_sampling(args: Any) -> Sampling:
    """The trainer's own sampling settings (GRPOConfig), so rollouts explore as training does."""
    top_k = getattr(args, "top_k", None)
    return Sampling(temperature=getattr(args, "temperature", None), top_p=getattr(args, "top_p", None),
                    top_k=top_k if top_k and top_k > 0 else None)


def log_reward_by_state(reward: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A reward function that also logs its mean per RC state (`rc/reward_s{t}/{name}`)."""

    async def by_state(*, state: list[int], log_metric: Callable[[str, float], None], **columns: Any) -> list:
        values = reward(state=state, log_metric=log_metric, **columns)
        values = await values if asyncio.iscoroutine(values) else values
        for t in sorted(set(state)):
            scored = [v for v, s in zip(values, state, strict=True) if s == t and v is not None]
            if scored:
                log_metric(f"rc/reward_s{t}/{name}", sum(scored) / len(scored))
        return values

    by_state.__name__ = name
    return by_state
