"""Model registry: names, YAML files and short specs, with clear errors."""

import pytest

from qednano.llm.registry import registered_models, resolve_spec
from qednano.llm.spec import ModelConfigError


def test_repo_registry_has_the_embedded_default():
    found = registered_models()
    assert found["smollm2"][0].backend == "embedded"
    assert all(spec.name == name for name, (spec, _) in found.items())


def test_short_openai_spec_with_several_endpoints():
    spec = resolve_spec("openai:Qwen/Qwen3-4B@http://a:8000/v1,http://b:8000/v1")
    assert spec.backend == "openai" and spec.model == "Qwen/Qwen3-4B"
    assert spec.base_urls == ["http://a:8000/v1", "http://b:8000/v1"]
    assert spec.cache_identity() == "openai|Qwen/Qwen3-4B|http://a:8000/v1|http://b:8000/v1"


@pytest.mark.parametrize("text", ["openai:model-without-url", "openai:@http://x"])
def test_bad_short_spec(text):
    with pytest.raises(ModelConfigError, match="openai:MODEL@URL"):
        resolve_spec(text)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ModelConfigError, match="unknown model 'nope'.*smollm2"):
        resolve_spec("nope")


def test_yaml_errors_name_the_file_and_field(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nbackend: [unclosed\n")
    with pytest.raises(ModelConfigError, match="broken.yaml: not valid YAML"):
        resolve_spec(str(broken))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: x\nbackend: carrier-pigeon\nmodel: m\n")
    with pytest.raises(ModelConfigError, match="wrong.yaml: field 'backend'"):
        resolve_spec(str(wrong))
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: x\nbackend: openai\nmodel: m\nbase_url: http://x\n")
    with pytest.raises(ModelConfigError, match="typo.yaml: field 'base_url'"):
        resolve_spec(str(typo))


def test_precision_is_only_for_embedded_models(tmp_path):
    assert resolve_spec("smollm2-int8").precision == "int8"
    assert resolve_spec("smollm2").precision is None  # the backend's default, int4
    remote = tmp_path / "remote.yaml"
    remote.write_text("name: x\nbackend: openai\nmodel: m\nbase_urls: [http://x]\nprecision: int8\n")
    with pytest.raises(ModelConfigError, match="remote.yaml: field 'precision'.*embedded models only"):
        resolve_spec(str(remote))
    odd = tmp_path / "odd.yaml"
    odd.write_text("name: x\nbackend: embedded\nmodel: SmolLM2-135M-Instruct\nprecision: fp3\n")
    with pytest.raises(ModelConfigError, match="odd.yaml: field 'precision'"):
        resolve_spec(str(odd))


def test_missing_api_key_says_which_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = resolve_spec("gpt-5-grader")
    with pytest.raises(ModelConfigError, match="set the environment variable OPENAI_API_KEY"):
        spec.api_key()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123456")
    assert spec.api_key() == "sk-test-123456"


def test_user_model_dir_takes_precedence(monkeypatch, tmp_path):
    (tmp_path / "mine.yaml").write_text("name: smollm2\nbackend: scripted\nmodel: echo\n")
    monkeypatch.setenv("QEDNANO_MODELS", str(tmp_path))
    assert resolve_spec("smollm2").backend == "scripted"
