"""`qednano train sft RECIPE` and `qednano train rl RECIPE`: a recipe file plus `--set` overrides.

The trainers are imported inside the commands: torch and TRL take seconds to import and the
other commands do not need them. Several processes: `torchrun --nproc_per_node N -m qednano.cli
train ...` (each rank runs this same command; give --run-dir so they agree on one directory).
"""

import os
from pathlib import Path
from typing import Annotated

import typer

from qednano.cli.common import console, fail, parse_overrides, user_errors

app = typer.Typer(help="Train: SFT (stage 1) and GRPO with rubric rewards (stages 2 and 3), on TRL.",
                  no_args_is_help=True)

RecipeArg = Annotated[str, typer.Argument(help="Recipe: a YAML file, or a name under configs/recipes/.")]
RecipeSetOpt = Annotated[list[str] | None, typer.Option("--set", help="Recipe field key=value (repeatable; rc.turns=4).")]
TrainRunDirOpt = Annotated[Path | None, typer.Option(help="Run directory (output_dir); an existing one is resumed.")]


def settings_for(recipe: str, set_: list[str] | None, run_dir: Path | None, command: str) -> dict:
    """The --set overrides, with output_dir from --run-dir or a fresh runs/ folder."""
    from qednano.records.rundir import default_run_dir
    from qednano.train.recipe import find_recipe, read_recipe

    overrides = parse_overrides(set_)
    if run_dir is not None:
        overrides["output_dir"] = str(run_dir)
    elif "output_dir" not in overrides and "output_dir" not in read_recipe(find_recipe(recipe)):
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise fail("several processes need one run directory: give --run-dir")
        overrides["output_dir"] = str(default_run_dir(command, Path(recipe).stem))
    return overrides


@app.command()
def sft(recipe: RecipeArg, set_: RecipeSetOpt = None, run_dir: TrainRunDirOpt = None) -> None:
    """Supervised fine-tuning on proofs with their reasoning (FineProofs-SFT rows)."""
    from qednano.train.recipe import load_recipe
    from qednano.train.runfiles import run_training
    from qednano.train.sft import SFTRecipe, build_trainer

    with user_errors():  # bad recipes, data and models stop here, before training
        config, settings = load_recipe(recipe, SFTRecipe, settings_for(recipe, set_, run_dir, "train-sft"))
        trainer, tokenizer = build_trainer(config)
    run_training(trainer, tokenizer, "train-sft", {"recipe": recipe, **settings})
    console.print(f"model: {Path(config.output_dir) / 'model'}")


@app.command()
def rl(recipe: RecipeArg, set_: RecipeSetOpt = None, run_dir: TrainRunDirOpt = None) -> None:
    """GRPO with rubric or answer rewards; with an `rc:` section, reasoning-cache RL."""
    from qednano.train.grpo import RLRecipe, build_trainer, run_rl
    from qednano.train.recipe import load_recipe

    with user_errors():  # bad recipes, problems and unreachable graders stop here, before training
        config, settings = load_recipe(recipe, RLRecipe, settings_for(recipe, set_, run_dir, "train-rl"))
        trainer, tokenizer, models = build_trainer(config)
    run_rl(trainer, tokenizer, models, {"recipe": recipe, **settings})
    console.print(f"model: {Path(config.output_dir) / 'model'}")
