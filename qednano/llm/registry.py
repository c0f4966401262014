"""Named models: YAML files under `configs/models/` and short specs on the command line.

A model file says which backend serves the model and how to reach it:

    name: deepseek-math-v2
    backend: openai
    model: deepseek-ai/DeepSeek-Math-V2
    base_urls: [http://gpu-1:8000/v1, http://gpu-2:8000/v1]
    api_key_env: null
    sampling: {temperature: 1.0, max_tokens: 65536}
    prices: {input: 0.28, output: 0.42}

On the command line a model is a registered name, a path to such a file, or a short spec:
`openai:MODEL@URL[,URL...]` for any OpenAI-compatible server. The offline default is the
registered `smollm2` (backend: embedded).

A folder holding a Hugging Face model (`config.json`, safetensors weights, tokenizer), such as a
training run's `checkpoint-40/` or `model/`, is an embedded model too: it is converted once to
onnxruntime-genai and cached by its content, at int8 (`CHECKPOINT_PRECISION`; measured in
`bench/checkpoint_fidelity.py`). A model file with `backend: embedded`, `model: PATH` and
`precision: int4` picks the other precision.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from qednano.errors import first_error
from qednano.llm.backend import Backend
from qednano.llm.cache import CallCache
from qednano.llm.model import Model
from qednano.llm.spec import ModelConfigError, ModelSpec, Precision
from qednano.paths import search_dirs


def model_dirs() -> list[Path]:
    """Where model files are looked up: $QEDNANO_MODELS (colon-separated), ./configs/models, the repo's."""
    return search_dirs("QEDNANO_MODELS", "configs/models")


def read_spec_file(path: Path) -> ModelSpec:
    import yaml  # here: a model given as openai:MODEL@URL reads no file, and PyYAML takes 15 ms to import

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ModelConfigError(f"{path}: not valid YAML ({err.__class__.__name__}: {err})") from err
    if not isinstance(raw, dict):
        raise ModelConfigError(f"{path}: expected a mapping of model settings, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as err:
        field, message = first_error(err)
        raise ModelConfigError(f"{path}: field {field!r}: {message}") from err


def registered_models() -> dict[str, tuple[ModelSpec, Path]]:
    """All model files found, by name; earlier directories win."""
    found: dict[str, tuple[ModelSpec, Path]] = {}
    for folder in model_dirs():
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            spec = read_spec_file(path)
            found.setdefault(spec.name, (spec, path))
    return found


# int8: fed fp32's text, the converted checkpoint picks fp32's next token 96-100% of the time; int4
# 71-79%, whether or not the weights still lie on the GGUF's 4-bit grid (bench/checkpoint_fidelity.py).
CHECKPOINT_PRECISION: Precision = "int8"


def checkpoint_spec(folder: Path) -> ModelSpec:
    """An embedded ModelSpec for a Hugging Face model folder (a training checkpoint)."""
    return ModelSpec(name=str(folder), backend="embedded", model=str(folder), precision=CHECKPOINT_PRECISION)


def resolve_spec(text: str) -> ModelSpec:
    """A ModelSpec from a registered name, a YAML path, a checkpoint folder or a `kind:model@urls` spec."""
    if (Path(text) / "config.json").is_file():
        return checkpoint_spec(Path(text))
    if text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise ModelConfigError(f"model file {text} does not exist")
        return read_spec_file(path)
    if text.startswith("openai:"):
        model, sep, urls = text.removeprefix("openai:").partition("@")
        if not sep or not model or not urls:
            raise ModelConfigError(f"bad model spec {text!r}: write openai:MODEL@URL[,URL...]")
        return ModelSpec(name=text, backend="openai", model=model, base_urls=urls.split(","))
    registry = registered_models()
    if text in registry:
        return registry[text][0]
    known = ", ".join(sorted(registry)) or "none"
    if Path(text).is_dir():
        raise ModelConfigError(f"model folder {text} has no config.json: a checkpoint folder holds "
                               "config.json, *.safetensors and the tokenizer (save_pretrained writes them)")
    raise ModelConfigError(
        f"unknown model {text!r}; registered: {known}. Use a name from `qednano models`, "
        "a YAML path, a checkpoint folder, or openai:MODEL@URL"
    )


BackendFactory = Callable[[ModelSpec], Backend]


def _openai(spec: ModelSpec) -> Backend:
    from qednano.llm.openai_backend import OpenAIBackend

    return OpenAIBackend.from_spec(spec)


def _embedded(spec: ModelSpec) -> Backend:
    from qednano.llm.embedded import EmbeddedBackend

    return EmbeddedBackend.from_spec(spec)


def _scripted(spec: ModelSpec) -> Backend:
    from qednano.llm.scripted import ScriptedBackend

    return ScriptedBackend.from_spec(spec)


BACKENDS: dict[str, BackendFactory] = {"openai": _openai, "embedded": _embedded, "scripted": _scripted}


def build_model(spec: ModelSpec, cache: CallCache | None = None) -> Model:
    counter = None
    if spec.tokenizer:
        from qednano.llm.tokenizer import check_thinking_in_prompt, load_tokenizer, token_counter

        tokenizer = load_tokenizer(spec.tokenizer)
        check_thinking_in_prompt(spec, tokenizer)
        counter = token_counter(tokenizer)
    elif spec.backend == "embedded" and spec.thinking_in_prompt:
        # The embedded model's template is known (its GGUF file carries it); it counts its own tokens.
        from qednano.llm.embedded import find_gguf
        from qednano.llm.tokenizer import check_thinking_in_prompt, load_tokenizer

        gguf = find_gguf(spec.model)
        check_thinking_in_prompt(spec, load_tokenizer(str(gguf.parent), gguf_file=gguf.name))
    backend = BACKENDS[spec.backend](spec)
    return Model(
        spec.name,
        backend,
        defaults=spec.sampling,
        prices=spec.prices,
        cache=cache,
        thinking_in_prompt=spec.thinking_in_prompt,
        count_tokens=counter,
    )


def load_model(
    text: str, cache: CallCache | None = None, timeout_s: float | None = None, idle_timeout_s: float | None = None
) -> Model:
    """The model `text` names; call timeouts given here (from the command line) override its file's."""
    return build_model(resolve_spec(text).with_limits(timeout_s, idle_timeout_s), cache=cache)
