"""Thinking opened in the prompt, reasoning-token counts, and self-evaluation sections (issue 12)."""

import json
import shutil
from pathlib import Path

import pytest

from qednano.grading.build import GradingConfig, build_grader
from qednano.grading.record import Grade
from qednano.grading.self_evaluation import strip_self_evaluation
from qednano.llm.model import Model
from qednano.llm.registry import build_model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.spec import ModelConfigError, ModelSpec
from qednano.llm.types import Completion, Usage, proof_text
from qednano.problems.record import Problem
from qednano.records.sample import SampleRecord
from qednano.reports.render import render_markdown
from qednano.reports.report import build_report
from qednano.scaffolds.config import Roles
from qednano.scaffolds.direct import Direct, DirectConfig
from qednano.train.rewards import proof_of

PROBLEM = Problem(id="p", statement="Prove that 1 + 1 = 2.", reference_solution="Count.")


@pytest.fixture(scope="module")
def smollm_tokenizer(tmp_path_factory) -> Path:
    """The SmolLM2 tokenizer as a folder: cached by an earlier run, else read from the GGUF file."""
    cached = sorted((Path.home() / ".cache/qednano/tokenizers").glob("SmolLM2-*"))
    if cached:
        return cached[0]
    from transformers import AutoTokenizer

    from qednano.llm.embedded import find_gguf

    gguf = find_gguf("SmolLM2-135M-Instruct")
    folder = tmp_path_factory.mktemp("smollm2-tokenizer")
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return folder


def served(reply: Completion, **model) -> Model:
    return Model("served", ScriptedBackend(lambda messages, sampling: reply), **model)


# ------------------------------------------------------------------- thinking opened in the prompt

CUT = Completion(model="m", content="Let me think about parity... and then", finish_reason="length")
CLOSED = Completion(model="m", content="The proof: 1 + 1 = 2.", reasoning="thinking", finish_reason="stop")


async def test_a_cut_output_without_closing_tag_is_no_proof_and_truncated():
    attempt = await Direct(DirectConfig(), Roles(model=served(CUT, thinking_in_prompt=True))).solve(PROBLEM)
    assert (attempt.status, attempt.proof, attempt.truncated) == ("no_proof", "", True)
    record = SampleRecord.start(PROBLEM, attempt).model_copy(update={"grade": Grade(status="no_proof", score=0)})
    counts = build_report([record], {}).counts
    assert (counts.no_proof, counts.truncated, counts.graded) == (1, 1, 0)


async def test_without_the_setting_plain_text_is_the_proof_and_a_closed_block_always_is():
    plain = await Direct(DirectConfig(), Roles(model=served(CUT))).solve(PROBLEM)
    assert plain.status == "ok"
    closed = await Direct(DirectConfig(), Roles(model=served(CLOSED, thinking_in_prompt=True))).solve(PROBLEM)
    assert (closed.status, closed.proof) == ("ok", "The proof: 1 + 1 = 2.")


@pytest.mark.parametrize(
    ("text", "opened", "proof"),
    [
        ("reasoning cut off", True, ""),
        ("reasoning</think>\nThe proof.", True, "The proof."),
        ("The proof.", False, "The proof."),
        ("<think>never closed", False, ""),
    ],
)
def test_one_rule_for_eval_and_rewards(text, opened, proof):
    assert proof_text(text, opened) == proof
    assert proof_of(text, reasoning_in_prompt=opened) == proof


def tokenizer_folder(source: Path, tmp_path, opens_thinking: bool) -> str:
    folder = tmp_path / "tok"
    shutil.copytree(source, folder)
    tail = "<think>\n" if opens_thinking else ""
    template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" \
        "{% if add_generation_prompt %}<|im_start|>assistant\n" + tail + "{% endif %}"
    (folder / "chat_template.jinja").write_text(template)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return str(folder)


def spec(**fields) -> ModelSpec:
    return ModelSpec(name="qed", backend="scripted", model="echo", **fields)


def test_the_served_template_is_checked_against_the_setting(smollm_tokenizer, tmp_path):
    opening = tokenizer_folder(smollm_tokenizer, tmp_path, opens_thinking=True)
    with pytest.raises(ModelConfigError, match="opens <think> in the prompt, but thinking_in_prompt is False"):
        build_model(spec(tokenizer=opening))
    assert build_model(spec(tokenizer=opening, thinking_in_prompt=True)).thinking_in_prompt


def test_a_template_that_does_not_open_thinking_refuses_the_setting(smollm_tokenizer, tmp_path):
    plain = tokenizer_folder(smollm_tokenizer, tmp_path, opens_thinking=False)
    with pytest.raises(ModelConfigError, match="does not open <think>"):
        build_model(spec(tokenizer=plain, thinking_in_prompt=True))


# ------------------------------------------------------------------------------ reasoning tokens

SILENT = Completion(model="m", content="Proof.", reasoning="one two three four", usage=Usage(completion_tokens=9))


async def test_reasoning_tokens_the_server_did_not_give_are_counted_or_unknown():
    counted = await served(SILENT, count_tokens=lambda text: len(text.split())).complete([])
    unknown = await served(SILENT).complete([])
    assert counted.usage.reasoning_tokens == 4
    assert unknown.usage.reasoning_tokens is None
    no_reasoning = await served(Completion(model="m", content="Proof.")).complete([])
    assert no_reasoning.usage.reasoning_tokens == 0


async def test_the_report_says_unknown_not_zero():
    attempt = await Direct(DirectConfig(), Roles(model=served(SILENT))).solve(PROBLEM)
    record = SampleRecord.start(PROBLEM, attempt).model_copy(update={"grade": Grade(status="graded", score=7)})
    report = build_report([record], {})
    assert (report.tokens.mean_reasoning, report.tokens.reasoning_unknown) == (None, 1)
    assert "| mean reasoning tokens | unknown (1 samples without a reasoning count) |" in render_markdown(report)


def test_a_real_tokenizer_counts_reasoning(smollm_tokenizer, tmp_path):
    model = build_model(spec(tokenizer=tokenizer_folder(smollm_tokenizer, tmp_path, opens_thinking=False)))
    assert model.count_tokens("Let us count these tokens.") >= 5


# ------------------------------------------------------------------------ self-evaluation sections

SELF_EVALUATED = "Proof. Both are odd, so the product is odd.\n\n## **Self Evaluation**\nThis proof is complete. Score: 7/7"


@pytest.mark.parametrize(
    ("heading", "stripped"),
    [
        ("# Evaluation", True),
        ("## Self Evaluation", True),
        ("### **Final Evaluation**", True),
        ("## Self-Evaluation", False),  # not one of the reference's headings: kept
        ("Evaluation", False),  # not a heading
        ("## Evaluation of the sum", True),
    ],
)
def test_self_evaluation_headings(heading, stripped):
    kept, removed = strip_self_evaluation(f"The proof.\n\n{heading}\nI give myself 7.")
    assert (kept == "The proof.") is stripped
    assert bool(removed) is stripped


class Seen:
    name = "seen"

    def __init__(self):
        self.proofs = []

    async def grade(self, problem, proof, sample_index=0):
        self.proofs.append(proof)
        return Grade(status="graded", score=3)


async def test_the_grader_never_sees_the_self_evaluation_and_it_is_recorded(monkeypatch):
    seen = Seen()
    monkeypatch.setattr("qednano.grading.build._grader", lambda task, config, graders: seen)
    grade = await build_grader("proof", GradingConfig(), []).grade(PROBLEM, SELF_EVALUATED)
    assert seen.proofs == ["Proof. Both are odd, so the product is odd."]
    assert grade.self_evaluation.startswith("## **Self Evaluation**") and "7/7" in grade.self_evaluation
    kept = await build_grader("proof", GradingConfig(strip_self_evaluation=False), []).grade(PROBLEM, SELF_EVALUATED)
    assert seen.proofs[-1] == SELF_EVALUATED and kept.self_evaluation == ""


@pytest.mark.slow
def test_the_embedded_models_template_is_checked():
    with pytest.raises(ModelConfigError, match="does not open <think> in the prompt, but thinking_in_prompt is True"):
        build_model(ModelSpec(name="smol", backend="embedded", model="SmolLM2-135M-Instruct", thinking_in_prompt=True))


def test_unknown_reasoning_tokens_stay_unknown_in_the_manifest_totals(tmp_path):
    from qednano.records.rundir import add_totals

    known = {"models": {"m": {"calls": 1, "reasoning_tokens": 5}}}
    unknown = {"models": {"m": {"calls": 2, "reasoning_tokens": None}}}
    assert add_totals([known, known])["models"]["m"] == {"calls": 2, "reasoning_tokens": 10}
    assert add_totals([known, unknown])["models"]["m"] == {"calls": 3, "reasoning_tokens": None}
