"""The whole QED-Nano recipe on this CPU, as README.md writes it, timed command by command.

The README section "The whole recipe on this CPU" holds one bash block: SFT, RL on the SFT
model, RC-RL on the RL model, then an eval of the base model and of each stage's model. This
script reads that block from README.md (so what is timed is what a reader runs), runs each
command in order with the venv's `qednano`, with `runs/cpu/` replaced by a fresh folder and a
fresh cache folder (model conversions and calls included: a first run on a new machine), and
prints each command's wall time, then each eval's accuracy and the total against 30 minutes.

    python bench/cpu_pipeline.py            # about 20 minutes on a 2-core machine
    python bench/cpu_pipeline.py --keep runs/cpu-bench   # keep the run folders

Last line: `total wall S target 1800`.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import processor  # bench/machine.py (the script's own folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
HEADING = "### The whole recipe on this CPU"
RUNS = "runs/cpu/"
TARGET_S = 30 * 60




def readme_commands(readme: Path = REPO / "README.md") -> list[str]:
    """The commands of the first bash block after HEADING, comments dropped."""
    text = readme.read_text()
    start = text.index(HEADING)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    if block is None:
        raise SystemExit(f"{readme}: no bash block after {HEADING!r}")
    commands = []
    for line in block.group(1).splitlines():
        command = line.split("  #", 1)[0].strip()
        if command and not command.startswith("#"):
            commands.append(command)
    return commands


def accuracy(run_dir: Path) -> str:
    """Full-marks samples over all samples of an eval run; failed or ungraded ones count as not correct."""
    from qednano.records.sample import SampleRecord

    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    records = [SampleRecord.model_validate_json(line) for line in lines if line.strip()]
    correct = sum(1 for r in records if r.score is not None and r.grade and r.score == r.grade.max_score)
    return f"{correct}/{len(records)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="Run in this folder and keep it (default: a temporary one).")
    args = parser.parse_args()
    print(f"processor: {processor()}", flush=True)
    commands = readme_commands()
    with tempfile.TemporaryDirectory() as scratch:
        work = (args.keep or Path(scratch)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "QEDNANO_CACHE_DIR": str(work / "cache"),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        total = 0.0
        for command in commands:
            command = command.replace(RUNS, f"{work}/runs/")
            print(f"$ {command}", flush=True)
            start = time.monotonic()
            done = subprocess.run(shlex.split(command), cwd=REPO, env=env, capture_output=True, text=True)
            spent = time.monotonic() - start
            total += spent
            if done.returncode != 0:
                print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
                raise SystemExit(f"failed after {spent:.0f} s (exit {done.returncode}): {command}")
            print(f"  {spent:.0f} s", flush=True)
        for run_dir in sorted((work / "runs").glob("eval-*")):
            print(f"{run_dir.name} correct {accuracy(run_dir)}")
        print(f"total wall {total:.0f} target {TARGET_S}")


if __name__ == "__main__":
    main()
