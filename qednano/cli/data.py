"""`qednano data ...`: the commands that make and check training data.

Each is a thin wrapper over one qednano.data module. Every stage writes a run directory
(`--out`, resumed when it exists) and prints where; stages chain by passing one stage's
directory to the next.
"""

from pathlib import Path
from typing import Annotated, Any

import typer

from qednano.cli.common import (
    AggregateOpt,
    GraderSamplesOpt,
    GradersOpt,
    IdleTimeoutOpt,
    MaxFailuresOpt,
    NoCacheOpt,
    PromptsOpt,
    RunDirOpt,
    TimeoutOpt,
    VariantOpt,
    console,
    open_cache,
    optional_path,
    parse_columns,
    sampling_options,
    user_errors,
)
from qednano.records.limits import DEFAULT_MAX_FAILURES
from qednano.tables import rich_table

data_app = typer.Typer(help="Make and check training data: distill, grade, filter, rubrics, label, difficulty, export, dedup, decontaminate.", no_args_is_help=True)

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


ProblemsArg = Annotated[str, typer.Argument(help="Problems: benchmark name, HF dataset, file, or a data run directory.")]
RunArg = Annotated[str, typer.Argument(help="A run directory written by an earlier data stage.")]
LimitOpt = Annotated[int | None, typer.Option(help="Only the first N problems.")]
TemperatureOpt = Annotated[float | None, typer.Option(help="Override the model's temperature.")]
MaxTokensOpt = Annotated[int | None, typer.Option(help="Override the model's max tokens.")]
TriesOpt = Annotated[int, typer.Option(help="Answers drawn per problem before it is recorded as failed.")]
Concurrency = Annotated[int, typer.Option(help="Samples in flight at once (each model's own limit also applies).")]


def done(what: str, path: Path) -> None:
    console.print(f"{what}\nrun directory: [bold]{path}[/]")


@data_app.command()
def distill(
    problems: ProblemsArg,
    model: Annotated[str, typer.Option("--model", "-m", help="The teacher model.")] = "smollm2",
    samples: Annotated[int, typer.Option("-k", "--samples", help="Teacher samples per problem.")] = 4,
    limit: LimitOpt = None,
    column: ColumnOpt = None,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    reasoning_effort: Annotated[str | None, typer.Option(help="minimal, low, medium or high, for reasoning models.")] = None,
    thinking: Annotated[bool | None, typer.Option("--thinking/--no-thinking", help=(
        "Switch a vLLM/SGLang chat template's thinking on or off (default: the model file's `sampling.thinking`)."))] = None,
    shard_rows: Annotated[int, typer.Option(help="Rows per parquet shard.")] = 10_000,
    concurrency: Concurrency = 256,
    max_failures: MaxFailuresOpt = DEFAULT_MAX_FAILURES,
    timeout: TimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    out: RunDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """k teacher samples per problem: reasoning and proof apart, failures recorded, sharded parquet."""
    from qednano.data.distill import DistillConfig, run_distill

    with user_errors():
        sampling = sampling_options(temperature=temperature, max_tokens=max_tokens, reasoning_effort=reasoning_effort,
                                    thinking=thinking)
        config = DistillConfig(problems=problems, teacher=model, samples=samples, limit=limit, columns=parse_columns(column),
                               sampling=sampling, shard_rows=shard_rows, concurrency=concurrency,
                               max_failures=max_failures, timeout_s=timeout, idle_timeout_s=idle_timeout)
        path, records = run_distill(config, out, open_cache(no_cache))
    statuses = {s: sum(r.attempt.status == s for r in records) for s in ("ok", "no_proof", "failed")}
    truncated = sum(r.attempt.truncated for r in records)
    done(f"{len(records)} samples: {statuses['ok']} ok, {statuses['no_proof']} without proof, {statuses['failed']} failed; "
         f"{truncated} truncated", path)


@data_app.command()
def rubrics(
    problems: ProblemsArg,
    model: Annotated[str, typer.Option("--model", "-m", help="The model that writes marking schemes.")] = "smollm2",
    tries: TriesOpt = 3,
    limit: LimitOpt = None,
    column: ColumnOpt = None,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    concurrency: Concurrency = 64,
    out: RunDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """A checked 7-point marking scheme per problem; schemes that never validate are recorded as failed."""
    from qednano.data.rubrics import RubricsConfig, run_rubrics

    with user_errors():
        config = RubricsConfig(problems=problems, model=model, tries=tries, limit=limit, columns=parse_columns(column),
                               sampling=sampling_options(temperature=temperature, max_tokens=max_tokens), concurrency=concurrency)
        path, results = run_rubrics(config, out, open_cache(no_cache))
    valid = sum(r.status == "ok" for r in results)
    done(f"{valid} valid marking schemes, {len(results) - valid} failed (see rubrics.jsonl)", path)


@data_app.command()
def grade(
    run: RunArg,
    grader: GradersOpt = None,
    variant: VariantOpt = "auto",
    aggregate: AggregateOpt = "mean",
    grader_samples: GraderSamplesOpt = 1,
    prompts: PromptsOpt = None,
    concurrency: Concurrency = 64,
    max_failures: MaxFailuresOpt = DEFAULT_MAX_FAILURES,
    timeout: TimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    out: RunDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Grade a distillation run's proofs with a grader or a panel, into a new run directory."""
    from qednano.data.grade import DataGradeConfig, run_data_grade

    with user_errors():
        config = DataGradeConfig(run=run, graders=grader or [], variant=variant, aggregate=aggregate,
                                 grader_samples=grader_samples, concurrency=concurrency, max_failures=max_failures,
                                 prompts=optional_path(prompts), timeout_s=timeout, idle_timeout_s=idle_timeout)
        path, records = run_data_grade(config, out, open_cache(no_cache))
    graded = [r for r in records if r.score is not None]
    mean = f"{sum(r.score for r in graded) / len(graded):.2f}" if graded else "n/a"
    done(f"{len(graded)} of {len(records)} samples graded, mean {mean} points", path)


@data_app.command("filter")
def filter_command(
    run: RunArg,
    min_score: Annotated[float, typer.Option(help="Lowest grade (points) a kept sample may have.")] = 6.0,
    max_per_problem: Annotated[int | None, typer.Option(help="Keep at most N samples per problem, best first.")] = None,
    out: RunDirOpt = None,
) -> None:
    """Keep graded samples at or above a score; every dropped one is listed with its reason."""
    from qednano.data.filter import FilterConfig, run_filter

    with user_errors():
        path, summary = run_filter(FilterConfig(run=run, min_score=min_score, max_per_problem=max_per_problem), out)
    reasons = ", ".join(f"{count} {reason}" for reason, count in summary["dropped_by_reason"].items()) or "none"
    done(f"kept {summary['kept']} of {summary['samples']} samples; dropped: {reasons}", path)


@data_app.command()
def label(
    problems: ProblemsArg,
    model: Annotated[str, typer.Option("--model", "-m", help="The labelling model.")] = "smollm2",
    drop_incomplete: Annotated[bool, typer.Option(help="Drop problems labelled incomplete.")] = False,
    min_difficulty: Annotated[int, typer.Option(help="Drop problems labelled easier than this (1-10).")] = 1,
    max_difficulty: Annotated[int, typer.Option(help="Drop problems labelled harder than this (1-10).")] = 10,
    proofs_only: Annotated[bool, typer.Option(help="Drop problems labelled computational.")] = False,
    drop_bad_solution: Annotated[bool, typer.Option(help="Drop problems whose solution is labelled wrong or missing.")] = False,
    tries: TriesOpt = 3,
    limit: LimitOpt = None,
    column: ColumnOpt = None,
    concurrency: Concurrency = 64,
    out: RunDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """LLM quality labels per problem (incomplete, difficulty, kind, solution), and filters on them."""
    from qednano.data.label import LabelConfig, LabelFilters, run_label

    with user_errors():
        filters = LabelFilters(drop_incomplete=drop_incomplete, min_difficulty=min_difficulty, max_difficulty=max_difficulty,
                               proofs_only=proofs_only, drop_bad_solution=drop_bad_solution)
        config = LabelConfig(problems=problems, model=model, filters=filters, tries=tries, limit=limit,
                             columns=parse_columns(column), concurrency=concurrency)
        path, results = run_label(config, out, open_cache(no_cache))
    unlabelled = sum(r.labels is None for r in results)
    done(f"kept {sum(r.kept for r in results)} of {len(results)} problems ({unlabelled} could not be labelled)", path)


@data_app.command()
def difficulty(
    problems: ProblemsArg,
    model: Annotated[str, typer.Option("--model", "-m", help="The policy model.")] = "smollm2",
    grader: GradersOpt = None,
    samples: Annotated[int, typer.Option("-k", "--samples", help="Rollouts per problem.")] = 8,
    variant: VariantOpt = "auto",
    aggregate: AggregateOpt = "mean",
    grader_samples: GraderSamplesOpt = 1,
    min_graded: Annotated[int, typer.Option(help="Valid grades a problem needs to be judged.")] = 2,
    limit: LimitOpt = None,
    column: ColumnOpt = None,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    prompts: PromptsOpt = None,
    concurrency: Concurrency = 64,
    max_failures: MaxFailuresOpt = DEFAULT_MAX_FAILURES,
    timeout: TimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    out: RunDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """k graded policy rollouts per problem; drops problems always or never solved, with reasons."""
    from qednano.data.difficulty import DifficultyConfig, run_difficulty

    with user_errors():
        config = DifficultyConfig(problems=problems, policy=model, graders=grader or [], samples=samples, variant=variant,
                                  aggregate=aggregate, grader_samples=grader_samples, min_graded=min_graded, limit=limit,
                                  columns=parse_columns(column), sampling=sampling_options(temperature=temperature, max_tokens=max_tokens), concurrency=concurrency,
                                  max_failures=max_failures, prompts=optional_path(prompts),
                                  timeout_s=timeout, idle_timeout_s=idle_timeout)
        path, results = run_difficulty(config, out, open_cache(no_cache))
    done(f"kept {sum(r.kept for r in results)} of {len(results)} problems (reasons in difficulty.jsonl)", path)


@data_app.command()
def export(
    run: RunArg,
    kind: Annotated[str, typer.Option(help="sft (from a filter run) or rl (from a difficulty run).")] = "sft",
    decontamination: Annotated[str | None, typer.Option(help="A decontamination run: its matches are dropped and reported.")] = None,
    reasoning_in_messages: Annotated[bool, typer.Option(help="SFT: the teacher's reasoning in the assistant turn.")] = True,
    shard_rows: Annotated[int, typer.Option(help="Rows per parquet shard.")] = 10_000,
    push_to_hub: Annotated[str | None, typer.Option(help="Upload to this Hugging Face dataset repo (needs a token).")] = None,
    public: Annotated[bool, typer.Option(help="Create the Hub repo public (default private).")] = False,
    out: RunDirOpt = None,
) -> None:
    """The FineProofs-SFT or -RL schema as parquet and a datasets folder, with a dataset card."""
    from qednano.data.export import ExportConfig, run_export

    with user_errors():
        config = ExportConfig(run=run, kind=kind, decontamination=decontamination, reasoning_in_messages=reasoning_in_messages,
                              shard_rows=shard_rows, push_to_hub=push_to_hub, private=not public)
        path, rows = run_export(config, out)
    done(f"{rows} rows exported (dataset/ for `datasets.load_from_disk`, data/*.parquet, README.md)", path)
