"""A model entry's tokenizer: counting reasoning tokens, and what its chat template does.

Loaded only when a model entry names one (`tokenizer:`), with transformers' AutoTokenizer (a
Hugging Face name, or a local folder). Its chat template tells whether the prompt opens a
`<think>` block, which must agree with the entry's `thinking_in_prompt`: a wrong setting would
either score cut-off reasoning as a proof or throw every proof away.
"""

from __future__ import annotations

from typing import Any

from qednano.llm.spec import ModelConfigError, ModelSpec

PROBE = [{"role": "user", "content": "Prove that 1 + 1 = 2."}]


def load_tokenizer(name: str, **options: Any) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, **options)
    except (OSError, ValueError) as err:
        raise ModelConfigError(f"tokenizer {name!r} cannot be loaded: {err}") from err


def template_opens_thinking(tokenizer: Any) -> bool:
    """Whether the chat template's generation prompt ends inside an opened `<think>` block."""
    prompt = tokenizer.apply_chat_template(PROBE, add_generation_prompt=True, tokenize=False)
    tail = prompt.rpartition("<think>")[2]
    return "<think>" in prompt and "</think>" not in tail


def check_thinking_in_prompt(spec: ModelSpec, tokenizer: Any) -> None:
    """Refuse a model entry whose `thinking_in_prompt` disagrees with its tokenizer's template."""
    if tokenizer.chat_template is None:
        return  # nothing known to check against
    opens = template_opens_thinking(tokenizer)
    if opens != spec.thinking_in_prompt:
        does = "opens <think> in the prompt" if opens else "does not open <think> in the prompt"
        raise ModelConfigError(
            f"model {spec.name!r}: the chat template of tokenizer {spec.tokenizer or spec.model!r} {does}, but "
            f"thinking_in_prompt is {spec.thinking_in_prompt}; set thinking_in_prompt: {opens}"
        )


def token_counter(tokenizer: Any):
    """Counts the tokens of a text as the model wrote them (no special tokens added)."""

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count
