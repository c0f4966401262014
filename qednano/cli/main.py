"""The `qednano` command line: thin wrappers that parse options and call one function each.

Subcommand groups of the floors above evaluation (train, data, view) live in their own modules
beside this one and are added to `app` here.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qednano.cli.common import (
    AggregateOpt,
    ColumnOpt,
    ConcurrencyOpt,
    GraderSamplesOpt,
    GradersOpt,
    IdleTimeoutOpt,
    MaxFailuresOpt,
    ModelOpt,
    NoCacheOpt,
    PromptsOpt,
    RunDirOpt,
    ScaffoldOpt,
    SetOpt,
    TimeoutOpt,
    TurnsOpt,
    VariantOpt,
    console,
    fail,
    literal,
    open_cache,
    open_model,
    optional_path,
    parse_columns,
    parse_overrides,
    read_problem_text,
    sampling_options,
    user_errors,
)
from qednano.cli.data import data_app
from qednano.cli.train import app as train_app
from qednano.cli.view import view
from qednano.records.limits import DEFAULT_MAX_FAILURES

if TYPE_CHECKING:
    from qednano.llm.model import Model

app = typer.Typer(help="Train and evaluate small models that write olympiad proofs.", no_args_is_help=True)
app.command()(view)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")


@app.command()
def prompts(
    folder: Annotated[Path | None, typer.Argument(help="A folder of replacement prompts to check.")] = None,
) -> None:
    """List the prompts a --prompts folder may replace and the placeholders each must use; check a folder."""
    from qednano.prompts import PACKAGE, Prompts, needs, shipped
    from qednano.tables import rich_table

    with user_errors():
        replaced = Prompts(folder).replaced if folder is not None else {}
    rows = []
    for name, path in shipped().items():
        must, may = (" ".join(f"{{{p}}}" for p in sorted(group)) or "-" for group in needs(name))
        rows.append((name, str(path.relative_to(PACKAGE.parent)), must, may, *(["yes" if name in replaced else ""] if folder else [])))
    header = ("name", "our file", "must use", "may leave out", *(["in folder"] if folder else []))
    rich_table("", header, rows, console)
    if folder is not None:
        console.print(f"{literal(folder)}: {len(replaced)} prompt(s) replaced, all placeholders in order")


@app.command()
def models() -> None:
    """List the registered models (configs/models/*.yaml and $QEDNANO_MODELS)."""
    from qednano.llm.registry import registered_models
    from qednano.tables import markdown_table, rich_table

    with user_errors():
        found = registered_models()
    header = ("name", "backend", "model", "endpoints", "key env", "$/M in", "$/M out")
    rows = [
        (name, spec.backend, spec.model, " ".join(spec.base_urls) or "(in process)", spec.api_key_env or "-",
         f"{spec.prices.input:g}", f"{spec.prices.output:g}")
        for name, (spec, _) in sorted(found.items())
    ]
    if not console.is_terminal:
        # Piped or redirected: whole names in a Markdown table, never cut to a guessed width.
        typer.echo(markdown_table(header, rows))
        return
    table = rich_table("", header, rows)
    for column in table.columns[:3]:
        column.no_wrap = True  # names are copied into commands: never cut or split them
    console.print(table)


@app.command()
def solve(
    problem: Annotated[str, typer.Argument(help="The problem text, or a file holding it.")],
    model: ModelOpt = "smollm2",
    scaffold: ScaffoldOpt = "direct",
    set_: SetOpt = None,
    turns: TurnsOpt = None,
    prompts: PromptsOpt = None,
    temperature: Annotated[float | None, typer.Option(help="Override the model's temperature.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Override the model's max tokens.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    sample: Annotated[int, typer.Option(help="Sample index (a different index is a fresh sample).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Run directory for manifest.json and attempt.json.")] = None,
    timeout: TimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Write a proof for one problem, print it, and keep it (with every call) in a run directory."""
    import json

    from rich.markdown import Markdown
    from rich.panel import Panel
    from rich.text import Text

    from qednano.problems.record import Problem
    from qednano.records.pipeline import run_models
    from qednano.records.rundir import Run, default_run_dir
    from qednano.scaffolds.registry import load_scaffold
    from qednano.secrets import redact

    statement = read_problem_text(problem)
    llm = open_model(model, open_cache(no_cache), timeout, idle_timeout)
    sampling = sampling_options(temperature=temperature, max_tokens=max_tokens, seed=seed)
    llm.defaults = sampling.merged_over(llm.defaults)  # command-line sampling applies to every call
    overrides = parse_overrides(set_, turns=turns, prompts=optional_path(prompts))
    with user_errors():
        solver = load_scaffold(scaffold, llm, overrides)
    config = {"problem": statement, "model": model, "scaffold": scaffold, "scaffold_params": overrides,
              "sampling": sampling.model_dump(exclude_unset=True), "sample": sample}
    with Run(out or default_run_dir("solve", Path(model).stem), "solve", config, models=[llm]) as run:
        attempt = run_models([llm], solve_with_status(solver, Problem(id="cli", statement=statement), sample, llm))
        (run.path / "attempt.json").write_text(json.dumps(redact(attempt.model_dump(mode="json")), indent=2))
    if attempt.status == "failed":
        from qednano.evaluate.commands import print_failures
        from qednano.records.sample import SampleRecord

        print_failures([SampleRecord.start(Problem(id="cli", statement=statement), attempt)], console)
        raise fail(f"the model call failed: {attempt.error} (trace in {run.path})", code=1)
    usage = attempt.usage
    title = f"{llm.name} · {solver.name} · {len(attempt.steps)} calls · {usage.completion_tokens} tokens"
    title += f" · {attempt.finish_reason}" + (f" · stopped by budget ({attempt.stopped_by})" if attempt.stopped_by else "")
    if attempt.steps and all(step.completion.cached for step in attempt.steps):
        title += " · from cache (use --sample N for a fresh one)"
    body = Markdown(attempt.proof) if attempt.proof else "[italic](no proof: the answer was empty or cut off)[/]"
    console.print(Panel(body, title=Text(title)))
    console.print(f"[dim]run directory: {literal(run.path)}[/]")


async def solve_with_status(solver, problem, sample: int, model: "Model"):
    """Run one scaffold attempt while a status line shows the calls and tokens so far."""
    import asyncio

    with console.status("") as status:
        task = asyncio.create_task(solver.solve(problem, sample))
        while not task.done():
            meter = model.meter
            status.update(f"[bold]{literal(model.name)}[/] is writing a proof… {meter.calls + meter.cached} calls, "
                          f"{meter.usage.completion_tokens} tokens")
            await asyncio.wait([task], timeout=0.25)
    return task.result()


@app.command()
def serve(
    model: ModelOpt = "smollm2",
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    timeout: TimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    no_cache: NoCacheOpt = True,
) -> None:
    """Serve a model (the embedded one by default) over an OpenAI-compatible HTTP API."""
    from qednano.llm.server import serve as run_server

    llm = open_model(model, open_cache(no_cache), timeout, idle_timeout)
    load = getattr(llm.backend, "load", None)  # in-process models load (and convert) before serving
    if load is not None:
        with console.status(f"loading {literal(llm.name)}…"):
            load()
    console.print(f"serving [bold]{literal(llm.name)}[/] at http://{host}:{port}/v1 (Ctrl-C to stop)")
    run_server(llm, host=host, port=port)


@app.command("eval")
def eval_command(
    bench: Annotated[str, typer.Option(help="imo-proofbench, imo-answerbench, proofbench, a HF name or a file.")],
    model: ModelOpt = "smollm2",
    grader: GradersOpt = None,
    variant: VariantOpt = "auto",
    aggregate: AggregateOpt = "mean",
    grader_samples: GraderSamplesOpt = 1,
    task: Annotated[str | None, typer.Option(help="proof or answer (default: decided from the problems, and printed).")] = None,
    samples: Annotated[int, typer.Option("-n", "--samples", help="Samples per problem.")] = 1,
    limit: Annotated[int | None, typer.Option(help="Only the first N problems.")] = None,
    problem: Annotated[list[str] | None, typer.Option("--problem", "-p", help="Only this problem id (repeatable).")] = None,
    column: ColumnOpt = None,
    split: Annotated[str | None, typer.Option(help="Dataset split (Hugging Face datasets).")] = None,
    rescale_rubrics: Annotated[bool, typer.Option(help="Scale rubric points that do not sum to 7 (else an error).")] = False,
    keep_self_evaluation: Annotated[bool, typer.Option(help="Grade proofs with their self-evaluation section.")] = False,
    scaffold: ScaffoldOpt = "direct",
    set_: SetOpt = None,
    turns: TurnsOpt = None,
    prompts: PromptsOpt = None,
    temperature: Annotated[float | None, typer.Option(help="Override the prover's temperature.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Override the prover's max tokens.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    concurrency: ConcurrencyOpt = 32,
    max_failures: MaxFailuresOpt = DEFAULT_MAX_FAILURES,
    timeout: TimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    out: RunDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Generate samples for a benchmark, grade them, and report."""
    from qednano.evaluate.commands import EvalConfig, run_eval

    with user_errors():
        config = EvalConfig(
            bench=bench, model=model, graders=grader or [], variant=variant, aggregate=aggregate, grader_samples=grader_samples, task=task,
            samples=samples, limit=limit, problem_ids=problem or [], scaffold=scaffold, concurrency=concurrency,
            scaffold_params=parse_overrides(set_, turns=turns), columns=parse_columns(column), split=split,
            prompts=optional_path(prompts),
            rescale_rubrics=rescale_rubrics, strip_self_evaluation=not keep_self_evaluation,
            sampling=sampling_options(temperature=temperature, max_tokens=max_tokens, seed=seed),
            max_failures=max_failures, timeout_s=timeout, idle_timeout_s=idle_timeout,
        )
        run_eval(config, out, open_cache(no_cache), console)


@app.command()
def grade(
    file: Annotated[Path, typer.Argument(help="Generations (columns problem, model_solution, solution, grading_guidelines, answer).")],
    grader: GradersOpt = None,
    variant: VariantOpt = "auto",
    aggregate: AggregateOpt = "mean",
    grader_samples: GraderSamplesOpt = 1,
    task: Annotated[str | None, typer.Option(help="proof or answer (default: decided from the problems, and printed).")] = None,
    keep_self_evaluation: Annotated[bool, typer.Option(help="Grade proofs with their self-evaluation section.")] = False,
    thinking_in_prompt: Annotated[bool, typer.Option(
        help="The model's chat template opened <think> in the prompt (QED-Nano, Qwen3-Thinking): "
             "a response without </think> is no proof, counted as cut off.")] = False,
    prompts: PromptsOpt = None,
    concurrency: ConcurrencyOpt = 32,
    max_failures: MaxFailuresOpt = DEFAULT_MAX_FAILURES,
    timeout: TimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    out: RunDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Grade an existing file of generations; writes graded.jsonl in the reference format and a report."""
    from qednano.evaluate.commands import GradeConfig, run_grade_file

    with user_errors():
        config = GradeConfig(file=str(file), graders=grader or [], variant=variant, aggregate=aggregate, grader_samples=grader_samples, task=task,
                             strip_self_evaluation=not keep_self_evaluation, thinking_in_prompt=thinking_in_prompt,
                             concurrency=concurrency, prompts=optional_path(prompts),
                             max_failures=max_failures, timeout_s=timeout, idle_timeout_s=idle_timeout)
        run_grade_file(config, out, open_cache(no_cache), console)


@app.command("grader-bench")
def grader_bench(
    data: Annotated[str, typer.Argument(help="IMO-GradingBench CSV, or a rated-proof dataset such as wenjiema02/ProofBench.")],
    grader: Annotated[list[str], typer.Option("--grader", "-g", help="Grader model; repeat for a panel.")],  # required here
    variant: VariantOpt = "auto",
    aggregate: AggregateOpt = "mean",
    grader_samples: GraderSamplesOpt = 1,
    limit: Annotated[int | None, typer.Option(help="Only the first N responses.")] = None,
    column: ColumnOpt = None,
    prompts: PromptsOpt = None,
    concurrency: ConcurrencyOpt = 32,
    max_failures: MaxFailuresOpt = DEFAULT_MAX_FAILURES,
    timeout: TimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    out: RunDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Measure a grader against human grades: MAE, accuracy, correlations, ordering, GRPO advantages."""
    from qednano.evaluate.grader_bench import GraderBenchConfig, run_grader_bench

    with user_errors():
        config = GraderBenchConfig(data=data, graders=grader, variant=variant, aggregate=aggregate, grader_samples=grader_samples, limit=limit,
                                   columns=parse_columns(column), concurrency=concurrency, max_failures=max_failures,
                                   prompts=optional_path(prompts),
                                   timeout_s=timeout, idle_timeout_s=idle_timeout)
        run_grader_bench(config, out, open_cache(no_cache), console)


RunsArg = Annotated[list[Path], typer.Argument(help="Run directories (or graded reference-format JSONL files).")]


@app.command()
def report(
    runs: RunsArg,
    compare: Annotated[bool, typer.Option(help="Compare two runs (paired bootstrap and permutation test).")] = False,
    markdown: Annotated[Path | None, typer.Option(help="Also write the report as Markdown here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
    pass_threshold: Annotated[float | None, typer.Option(help="Score that counts as a pass (default: full marks).")] = None,
) -> None:
    """Report on evaluation runs: scores, pass@k, intervals, breakdowns, tokens, failures, costs."""
    from qednano.evaluate.imported import load_records
    from qednano.reports import compare as comparing
    from qednano.reports.render import render_markdown, render_terminal
    from qednano.reports.report import build_report

    if compare and len(runs) != 2:
        raise fail(f"--compare takes exactly two runs, got {len(runs)}")
    with user_errors():  # unreadable runs, mixed scales and duplicate samples are one error line
        loaded = [load_records(path) for path in runs]
        if compare:
            (a, _), (b, _) = loaded
            result = comparing.compare_runs(a, b, a_name=runs[0].name, b_name=runs[1].name)
        else:
            built = [build_report(records, manifest, pass_threshold=pass_threshold) for records, manifest in loaded]
    if compare:
        comparing.render_terminal(result, console)
        outputs = (comparing.render_markdown(result), result.model_dump_json(indent=2))
    else:
        for one in built:
            render_terminal(one, console)
        outputs = ("\n\n".join(render_markdown(r) for r in built), "[" + ",".join(r.model_dump_json() for r in built) + "]")
    if markdown:
        markdown.write_text(outputs[0])
    if json_out:
        json_out.write_text(outputs[1])


@app.command()
def scaling(
    runs: RunsArg,
    out: Annotated[Path, typer.Option(help="Folder for scaling.md and scaling.png.")] = Path("scaling"),
    label: Annotated[list[str] | None, typer.Option(help="A label per run (default: scaffold and its params).")] = None,
) -> None:
    """Test-time scaling: score against tokens and cost per problem, one point per run."""
    from rich.markdown import Markdown

    from qednano.evaluate.imported import load_records
    from qednano.reports.scaling import scaling_report

    if label and len(label) != len(runs):
        raise fail(f"give one --label per run ({len(runs)}), or none")
    settings = []
    with user_errors():  # unreadable runs and repeated labels are one error line
        for index, path in enumerate(runs):
            records, manifest = load_records(path)
            settings.append((label[index] if label else setting_label(manifest, path), records))
        table, plot = scaling_report(settings, out)
    console.print(Markdown(table.read_text()))
    console.print(f"plot: [bold]{literal(plot)}[/]")


def setting_label(manifest: dict, path: Path) -> str:
    config = manifest.get("config", {})
    params = ", ".join(f"{k}={v}" for k, v in sorted(config.get("scaffold_params", {}).items()))
    return f"{config.get('scaffold', path.name)}" + (f" ({params})" if params else "")
