"""A run's report as rich tables (terminal) and Markdown (report.md); report.json is the
Report itself."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from qednano.records.failures import FAILURE_HEADER, failure_rows
from qednano.reports.counts import Tokens
from qednano.reports.disagreement import disagreement_rows
from qednano.reports.report import GroupScore, Report
from qednano.reports.strict import left_out_warning, left_out_words
from qednano.tables import markdown_table, number, rich_table


def _title(report: Report) -> str:
    return f"{report.model or 'unknown model'} on {report.bench or 'unknown bench'}"


def summary_rows(report: Report) -> list[tuple[str, str]]:
    ci = report.ci_points
    rows = [("run status", report.run_status)] if report.run_status else []
    return rows + [
        ("problems scored", f"{report.problems} of {report.problems_seen}"),
        ("mean (points)", f"{number(report.mean_points)} of {number(report.max_score, 0)}{left_out_note(report)}"),
        ("mean (% of max)", number(report.mean_percent, 1)),
        ("strict mean (points)", f"{number(report.strict_mean_points)} (failed, ungraded, pending count 0)"),
        ("std over samples (runs)", number(report.std_over_runs)),
        ("95% CI (points)", "-" if ci is None else f"{ci[0]:.2f} to {ci[1]:.2f}"),
        ("pass threshold", number(report.pass_threshold, 2)),
        ("mean reasoning tokens", reasoning_number(report.tokens, report.tokens.mean_reasoning)),
        ("mean proof tokens", reasoning_number(report.tokens, report.tokens.mean_proof)),
        ("total tokens", str(report.tokens.total)),
        ("generation cost (USD)", f"{report.cost.generation_usd:.4f}"),
        ("grading cost (USD)", f"{report.cost.grading_usd:.4f}"),
    ]


def left_out_note(report: Report) -> str:
    c = report.counts
    return left_out_words(c.ungraded, c.failed, c.pending)


def warning(report: Report) -> str:
    c = report.counts
    return left_out_warning(c.samples, c.ungraded, c.failed, c.pending)


def reasoning_number(tokens: Tokens, value: float | None) -> str:
    unknown = tokens.reasoning_unknown
    return f"unknown ({unknown} samples without a reasoning count)" if unknown else number(value, 0)


def at_k_rows(report: Report) -> list[tuple[str, ...]]:
    return [(str(m.k), number(m.pass_at_k, 3), number(m.mean_at_k), number(m.best_at_k)) for m in report.at_k]


def at_k_note(report: Report) -> str:
    if not report.ks_left_out:
        return ""
    ks = ", ".join(str(k) for k in report.ks_left_out)
    return f"k = {ks} left out: some problem has fewer scored samples than that."


def breakdown_rows(groups: list[GroupScore], max_score: float | None) -> list[tuple[str, ...]]:
    percent = (lambda mean: number(100 * mean / max_score, 1)) if max_score else (lambda mean: "-")
    return [(g.value, number(g.mean), percent(g.mean), str(g.problems), str(g.samples)) for g in groups]


AT_K_HEADER = ("k", "pass@k", "mean@k (points)", "best@k (points)")
BREAKDOWN_HEADER = ("mean (points)", "% of max", "problems", "scored samples")
# A breakdown with more groups than this (IMO-ProofBench's sources: nearly one per problem) is
# left to report.md: in the terminal it would push the headline numbers off the screen.
TERMINAL_GROUPS = 12


def render_terminal(report: Report, console: Console | None = None) -> Group:
    """The report as rich tables; printed to `console` when one is given, and returned."""
    counts = report.counts.model_dump()
    tables: list[Table | Text] = [
        rich_table(_title(report), ("", "value"), summary_rows(report)),
        *([Text(warn, style="bold yellow")] if (warn := warning(report)) else []),
        rich_table("samples", tuple(counts), [tuple(str(v) for v in counts.values())]),
    ]
    if report.at_k:
        tables.append(rich_table("at k samples", AT_K_HEADER, at_k_rows(report)))
    if note := at_k_note(report):
        tables.append(Text(note, style="dim"))
    for field, groups in report.breakdown.items():
        if not groups:
            continue  # nothing scored yet
        if len(groups) > TERMINAL_GROUPS:
            tables.append(Text(f"by {field}: {len(groups)} groups, in report.md", style="dim"))
            continue
        tables.append(rich_table(f"by {field}", (field, *BREAKDOWN_HEADER), breakdown_rows(groups, report.max_score)))
    if report.panel is not None:
        tables.append(rich_table("panel disagreement", ("", "value"), disagreement_rows(report.panel)))
    if report.failures.failed:
        tables.append(rich_table("failures", FAILURE_HEADER, failure_rows(report.failures)))
    group = Group(*tables)
    if console is not None:
        console.print(group)
    return group


def render_markdown(report: Report) -> str:
    counts = report.counts.model_dump()
    parts = [
        f"# {_title(report)}",
        markdown_table(("", "value"), summary_rows(report)),
        *([f"**{warn}**"] if (warn := warning(report)) else []),
        "## Samples",
        markdown_table(tuple(counts), [tuple(str(v) for v in counts.values())]),
    ]
    if report.at_k:
        parts += ["## At k samples", markdown_table(AT_K_HEADER, at_k_rows(report))]
    if note := at_k_note(report):
        parts.append(note)
    for field, groups in report.breakdown.items():
        if not groups:
            continue
        parts += [f"## By {field}", markdown_table((field, *BREAKDOWN_HEADER), breakdown_rows(groups, report.max_score))]
    if report.panel is not None:
        parts += ["## Panel disagreement", markdown_table(("", "value"), disagreement_rows(report.panel))]
    if report.failures.failed:
        parts += ["## Failures", markdown_table(FAILURE_HEADER, failure_rows(report.failures))]
    return "\n\n".join(parts) + "\n"
