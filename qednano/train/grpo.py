"""Stage 2: GRPO with rubric rewards (and, with an `rc:` section, stage 3), on TRL's GRPOTrainer.

TRL does the generation, advantages, loss, logging and checkpoints. qednano adds the rewards
(rewards.py: the grader evaluation uses, the answer checker, penalties), the run directory
(`completions.jsonl` beside TRL's own completion tables), and checks that stop bad input before
the first step: unknown problems, missing short answers, a grader that cannot be reached.

Where prompts come from is a seam: the dataset is plain GRPO's one row per problem, or, for
reasoning-cache RL, `qednano.train.rc`'s state pool (slots whose prompts are refreshed from
rollouts of the current policy every `rc.refresh_steps` steps).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate.utils import gather_object
from trl import GRPOConfig, GRPOTrainer

from qednano.grading.build import GradingConfig, build_grader
from qednano.grading.proof_grader import VARIANTS
from qednano.llm.cache import CallCache
from qednano.llm.model import Model
from qednano.llm.registry import load_model
from qednano.llm.types import Sampling
from qednano.paths import cache_root
from qednano.problems.record import Problem
from qednano.train.data import rl_problems, rl_rows
from qednano.train.policy import load_policy, template_opens_reasoning
from qednano.train.rewards import format_penalty, grade_reward, length_penalty
from qednano.train.runfiles import MetricsFile, append_jsonl, run_training

REWARDS = ("grader", "answer", "length", "format")


@dataclass
class RLRecipe(GRPOConfig):
    """TRL's GRPOConfig plus the model, the problems, the rewards and the reasoning-cache section."""

    model: str = field(default="smollm2", metadata={"help": "Model to train: a Hugging Face name, a local folder, "
                                                            "or a registered embedded model (`smollm2`, fp32)."})
    dataset: str = field(default="", metadata={"help": "Training problems: a benchmark name, a file or a Hugging Face "
                                                       "dataset (read by qednano's problem loaders)."})
    dataset_split: str | None = field(default=None, metadata={"help": "Split of a Hugging Face dataset."})
    columns: dict[str, Any] | None = field(default=None, metadata={"help": "Column map for the problems, e.g. "
                                                                          "{statement: question, short_answer: answer}."})
    max_rows: int | None = field(default=None, metadata={"help": "Train on the first N problems only (None: all)."})
    prompt: str = field(default="solve", metadata={"help": "Scaffold prompt the problem is put in: `solve` (proofs) "
                                                           "`solve_answer` (boxed short answers) or `statement` (the problem alone), as evaluation asks."})
    rewards: list[str] = field(default_factory=lambda: ["grader"], metadata={
        "help": f"Reward functions, weighted by reward_weights: any of {', '.join(REWARDS)}."})
    graders: list[str] = field(default_factory=list, metadata={"help": "Grader models for the `grader` reward "
                                                                       "(registered names or specs); several form a panel."})
    grader_variant: str = field(default="reference", metadata={"help": "Proof-grading prompt variant."})
    grader_aggregate: str = field(default="mean", metadata={"help": "How a panel combines scores: mean, median, min."})
    grader_samples: int = field(default=1, metadata={"help": "Gradings per grader model, aggregated as a panel."})
    answer_judge: str | None = field(default=None, metadata={"help": "Model judging answers math-verify cannot "
                                                                     "decide (None: those abstain)."})
    length_penalty: float = field(default=0.0, metadata={"help": "Weight of the `length` reward: -w x tokens / "
                                                                 "max_completion_length."})
    format_penalty: float = field(default=0.0, metadata={"help": "Weight of the `format` reward: -w when a "
                                                                 "completion wrote no proof after its reasoning."})
    max_failed_fraction: float = field(default=0.5, metadata={"help": "Stop when more than this share of one "
                                                                      "batch's grader calls fail (grader down)."})
    check_grader: bool = field(default=True, metadata={"help": "Send each grader one short call before training "
                                                               "and stop if it fails."})
    no_cache: bool = field(default=False, metadata={"help": "Do not read or write the grader call cache."})
    resume: bool = field(default=True, metadata={"help": "Continue from the newest checkpoint-N in output_dir."})
    rc: dict[str, Any] | None = field(default=None, metadata={
        "help": "Reasoning-cache RL (stage 3): turns, states_per_problem, summarizer, reasoning_tokens (H_R), "
                "summary_tokens (H_S), refresh_steps (K), seed; see qednano.train.rc.ReasoningCacheConfig."})

    def __post_init__(self) -> None:
        unknown = [r for r in self.rewards if r not in REWARDS]
        if unknown or not self.rewards:
            raise ValueError(f"field 'rewards': {unknown or 'empty'}; choose from {', '.join(REWARDS)}")
        if not self.dataset:
            raise ValueError("field 'dataset' is empty: set it to a benchmark name, a file or a Hugging Face name")
        if "grader" in self.rewards and not self.graders:
            raise ValueError("the `grader` reward needs field 'graders': at least one grader model")
        if "grader" in self.rewards and self.grader_variant not in VARIANTS:
            raise ValueError(f"field 'grader_variant': {self.grader_variant!r} is not one of {', '.join(VARIANTS)}")
        if "length" in self.rewards and self.length_penalty <= 0:
            raise ValueError("the `length` reward needs field 'length_penalty' > 0")
        if "format" in self.rewards and self.format_penalty <= 0:
            raise ValueError("the `format` reward needs field 'format_penalty' > 0")
        if not 0 <= self.max_failed_fraction <= 1:
            raise ValueError(f"field 'max_failed_fraction' must be in [0, 1], got {self.max_failed_fraction}")
        if self.rc is not None:
            check_rc_section(self.rc)
        super().__post_init__()
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(f"field 'reward_weights' has {len(self.reward_weights)} weights for "
                             f"{len(self.rewards)} rewards {self.rewards}: give one per reward")

    def grading(self) -> GradingConfig:
        return GradingConfig(graders=self.graders, variant=self.grader_variant, aggregate=self.grader_aggregate,
                             grader_samples=self.grader_samples)


def check_rc_section(section: Any) -> None:
    """The `rc:` section against rc.py's ReasoningCacheConfig, when this checkout has it."""
    if not isinstance(section, dict):
        raise ValueError(f"field 'rc' must be a mapping of reasoning-cache settings, got {section!r}")
    try:
        from qednano.train.rc import ReasoningCacheConfig
    except ImportError:
        return  # reported when the trainer is built
    known = set(ReasoningCacheConfig.__dataclass_fields__)
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"field 'rc': unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
    ReasoningCacheConfig(**section)


class QedGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that also writes every completion of a training step to `completions.jsonl`."""

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            self.write_completions(inputs)
        return output

    def write_completions(self, inputs: list[dict[str, Any]]) -> None:
        # TRL has just appended this batch, gathered from every process, to its log deques.
        keys = gather_object([(row.get("problem_id"), row.get("state")) for row in inputs])
        if not self.accelerator.is_main_process:
            return
        count = len(keys)
        tail = lambda values: list(values)[-count:]  # noqa: E731 - the last `count` entries of a deque
        rewards = {name: tail(values) for name, values in self._logs["rewards"].items()}
        extra = {name: tail(values) for name, values in self._logs["extra"].items()}
        status = extra.get("grade_status") or extra.get("answer_status") or [None] * count
        weights = self.reward_weights.tolist()
        rows = []
        for i, (prompt, completion, advantage) in enumerate(zip(tail(self._logs["prompt"]),
                                                                tail(self._logs["completion"]),
                                                                tail(self._logs["advantages"]), strict=True)):
            per_function = {name: None if math.isnan(values[i]) else values[i] for name, values in rewards.items()}
            scored = [w * v for w, v in zip(weights, per_function.values(), strict=True) if v is not None]
            rows.append({"step": self.state.global_step, "problem_id": keys[i][0], "prompt": prompt,
                         "completion": completion, "reward": sum(scored) if scored else None,
                         "rewards": per_function, "advantage": advantage, "grade_status": status[i],
                         "state": keys[i][1]})
        append_jsonl(Path(self.args.output_dir) / "completions.jsonl", rows)


def open_models(names: list[str], cache: CallCache | None) -> list[Model]:
    return [load_model(name, cache=cache) for name in names]


def check_reachable(names: list[str]) -> None:
    """One short uncached call per grader, on fresh instances: a grader that is down stops us here."""

    async def probe(name: str) -> None:
        model = load_model(name)
        try:
            done = await model.backend.complete([{"role": "user", "content": "Reply with OK."}], Sampling(max_tokens=16))
        finally:
            await model.aclose()
        if not done.ok:
            raise ValueError(f"grader {name!r} cannot be reached ({done.error_kind}): {done.error}")

    for name in names:
        asyncio.run(probe(name))


def build_rewards(config: RLRecipe, problems: list[Problem], tokenizer: Any, models: list[Model],
                  judge: Model | None) -> list[Any]:
    by_id = {p.id: p for p in problems}
    opens = template_opens_reasoning(tokenizer)
    options = {"reasoning_in_prompt": opens, "max_failed_fraction": config.max_failed_fraction}
    made = {
        "grader": lambda: grade_reward(build_grader("proof", config.grading(), models), by_id, kind="grader", **options),
        "answer": lambda: grade_reward(build_grader("answer", config.grading(), [judge] if judge else []), by_id,
                                       kind="answer", **options),
        "length": lambda: length_penalty(config.length_penalty, config.max_completion_length),
        "format": lambda: format_penalty(config.format_penalty, opens),
    }
    return [made[name]() for name in config.rewards]


def build_trainer(config: RLRecipe) -> tuple[QedGRPOTrainer, Any, list[Model]]:
    """Problems, rewards, model and trainer; bad input fails here, before the first step."""
    from datasets import Dataset

    problems = rl_problems(config.dataset, split=config.dataset_split, columns=config.columns,
                           max_rows=config.max_rows, need_answers="answer" in config.rewards)
    graders = config.graders if "grader" in config.rewards else []
    judges = [config.answer_judge] if config.answer_judge and "answer" in config.rewards else []
    if config.check_grader and config.process_index == 0:
        check_reachable(graders + judges)
    cache = None if config.no_cache else CallCache(cache_root() / "calls.sqlite")
    models = open_models(graders + judges, cache)
    model, tokenizer = load_policy(config.model)
    rewards = build_rewards(config, problems, tokenizer, models[: len(graders)], (models[len(graders):] or [None])[0])
    rows = rl_rows(problems, config.prompt)
    callbacks: list[Any] = []
    dataset = Dataset.from_list(rows)
    if config.rc is not None:
        dataset, rewards, callbacks = reasoning_cache(config, problems, rows, rewards, cache)
    trainer = QedGRPOTrainer(model=model, args=config, reward_funcs=rewards, train_dataset=dataset,
                             processing_class=tokenizer, callbacks=[*callbacks, MetricsFile(config.output_dir)])
    for callback in callbacks:  # the reasoning-cache refresh generates with the trainer's wrapped model
        callback.trainer = trainer
    return trainer, tokenizer, models


def reasoning_cache(config: RLRecipe, problems: list[Problem], rows: list[dict], rewards: list[Any],
                    cache: CallCache | None) -> tuple[Any, list[Any], list[Any]]:
    """Stage 3: slots over a state pool refreshed with the policy, rewards logged per state (rc.py)."""
    try:
        from qednano.train import rc
    except ImportError as err:
        raise ValueError("the recipe has an `rc:` section, but qednano.train.rc (reasoning-cache RL) is not "
                         "installed in this checkout") from err
    settings = rc.ReasoningCacheConfig(**config.rc)
    pool = rc.StatePool(problems, rows, settings)
    # Made on every rank: each summarizes its own share of the problems; the manifest sums the meters.
    refresher = rc.StatePoolCallback(pool, load_model(settings.summarizer, cache=cache))
    by_state = [rc.log_reward_by_state(f, getattr(f, "__name__", "reward")) for f in rewards]
    return pool.dataset(), by_state, [refresher]


def train_rl(config: RLRecipe, settings: dict[str, Any]) -> Any:
    """Train, writing the run directory; returns TRL's TrainOutput."""
    trainer, tokenizer, models = build_trainer(config)
    return run_rl(trainer, tokenizer, models, settings)


def run_rl(trainer: QedGRPOTrainer, tokenizer: Any, models: list[Model], settings: dict[str, Any]) -> Any:
    """Train with the graders `models`; the manifest also counts the models callbacks own."""
    try:
        return run_training(trainer, tokenizer, "train-rl", settings, models=models + callback_models(trainer))
    finally:
        close_models(trainer, models)


def callback_models(trainer: QedGRPOTrainer) -> list[Model]:
    """Models the trainer's callbacks call and close themselves: the reasoning-cache summarizer,
    whose connections belong to its callback's own event loop (rc.StatePoolCallback)."""
    found = [getattr(callback, "summarizer", None) for callback in trainer.callback_handler.callbacks]
    return [model for model in found if isinstance(model, Model)]


def close_models(trainer: QedGRPOTrainer, models: list[Model]) -> None:
    """Close the graders' HTTP sessions on the event loop the rewards ran on."""
    loop = getattr(trainer, "async_loop", None)  # TRL starts it only when a reward is async
    for model in models:
        if loop is None:
            asyncio.run(model.aclose())
        else:
            asyncio.run_coroutine_threadsafe(model.aclose(), loop).result()
