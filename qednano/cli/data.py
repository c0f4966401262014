"""`qednano data ...`: the commands that make and check training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qednano.cli.common import console, parse_columns, user_errors
from qednano.tables import rich_table

data_app = typer.Typer(help="Make and check training data: dedup, decontaminate.", no_args_is_help=True)

TrainArg = Annotated[str, typer.Argument(help="Training set: JSONL/CSV/parquet file, saved dataset, HF name, or data run directory.")]
ColumnOpt = Annotated[list[str] | None, typer.Option(help="Column map: field=COLUMN, e.g. statement=question, id=uid.")]
SplitOpt = Annotated[str | None, typer.Option(help="Dataset split (Hugging Face datasets).")]
OutOpt = Annotated[Path | None, typer.Option(help="Run directory (default runs/<time>-<command>-<name>).")]
FlagOpt = Annotated[bool, typer.Option("--flag", help="Keep matched rows, marked in a column, instead of dropping them.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Written training set: parquet or jsonl.")]
NgramOpt = Annotated[int | None, typer.Option(help="Words per n-gram [default 3].")]
NgramThresholdOpt = Annotated[float | None, typer.Option(help="Least n-gram containment that counts as a match [0.55].")]
MinhashThresholdOpt = Annotated[float | None, typer.Option(help="Least estimated Jaccard similarity, MinHash-LSH [0.5].")]
MethodOpt = Annotated[list[str] | None, typer.Option("--method", help="exact, ngram or minhash (repeatable; default all).")]


def overlap_options(
    train: str, column: list[str] | None, split: str | None, flag: bool, output_format: str,
    ngram: int | None, ngram_threshold: float | None, minhash_threshold: float | None, method: list[str] | None,
) -> dict[str, Any]:
    from qednano.data.matching import MatchSettings

    given = {"ngram": ngram, "ngram_threshold": ngram_threshold, "minhash_threshold": minhash_threshold, "methods": method}
    settings = MatchSettings(**{key: value for key, value in given.items() if value is not None})  # defaults live there
    return {
        "train": train, "columns": parse_columns(column), "split": split, "flag": flag,
        "output_format": output_format, "settings": settings,
    }


def show(summary: dict[str, Any], out_label: str) -> None:
    rows = [
        [name, str(s["problems"]), str(s["pairs"]), str(s["train_rows"]), *(str(v) for v in s["by_method"].values())]
        for name, s in summary["against"].items()
    ]
    rich_table(out_label, ["compared with", "problems", "pairs", "train rows", "exact", "ngram", "minhash"], rows, console)
    action = "flagged" if summary["flag"] else "dropped"
    console.print(f"{summary['matched_rows']} of {summary['train_rows']} rows matched ({action}); wrote {summary['written_rows']} rows.")
    console.print(f"Run directory: {summary['run_dir']} (matches.jsonl, report.md, {summary['output']})")


@data_app.command()
def dedup(
    train: TrainArg,
    column: ColumnOpt = None,
    split: SplitOpt = None,
    out: OutOpt = None,
    flag: FlagOpt = False,
    output_format: FormatOpt = "parquet",
    ngram: NgramOpt = None,
    ngram_threshold: NgramThresholdOpt = None,
    minhash_threshold: MinhashThresholdOpt = None,
    method: MethodOpt = None,
) -> None:
    """Drop (or flag) rows that state the same problem as an earlier row."""
    from qednano.data.dedup import DedupConfig, run_dedup

    with user_errors():
        options = overlap_options(train, column, split, flag, output_format, ngram, ngram_threshold, minhash_threshold, method)
        summary = run_dedup(DedupConfig(**options), out)
    show(summary, "Duplicates")


@data_app.command()
def decontaminate(
    train: TrainArg,
    against: Annotated[list[str], typer.Option(help="imo-proofbench, imo-answerbench, proofbench, a HF name or a file (repeatable).")],
    column: ColumnOpt = None,
    split: SplitOpt = None,
    out: OutOpt = None,
    flag: FlagOpt = False,
    output_format: FormatOpt = "parquet",
    ngram: NgramOpt = None,
    ngram_threshold: NgramThresholdOpt = None,
    minhash_threshold: MinhashThresholdOpt = None,
    method: MethodOpt = None,
) -> None:
    """Drop (or flag) training rows that state a problem of an evaluation benchmark."""
    from qednano.data.decontaminate import DecontaminateConfig, run_decontaminate

    with user_errors():
        options = overlap_options(train, column, split, flag, output_format, ngram, ngram_threshold, minhash_threshold, method)
        summary = run_decontaminate(DecontaminateConfig(against=against, **options), out)
    show(summary, "Contamination")
