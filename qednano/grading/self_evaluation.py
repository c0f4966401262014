"""Self-evaluation sections: cut from a proof before it is graded.

Models distilled from DeepSeek-Math-V2 end a proof with a section that grades it ("## Self
Evaluation", "# Evaluation", "### **Final Evaluation**", often with a self-awarded score). Graded
as part of the proof, the model's own verdict would reach the grader. As the QED-Nano reference
does, everything from the first such heading (a Markdown heading of one or more `#`, bold marks
allowed, "Self" or "Final" optional before "Evaluation") to the end is removed. `StripSelfEvaluation`
wraps any grader with this and records the removed text on the grade.
"""

from __future__ import annotations

import re

from qednano.grading.record import Grade, ProofGrader
from qednano.problems.record import Problem

HEADING = re.compile(r"^#+[ \t]*[*_ \t]*(?:(?:Self|Final)[*_ \t]*){0,2}Evaluation\b", re.IGNORECASE | re.MULTILINE)


def strip_self_evaluation(proof: str) -> tuple[str, str]:
    """(the proof without its self-evaluation, the removed section or "")."""
    match = HEADING.search(proof)
    if match is None:
        return proof, ""
    return proof[: match.start()].rstrip(), proof[match.start() :].strip()


class StripSelfEvaluation:
    """A grader that grades proofs with their self-evaluation section removed."""

    def __init__(self, grader: ProofGrader):
        self.grader = grader
        self.name = grader.name

    async def grade(self, problem: Problem, proof: str, sample_index: int = 0) -> Grade:
        kept, removed = strip_self_evaluation(proof)
        grade = await self.grader.grade(problem, kept, sample_index)
        return grade.model_copy(update={"self_evaluation": removed}) if removed else grade
