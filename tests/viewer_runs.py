"""Run directories for the viewer tests, made the way the commands make them.

Two evaluation runs are produced for real by `qednano eval` on scripted models (one with the
reasoning-cache scaffold, one direct and graded by a panel) over a small problem file whose rows exercise every cell
status: graded, failed, no proof (truncated), ungraded. A verify-refine attempt is solved by the
real scaffold, and so is an RSA attempt, stored with SampleStore. A data-distill run
holds graded proofs in the same files. The training and decontamination runs follow the
run-directory contracts of the train and data floors (manifest by `Run`, then JSONL files).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qednano.cli import app
from qednano.llm.model import Model
from qednano.llm.scripted import BUILTIN_SCRIPTS, ScriptedBackend
from qednano.llm.types import Completion
from qednano.problems.record import Problem
from qednano.records.rundir import Run
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore
from qednano.scaffolds.budget import call_index
from qednano.scaffolds.config import Roles
from qednano.scaffolds.direct import Direct, DirectConfig
from qednano.scaffolds.rsa import RSA, RSAConfig
from qednano.scaffolds.verify_refine import VerifyRefine, VerifyRefineConfig

RUBRIC = [{"title": "Setup", "points": 2, "desc": "Sets up $a_1$ and $b_2$."}, {"title": "Finish", "points": 5, "desc": "Concludes."}]
PROBLEMS = [
    {"id": "alpha-1", "problem": "ALPHA: prove that $a_1 + b_2 \\geq 2\\sqrt{a_1 b_2}$ for $a_1, b_2 > 0$.",
     "solution": "By AM-GM, \\( (\\sqrt{a_1} - \\sqrt{b_2})^2 \\geq 0 \\).", "category": "Algebra", "level": "easy", "source": "Novel"},
    {"id": "beta-2", "problem": "BETA: show that $\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$.",
     "solution": "Induction on $n$.", "category": "Algebra", "level": "medium", "source": "Textbook"},
    {"id": "gamma-3", "problem": "GAMMA: a triangle has angles $\\alpha, \\beta, \\gamma$; prove $\\alpha+\\beta+\\gamma=\\pi$.",
     "solution": "Draw a parallel line.", "category": "Geometry", "level": "easy", "source": "Novel"},
    {"id": "delta-4", "problem": "DELTA: every graph with $n$ vertices and $n$ edges has a cycle.",
     "solution": "A forest has at most $n-1$ edges.", "category": "Combinatorics", "level": "hard", "source": "Olympiad"},
]
SCRIPT_PROOF = "<script>window.__pwned = 1; document.title = 'pwned'</script>"
ALPHA_PROOF = (
    "Proof. Let $x_1 = \\sqrt{a_1}$ and $y_2 = \\sqrt{b_2}$, so that \\( x_1^2 = a_1 \\). Then\n\n"
    "$$\n(x_1 - y_2)^2 \\geq 0,\n$$\n\nand expanding gives \\[ a_1 + b_2 \\geq 2 x_1 y_2. \\]\n\n"
    f"The text {SCRIPT_PROOF} is only text. A slip: $\\frac{{1}}{{$ stays as source. $\\blacksquare$"
)


def prover(messages, sampling):
    prompt = messages[-1]["content"]
    if "Rewrite my notes" in prompt:
        return "I showed that $x_1^2 = a_1$; next I expand the square."
    if "VERDICT: <v>" in prompt:
        return "No issues found.\nVERDICT: 1" if "(refined)" in prompt else "A gap in step 2.\nVERDICT: 0.5"
    if "WINNER: <A or B>" in prompt:
        return "Proof A has no gap.\nWINNER: A"
    if "candidate solutions written independently" in prompt:
        return "<think>combine</think>Proof (aggregated). Induction on $n$, with $S_n = S_{n-1} + n$."
    if "Reviewers' reports" in prompt:
        return "<think>fix the gap</think>Proof (refined). We expand the square $(x_1 - y_2)^2$ and conclude."
    if "ALPHA" in prompt:
        return f"<think>Try AM-GM with $x_1$.</think>{ALPHA_PROOF}"
    if "BETA" in prompt and sampling.seed == call_index(1, "generate", 1):  # sample 1's first RC turn
        return Completion.failure("prover", "http_500", "server error after retries")
    if "GAMMA" in prompt:
        return Completion(model="prover", reasoning="angles angles angles", reasoning_closed=False, finish_reason="length")
    return f"<think>short</think>Proof. By induction on $n$; the case $n_0 = 1$ holds (seed {sampling.seed})."


def grader(messages, sampling):
    prompt = messages[0]["content"]
    if "DELTA" in prompt:
        return "I cannot decide."  # never a verdict: ungraded
    points = (2, 5) if "ALPHA" in prompt else (1, 5)  # scores 7 and 6 (the scale is 0, 1, 6, 7)
    return f"The proof uses $x_1$ correctly.\nCHECKPOINT Setup: {points[0]}\nCHECKPOINT Finish: {points[1]}\nFINAL SCORE: {sum(points)}"


def other_prover(messages, sampling):
    return "<think>quick</think>Proof. Trivial, since $x_1 \\ge 0$."


def eval_run(out: Path, problems_file: Path, model: str, *options: str) -> None:
    args = ["eval", "--bench", str(problems_file), "-m", model, "-g", "grader", "-n", "2", "--out", str(out),
            "--seed", "0", *options]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, repr(result.exception))


def scaffold_run(out: Path) -> None:
    """A verify-refine attempt (alpha-1) and an RSA attempt (beta-2) by the real scaffolds, ungraded."""
    model = Model("prover", ScriptedBackend(prover, "prover"))
    alpha = Problem(id="alpha-1", statement=PROBLEMS[0]["problem"])
    beta = Problem(id="beta-2", statement=PROBLEMS[1]["problem"])
    verify_refine = VerifyRefine(VerifyRefineConfig(pool=2, verifications=2, rounds=1, refine_top=1), Roles(model), Direct(DirectConfig(), Roles(model)))
    rsa = RSA(RSAConfig(population=3, subset=2, rounds=1), Roles(model), Direct(DirectConfig(), Roles(model)))
    with Run(out, "eval", {"scaffold": "verify_refine and rsa"}):
        store = SampleStore(out / "samples.jsonl")
        store.append(SampleRecord.start(alpha, asyncio.run(verify_refine.solve(alpha, 0))))
        store.append(SampleRecord.start(beta, asyncio.run(rsa.solve(beta, 0))))


def distill_run(out: Path, source: Path) -> None:
    """A data-distill run: graded proofs in samples.jsonl, as the data floor writes them."""
    with Run(out, "data-distill", {"teacher": "other_prover"}):
        for name in ("samples.jsonl", "problems.jsonl"):
            (out / name).write_text((source / name).read_text())


def training_run(out: Path) -> None:
    with Run(out, "train-rl", {"recipe": "tiny", "note": SCRIPT_PROOF}):
        rows = [{"step": s, "loss": 0.5 - 0.04 * s, "reward": 0.1 * s, "reward_std": 0.2, "learning_rate": 1e-5} for s in range(1, 7)]
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        completions = [
            {"step": s, "problem_id": f"p{k}", "prompt": [{"role": "user", "content": f"What is $1+{k}$? (step {s})"}],
             "completion": f"The answer is $\\boxed{{{k + 1 if k else 7}}}$.", "reward": 1.0 if k else 0.0,
             "rewards": {"answer": 1.0 if k else 0.0, "length_penalty": None},
             "advantage": 0.5 if k else -0.5, "grade_status": "graded" if k < 2 else "ungraded", "state": None}
            for s in (1, 2, 3) for k in range(3)
        ]
        (out / "completions.jsonl").write_text("".join(json.dumps(c) + "\n" for c in completions))


def decontamination_run(out: Path) -> None:
    with Run(out, "data-decontaminate", {"against": ["imo-proofbench"]}):
        matches = [
            {"train_id": "t-7", "against_id": "PB-Basic-001", "against": "imo-proofbench", "method": "ngram", "similarity": 0.91,
             "train_text": "Find all $f: \\mathbb{Z} \\to \\mathbb{Z}$ with $f(2a) + 2f(b) = f(f(a+b))$.",
             "against_text": "Determine all functions $f: \\mathbb{Z} \\rightarrow \\mathbb{Z}$ such that $f(2a)+2f(b)=f(f(a+b))$."},
            {"train_id": "t-9", "against_id": "PB-Basic-002", "against": "imo-proofbench", "method": "exact", "similarity": 1.0,
             "train_text": "Show that $x^2 \\ge 0$.", "against_text": "Show that $x^2 \\ge 0$."},
        ]
        (out / "matches.jsonl").write_text("".join(json.dumps(m) + "\n" for m in matches))


def make_runs(root: Path) -> dict[str, Path]:
    """Every kind of run directory the viewer reads, under `root` (models and cache there too)."""
    models = root / "models"
    models.mkdir(parents=True)
    for name in ("prover", "grader", "grader2", "other_prover"):
        (models / f"{name}.yaml").write_text(f"name: {name}\nbackend: scripted\nmodel: {name}\nprices: {{input: 1.0, output: 2.0}}\n")
    problems_file = root / "problems.jsonl"
    problems_file.write_text("".join(json.dumps({**p, "rubric": RUBRIC}) + "\n" for p in PROBLEMS))
    runs = {name: root / name for name in ("rc-run", "direct-run", "scaffold-run", "distill-run", "train-run", "decon-run")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QEDNANO_MODELS", str(models))
        patch.setenv("QEDNANO_CACHE_DIR", str(root / "cache"))
        for name, reply in {"prover": prover, "grader": grader, "grader2": grader, "other_prover": other_prover}.items():
            patch.setitem(BUILTIN_SCRIPTS, name, reply)
        eval_run(runs["rc-run"], problems_file, "prover", "--scaffold", "rc", "--turns", "2")
        eval_run(runs["direct-run"], problems_file, "other_prover", "-g", "grader2")  # a panel of two graders
        scaffold_run(runs["scaffold-run"])
    distill_run(runs["distill-run"], runs["direct-run"])
    training_run(runs["train-run"])
    decontamination_run(runs["decon-run"])
    return runs
