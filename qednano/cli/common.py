"""What every `qednano` subcommand shares: the consoles, one-line user errors, option types.

Everything printed from user data or exceptions goes through here.

Only typer and rich are imported at the top of the cli modules: `qednano --help` and a command's
own start should not pay for what other commands use (pydantic models, the openai SDK, datasets,
scipy). The rest is imported inside the functions that need it.

The cli modules leave out `from __future__ import annotations`: typer reads every command's
parameters from their annotations at each start, and evaluating them from strings took about
25 ms of it. Annotations of names imported only for type checking are written as strings.
"""

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

if TYPE_CHECKING:
    from qednano.llm.cache import CallCache
    from qednano.llm.model import Model
    from qednano.llm.types import Sampling

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Registered name, YAML path, checkpoint folder, or openai:MODEL@URL.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the call cache.")]

# No emoji codes: a model's text or a problem holding ":name:" is printed as written (and rich's
# table of emoji names is not loaded).
console = Console(emoji=False)
errors = Console(stderr=True, emoji=False)


def open_cache(disabled: bool) -> "CallCache | None":
    from qednano.llm.cache import CallCache
    from qednano.paths import cache_root

    return None if disabled else CallCache(cache_root() / "calls.sqlite")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` literally (paths and YAML errors hold square brackets, not markup).

    Exit code 2 is a usage error (bad option, file or model config); 1 a run that failed."""
    errors.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True, highlight=False)
    return typer.Exit(code=code)


def literal(text: object) -> str:
    """`text` escaped for a rich markup string, so user data prints as written."""
    return escape(str(text))


@contextmanager
def user_errors():
    """Turn a bad option, file or model config into one clear error line (exit code 2), and a
    run stopped by its failures into one too (exit code 1)."""
    from pydantic import ValidationError  # imported here, when a command runs (see the docstring above)

    from qednano.errors import first_error
    from qednano.llm.spec import ModelConfigError
    from qednano.records.failures import RunFailed

    try:
        yield
    except RunFailed as err:
        raise fail(str(err), code=1) from None
    except ValidationError as err:
        field, message = first_error(err)
        raise fail(f"option {field}: {message}") from None
    except (ModelConfigError, ValueError, FileNotFoundError) as err:
        raise fail(str(err)) from None


def open_model(spec: str, cache: "CallCache | None", timeout: float | None = None, idle_timeout: float | None = None) -> "Model":
    from qednano.llm.registry import load_model

    with user_errors():
        return load_model(spec, cache=cache, timeout_s=timeout, idle_timeout_s=idle_timeout)


def sampling_options(**given: object) -> "Sampling":
    """Sampling settings from command-line options; an option left unset keeps the model's default."""
    from qednano.llm.types import Sampling  # pydantic models load when a command runs, not for --help

    return Sampling(**{k: v for k, v in given.items() if v is not None})


def parse_overrides(pairs: list[str] | None, **named: object) -> dict[str, object]:
    """Scaffold params from `--set key=value` (values read as YAML) and named shortcuts like --turns."""
    params: dict[str, object] = {k: v for k, v in named.items() if v is not None}
    for pair in pairs or []:
        import yaml  # only when there is a value to read: PyYAML takes 15 ms to import

        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"--set takes key=value, got {pair!r}")
        params[key.strip()] = yaml.safe_load(value)
    return params


def parse_columns(pairs: list[str] | None) -> dict[str, str]:
    columns = {}
    for pair in pairs or []:
        field, sep, column = pair.partition("=")
        if not sep or not field or not column:
            raise fail(f"--column takes field=COLUMN, got {pair!r}")
        columns[field.strip()] = column.strip()
    return columns


GradersOpt = Annotated[list[str] | None, typer.Option("--grader", "-g", help="Grader model; repeat for a panel.")]
ColumnOpt = Annotated[list[str] | None, typer.Option(help="Column map for files: field=COLUMN, e.g. statement=question.")]
VariantOpt = Annotated[str, typer.Option(help="Proof-grading prompt: auto (from each problem), reference, strict, advisory, marking_scheme, no_reference.")]
AggregateOpt = Annotated[str, typer.Option(help="Panel aggregate: mean, median, min.")]
GraderSamplesOpt = Annotated[int, typer.Option(help="Gradings per grader model, aggregated as a panel.")]
ConcurrencyOpt = Annotated[int, typer.Option(help="Samples generated or graded at once.")]
MaxFailuresOpt = Annotated[float, typer.Option(
    help="Failed samples tolerated before the run stops early (exit code 1): below 1 a fraction of the "
         "samples (rounded up), 1 or more a count. A run in which every sample failed always exits 1.")]
TimeoutOpt = Annotated[float | None, typer.Option(
    "--timeout", help="Seconds one HTTP model call may take in all (default: the model file's, else 3600).")]
IdleTimeoutOpt = Annotated[float | None, typer.Option(
    "--idle-timeout", help="Seconds without a streamed token before an HTTP call counts as hung and is "
                           "retried (default: the model file's, else 120).")]
RunDirOpt = Annotated[Path | None, typer.Option(help="Run directory (an existing one is resumed).")]


ScaffoldOpt = Annotated[str, typer.Option(help="Scaffold: direct, rc, rsa, verify_refine, self_check, best_of_n, or a YAML file.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Scaffold parameter key=value (repeatable).")]
TurnsOpt = Annotated[int | None, typer.Option(help="Reasoning-cache turns (same as --set turns=N).")]
PromptsOpt = Annotated[
    Path | None, typer.Option(help="Folder of replacement prompt files (NAME.txt, e.g. solve.txt, grade_reference.txt); others keep ours.")
]


def optional_path(path: Path | None) -> str | None:
    """A path option as configs store it (text), or None when it was not given."""
    return None if path is None else str(path)


def read_problem_text(problem: str) -> str:
    path = Path(problem)
    if len(problem) < 4096 and path.is_file():
        return path.read_text()
    return problem
