"""Does `qednano train rl` learn as raw TRL does, in about its time? One run of each, side by side.

Task: "What is a+b? Put the final answer in \\boxed{}." (a, b in 1..9), the recipe
configs/recipes/rl-tiny-addition.yaml on the real embedded SmolLM2. qednano runs through its CLI
(answer reward: math-verify, gold first, in worker processes); raw TRL runs GRPOTrainer with the
same GRPOConfig settings read from the same recipe, the same prompts, the same model loading and
the same answer rule called inline (qednano's math-verify check: the last \\boxed{}, or a
one-line answer, equals a+b). Each runs in its own process, timed end to end.

    python bench/rl_learns.py              # the recipe's 40 steps (about 20 minutes here)
    python bench/rl_learns.py --steps 5    # a quick check

The last three lines: `qednano first5 X last5 Y wall S`, `raw-trl first5 X last5 Y wall S`,
`ratio wall qednano/raw-trl R` (target: the same learning in at most 1.1x raw TRL's time).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import processor  # bench/machine.py (the script's own folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "recipes" / "rl-tiny-addition.yaml"
QEDNANO_FIELDS = {"model", "dataset", "prompt", "rewards", "max_rows", "columns"}




def answer_reward(completions, answer, **_) -> list[float]:
    """The rule qednano's answer reward applies (its math-verify check, gold first), called inline:
    no worker processes, records or logs, so only qednano's machinery differs between the runs."""
    from qednano.grading.math_check import check_in_process

    rewards = []
    for completion, gold in zip(completions, answer, strict=True):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        rewards.append(1.0 if check_in_process(gold, text).correct else 0.0)
    return rewards


def raw_trl(out: Path, steps: int) -> None:
    """Raw TRL: GRPOTrainer with the recipe's TRL settings, run in this (child) process."""
    import yaml
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from qednano.train.policy import load_policy

    settings = {k: v for k, v in yaml.safe_load(RECIPE.read_text()).items() if k not in QEDNANO_FIELDS}
    config = GRPOConfig(**{**settings, "max_steps": steps, "output_dir": str(out), "save_strategy": "no"})
    rows = [json.loads(line) for line in (RECIPE.parent / "data" / "addition.jsonl").read_text().splitlines()]
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": r["problem"]}], "answer": r["answer"]}
                                 for r in rows])
    model, tokenizer = load_policy("smollm2")
    trainer = GRPOTrainer(model=model, args=config, reward_funcs=answer_reward, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer.train()
    (out / "log_history.json").write_text(json.dumps(trainer.state.log_history))


def timed(command: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(command, check=True, cwd=REPO)
    return time.monotonic() - start


def rewards_of(rows: list[dict]) -> list[float]:
    return [row["reward"] for row in rows if "reward" in row and "train_runtime" not in row]


def summary(label: str, rewards: list[float], wall: float) -> str:
    first, last = rewards[:5], rewards[-5:]
    return f"{label} first5 {sum(first) / len(first):.3f} last5 {sum(last) / len(last):.3f} wall {wall:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)  # internal: run raw TRL into this folder
    args = parser.parse_args()
    if args.raw:
        raw_trl(args.raw, args.steps)
        return
    print(f"processor: {processor()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ours, raw = Path(tmp) / "qednano", Path(tmp) / "raw"
        wall_ours = timed([sys.executable, "-m", "qednano.cli", "train", "rl", str(RECIPE), "--run-dir", str(ours),
                           "--set", f"max_steps={args.steps}", "--set", "save_strategy='no'"])
        wall_raw = timed([sys.executable, __file__, "--steps", str(args.steps), "--raw", str(raw)])
        ours_rewards = rewards_of([json.loads(line) for line in (ours / "metrics.jsonl").read_text().splitlines()])
        raw_rewards = rewards_of(json.loads((raw / "log_history.json").read_text()))
    print("per-step reward qednano:", " ".join(f"{r:.2f}" for r in ours_rewards))
    print("per-step reward raw-trl:", " ".join(f"{r:.2f}" for r in raw_rewards))
    print(summary("qednano", ours_rewards, wall_ours))
    print(summary("raw-trl", raw_rewards, wall_raw))
    print(f"ratio wall qednano/raw-trl {wall_ours / wall_raw:.2f}")


if __name__ == "__main__":
    main()
