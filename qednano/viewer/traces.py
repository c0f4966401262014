"""A scaffold's calls in order, grouped into stages for reading.

A stage is a run of consecutive calls with the same turn and role: a reasoning-cache turn's
reasoning, then the summary it hands to the next turn; an RSA population (N aggregations), then
a knockout bracket; a verify-refine round's k verifications per proof, then its refinements. Judge calls show the
verdict the scaffold read from them, with the scaffolds' own parsers, so the viewer shows what
the scaffold acted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qednano.scaffolds.base import Attempt, Step
from qednano.scaffolds.tournament import parse_winner
from qednano.scaffolds.verify_refine import read_verification

VERDICT_READERS = {
    "verify": ("verdict", read_verification),
    "compare": ("winner", parse_winner),
}


@dataclass
class CallView:
    number: int  # position in the attempt, from 1
    step: Step
    verdict: str | None = None  # what the scaffold read from a judge call ("unreadable" if nothing)
    note: str = ""

    @property
    def tokens(self) -> int:
        usage = self.step.completion.usage
        return usage.prompt_tokens + usage.completion_tokens


@dataclass
class Stage:
    turn: int
    role: str
    calls: list[CallView] = field(default_factory=list)

    @property
    def title(self) -> str:
        count = len(self.calls)
        return f"turn {self.turn}: " + (f"{count} × {self.role}" if count > 1 else self.role)


def verdict_of(step: Step) -> str | None:
    reader = VERDICT_READERS.get(step.role)
    if reader is None or not step.completion.ok:
        return None
    label, parse = reader
    value = parse(step.completion.content)
    return f"{label} {value:g}" if isinstance(value, float) else f"{label} {value}" if value is not None else "unreadable"


def note_of(step: Step, is_rc: bool) -> str:
    if step.note:  # what the scaffold recorded about a reply it carried on past (an empty summary)
        return step.note
    if step.role == "summarize" and is_rc:
        return f"summary handed on to turn {step.turn + 1}"
    if step.role == "aggregate":
        return "aggregation of a subset of the previous population"
    return ""


def stages(attempt: Attempt) -> list[Stage]:
    """The attempt's calls in order, one stage per run of calls with the same turn and role."""
    is_rc = any(s.role == "summarize" for s in attempt.steps)
    found: list[Stage] = []
    for number, step in enumerate(attempt.steps, start=1):
        if not found or (found[-1].turn, found[-1].role) != (step.turn, step.role):
            found.append(Stage(step.turn, step.role))
        found[-1].calls.append(CallView(number, step, verdict_of(step), note_of(step, is_rc)))
    return found
