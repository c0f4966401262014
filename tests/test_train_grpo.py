import json

import pytest
import torch

from qednano.grading.proof_grader import VARIANTS
from qednano.grading.untrusted import PROOF_BEGIN, PROOF_END
from qednano.llm.scripted import BUILTIN_SCRIPTS
from qednano.llm.types import Completion
from qednano.train.grpo import RLRecipe, build_trainer, train_rl
from qednano.train.policy import save_tiny_random_policy as save_tiny_policy
from qednano.train.recipe import RecipeError, load_recipe
from qednano.train.rewards import proof_of

PROBLEMS = [{"id": f"p{n}", "problem": f"Prove that {n} squared is at least {n}.", "solution": "Since n >= 1."}
            for n in range(1, 4)]


def score_of(proof: str) -> int:
    return (0, 1, 6, 7)[len(proof) % 4]


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    return save_tiny_policy(tmp_path_factory.mktemp("policy"))


@pytest.fixture
def seen(monkeypatch, scripted_registry):
    """A registered scripted grader that records each proof and scores it by its length (0, 1, 6 or 7)."""
    proofs: list[str] = []

    def grade(messages, sampling) -> str:
        text = messages[0]["content"]
        if PROOF_BEGIN not in text:
            return "OK"  # the reachability probe
        proof = text.split(PROOF_BEGIN)[1].split(PROOF_END)[0].strip("\n")
        proofs.append(proof)
        return f"Assessed.\nFINAL SCORE: {score_of(proof)}"

    monkeypatch.setitem(BUILTIN_SCRIPTS, "length-grader", grade)
    (scripted_registry / "length-grader.yaml").write_text("backend: scripted\nmodel: length-grader\n")
    return proofs


def recipe(tmp_path, model, **changes) -> RLRecipe:
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    settings = dict(model=str(model), dataset=str(data), graders=["length-grader"], grader_variant="no_reference",
                    output_dir=str(tmp_path / "run"), use_cpu=True, bf16=False, report_to="none", max_steps=1,
                    per_device_train_batch_size=4, num_generations=4, max_completion_length=12, learning_rate=0.1,
                    logging_steps=1, save_steps=1, seed=0, disable_tqdm=True, log_completions=True,
                    num_completions_to_print=0, gradient_checkpointing=False)
    return RLRecipe(**{**settings, **changes})


def test_a_grpo_step_grades_the_proof_text_and_changes_every_parameter(tmp_path, tiny_policy, seen) -> None:
    config = recipe(tmp_path, tiny_policy)
    trainer, _, _ = build_trainer(config)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    unchanged = [name for name, p in trainer.model.named_parameters() if torch.equal(before[name], p.detach())]
    assert unchanged == []
    rows = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["problem_id"] for r in rows} <= {"p1", "p2", "p3"}
    # The grader saw each completion's proof text, once per completion.
    assert sorted(seen) == sorted(proof_of(r["completion"]) for r in rows)
    for r in rows:
        assert r["grade_status"] == "graded"
        assert r["reward"] == pytest.approx(score_of(proof_of(r["completion"])) / 7)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = metrics[0]
    for key in ("reward", "reward_std", "frac_reward_zero_std", "grader/no_proof_fraction", "grader/ungraded_fraction",
                "grader/failed_fraction", "completions/mean_length", "completions/clipped_ratio", "tokens_per_s"):
        assert key in logged, key
    assert list((tmp_path / "run" / "completions").glob("*.parquet"))  # TRL's own completion table


def test_train_rl_writes_the_run_directory(tmp_path, tiny_policy, seen) -> None:
    train_rl(recipe(tmp_path, tiny_policy), {"recipe": "test"})
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["command"] == "train-rl" and manifest["status"] == "finished"
    assert "length-grader" in manifest["totals"]["models"]
    assert (run / "checkpoint-1").is_dir() and (run / "model" / "tokenizer.json").is_file()


def test_an_unreachable_grader_fails_before_training(tmp_path, tiny_policy, monkeypatch, scripted_registry) -> None:
    monkeypatch.setitem(BUILTIN_SCRIPTS, "down", lambda m, s: Completion.failure("down", "connection", "refused"))
    (scripted_registry / "down.yaml").write_text("backend: scripted\nmodel: down\n")
    with pytest.raises(ValueError, match=r"grader 'down' cannot be reached \(connection\): refused"):
        build_trainer(recipe(tmp_path, tiny_policy, graders=["down"]))
    assert not (tmp_path / "run").exists()


def test_answer_reward_needs_short_answers_named_before_training(tmp_path, tiny_policy) -> None:
    with pytest.raises(ValueError, match=r"problem\(s\) \['p1', 'p2', 'p3'\] have no short answer"):
        build_trainer(recipe(tmp_path, tiny_policy, rewards=["answer"], graders=[]))


@pytest.mark.parametrize(("text", "message"), [
    ("rewards: [grader, lenght]\n", r"field 'rewards': \['lenght'\]"),
    ("rewards: [grader]\n", r"needs field 'graders'"),
    ("graders: [g]\nnum_generatoins: 4\n", r"unknown field 'num_generatoins' for RLRecipe; did you mean num_generations"),
    ("graders: [g]\nrc: 3\n", r"field 'rc' must be a mapping"),
])
def test_bad_rl_recipes_name_file_and_field(tmp_path, text, message) -> None:
    path = tmp_path / "rl.yaml"
    path.write_text("dataset: problems.jsonl\nuse_cpu: true\n" + text)
    with pytest.raises(RecipeError, match=rf"rl.yaml: .*{message}"):
        load_recipe(str(path), RLRecipe)


@pytest.mark.parametrize(("name", "kind", "overrides"), [
    ("sft-tiny", "sft", {}), ("sft-qed-nano", "sft", {}), ("rl-tiny", "rl", {}), ("rl-tiny-addition", "rl", {}),
    ("rl-qed-nano", "rl", {"grader_variant": "strict", "use_vllm": False, "bf16": False}),
])
def test_shipped_recipes_load(name, kind, overrides) -> None:
    from qednano.train.sft import SFTRecipe

    config, settings = load_recipe(name, SFTRecipe if kind == "sft" else RLRecipe, {"use_cpu": True, **overrides})
    assert config.max_steps == settings["max_steps"]
    if name == "rl-qed-nano":
        assert (config.learning_rate, config.lr_scheduler_type.value, config.temperature) == (1e-6, "constant", 0.8)
        assert (config.beta, config.scale_rewards, config.entropy_coef, config.max_grad_norm) == (0.0, "none", 1e-4, 0.3)
        assert (config.num_generations, config.generation_batch_size, config.max_completion_length) == (16, 1024, 49152)


@pytest.mark.skipif("marking_scheme" in VARIANTS, reason="the marking-scheme grader variant has landed")
def test_the_paper_rl_recipe_waits_for_the_marking_scheme_variant() -> None:
    with pytest.raises(RecipeError, match=r"rl-qed-nano.yaml: field 'grader_variant': 'marking_scheme'"):
        load_recipe("rl-qed-nano", RLRecipe, {"use_cpu": True, "use_vllm": False, "bf16": False})
