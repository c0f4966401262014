"""What a slow grader costs a GRPO step: one grader latency L, or one per completion?

The same GRPO run (1 prompt x G completions per step, qednano's grader reward over a rubric
grader) is trained twice, side by side: with an instant grader and with a grader that takes L
seconds per call. qednano grades all completions of a step at once, so the extra step time
should be about L, not G x L. The policy is a tiny random-weight llama with the SmolLM2
tokenizer (`--policy smollm2` for the real one): what is measured is the grading, and a short
step keeps the noise of a shared CPU small against L. Step times are medians after the first.
On a busy 2-core machine steps still vary by several seconds, so L defaults to 20 s.

    python bench/rl_grader_overlap.py                 # L = 20 s, 5 steps each (about 5 minutes)

Last line: `extra step time / L R` (target <= 1.2; grading one completion after another would
give about G).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from qednano.grading.proof_grader import RubricGrader
from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.problems.record import Problem
from qednano.train.data import rl_rows
from qednano.train.grpo import QedGRPOTrainer, RLRecipe
from qednano.train.policy import load_policy, save_tiny_random_policy
from qednano.train.rewards import grader_reward

PROBLEMS = [Problem(id=f"p{n}", statement=f"Prove that {n}^2 + {n} is even.") for n in range(1, 9)]


def verdict(messages, sampling) -> str:
    # A score that varies with the proof, so groups have a spread as real grading gives.
    return f"Assessed.\nFINAL SCORE: {(0, 1, 6, 7)[len(messages[0]['content']) % 4]}"


def median_step_time(policy: str, latency: float, steps: int, generations: int, out: Path) -> tuple[float, int]:
    from datasets import Dataset

    backend = ScriptedBackend(verdict, model="grader", delay_s=latency)
    grader = RubricGrader(Model("grader", backend), variant="no_reference")
    config = RLRecipe(dataset="(in memory)", graders=["grader"], output_dir=str(out), use_cpu=True, bf16=False,
                      report_to="none", max_steps=steps, per_device_train_batch_size=generations,
                      num_generations=generations, max_completion_length=16, learning_rate=1e-6,
                      logging_steps=1, save_strategy="no", gradient_checkpointing=False, disable_tqdm=True, seed=0)
    model, tokenizer = load_policy(policy)
    trainer = QedGRPOTrainer(model=model, args=config, reward_funcs=[grader_reward(grader, {p.id: p for p in PROBLEMS})],
                             train_dataset=Dataset.from_list(rl_rows(PROBLEMS)), processing_class=tokenizer)
    trainer.train()
    times = [row["step_time"] for row in trainer.state.log_history if "step_time" in row]
    return statistics.median(times[1:] or times), len(backend.calls)  # the first step warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=20.0, help="grader seconds per call (L)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--policy", default="tiny", help="`tiny` (random weights) or any model load_policy takes")
    parser.add_argument("--generations", type=int, default=8, help="completions per step (G)")
    args = parser.parse_args()
    print(f"processor: {platform.processor() or platform.machine()}  policy={args.policy}  L={args.latency}s  "
          f"G={args.generations}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        policy = str(save_tiny_random_policy(Path(tmp) / "policy")) if args.policy == "tiny" else args.policy
        instant, calls0 = median_step_time(policy, 0.0, args.steps, args.generations, Path(tmp) / "instant")
        slow, calls1 = median_step_time(policy, args.latency, args.steps, args.generations, Path(tmp) / "slow")
    print(f"grader calls: {calls0} instant, {calls1} slow ({args.steps} steps x {args.generations} completions)")
    print(f"step time: instant grader {instant:.2f}s, grader of {args.latency}s {slow:.2f}s "
          f"(bench wall {time.monotonic() - started:.0f}s)")
    print(f"extra step time / L {(slow - instant) / args.latency:.2f}")


if __name__ == "__main__":
    main()
