import json

import pytest

from qednano.train.data import DataError
from qednano.train.policy import save_tiny_random_policy as save_tiny_policy
from qednano.train.recipe import RecipeError, load_recipe
from qednano.train.sft import SFTRecipe, build_trainer, train_sft

ROWS = [
    {"problem": f"Show that {n} + {n} is even.", "reasoning_content": f"{n}+{n} = 2*{n}.",
     "proof": f"Since {n} + {n} = 2 * {n}, it is a multiple of 2.", "messages": [], "source": "t", "grade": 7}
    for n in range(1, 5)
]
# Every assistant turn opens <think> itself (as some thinking-model templates do).
OPENING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' %}<think>\n{% endif %}"
    "{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    return save_tiny_policy(tmp_path_factory.mktemp("policy"))


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def recipe(tmp_path, model, **changes) -> SFTRecipe:
    settings = dict(model=str(model), dataset=str(write_rows(tmp_path / "sft.jsonl", ROWS)), output_dir=str(tmp_path / "run"),
                    use_cpu=True, bf16=False, report_to="none", per_device_train_batch_size=2, logging_steps=1,
                    max_steps=2, save_steps=2, learning_rate=3e-2, lr_scheduler_type="constant", seed=0,
                    disable_tqdm=True, gradient_checkpointing=False)
    return SFTRecipe(**{**settings, **changes})


def labelled_text(trainer, index=0):
    batch = trainer.data_collator([trainer.train_dataset[index]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    tok = trainer.processing_class
    return tok.decode(ids), tok.decode(ids[labels != -100])


def test_labels_cover_exactly_the_completion(tmp_path, tiny_policy) -> None:
    trainer, _ = build_trainer(recipe(tmp_path, tiny_policy))
    full, labelled = labelled_text(trainer)
    assert labelled == "<think>\n1+1 = 2*1.\n</think>\n\nSince 1 + 1 = 2 * 1, it is a multiple of 2.<|im_end|>\n"
    # The prompt is the evaluation's solve prompt around the problem, and carries no label.
    assert "Solve the following olympiad problem." in full.removesuffix(labelled)
    assert "Show that 1 + 1 is even." in full.removesuffix(labelled)


def test_a_template_that_opens_reasoning_gets_no_second_tag(tmp_path, tiny_policy) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    tokenizer.chat_template = OPENING_TEMPLATE
    folder = tmp_path / "opening"
    tokenizer.save_pretrained(folder)
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (folder / name).write_bytes((tiny_policy / name).read_bytes())
    trainer, _ = build_trainer(recipe(tmp_path, folder))
    full, labelled = labelled_text(trainer)
    assert full.count("<think>") == 1
    assert full.endswith("assistant\n<think>\n" + labelled)
    assert labelled.startswith("1+1 = 2*1.\n</think>\n\nSince")


def test_sft_loss_falls_and_the_run_directory_is_complete(tmp_path, tiny_policy) -> None:
    config = recipe(tmp_path, tiny_policy, max_steps=8, save_steps=4)
    train_sft(config, {"model": "tiny"})
    run = tmp_path / "run"
    losses = [row["loss"] for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 1.0  # from ln(49152) = 10.8, random weights
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["command"] == "train-sft" and manifest["status"] == "finished"
    assert (run / "checkpoint-4").is_dir() and (run / "checkpoint-8").is_dir()
    assert (run / "model" / "model.safetensors").is_file() and (run / "model" / "tokenizer.json").is_file()


def test_a_dataset_missing_a_column_fails_before_training(tmp_path, tiny_policy) -> None:
    rows = [{k: v for k, v in r.items() if k != "reasoning_content"} for r in ROWS]
    config = recipe(tmp_path, tiny_policy, dataset=str(write_rows(tmp_path / "bad.jsonl", rows)))
    with pytest.raises(DataError, match=r"bad.jsonl: missing column\(s\) \['reasoning_content'\]"):
        build_trainer(config)
    assert not (tmp_path / "run").exists()


def test_an_empty_proof_names_the_row(tmp_path, tiny_policy) -> None:
    rows = [*ROWS[:2], {**ROWS[2], "proof": " "}]
    config = recipe(tmp_path, tiny_policy, dataset=str(write_rows(tmp_path / "bad.jsonl", rows)))
    with pytest.raises(DataError, match="row 3: column 'proof' is empty"):
        build_trainer(config)


def test_recipe_with_an_unknown_key_names_file_and_field(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("model: smollm2\ndataset: x.jsonl\nlearning_rte: 0.1\n")
    with pytest.raises(RecipeError, match=r"r.yaml: unknown field 'learning_rte' for SFTRecipe; did you mean learning_rate"):
        load_recipe(str(path), SFTRecipe)
    path.with_name("r2.yaml").write_text("model: smollm2\ndataset: x.jsonl\n")
    with pytest.raises(RecipeError, match=r"r2.yaml: field 'dataset' is empty"):
        load_recipe(str(path.with_name("r2.yaml")), SFTRecipe, {"dataset": ""})
