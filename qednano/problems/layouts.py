"""The datasets we know: IMO-Bench files and Hugging Face datasets, their column maps and checks,
the benchmark short names, and the data folders where local copies are looked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from qednano.paths import REPO, search_dirs
from qednano.problems.columns import ColumnMap, Layout

IMOBENCH_CATEGORIES = ("Algebra", "Combinatorics", "Geometry", "Number theory")
IMOBENCH_LEVELS = ("pre-IMO", "IMO-easy", "IMO-medium", "IMO-hard")


IMOBENCH_CSV_COLUMNS = ColumnMap(
    id="Problem ID",
    statement="Problem",
    reference_solution=("Solution",),
    grading_guidelines=("Grading guidelines",),
    rubric=None,
    short_answer=("Short Answer",),
    category="Category",
    level=("Level",),
    source="Source",
    year=None,
    metadata={"subcategory": ("Subcategory",)},
)
IMOBENCH_PROOF = Layout(columns=IMOBENCH_CSV_COLUMNS, imobench=True, required=("reference_solution", "grading_guidelines"))
IMOBENCH_ANSWER = Layout(columns=IMOBENCH_CSV_COLUMNS, imobench=True, required=("short_answer",))

# Hugging Face datasets we know. Column names were read from dataset cards and from code that
# loads these datasets; where that left doubt, a field lists candidates (first present wins):
# - lm-provers/IMOProofBench: problem, solution, grading_guidelines, answer, category, level,
#   source; its id column is seen both as problem_id and as question_id.
# - lm-provers/IMOBench-FinalAnswer: problem and answer are confirmed; the id, category,
#   subcategory and source names are assumed to follow IMOProofBench.
# - lm-provers/ProofBench: problem_id, problem, solution and grading_scheme (its marking scheme)
#   are confirmed; splits 24_25, other and train.
# - wenjiema02/ProofBench (dataset card): problem_id, problem, generator, model_solution,
#   reference_solution, expert_rating (0-7), marking_scheme, generation_prompt,
#   metadata{contest, contest_year}, response_number; splits train and best_of_n. Several rows
#   (one per graded model solution) share a problem.
# Pass `columns=` to override any of them.
_IMOBENCH_HUB_COLUMNS = ColumnMap(
    id=("problem_id", "question_id", "Problem ID", "id"),
    statement=("problem", "Problem"),
    reference_solution=("solution", "Solution"),
    grading_guidelines=("grading_guidelines", "Grading guidelines"),
    rubric=None,
    short_answer=("answer", "short_answer", "Short Answer"),
    category=("category", "Category"),
    level=("level", "Level"),
    source=("source", "Source"),
    year=None,
    metadata={"subcategory": ("subcategory", "Subcategory")},
)
HUB_LAYOUTS: dict[str, Layout] = {
    "lm-provers/IMOProofBench": IMOBENCH_PROOF.model_copy(update={"columns": _IMOBENCH_HUB_COLUMNS}),
    "lm-provers/IMOBench-FinalAnswer": IMOBENCH_ANSWER.model_copy(update={"columns": _IMOBENCH_HUB_COLUMNS}),
    "Hwilner/imo-proofbench": IMOBENCH_PROOF,
    "Hwilner/imo-answerbench": IMOBENCH_ANSWER,
    "lm-provers/ProofBench": Layout(
        columns=ColumnMap(
            id="problem_id",
            statement="problem",
            reference_solution=("solution",),
            grading_guidelines=None,
            rubric="grading_scheme",
            short_answer=None,
            category=("category",),
            level=None,
            source=("source", "competition"),
            year=("year",),
        ),
        required=("marking_scheme",),
    ),
    "wenjiema02/ProofBench": Layout(
        columns=ColumnMap(
            id="problem_id",
            statement="problem",
            reference_solution="reference_solution",
            grading_guidelines=None,
            rubric="marking_scheme",
            short_answer=None,
            category=None,
            level=None,
            source="metadata.contest",
            year="metadata.contest_year",
            response="model_solution",
            human_points="expert_rating",
            generator="generator",
        ),
        required=("marking_scheme",),
        one_row_per_problem=False,
    ),
}


# IMO-GradingBench: human-graded proofs (Points 0-7) of IMO-ProofBench-style problems.
IMO_GRADINGBENCH = Layout(
    columns=ColumnMap(
        id=("Problem ID",),
        statement="Problem",
        reference_solution=("Solution",),
        grading_guidelines=("Grading guidelines",),
        rubric=None,
        short_answer=None,
        category=None,
        level=None,
        source=("Problem Source",),
        year=None,
        metadata={"grading_id": ("Grading ID",)},
        response="Response",
        human_points="Points",
    ),
    required=("reference_solution", "grading_guidelines"),
    one_row_per_problem=False,
    hash_missing_ids=True,
)


class Benchmark(BaseModel):
    """A benchmark short name: a local file name to look for, else a Hugging Face dataset."""

    hub: str
    split: str = "train"
    local_file: str | None = None


BENCHMARKS: dict[str, Benchmark] = {
    "imo-proofbench": Benchmark(hub="lm-provers/IMOProofBench", local_file="proofbench_v2.csv"),
    "imo-answerbench": Benchmark(hub="lm-provers/IMOBench-FinalAnswer", local_file="answerbench_v2.csv"),
    "proofbench": Benchmark(hub="lm-provers/ProofBench"),
}


def data_dirs() -> list[Path]:
    """Where benchmark files are looked for: $QEDNANO_DATA_DIR (colon-separated), ./data, the
    repo's data/, and a `shared/data` folder beside the repo checkout."""
    return [*search_dirs("QEDNANO_DATA_DIR", "data"), REPO.parent / "shared" / "data"]


def find_local(file_name: str) -> Path | None:
    """The first data directory holding `file_name`, directly or in an `imobench/` folder."""
    for folder in data_dirs():
        for candidate in (folder / file_name, folder / "imobench" / file_name):
            if candidate.is_file():
                return candidate
    return None


def detect_layout(columns: Sequence[str]) -> Layout:
    """IMO-Bench files are recognised by their header; anything else gets the default guesses."""
    if {"Problem", "Response", "Points"} <= set(columns):
        return IMO_GRADINGBENCH
    if {"Problem ID", "Problem", "Category", "Source"} <= set(columns):
        return IMOBENCH_PROOF if "Grading guidelines" in columns else IMOBENCH_ANSWER
    return Layout()
